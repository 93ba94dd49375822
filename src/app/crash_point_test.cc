#include "app/crash_point.h"

#include "testing/test_util.h"

namespace ch {
namespace {

TEST(CrashPointTest, EndsTheProcessWithItsOwnExitCodeTheNthTimeThePointIsReached) {
  ASSERT_OK_AND_ASSIGN(CrashPointHook hook, MakeCrashPointHook("after_append:3"));
  EXPECT_EXIT(
      {
        hook("after_poll");  // another point: not counted
        hook("after_append");
        hook("after_append");
        hook("after_poll");
        hook("after_append");  // the third time: ends here
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(kCrashPointExitCode), "");
  // Not reached the third time: the process lives on.
  EXPECT_EXIT(
      {
        hook("after_append");
        hook("after_append");
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(CrashPointTest, WithoutACountTheFirstTimeEndsTheProcess) {
  ASSERT_OK_AND_ASSIGN(CrashPointHook hook, MakeCrashPointHook("after_publish"));
  EXPECT_EXIT(hook("after_publish"), ::testing::ExitedWithCode(kCrashPointExitCode), "");
}

TEST(CrashPointTest, AMalformedSpecIsAnErrorNamingIt) {
  for (const char* spec : {"after_append:", "after_append:0", "after_append:x", ":2", ""}) {
    EXPECT_THAT(MakeCrashPointHook(spec).status(),
                ::ch::testing::StatusIsWith(StatusCode::kInvalidArgument, "CH_TEST_CRASH_AT"))
        << spec;
  }
}

}  // namespace
}  // namespace ch
