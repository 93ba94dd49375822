// Capture mode belongs to the campaign database (issue 9, item 2): a process whose --capture (or
// config file) disagrees with the database fails and says what to run, instead of turning
// capture off for every writer; `capture setup|drop` are the only ways to change it; and the
// outbox row format does not flip with --bus.
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::CommandOutcome;
using ::ch::testing::RunCommand;
using ::ch::testing::TempDir;

class CliCaptureModeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    data_ = dir_.File("data");
    // The small workload in two parts: the second continues the first (no header of its own).
    std::string whole = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(whole);
    std::ifstream in(whole);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    ASSERT_GT(lines.size(), 100u);
    std::ofstream a(part1_), b(part2_);
    for (size_t i = 0; i < lines.size(); ++i) (i < lines.size() / 2 ? a : b) << lines[i] << "\n";
  }

  std::string Cli(const std::string& args) const {
    return fmt::format("'{}' --data '{}' {}", bin_, data_, args);
  }

  nlohmann::json Json(const std::string& args) {
    CommandOutcome o = RunCommand("{ " + Cli(args) + " 2>/dev/null; }");
    EXPECT_EQ(o.code, 0) << args << "\n" << o.output;
    auto j = nlohmann::json::parse(o.output, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << o.output;
    return j;
  }
  nlohmann::json CaptureStatus() { return Json("capture status --json"); }
  int64_t HistoryRecords() { return Json("status --json")["records"].get<int64_t>(); }

  void ExpectFails(const std::string& args, int code, const std::vector<std::string>& says) {
    CommandOutcome o = RunCommand(Cli(args));
    EXPECT_EQ(o.code, code) << args << "\n" << o.output;
    for (const std::string& s : says) {
      EXPECT_NE(o.output.find(s), std::string::npos) << "expected '" << s << "' in: " << o.output;
    }
  }
  void ExpectRuns(const std::string& args) {
    CommandOutcome o = RunCommand(Cli(args));
    EXPECT_EQ(o.code, 0) << args << "\n" << o.output;
  }

  TempDir dir_;
  std::string bin_, data_;
  std::string part1_ = dir_.File("part1.jsonl"), part2_ = dir_.File("part2.jsonl");
};

TEST_F(CliCaptureModeTest, AProcessWhoseModeDisagreesFailsAndSaysWhatToRun) {
  ExpectRuns(fmt::format("replay --ops '{}' --wait --quiet", part1_));
  const int64_t records = HistoryRecords();
  ASSERT_GT(records, 0);
  std::string config = dir_.File("none.conf");
  std::ofstream(config) << "capture = none\n";
  const std::string db = "sqlite:" + data_ + "/campaigns.db";
  ExpectFails(fmt::format("--capture notify replay --ops '{}'", part2_), 4,
              {"captures in mode 'log'", "configured for 'notify'", "--capture log",
               fmt::format("--campaign-db {} --capture notify capture setup", db)});
  ExpectFails(fmt::format("--capture none replay --ops '{}'", part2_), 4,
              {"configured for 'none'", fmt::format("--campaign-db {} capture drop", db)});
  ExpectFails(fmt::format("--config '{}' replay --ops '{}'", config, part2_), 4,
              {"configured for 'none'"});
  ExpectFails("--capture none serve --roles api --listen 127.0.0.1:0 --insecure-trust-actor", 4,
              {"captures in mode 'log'"});
  // Nothing of that changed the database: it still captures, and every writer's changes arrive.
  nlohmann::json s = CaptureStatus();
  EXPECT_EQ(s["mode"], "log");
  EXPECT_EQ(s["triggers"], true);
  EXPECT_EQ(HistoryRecords(), records);
  CommandOutcome replay = RunCommand(Cli(fmt::format("replay --ops '{}' --wait --quiet", part2_)));
  ASSERT_EQ(replay.code, 0) << replay.output;
  EXPECT_GT(HistoryRecords(), records);
}

