// `purge` and `erase` end to end on the embedded setup: what as-of answers before and after, the
// audit log in `status`, refused input that changes nothing, and an erased customer gone from
// the history files and refused from then on.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;

// Run `command` (stdout only: stderr is dropped) with e2e_util's RunCommand.
struct Outcome {
  int code = -1;
  std::string out;
};

Outcome RunCli(const std::string& command) {
  ::ch::testing::CommandOutcome o = ::ch::testing::RunCommand("{ " + command + " 2>/dev/null; }");
  return {o.code, o.output};
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class RetentionCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    data_ = dir_.File("data");
    std::string ops = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(ops);
    ASSERT_EQ(RunCli(Cli(fmt::format("replay --ops '{}' --wait --quiet", ops))).code, 0);
  }

  std::string Cli(const std::string& args) const {
    return fmt::format("'{}' --data '{}' {}", bin_, data_, args);
  }
  // The campaigns of an as-of answer (the answer's other fields say when it was asked).
  Outcome AsOf(int customer, const std::string& at) {
    Outcome o = RunCli(Cli(fmt::format("as-of --customer {} --at {} --json", customer, at)));
    auto j = nlohmann::json::parse(o.out, nullptr, /*allow_exceptions=*/false);
    if (o.code == 0 && j.is_object()) o.out = j["campaigns"].dump();
    return o;
  }
  // The commit time of the middle transaction of `customer`.
  std::string MiddleMoment(int customer) {
    Outcome t = RunCli(Cli(fmt::format(
        "timeline --customer {} --from 2000-01-01T00:00:00Z --limit 100000 --json", customer)));
    EXPECT_EQ(t.code, 0);
    auto txns = nlohmann::json::parse(t.out)["transactions"];
    EXPECT_GT(txns.size(), 4u);
    return txns[txns.size() / 2]["time"].get<std::string>();
  }
  void ReplayLine(const std::string& line) {
    std::string file = dir_.File("one.jsonl");
    std::ofstream(file) << line << "\n";
    ASSERT_EQ(RunCli(Cli(fmt::format("replay --ops '{}' --wait --quiet", file))).code, 0) << line;
  }
  nlohmann::json Status() { return nlohmann::json::parse(RunCli(Cli("status --json")).out); }

  TempDir dir_;
  std::string bin_, data_;
};

TEST_F(RetentionCliTest, PurgeKeepsAsOfAtAndAfterTheHorizonAndRefusesBeforeIt) {
  std::string t = MiddleMoment(2);
  std::string at_t = AsOf(2, t).out, now = AsOf(2, "now").out, other = AsOf(3, "now").out;
  int64_t records = Status()["records"].get<int64_t>();

  Outcome p = RunCli(Cli(fmt::format("purge --customer 2 --before {} --actor support:ann", t)));
  ASSERT_EQ(p.code, 0) << p.out;
  EXPECT_NE(p.out.find("purged"), std::string::npos) << p.out;

  EXPECT_EQ(AsOf(2, t).out, at_t);
  EXPECT_EQ(AsOf(2, "now").out, now);
  EXPECT_EQ(AsOf(3, "now").out, other);
  EXPECT_EQ(AsOf(2, "2000-01-01T00:00:00Z").code, 4);  // purged: refused, not empty
  nlohmann::json s = Status();
  EXPECT_LT(s["records"].get<int64_t>(), records);
  ASSERT_EQ(s["audit"].size(), 1u) << s.dump();
  EXPECT_EQ(s["audit"][0]["action"], "purge");
  EXPECT_EQ(s["audit"][0]["actor"], "support:ann");
  EXPECT_EQ(s["audit"][0]["customer_id"], 2);
  EXPECT_EQ(s["audit"][0]["records"].get<int64_t>(), records - s["records"].get<int64_t>());
}

TEST_F(RetentionCliTest, BadRetentionInputIsRefusedAndChangesNothing) {
  std::string before = RunCli(Cli("status --json")).out + AsOf(2, "now").out;
  for (const std::string& args : {
           std::string("purge --customer 2 --before someday"),
           std::string("purge --customer 0 --before 2024-01-01T00:00:00Z"),
           std::string("purge --customer 2"),
           std::string("erase --customer 2"),  // no --yes
           std::string("erase --customer -1 --yes"),
           std::string("erase --customer 2 --yes --actor ''"),
           std::string("erase --customer 2 --yes --actor ") + std::string(300, 'a'),
       }) {
    EXPECT_EQ(RunCli(Cli(args)).code, 2) << args;
  }
  std::string after = RunCli(Cli("status --json")).out + AsOf(2, "now").out;
  auto strip = [](std::string s) {  // completeness moves with each query's heartbeat
    size_t a = s.find("\"complete_through\"");
    return a == std::string::npos ? s : s.erase(a, s.find(',', a) - a);
  };
  EXPECT_EQ(strip(after), strip(before));
}

TEST_F(RetentionCliTest, EraseRemovesTheCustomerFromTheHistoryFilesAndRefusesItLater) {
  auto campaigns = nlohmann::json::parse(AsOf(2, "now").out);
  ASSERT_FALSE(campaigns.empty());
  int64_t id = campaigns[0]["id"].get<int64_t>();
  const std::string marker = "ERASE-ME-5c1e-marker";
  ReplayLine(fmt::format(
      R"({{"op":"update","seq":90000,"at":"2024-02-01T00:00:00Z","customer_id":2,"id":{},"set":{{"name":"{}"}},"actor":"user:1","versions":1}})",
      id, marker));
  ASSERT_NE(AsOf(2, "now").out.find(marker), std::string::npos);
  std::string other = AsOf(3, "now").out;

  Outcome e = RunCli(Cli("erase --customer 2 --yes"));
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_EQ(AsOf(2, "now").code, 3);
  EXPECT_EQ(AsOf(3, "now").out, other);
  std::string history = ReadFile(data_ + "/history.db") + ReadFile(data_ + "/history.db-wal");
  EXPECT_EQ(history.find(marker), std::string::npos) << "the erased name is still in the file";

  // A change of the customer after the erasure is not recorded, and the rest goes on.
  ReplayLine(fmt::format(
      R"({{"op":"update","seq":90001,"at":"2024-02-01T00:00:01Z","customer_id":2,"id":{},"set":{{"name":"after erase"}},"actor":"user:1","versions":1}})",
      id));
  EXPECT_EQ(AsOf(2, "now").code, 3);
  nlohmann::json s = Status();
  EXPECT_EQ(s["completeness"]["partial_transactions"], 0) << s.dump();
  EXPECT_EQ(s["completeness"]["held_records"], 0) << s.dump();
  ASSERT_EQ(s["audit"].size(), 1u);
  EXPECT_EQ(s["audit"][0]["action"], "erase");
}

}  // namespace
}  // namespace ch
