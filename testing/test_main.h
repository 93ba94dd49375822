// The main() of every test binary (library ch_gtest_main, linked by ch_add_test instead of
// GTest::gtest_main), so that a test run cannot pass by accident:
//
//   - a run that selects no test fails (a --gtest_filter that matches nothing, say after a test
//     was renamed). GoogleTest 1.12 passes such a run; its --gtest_fail_if_no_test_selected came
//     later.
//   - a run in which a test skipped (GTEST_SKIP) exits with kSkippedExitCode, which ctest reports
//     as Skipped (SKIP_RETURN_CODE, cmake/ChHelpers.cmake), not Passed.
//   - with CH_TEST_NO_SKIP=1 in the environment a skip fails the run, naming the skipped tests and
//     why they skipped. .ci/run sets it once it has started every server: there, nothing may skip.
#pragma once

#include <string>

namespace ch::testing {

// The exit code of a run in which tests skipped and none failed (automake's "skipped").
inline constexpr int kSkippedExitCode = 77;

// What a RUN_ALL_TESTS() run came to, as the exit code decision needs it.
struct TestRunOutcome {
  // RUN_ALL_TESTS()'s result: 0 when no test failed.
  int gtest_result = 0;
  // Tests the filter selected (disabled ones not counted unless asked for).
  int selected = 0;
  // Tests that skipped.
  int skipped = 0;
  // --gtest_list_tests: nothing ran on purpose.
  bool listing_only = false;
  // GTEST_TOTAL_SHARDS is set: one shard may legitimately hold no test.
  bool sharded = false;
};

// Return the process exit code for `outcome`; `no_skip` is CH_TEST_NO_SKIP. When the code is not
// 0, `*why` says why in one line (for stderr).
int TestMainExitCode(const TestRunOutcome& outcome, bool no_skip, std::string* why);

}  // namespace ch::testing
