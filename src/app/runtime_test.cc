#include "app/runtime.h"

#include <chrono>

#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;

// Notify capture: a writer that commits before any publisher has run must not lose its
// notifications (on Pub/Sub and the embedded bus alike, a message published before a
// subscription exists is not delivered to it): the writer creates the publisher's subscription.
TEST(RuntimeTest, NotifyWritesBeforeAnyPublisherRanAreRecorded) {
  TempDir dir;
  RuntimeOptions options;
  options.config.data_dir = dir.path().string();
  options.config.capture = CaptureSetting::kNotify;
  int64_t id = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto writer, Runtime::Create(options));
    ASSERT_OK_AND_ASSIGN(CampaignService * service, writer->Service());
    Campaign draft;
    draft.customer_id = 7;
    draft.name = "first";
    draft.trigger_event = "app_open";
    ASSERT_OK_AND_ASSIGN(CommitInfo info, service->Create(draft, {.actor = "user:1"}));
    ASSERT_FALSE(info.changes.empty());
    id = info.changes.front().campaign_id;
    writer->StopAll();  // publishes what is queued
  }
  ASSERT_OK_AND_ASSIGN(auto publisher, Runtime::Create(options));
  ASSERT_OK_AND_ASSIGN(bool started, publisher->StartPublisher());
  ASSERT_TRUE(started);
  EXPECT_OK(publisher->WaitForVersions({{id, {1, 1}}}, std::chrono::seconds(20)));
}

// A history record of campaign 42 (customer 7) at version `v`.
HistoryRecord Version42(int64_t v) {
  Campaign c;
  c.id = 42;
  c.customer_id = 7;
  c.name = "c42";
  c.trigger_event = "app_open";
  c.priority = 1;
  c.version = v;
  c.updated_by = "user:1";
  c.updated_at = FromUnixMicros(1'700'000'000'000'000 + v * 1'000'000);
  HistoryRecord r;
  r.customer_id = 7;
  r.campaign_id = 42;
  r.version = v;
  r.event_time = c.updated_at;
  r.event_type = v == 1 ? ChangeOp::kCreated : ChangeOp::kUpdated;
  r.actor = c.updated_by;
  r.transaction_id = std::to_string(v);
  r.snapshot = CampaignToJson(c);
  r.priority = 1;
  return r;
}

// A runtime on the embedded setup in `dir` with `capture`.
Result<std::unique_ptr<Runtime>> EmbeddedRuntime(const TempDir& dir, CaptureSetting capture) {
  RuntimeOptions options;
  options.config.data_dir = dir.path().string();
  options.config.capture = capture;
  return Runtime::Create(options);
}

// Store versions 1 and 3 of campaign 42 (not 2) in the runtime's history.
Status AppendWithGap(Runtime& runtime) {
  ASSIGN_OR_RETURN(HistoryStore * history, runtime.History());
  std::vector<HistoryRecord> gap = {Version42(1), Version42(3)};
  return history->Append(gap).status();
}

// An unordered subscription may deliver a campaign's last version before the ones below it:
// with log capture, `replay --wait` must not return while a version of the range is missing.
TEST(RuntimeTest, WaitForVersionsWaitsForEveryVersionOfTheRangeWithLogCapture) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto runtime, EmbeddedRuntime(dir, CaptureSetting::kLog));
  ASSERT_OK(AppendWithGap(*runtime));
  ASSERT_OK_AND_ASSIGN(HistoryStore * history, runtime->History());
  Status s = runtime->WaitForVersions({{42, {1, 3}}}, std::chrono::milliseconds(100));
  EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.ToString();
  EXPECT_NE(s.ToString().find("campaign 42 has 2 of its versions 1..3"), std::string::npos)
      << s.ToString();
  EXPECT_OK(runtime->WaitForVersions({{42, {3, 3}}}, std::chrono::milliseconds(100)));
  std::vector<HistoryRecord> fill = {Version42(2)};
  ASSERT_OK(history->Append(fill).status());
  EXPECT_OK(runtime->WaitForVersions({{42, {1, 3}}}, std::chrono::milliseconds(100)));
  Status later = runtime->WaitForVersions({{42, {1, 4}}}, std::chrono::milliseconds(100));
  EXPECT_NE(later.ToString().find("campaign 42 wants version 4, the history has version 3"),
            std::string::npos)
      << later.ToString();
}

// Notify capture records what it finds when it reads the row: a skipped version is expected.
TEST(RuntimeTest, WaitForVersionsWaitsOnlyForTheLastVersionWithNotifyCapture) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto runtime, EmbeddedRuntime(dir, CaptureSetting::kNotify));
  ASSERT_OK(AppendWithGap(*runtime));
  EXPECT_OK(runtime->WaitForVersions({{42, {1, 3}}}, std::chrono::milliseconds(100)));
}

// With capture off nothing reaches the history: waiting would only run into the timeout.
TEST(RuntimeTest, WaitForVersionsRefusesAtOnceWhenCaptureIsOff) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto runtime, EmbeddedRuntime(dir, CaptureSetting::kNone));
  Status s = runtime->WaitForVersions({{42, {1, 1}}}, std::chrono::seconds(60));
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
  EXPECT_NE(s.ToString().find("capture is 'none'"), std::string::npos) << s.ToString();
  EXPECT_OK(runtime->WaitForVersions({}, std::chrono::seconds(1)));
}

}  // namespace
}  // namespace ch