TEST_F(CliCaptureModeTest, CaptureSetupAndDropChangeTheModeExplicitly) {
  ExpectFails("capture status", 3, {"no campaign database"});
  ExpectRuns(fmt::format("replay --ops '{}' --wait --quiet", part1_));
  const int64_t records = HistoryRecords();
  ExpectRuns("capture drop");
  nlohmann::json s = CaptureStatus();
  EXPECT_EQ(s["mode"], "none");
  EXPECT_EQ(s["triggers"], false);
  EXPECT_EQ(s["schema_version"], 2);
  ExpectFails(fmt::format("replay --ops '{}'", part2_), 4,
              {"captures in mode 'none'", "--capture log capture setup"});
  // With capture off (and said so), writes go on and nothing reaches the history.
  ExpectRuns(fmt::format("--capture none replay --ops '{}' --quiet", part2_));
  EXPECT_EQ(HistoryRecords(), records);
  ExpectRuns("capture setup");
  EXPECT_EQ(CaptureStatus()["mode"], "log");
  ExpectRuns("--capture notify capture setup");
  EXPECT_EQ(CaptureStatus()["mode"], "notify");
  ExpectFails("--capture none capture setup", 2, {"capture drop"});
  ExpectFails("capture setup --outbox-rows sideways", 2, {"--outbox-rows", "sideways"});
  ExpectFails("capture setup --slot x", 2, {"--slot", "PostgreSQL"});
  EXPECT_EQ(CaptureStatus()["mode"], "notify");
}

// The embedded setup writes compact rows (the embedded publisher takes unchanged content from
// the history); a relay to Pub/Sub cannot read them. Another --bus does not flip the format: the
// relay refuses, before touching the bus, and says what to run; after the switch every queued
// row is self-contained, and later writers with the embedded bus keep writing full rows.
TEST_F(CliCaptureModeTest, TheOutboxRowFormatDoesNotFlipWithTheBus) {
  ExpectRuns(fmt::format("replay --ops '{}' --wait --quiet", part1_));
  ExpectRuns(fmt::format("replay --ops '{}' --no-publish --quiet", part2_));
  nlohmann::json s = CaptureStatus();
  EXPECT_EQ(s["outbox_rows"], "compact");
  const int64_t backlog = s["backlog"].get<int64_t>();
  ASSERT_GT(backlog, 0);
  ASSERT_GT(s["omitted_content"].get<int64_t>(), 0);

  ExpectFails("--bus pubsub://no-such-project serve --roles capture", 4,
              {"compact outbox rows", "capture setup --outbox-rows full"});
  // Queued shift rows (outbox format 3) stand for images only the history completes: the switch
  // refuses, changes nothing and says to drain first.
  ExpectFails("capture setup --outbox-rows full", 4, {"priority shift", "drain the outbox"});
  s = CaptureStatus();
  EXPECT_EQ(s["outbox_rows"], "compact");
  EXPECT_EQ(s["backlog"].get<int64_t>(), backlog);

  // Drain everything with the embedded publisher (any query does), then switch.
  nlohmann::json campaigns = Json("as-of --customer 2 --at 2100-01-01 --json")["campaigns"];
  ASSERT_FALSE(campaigns.empty());
  s = CaptureStatus();
  EXPECT_EQ(s["backlog"], 0);
  ExpectRuns("capture setup --outbox-rows full");
  s = CaptureStatus();
  EXPECT_EQ(s["outbox_rows"], "full");
  EXPECT_EQ(s["omitted_content"].get<int64_t>(), 0);
  std::ifstream whole(dir_.File("small.jsonl"));
  int64_t expected = 0;
  for (std::string l; std::getline(whole, l);) {
    auto j = nlohmann::json::parse(l);
    if (j["op"] == "footer") expected = j["expected_versions"].get<int64_t>();
  }
  EXPECT_EQ(HistoryRecords(), expected);  // every version, once

  // A later writer on the embedded bus does not turn it back: an update that leaves the
  // content alone still carries it.
  std::string edit = dir_.File("edit.jsonl");
  std::ofstream(edit) << fmt::format(
      R"({{"op":"update","seq":90000,"at":"2024-02-01T00:00:00Z","customer_id":2,"id":{},"set":{{"name":"renamed"}},"actor":"user:1","versions":1}})"
      "\n",
      campaigns[0]["id"].get<int64_t>());
  ExpectRuns(fmt::format("replay --ops '{}' --no-publish --quiet", edit));
  s = CaptureStatus();
  EXPECT_EQ(s["outbox_rows"], "full");
  EXPECT_EQ(s["backlog"], 1);
  EXPECT_EQ(s["omitted_content"], 0);
}

}  // namespace
}  // namespace ch
