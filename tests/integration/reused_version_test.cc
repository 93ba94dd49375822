// A version number is never reused silently (issue 9, item 3). When the campaign database loses
// commits the history already holds (a restore from an older backup; before the relay fsynced
// the WAL, a power loss too) and the same version numbers come back with other content, the
// history keeps the first record, keeps the other as evidence, and says so: in `status`, in
// `status --json` and in the metrics of `serve --metrics-listen`.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "common/metrics_server.h"
#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

extern char** environ;

namespace ch {
namespace {

using ::ch::testing::CommandOutcome;
using ::ch::testing::RunCommand;
using ::ch::testing::TempDir;
namespace fs = std::filesystem;

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class ReusedVersionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    data_ = dir_.File("data");
    // The small workload in two parts; count the versions the second one makes.
    std::string whole = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(whole);
    std::ifstream in(whole);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    ASSERT_GT(lines.size(), 100u);
    std::ofstream a(part1_), b(part2_);
    const size_t cut = lines.size() * 9 / 10;
    for (size_t i = 0; i < lines.size(); ++i) {
      (i < cut ? a : b) << lines[i] << "\n";
      auto j = nlohmann::json::parse(lines[i]);
      if (i >= cut && j.contains("versions")) part2_versions_ += j["versions"].get<int64_t>();
    }
    ASSERT_GT(part2_versions_, 0);
  }

  std::string Cli(const std::string& args) const {
    return fmt::format("'{}' --data '{}' {}", bin_, data_, args);
  }
  void ExpectRuns(const std::string& args) {
    CommandOutcome o = RunCommand(Cli(args));
    ASSERT_EQ(o.code, 0) << args << "\n" << o.output;
  }
  // Copy the campaign database's files (no process has it open) from one directory to another.
  static void CopyDb(const std::string& from, const std::string& to) {
    fs::create_directories(to);
    for (const char* suffix : {"", "-wal", "-shm"}) {
      const fs::path f = fs::path(to) / (std::string("campaigns.db") + suffix);
      fs::remove(f);
      const fs::path src = fs::path(from) / (std::string("campaigns.db") + suffix);
      if (fs::exists(src)) fs::copy_file(src, f);
    }
  }

  // Start `serve --roles publisher --metrics-listen 127.0.0.1:0` and return its /metrics text.
  std::string ServeMetrics() {
    const std::string err = dir_.File("serve.err");
    std::vector<std::string> args = {
        bin_, "--data", data_, "serve", "--roles", "publisher", "--metrics-listen", "127.0.0.1:0"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t io;
    posix_spawn_file_actions_init(&io);
    posix_spawn_file_actions_addopen(&io, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    EXPECT_EQ(posix_spawn(&pid, bin_.c_str(), &io, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&io);
    std::string text;
    for (int i = 0; i < 600 && text.empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      const std::string log = ReadText(err);
      const std::string mark = "serve: metrics on ";
      size_t at = log.find(mark);
      size_t end = at == std::string::npos ? at : log.find("/metrics", at);
      if (end == std::string::npos) continue;
      auto reply = HttpGet(log.substr(at + mark.size(), end - at - mark.size()) + "/metrics",
                           std::chrono::seconds(5));
      if (reply.ok() && reply->status == 200) text = reply->body;
    }
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ReadText(err);
    EXPECT_FALSE(text.empty()) << ReadText(err);
    return text;
  }

  TempDir dir_;
  std::string bin_, data_;
  std::string part1_ = dir_.File("part1.jsonl"), part2_ = dir_.File("part2.jsonl");
  int64_t part2_versions_ = 0;
};

TEST_F(ReusedVersionTest, ARolledBackCampaignDatabaseShowsAsConflictsInStatusAndMetrics) {
  ExpectRuns(fmt::format("replay --ops '{}' --wait --quiet", part1_));
  const std::string backup = dir_.File("backup");
  CopyDb(data_, backup);
  ExpectRuns(fmt::format("replay --ops '{}' --wait --quiet", part2_));
  // The database loses the second part, which the history holds; the same ops commit again:
  // the same campaigns and version numbers, at other commit times.
  CopyDb(backup, data_);
  ExpectRuns(fmt::format("replay --ops '{}' --wait --quiet", part2_));
  // `replay --wait` is satisfied by the versions the history already had: a query moves what the
  // outbox still holds into the history (status does not).
  ExpectRuns("as-of --customer 1 --at 2100-01-01 --json > /dev/null");

  CommandOutcome json = RunCommand("{ " + Cli("status --json") + " 2>/dev/null; }");
  ASSERT_EQ(json.code, 0) << json.output;
  auto j = nlohmann::json::parse(json.output);
  EXPECT_EQ(j["backlog"].get<int64_t>(), 0) << json.output;
  EXPECT_EQ(j["completeness"]["conflicts"].get<int64_t>(), part2_versions_) << json.output;
  CommandOutcome text = RunCommand(Cli("status"));
  EXPECT_NE(text.output.find(fmt::format("conflicts: {} versions received again with other "
                                         "content",
                                         part2_versions_)),
            std::string::npos)
      << text.output;
  const std::string metrics = ServeMetrics();
  EXPECT_NE(metrics.find(fmt::format("\ncampaign_history_history_conflicts {}\n", part2_versions_)),
            std::string::npos)
      << metrics;
}

}  // namespace
}  // namespace ch
