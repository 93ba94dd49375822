#include "capture/capture_relay.h"

#include <fmt/format.h>

#include <deque>

#include "bus/flaky_change_bus.h"
#include "bus/in_memory_change_bus.h"
#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "capture/notify_publisher.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

Campaign Row(int64_t id, int64_t version) {
  Campaign c;
  c.id = id;
  c.customer_id = 1;
  c.name = "n";
  c.priority = 1;
  c.version = version;
  c.content = R"({"t":"x"})";
  c.updated_by = "user:1";
  return c;
}

ChangeEvent Event(int64_t id, int64_t version, const std::string& position) {
  ChangeEvent e;
  e.op = version == 1 ? ChangeOp::kCreated : ChangeOp::kUpdated;
  e.campaign_id = id;
  e.customer_id = 1;
  e.version = version;
  e.actor = "user:1";
  e.transaction_id = position;
  e.row = Row(id, version);
  e.source_position = position;
  return e;
}

class ScriptedSource final : public ChangeSource {
 public:
  std::deque<SourceBatch> batches;
  std::vector<std::string> confirmed;
  Result<SourceBatch> Poll(size_t, Micros) override {
    if (batches.empty()) return SourceBatch{};
    SourceBatch b = batches.front();
    batches.pop_front();
    return b;
  }
  Status Confirm(const std::string& p) override {
    confirmed.push_back(p);
    return Status::OK();
  }
  Result<int64_t> Backlog() override { return static_cast<int64_t>(batches.size()); }
};

TEST(CaptureRelayTest, PublishesInOrderWithOrderingKeysThenConfirms) {
  ScriptedSource source;
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  source.batches.push_back({{Event(7, 1, "1"), Event(8, 1, "1")}, "2"});
  source.batches.push_back({{Event(7, 2, "3")}, "3"});
  CaptureRelay relay({.source = &source, .bus = &bus});
  ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 2);
  ASSERT_OK_AND_ASSIGN(n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 1);
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"2", "3"}));
  auto published = bus.AllMessages("campaign-changes");
  ASSERT_EQ(published.size(), 3u);
  EXPECT_EQ(published[0].message.ordering_key, "7");
  EXPECT_EQ(published[1].message.ordering_key, "8");
  ASSERT_OK_AND_ASSIGN(ChangeEvent back, DecodeChangeMessage(published[2].message.data));
  EXPECT_EQ(back.campaign_id, 7);
  EXPECT_EQ(back.version, 2);
  EXPECT_EQ(back.row->content, R"({"t":"x"})");
}

TEST(CaptureRelayTest, AFailedPublishIsRetriedAndNothingConfirmedBefore) {
  ScriptedSource source;
  InMemoryChangeBus inner;
  ASSERT_OK(inner.EnsureTopic("campaign-changes"));
  FlakyChangeBus bus(inner, {});
  source.batches.push_back({{Event(7, 1, "1")}, "1"});
  CaptureRelay relay({.source = &source, .bus = &bus});
  bus.FailNextPublishes(1);
  EXPECT_FALSE(relay.RunOnce(Micros(0)).ok());
  EXPECT_TRUE(source.confirmed.empty());
  ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));  // the same batch again
  EXPECT_EQ(n, 1);
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"1"}));
  EXPECT_GE(inner.AllMessages("campaign-changes").size(), 1u);
}

TEST(CaptureRelayTest, TestHookRunsAfterThePublishBeforeTheConfirm) {
  ScriptedSource source;
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  source.batches.push_back({{Event(7, 1, "1")}, "1"});
  std::vector<std::string> seen;  // at each call: point, messages on the bus, confirms so far
  CaptureRelay relay({.source = &source, .bus = &bus, .TEST_hook = [&](std::string_view point) {
                        seen.push_back(fmt::format("{} {} {}", point,
                                                   bus.AllMessages("campaign-changes").size(),
                                                   source.confirmed.size()));
                      }});
  ASSERT_OK(relay.RunOnce(Micros(0)).status());
  EXPECT_EQ(seen, (std::vector<std::string>{"after_publish 1 0"}));
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"1"}));
}

TEST(CaptureRelayTest, RefusesChangesWithoutTheirContent) {
  ScriptedSource source;
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  ChangeEvent e = Event(7, 2, "1");
  e.row->content.clear();
  e.content_omitted = true;
  source.batches.push_back({{e}, "1"});
  CaptureRelay relay({.source = &source, .bus = &bus});
  EXPECT_THAT(relay.RunOnce(Micros(0)), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_TRUE(source.confirmed.empty());
}

TEST(NotifyPublisherTest, PublishesIdsAfterCommitAndTheContentOnlyOnDelete) {
  FakeClock clock;
  InMemoryCampaignStore store(clock);
  CampaignService service(store);
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  NotifyPublisher notify({.bus = &bus});
  service.AddObserver(&notify);
  ASSERT_OK(notify.Start());
  Campaign a = Row(0, 0);
  ASSERT_OK(service.Create(a, {.actor = "user:1"}).status());
  a.updated_by = "user:2";
  ASSERT_OK(service.Create(a, {.actor = "user:2"}).status());  // shifts the first
  ASSERT_OK(service.Delete(2, {.actor = "user:3"}).status());  // shifts the first back
  ASSERT_OK(notify.Flush(std::chrono::seconds(5)));
  std::vector<std::string> got;
  for (const auto& m : bus.AllMessages("campaign-changes")) {
    ASSERT_OK_AND_ASSIGN(ChangeEvent e, DecodeChangeMessage(m.message.data));
    EXPECT_EQ(e.capture, CaptureMode::kNotify);
    EXPECT_EQ(m.message.ordering_key, std::to_string(e.campaign_id));
    got.push_back("c" + std::to_string(e.campaign_id) + "@v" + std::to_string(e.version) + " " +
                  std::string(ChangeOpName(e.op)) + (e.row ? " +row" : ""));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"c1@v1 created", "c2@v1 created", "c1@v2 updated",
                                           "c2@v2 deleted +row", "c1@v3 updated"}));
  notify.Stop();
  EXPECT_EQ(notify.stats().published, 5);
}

TEST(NotifyPublisherTest, RetriesFailedPublishesAndDropsWhenTheQueueIsFull) {
  FakeClock clock;
  InMemoryCampaignStore store(clock);
  CampaignService service(store);
  InMemoryChangeBus inner;
  ASSERT_OK(inner.EnsureTopic("campaign-changes"));
  FlakyChangeBus bus(inner, {});
  bus.FailNextPublishes(2);
  NotifyPublisher notify({.bus = &bus,
                          .max_queue = 3,
                          .min_backoff = std::chrono::milliseconds(1),
                          .max_backoff = std::chrono::milliseconds(2)});
  service.AddObserver(&notify);
  Campaign a = Row(0, 0);
  for (int i = 0; i < 3; ++i) ASSERT_OK(service.Create(a, {.actor = "user:1"}).status());
  // 1 + 2 + 3 notifications for a queue of 3: the last ones are dropped (and counted).
  EXPECT_EQ(notify.stats().dropped, 3);
  ASSERT_OK(notify.Start());
  ASSERT_OK(notify.Flush(std::chrono::seconds(5)));
  notify.Stop();
  EXPECT_EQ(notify.stats().published, 3);
  EXPECT_EQ(notify.stats().errors, 2);
}

}  // namespace
}  // namespace ch
