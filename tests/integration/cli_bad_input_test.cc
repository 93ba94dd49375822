// Bad input on every CLI entry point: a clear message naming the problem, a non-zero exit code,
// and nothing already recorded lost or changed (the history and the campaign state are compared
// before and after every rejected command).
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;

using Outcome = ::ch::testing::CommandOutcome;
using ::ch::testing::RunCommand;

// What a bounded run of the CLI did.
struct BoundedOutcome {
  int code = -1;
  std::string output;  // stderr (stdout goes to /dev/null)
  // Peak resident memory of the process, in bytes.
  int64_t max_rss = 0;
  double seconds = 0;
  // Why it was killed: "" (it exited), "time" or "memory".
  std::string killed_for;
};

// Return the resident memory of process `pid`, in bytes (0 when unknown).
int64_t ResidentBytes(pid_t pid) {
  std::ifstream status(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

// Run `argv` with stdout to /dev/null and stderr captured; kill it when it runs longer than
// `timeout` or grows past `max_rss` bytes, so that a run without bounds fails the test instead of
// taking the machine down.
BoundedOutcome RunBounded(const std::vector<std::string>& argv, std::chrono::seconds timeout,
                          int64_t max_rss) {
  BoundedOutcome o;
  int err[2];
  if (pipe(err) != 0) return o;
  auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    dup2(err[1], 2);
    close(err[0]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(err[1]);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  int status = 0;
  rusage usage{};
  while (true) {
    char buf[4096];
    ssize_t n;
    while ((n = read(err[0], buf, sizeof buf)) > 0) o.output.append(buf, static_cast<size_t>(n));
    pid_t done = wait4(pid, &status, WNOHANG, &usage);
    if (done == pid) break;
    if (o.killed_for.empty()) {
      if (std::chrono::steady_clock::now() - start > timeout) o.killed_for = "time";
      if (ResidentBytes(pid) > max_rss) o.killed_for = "memory";
      if (!o.killed_for.empty()) kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  char buf[4096];
  ssize_t n;
  while ((n = read(err[0], buf, sizeof buf)) > 0) o.output.append(buf, static_cast<size_t>(n));
  close(err[0]);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  o.max_rss = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

class CliBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    data_ = dir_.File("data");
    std::string ops = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(ops);
    Outcome r = RunCommand(Cli(fmt::format("replay --ops '{}' --wait --quiet", ops)));
    ASSERT_EQ(r.code, 0) << r.output;
    // A live campaign of customer 2 to aim bad edits at.
    Outcome a = RunCommand(StdoutOnly(Cli("as-of --customer 2 --at 2100-01-01 --json")));
    ASSERT_EQ(a.code, 0) << a.output;
    auto campaigns = nlohmann::json::parse(a.output)["campaigns"];
    ASSERT_FALSE(campaigns.empty());
    id_ = campaigns[0]["id"].get<int64_t>();
    count_ = static_cast<int64_t>(campaigns.size());
    before_ = Fingerprint();
    ASSERT_FALSE(before_.empty());
  }

  std::string Cli(const std::string& args) const {
    return fmt::format("'{}' --data '{}' {}", bin_, data_, args);
  }
  // `command` with its stderr dropped (RunCommand merges it otherwise).
  static std::string StdoutOnly(const std::string& command) {
    return "{ " + command + " 2>/dev/null; }";
  }

  // Everything a user could observe: counts, backlog and every customer's state.
  std::string Fingerprint() {
    // How complete the history is moves with time (each query's catch-up ends with a capture
    // heartbeat): not part of what a bad command must leave unchanged.
    std::string out = std::regex_replace(RunCommand(Cli("status --json")).output,
                                         std::regex(R"("complete_through":"[^"]*")"), "");
    for (int c = 1; c <= 20; ++c) {
      std::string j =
          RunCommand(StdoutOnly(Cli(fmt::format("as-of --customer {} --at 2100-01-01 --json", c))))
              .output;
      auto parsed = nlohmann::json::parse(j, nullptr, /*allow_exceptions=*/false);
      out += parsed.is_object() ? parsed["campaigns"].dump() : j;
    }
    return out;
  }

  // Replay a one-line workload; expect it rejected with `code` and a message containing `what`.
  void ExpectRejected(const std::string& line, int code, const std::string& what) {
    std::string file = dir_.File("bad.jsonl");
    {
      std::ofstream f(file);
      f << line << "\n";
    }
    Outcome o = RunCommand(Cli(fmt::format("replay --ops '{}' --wait", file)));
    EXPECT_EQ(o.code, code) << line << "\n" << o.output;
    EXPECT_NE(o.output.find("error: "), std::string::npos) << o.output;
    EXPECT_NE(o.output.find(what), std::string::npos)
        << "expected '" << what << "' in: " << o.output;
    EXPECT_EQ(Fingerprint(), before_) << "state changed after: " << line;
  }

  std::string Update(const std::string& set) const {
    return fmt::format(
        R"({{"op":"update","seq":90000,"at":"2024-02-01T00:00:00Z","customer_id":2,"id":{},"set":{},"actor":"user:1","versions":1}})",
        id_, set);
  }

  TempDir dir_;
  std::string bin_, data_, before_;
  int64_t id_ = 0;
  int64_t count_ = 0;
};

TEST_F(CliBadInputTest, MalformedWorkloadLines) {
  ExpectRejected(R"({"op":"update","seq":)", 2, "line 1");
  ExpectRejected(R"({"op":"explode","seq":90000,"at":"2024-02-01T00:00:00Z"})", 2, "explode");
  ExpectRejected("not json at all", 2, "line 1");
  ExpectRejected(Update(R"({"name":"x"})").substr(0, 60), 2, "line 1");
}

TEST_F(CliBadInputTest, UnknownIds) {
  ExpectRejected(
      R"({"op":"update","seq":90000,"at":"2024-02-01T00:00:00Z","customer_id":2,"id":99999999,"set":{"name":"x"},"actor":"user:1","versions":1})",
      3, "99999999");
}

TEST_F(CliBadInputTest, InvalidFieldValues) {
  ExpectRejected(Update(R"({"name":""})"), 2, "name");
  ExpectRejected(Update(R"({"status":"archived"})"), 2, "archived");
  ExpectRejected(Update(R"({"content":"just a string"})"), 2, "content");
  ExpectRejected(Update(R"({"content":[1,2]})"), 2, "content");
  ExpectRejected(Update(R"({"frequency_cap":-1})"), 2, "frequency_cap");
  ExpectRejected(Update(R"({"start_at":"2024-05-01T00:00:00Z","end_at":"2024-04-01T00:00:00Z"})"),
                 2, "end_at");
  ExpectRejected(Update(R"({"start_at":"someday"})"), 2, "start_at");
  std::string big(70 * 1024, 'x');
  ExpectRejected(Update(R"({"content":{"body":")" + big + R"("}})"), 2, "content");
  ExpectRejected(Update(R"({"priority":1})"), 2, "priority");
}

TEST_F(CliBadInputTest, PriorityOutOfRangeAndWrongShift) {
  int64_t to = count_ + 5;
  ExpectRejected(
      fmt::format(
          R"({{"op":"reorder","seq":90000,"at":"2024-02-01T00:00:00Z","customer_id":2,"id":{},"from":1,"to":{},"shift":{{"delta":-1,"lo":2,"hi":{},"n":{}}},"actor":"user:1","versions":{}}})",
          id_, to, to, to - 1, to),
      2, "out of range");
  // A shift whose row count does not match the database: checked inside the transaction.
  ExpectRejected(
      fmt::format(
          R"({{"op":"delete","seq":90000,"at":"2024-02-01T00:00:00Z","customer_id":2,"id":{},"priority":1,"shift":{{"delta":-1,"lo":2,"hi":null,"n":{}}},"actor":"user:1","versions":{}}})",
          id_, count_ + 3, count_ + 4),
      4, "seq 90000");
}

TEST_F(CliBadInputTest, BadFlagsTimesAndUrls) {
  struct Case {
    std::string args;
    int code;
    std::string what;
  };
  for (const Case& c : std::vector<Case>{
           {"as-of --customer 2 --at someday", 2, "invalid time 'someday'"},
           {"as-of --customer 2 --at now-2fortnights", 2, "--at: invalid time 'now-2fortnights'"},
           {"as-of --customer 99999999999999999999 --at now", 2, "--customer"},
           {"as-of --customer 2 --at now --limit 0", 2, "--limit"},
           {"as-of --customer 2 --at now --cursor abc", 2, "--cursor"},
           {"timeline --customer 2 --from today --cursor abc", 2, "--cursor"},
           {"log --campaign 1 --shifts maybe", 2, "--shifts"},
           {"search ''", 2, "query"},
           {"as-of --customer 2 --at 2026-13-45T00:00:00Z", 2, "--at"},
           {"as-of --customer 2", 2, "--at"},
           {"as-of --customer -4 --at now", 2, "--customer"},
           {"as-of --customer 2 --at now --frobnicate", 2, "--frobnicate"},
           {"timeline --customer 2 --from 2026-02-01 --to 2026-01-01", 2, "after --to"},
           {"log --campaign 99999999", 3, "99999999"},
           {"diff --campaign 99999999 --from 1 --to 2", 3, "99999999"},
           {"diff --campaign 1 --from vX --to 2", 2, "--from"},
           {"explode", 2, "explode"},
           {"--history mysql://localhost/x status", 2, "--history"},
           {"--capture cdc status", 2, "cdc"},
           {"replay --ops /nonexistent/file.jsonl", 3, "/nonexistent/file.jsonl"},
           {"generate --preset huge", 2, "huge"},
           {"bigquery-schema --dataset 'in app'", 2, "--dataset: 'in app' is not a valid"},
           {"bigquery-schema --project Acme_Prod", 2, "--project"},
       }) {
    Outcome o = RunCommand(Cli(c.args));
    EXPECT_EQ(o.code, c.code) << c.args << "\n" << o.output;
    EXPECT_NE(o.output.find(c.what), std::string::npos)
        << c.args << ": expected '" << c.what << "' in: " << o.output;
  }
  EXPECT_EQ(Fingerprint(), before_);
}

TEST_F(CliBadInputTest, ValidPrefixIsAppliedAndTheBadLineNamed) {
  std::string file = dir_.File("mixed.jsonl");
  {
    std::ofstream f(file);
    f << Update(R"({"name":"Renamed by a good line"})") << "\n";
    f << R"({"op":"update","seq":90001,"at":"2024-02-01T00:00:01Z","customer_id":2,"id":)" << id_
      << R"(,"set":{"status":"bogus"},"actor":"user:1","versions":1})"
      << "\n";
  }
  Outcome o = RunCommand(Cli(fmt::format("replay --ops '{}' --wait", file)));
  EXPECT_EQ(o.code, 2) << o.output;
  EXPECT_NE(o.output.find("line 2"), std::string::npos) << o.output;
  EXPECT_NE(o.output.find(R"({"seq":90000,)"), std::string::npos) << o.output;
  Outcome log = RunCommand(Cli(fmt::format("log --campaign {} --json", id_)));
  EXPECT_NE(log.output.find("Renamed by a good line"), std::string::npos);
  EXPECT_EQ(log.output.find("bogus"), std::string::npos);
}

// Input that is not line based at all fails fast, in bounded memory, with a short message (it
// used to read /dev/zero into one ever-growing line, gigabytes of it).
TEST_F(CliBadInputTest, EndlessInputFailsFastInBoundedMemory) {
  // Generous for a sanitizer build; the reader itself holds one 16 MiB line at most.
  constexpr int64_t kMaxRss = int64_t{512} * 1024 * 1024;
  BoundedOutcome o = RunBounded({bin_, "--data", data_, "replay", "--ops", "/dev/zero"},
                                std::chrono::seconds(60), kMaxRss);
  EXPECT_EQ(o.killed_for, "") << "peak RSS " << o.max_rss << " bytes after " << o.seconds << " s";
  EXPECT_EQ(o.code, 2) << o.output.substr(0, 2000);
  EXPECT_NE(o.output.find("/dev/zero: workload line 1: longer than the limit of 16777216 bytes"),
            std::string::npos)
      << o.output.substr(0, 2000);
  EXPECT_LT(o.output.size(), 2048u) << o.output.substr(0, 4000);
  EXPECT_LT(o.max_rss, kMaxRss);
  std::cout << fmt::format("replay --ops /dev/zero: exit {} after {:.2f} s, peak RSS {:.1f} MiB\n",
                           o.code, o.seconds, o.max_rss / 1048576.0);
  EXPECT_EQ(Fingerprint(), before_);
}

// A 10 MB line that never closes its string used to come back as a 10 MB error message.
TEST_F(CliBadInputTest, HugeBadLinesGetShortMessages) {
  std::string huge(10 * 1024 * 1024, 'a');
  std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"op":"update","seq":90000,"actor":")" + huge, "malformed JSON"},
      {Update(R"({"name":")" + huge + R"("})"), "name: must be 1-200 characters"},
      {Update(R"({")" + huge + R"(":1})"), "unknown field"},
      // Nested brackets used to overflow the stack (exit by SIGSEGV).
      {Update(R"({"content":{"a":)" + std::string(200000, '[') + std::string(200000, ']') + "}}"),
       "nest more than 64"},
  };
  std::string file = dir_.File("huge.jsonl");
  for (const auto& [line, what] : cases) {
    {
      std::ofstream f(file);
      f << line << "\n";
    }
    BoundedOutcome o = RunBounded({bin_, "--data", data_, "replay", "--ops", file},
                                  std::chrono::seconds(120), int64_t{2} * 1024 * 1024 * 1024);
    EXPECT_EQ(o.code, 2) << what << ": " << o.output.substr(0, 2000);
    EXPECT_NE(o.output.find(what), std::string::npos) << o.output.substr(0, 2000);
    EXPECT_LT(o.output.size(), 2048u) << what << ": " << o.output.substr(0, 4000);
  }
  EXPECT_EQ(Fingerprint(), before_);
}

}  // namespace
}  // namespace ch
