// The test main (test_main.h): its exit code decision, and the real main() run on this very
// binary's DISABLED_ child tests, which it starts again with a filter.
#include "testing/test_main.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "testing/test_util.h"

namespace ch::testing {
namespace {

using ::testing::HasSubstr;

int Decide(const TestRunOutcome& outcome, bool no_skip = false) {
  std::string why;
  return TestMainExitCode(outcome, no_skip, &why);
}

TEST(TestMainExitCodeTest, PassesARunInWhichEverySelectedTestPassed) {
  EXPECT_EQ(Decide({.selected = 3}), 0);
  EXPECT_EQ(Decide({.selected = 3}, /*no_skip=*/true), 0);
}

TEST(TestMainExitCodeTest, FailsAFailedRunWhateverElseHappened) {
  EXPECT_EQ(Decide({.gtest_result = 1, .selected = 3, .skipped = 1}), 1);
  EXPECT_EQ(Decide({.gtest_result = 1, .selected = 0}), 1);
}

TEST(TestMainExitCodeTest, FailsARunThatSelectedNoTest) {
  std::string why;
  EXPECT_EQ(TestMainExitCode({.selected = 0}, false, &why), 1);
  EXPECT_THAT(why, HasSubstr("no test ran"));
  // Except when listing, or when a shard happens to hold none.
  EXPECT_EQ(Decide({.selected = 0, .listing_only = true}), 0);
  EXPECT_EQ(Decide({.selected = 0, .sharded = true}), 0);
}

TEST(TestMainExitCodeTest, ReportsASkipAsSkippedOrAsAFailureWhenNoSkipIsSet) {
  EXPECT_EQ(Decide({.selected = 3, .skipped = 1}), kSkippedExitCode);
  std::string why;
  EXPECT_EQ(TestMainExitCode({.selected = 3, .skipped = 2}, true, &why), 1);
  EXPECT_THAT(why, HasSubstr("2 test(s) skipped and CH_TEST_NO_SKIP is set"));
}

// ---- the real main() ---------------------------------------------------------------------------

// Children of the end-to-end tests below; never run otherwise (DISABLED_).
TEST(TestMainChild, DISABLED_Passes) { SUCCEED(); }
TEST(TestMainChild, DISABLED_Skips) { GTEST_SKIP() << "the reason for skipping"; }
TEST(TestMainChild, DISABLED_Fails) { ADD_FAILURE() << "a failure"; }

struct ChildRun {
  int code = -1;
  std::string output;
};

// Run this binary again with `args`, CH_TEST_NO_SKIP unset or set to `no_skip`.
ChildRun RunSelf(const std::string& args, const std::string& no_skip = "") {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  EXPECT_FALSE(ec) << ec.message();
  TempDir dir;
  std::string out = dir.File("out");
  std::string env = no_skip.empty() ? "env -u CH_TEST_NO_SKIP" : "env CH_TEST_NO_SKIP=" + no_skip;
  std::string cmd = fmt::format("{} '{}' --gtest_also_run_disabled_tests {} >'{}' 2>&1", env,
                                self.string(), args, out);
  int status = std::system(cmd.c_str());
  ChildRun run;
  run.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  run.output = text.str();
  return run;
}

TEST(TestMainTest, ExitsWithTheCodeTheOutcomeCallsFor) {
  const std::string pass_and_skip =
      "--gtest_filter=TestMainChild.DISABLED_Passes:TestMainChild.DISABLED_Skips";
  struct Case {
    std::string args;
    std::string no_skip;  // CH_TEST_NO_SKIP; "" unset
    int code;
    std::vector<std::string> output;  // what stdout + stderr contain
  };
  const Case cases[] = {
      // A filter that matches nothing (a renamed test) fails the run, naming the filter...
      {"--gtest_filter=TestMainChild.NoSuchTest",
       "",
       1,
       {"no test ran", "--gtest_filter=TestMainChild.NoSuchTest"}},
      // ... but listing the tests selects none on purpose.
      {"--gtest_list_tests --gtest_filter=TestMainChild.NoSuchTest", "", 0, {}},
      {"--gtest_filter=TestMainChild.DISABLED_Passes", "", 0, {}},
      // A skip makes the run Skipped in ctest, naming the test and why...
      {pass_and_skip,
       "",
       kSkippedExitCode,
       {"skipped: TestMainChild.DISABLED_Skips: the reason for skipping"}},
      {pass_and_skip, "0", kSkippedExitCode, {}},
      // ... and fails it when CH_TEST_NO_SKIP is set.
      {pass_and_skip, "1", 1, {"CH_TEST_NO_SKIP is set", "skipped: TestMainChild.DISABLED_Skips"}},
      // A failure is a failure, skips or not.
      {"--gtest_filter=TestMainChild.DISABLED_*", "", 1, {"a test failed"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args + " CH_TEST_NO_SKIP=" + c.no_skip);
    ChildRun run = RunSelf(c.args, c.no_skip);
    EXPECT_EQ(run.code, c.code) << run.output;
    for (const std::string& want : c.output) EXPECT_THAT(run.output, HasSubstr(want));
  }
}

}  // namespace
}  // namespace ch::testing
