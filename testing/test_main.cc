#include "testing/test_main.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>
#include <string_view>

namespace ch::testing {

int TestMainExitCode(const TestRunOutcome& outcome, bool no_skip, std::string* why) {
  if (outcome.gtest_result != 0) {
    *why = "a test failed";
    return 1;
  }
  if (outcome.listing_only) return 0;
  if (outcome.selected == 0 && !outcome.sharded) {
    *why = "no test ran: the filter selects none (renamed or removed?), which fails the run";
    return 1;
  }
  if (outcome.skipped > 0) {
    if (no_skip) {
      *why = std::to_string(outcome.skipped) +
             " test(s) skipped and CH_TEST_NO_SKIP is set (every server is configured, so every "
             "test must run): that fails the run";
      return 1;
    }
    *why = std::to_string(outcome.skipped) + " test(s) skipped: exit " +
           std::to_string(kSkippedExitCode) + ", which ctest reports as Skipped";
    return kSkippedExitCode;
  }
  return 0;
}

namespace {

bool NoSkipRequested() {
  const char* v = std::getenv("CH_TEST_NO_SKIP");
  return v != nullptr && *v != '\0' && std::string_view(v) != "0";
}

// Print every skipped test with the message it skipped with.
void PrintSkipped(const ::testing::UnitTest& unit) {
  for (int i = 0; i < unit.total_test_suite_count(); ++i) {
    const ::testing::TestSuite* suite = unit.GetTestSuite(i);
    for (int j = 0; j < suite->total_test_count(); ++j) {
      const ::testing::TestInfo* info = suite->GetTestInfo(j);
      if (!info->should_run() || !info->result()->Skipped()) continue;
      std::string message;
      for (int k = 0; k < info->result()->total_part_count(); ++k) {
        const ::testing::TestPartResult& part = info->result()->GetTestPartResult(k);
        if (part.skipped() && part.message() != nullptr) message += part.message();
      }
      std::cerr << "  skipped: " << suite->name() << "." << info->name() << ": "
                << (message.empty() ? "(no reason given)" : message) << "\n";
    }
  }
}

}  // namespace
}  // namespace ch::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  const ::testing::UnitTest& unit = *::testing::UnitTest::GetInstance();
  ::ch::testing::TestRunOutcome outcome{
      .gtest_result = result,
      .selected = unit.test_to_run_count(),
      .skipped = unit.skipped_test_count(),
      .listing_only = GTEST_FLAG_GET(list_tests),
      .sharded = std::getenv("GTEST_TOTAL_SHARDS") != nullptr,
  };
  std::string why;
  const int code = ::ch::testing::TestMainExitCode(outcome, ::ch::testing::NoSkipRequested(), &why);
  if (code != 0) {
    std::cerr << argv[0] << ": " << why;
    if (outcome.selected == 0) std::cerr << " (--gtest_filter=" << GTEST_FLAG_GET(filter) << ")";
    std::cerr << "\n";
    if (outcome.gtest_result == 0 && outcome.skipped > 0) ::ch::testing::PrintSkipped(unit);
  }
  return code;
}
