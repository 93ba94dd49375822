// The demo is the first thing a new user runs: it must work, leave queryable data behind, be
// re-runnable, and never wipe a directory it did not create.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>

#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using Outcome = ::ch::testing::CommandOutcome;
using ::ch::testing::RunCommand;

TEST(DemoTest, RunsTwiceAndLeavesQueryableData) {
  if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  std::string bin = ::ch::testing::BinaryDir() + "/campaign-history";
  ::ch::testing::TempDir dir;
  std::string data = dir.File("demo");
  for (int run = 0; run < 2; ++run) {
    Outcome o = RunCommand(fmt::format("'{}' --data '{}' demo --ops 300 --no-serve", bin, data));
    ASSERT_EQ(o.code, 0) << o.output;
    EXPECT_NE(o.output.find("== 1. Customer 2 as of"), std::string::npos) << o.output;
    EXPECT_NE(o.output.find("all of them now in the history"), std::string::npos);
    EXPECT_NE(o.output.find("Try next:"), std::string::npos);
  }
  Outcome q =
      RunCommand(fmt::format("'{}' --data '{}' as-of --customer 1 --at now --json", bin, data));
  ASSERT_EQ(q.code, 0) << q.output;
  EXPECT_EQ(q.output.front(), '{');
  EXPECT_NE(q.output.find("\"campaigns\": ["), std::string::npos) << q.output;
  EXPECT_NE(q.output.find("\"updated_by\""), std::string::npos);
  Outcome s = RunCommand(fmt::format("'{}' --data '{}' status --json", bin, data));
  EXPECT_NE(s.output.find("\"backlog\":0"), std::string::npos) << s.output;
}

TEST(DemoTest, RefusesADirectoryItDidNotCreate) {
  if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  std::string bin = ::ch::testing::BinaryDir() + "/campaign-history";
  ::ch::testing::TempDir dir;
  std::ofstream(dir.File("precious.txt")) << "keep me";
  Outcome o = RunCommand(
      fmt::format("'{}' --data '{}' demo --ops 100 --no-serve", bin, dir.path().string()));
  EXPECT_EQ(o.code, 4) << o.output;
  EXPECT_NE(o.output.find("did not create"), std::string::npos) << o.output;
  std::ifstream in(dir.File("precious.txt"));
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "keep me");
}

}  // namespace
}  // namespace ch
