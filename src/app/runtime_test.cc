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
  EXPECT_OK(publisher->WaitForVersions({{id, 1}}, std::chrono::seconds(20)));
}

}  // namespace
}  // namespace ch
