// Bad input on every CLI entry point: a clear message naming the problem, a non-zero exit code,
// and nothing already recorded lost or changed (the history and the campaign state are compared
// before and after every rejected command).
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;

using Outcome = ::ch::testing::CommandOutcome;
using ::ch::testing::RunCommand;

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
    auto campaigns = nlohmann::json::parse(a.output);
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
      out +=
          RunCommand(StdoutOnly(Cli(fmt::format("as-of --customer {} --at 2100-01-01 --json", c))))
              .output;
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
           {"as-of --customer 2 --at yesterday", 2, "invalid time 'yesterday'"},
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

}  // namespace
}  // namespace ch
