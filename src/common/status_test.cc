#include "common/status.h"

#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  ASSIGN_OR_RETURN(int h, Half(x));
  ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  RETURN_IF_ERROR(Half(x));
  return Status::OK();
}

TEST(StatusTest, OkByDefault) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "OK");
}

TEST(StatusTest, CarriesCodeAndMessage) {
  Status s = NotFoundError("campaign 7");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_EQ(s.ToString(), "NOT_FOUND: campaign 7");
  EXPECT_EQ(s.WithContext("get").message(), "get: campaign 7");
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  EXPECT_THAT(Quarter(6), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(CheckEven(3), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_OK(CheckEven(4));
}

TEST(StatusTest, ResultFromOkStatusIsInternal) {
  Result<int> r{Status::OK()};
  EXPECT_THAT(r, StatusIs(StatusCode::kInternal));
}

TEST(StatusTest, MapsToExitCodesHttpAndRetry) {
  EXPECT_EQ(ExitCodeFor(StatusCode::kOk), 0);
  EXPECT_EQ(ExitCodeFor(StatusCode::kInvalidArgument), 2);
  EXPECT_EQ(ExitCodeFor(StatusCode::kNotFound), 3);
  EXPECT_EQ(HttpStatusFor(StatusCode::kInvalidArgument), 400);
  EXPECT_EQ(HttpStatusFor(StatusCode::kNotFound), 404);
  EXPECT_EQ(HttpStatusFor(StatusCode::kUnavailable), 503);
  EXPECT_TRUE(IsRetryable(StatusCode::kUnavailable));
  EXPECT_FALSE(IsRetryable(StatusCode::kInvalidArgument));
}

// An outage is not a poison message: a full, read-only, unreachable or misconfigured dependency
// holds the message; only a message that is itself wrong is dead-lettered.
TEST(StatusTest, ClassifiesWhoseFaultAFailureIs) {
  for (StatusCode c :
       {StatusCode::kUnavailable, StatusCode::kDeadlineExceeded, StatusCode::kResourceExhausted,
        StatusCode::kPermissionDenied, StatusCode::kUnauthenticated,
        StatusCode::kFailedPrecondition, StatusCode::kAborted, StatusCode::kCancelled,
        StatusCode::kNotFound, StatusCode::kDataLoss, StatusCode::kUnimplemented}) {
    EXPECT_EQ(ClassifyFailure(c), FailureKind::kDependency) << StatusCodeName(c);
  }
  for (StatusCode c :
       {StatusCode::kInvalidArgument, StatusCode::kOutOfRange, StatusCode::kAlreadyExists}) {
    EXPECT_EQ(ClassifyFailure(c), FailureKind::kBadMessage) << StatusCodeName(c);
  }
  EXPECT_EQ(ClassifyFailure(StatusCode::kInternal), FailureKind::kUncertain);
  EXPECT_EQ(ClassifyFailure(StatusCode::kUnknown), FailureKind::kUncertain);
}

TEST(StatusTest, DependencyFailureNamesTheDependencyAndNeverStaysUncertain) {
  EXPECT_OK(DependencyFailure(Status::OK(), "history store"));
  Status full = DependencyFailure(ResourceExhaustedError("database or disk is full"), "history");
  EXPECT_EQ(full.ToString(), "RESOURCE_EXHAUSTED: history: database or disk is full");
  Status internal = DependencyFailure(InternalError("no such table: history"), "history store");
  EXPECT_EQ(internal.ToString(), "UNAVAILABLE: history store: INTERNAL: no such table: history");
  Status refused = DependencyFailure(InvalidArgumentError("empty snapshot"), "history store");
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ch
