#include "capture/capture_relay.h"

#include <fmt/format.h>

#include <deque>
#include <thread>

#include "bus/flaky_change_bus.h"
#include "bus/in_memory_change_bus.h"
#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "campaign/sqlite_campaign_store.h"
#include "campaign/sqlite_capture.h"
#include "capture/notify_publisher.h"
#include "capture/sqlite_outbox_source.h"
#include "testing/sqlite_sync_counter.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

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
  // What Heartbeat() answers.
  std::optional<CaptureHeartbeat> heartbeat;
  Result<std::optional<CaptureHeartbeat>> Heartbeat() override { return heartbeat; }
};

ChangeEvent EventOf(int64_t customer, int64_t id, int64_t version, const std::string& position) {
  ChangeEvent e = Event(id, version, position);
  e.customer_id = customer;
  e.row->customer_id = customer;
  return e;
}

// Every change the bus holds, in order, decoded ("c<id>@v<version>").
std::vector<std::string> Decoded(const InMemoryChangeBus& bus) {
  std::vector<std::string> out;
  for (const auto& m : bus.AllMessages("campaign-changes")) {
    auto events = DecodeChangeMessages(m.message.data);
    EXPECT_OK(events.status());
    if (!events.ok()) continue;
    for (const ChangeEvent& e : *events) {
      EXPECT_EQ(m.message.ordering_key, std::to_string(e.customer_id));
      out.push_back(fmt::format("c{}@v{}", e.campaign_id, e.version));
    }
  }
  return out;
}

TEST(CaptureRelayTest, PublishesInOrderWithOrderingKeysThenConfirms) {
  ScriptedSource source;
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  source.batches.push_back({{EventOf(1, 7, 1, "1"), EventOf(2, 8, 1, "1")}, "2"});
  source.batches.push_back({{EventOf(1, 7, 2, "3")}, "3"});
  CaptureRelay relay({.source = &source, .bus = &bus});
  ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 2);
  ASSERT_OK_AND_ASSIGN(n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 1);
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"2", "3"}));
  auto published = bus.AllMessages("campaign-changes");
  ASSERT_EQ(published.size(), 3u);  // two customers, then one: no batch of one customer
  EXPECT_EQ(published[0].message.ordering_key, "1");
  EXPECT_EQ(published[1].message.ordering_key, "2");
  // A lone change is a plain change message (schema_version 1).
  ASSERT_OK_AND_ASSIGN(ChangeEvent back, DecodeChangeMessage(published[2].message.data));
  EXPECT_EQ(back.campaign_id, 7);
  EXPECT_EQ(back.version, 2);
  EXPECT_EQ(back.row->content, R"({"t":"x"})");
  EXPECT_EQ(published[2].message.attributes.at("schema_version"), "1");
  EXPECT_EQ(relay.stats().published, 3);
  EXPECT_EQ(relay.stats().messages, 3);
}

TEST(CaptureRelayTest, PacksConsecutiveChangesOfOneCustomerWithinTheLimits) {
  ScriptedSource source;
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  // Customer 1: 5 changes (a shift), customer 2: 1, customer 1 again: 2.
  SourceBatch b;
  for (int64_t id = 1; id <= 5; ++id) b.events.push_back(EventOf(1, id, 2, "10"));
  b.events.push_back(EventOf(2, 20, 1, "11"));
  b.events.push_back(EventOf(1, 1, 3, "12"));
  b.events.push_back(EventOf(1, 2, 3, "12"));
  b.end_position = "12";
  source.batches.push_back(b);
  CaptureRelay relay({.source = &source, .bus = &bus, .changes_per_message = 3});
  ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 8);
  auto published = bus.AllMessages("campaign-changes");
  // [1,2,3] [4,5] of customer 1, [20] of customer 2, [1,2] of customer 1.
  ASSERT_EQ(published.size(), 4u);
  std::vector<std::string> counts;
  for (const auto& m : published) {
    const auto& a = m.message.attributes;
    counts.push_back(a.at("schema_version") + ":" +
                     (a.contains("changes") ? a.at("changes") : std::string("1")));
  }
  EXPECT_EQ(counts, (std::vector<std::string>{"2:3", "2:2", "1:1", "2:2"}));
  EXPECT_EQ(Decoded(bus), (std::vector<std::string>{"c1@v2", "c2@v2", "c3@v2", "c4@v2", "c5@v2",
                                                    "c20@v1", "c1@v3", "c2@v3"}));
  EXPECT_EQ(relay.stats().messages, 4);
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"12"}));

  // A size limit closes a batch early; a change larger than the limit still goes, alone.
  InMemoryChangeBus small;
  ASSERT_OK(small.EnsureTopic("campaign-changes"));
  source.batches.push_back(b);
  ChangeEvent big = EventOf(2, 21, 1, "13");
  big.row->content = fmt::format(R"({{"t":"{}"}})", std::string(4000, 'x'));
  source.batches.back().events.insert(source.batches.back().events.begin() + 5, big);
  CaptureRelay sized(
      {.source = &source, .bus = &small, .changes_per_message = 100, .max_message_bytes = 1200});
  ASSERT_OK(sized.RunOnce(Micros(0)).status());
  for (const auto& m : small.AllMessages("campaign-changes")) {
    auto events = DecodeChangeMessages(m.message.data);
    ASSERT_OK(events.status());
    if (events->size() > 1) {
      EXPECT_LE(m.message.data.size(), 1200u);
    }
  }
  EXPECT_EQ(Decoded(small), (std::vector<std::string>{"c1@v2", "c2@v2", "c3@v2", "c4@v2", "c5@v2",
                                                      "c21@v1", "c20@v1", "c1@v3", "c2@v3"}));
}

TEST(CaptureRelayTest, AnIdleRelayPublishesTheSourcesHeartbeat) {
  ScriptedSource source;
  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  CaptureRelay relay({.source = &source, .bus = &bus, .heartbeat_interval = Micros(1)});
  ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 0);
  EXPECT_TRUE(bus.AllMessages("campaign-changes").empty()) << "no heartbeat from the source";
  source.heartbeat = CaptureHeartbeat{.seq = 41, .at = FromUnixMicros(1'800'000'000'000'000)};
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_OK(relay.RunOnce(Micros(0)).status());
  auto published = bus.AllMessages("campaign-changes");
  ASSERT_EQ(published.size(), 1u);
  EXPECT_EQ(published[0].message.attributes.at("heartbeat"), "1");
  ASSERT_OK_AND_ASSIGN(ChangeTopicMessage m, DecodeChangeTopicMessage(published[0].message.data));
  ASSERT_TRUE(m.heartbeat.has_value());
  EXPECT_EQ(*m.heartbeat, *source.heartbeat);
  EXPECT_EQ(relay.stats().heartbeats, 1);
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

// A SQLite outbox written with compact rows (for the embedded publisher) and switched to full
// rows by 'capture setup --outbox-rows full' is relayed completely: the rows queued before the
// switch (their omitted contents filled in) and the ones written after it. The shifts are
// written row by row (format 2's rows): a queued shift row of format 3 makes the switch refuse
// until the outbox is drained (cli_capture_mode_test).
TEST(CaptureRelayTest, RelaysEveryRowOfASqliteOutboxSwitchedToFullRows) {
  testing::TempDir dir;
  const std::string path = dir.File("campaigns.db");
  FakeClock clock;
  SqliteCampaignStoreOptions so{.path = path, .clock = &clock, .one_row_per_shift = false};
  ASSERT_OK_AND_ASSIGN(auto store, SqliteCampaignStore::Open(so));
  CampaignService service(*store);
  WriteContext as{.actor = "user:1"};
  Campaign draft{.customer_id = 1, .name = "a", .content = R"({"t":"x"})"};
  ASSERT_OK(service.Create(draft, as));
  draft.name = "b";
  ASSERT_OK(service.Create(draft, as));  // shifts c1: its content is omitted
  // The embedded publisher drained these into its history (c1@v2 is only there now).
  {
    ASSERT_OK_AND_ASSIGN(auto drained, SqliteOutboxSource::Open({.path = path}));
    ASSERT_OK_AND_ASSIGN(SourceBatch b, drained->Poll(100, Micros(0)));
    ASSERT_OK(drained->Confirm(b.end_position));
  }
  ASSERT_OK(service.Move(1, 1, as));  // shifts c2, moves c1: both omitted

  InMemoryChangeBus bus;
  ASSERT_OK(bus.EnsureTopic("campaign-changes"));
  {
    ASSERT_OK_AND_ASSIGN(auto source, SqliteOutboxSource::Open({.path = path}));
    CaptureRelay relay({.source = source.get(), .bus = &bus});
    EXPECT_THAT(relay.RunOnce(Micros(0)),
                StatusIsWith(StatusCode::kFailedPrecondition, "--outbox-rows full"));
  }
  EXPECT_TRUE(bus.AllMessages("campaign-changes").empty());

  SqliteCaptureChange change{.mode = CaptureSetting::kLog, .rows = OutboxRows::kFull};
  change.previous_content = [](int64_t id, int64_t version) -> Result<std::optional<std::string>> {
    if (id == 1 && version == 2) return std::optional<std::string>(R"({"t":"x"})");
    return std::optional<std::string>();
  };
  ASSERT_OK(SetSqliteCapture(path, change).status());
  ASSERT_OK(service.Move(2, 1, as));  // after the switch: full rows

  ASSERT_OK_AND_ASSIGN(auto source, SqliteOutboxSource::Open({.path = path}));
  CaptureRelay relay({.source = source.get(), .bus = &bus});
  ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));
  EXPECT_EQ(n, 4);
  std::vector<std::string> got;
  for (const auto& m : bus.AllMessages("campaign-changes")) {
    ASSERT_OK_AND_ASSIGN(auto events, DecodeChangeMessages(m.message.data));
    for (const ChangeEvent& e : events) {
      got.push_back(fmt::format("c{}@v{} {}", e.campaign_id, e.version, e.row->content));
    }
  }
  EXPECT_EQ(got, (std::vector<std::string>{R"(c2@v2 {"t":"x"})", R"(c1@v3 {"t":"x"})",
                                           R"(c1@v4 {"t":"x"})", R"(c2@v3 {"t":"x"})"}));
}

// A bus that notes, at each Publish, how many WAL fsyncs the process had made by then.
class SyncNotingBus final : public ChangeBus {
 public:
  explicit SyncNotingBus(const testing::SqliteSyncCounter& syncs) : syncs_(syncs) {}
  std::vector<int64_t> syncs_at_publish;

  Status EnsureTopic(std::string_view topic) override { return inner_.EnsureTopic(topic); }
  Status EnsureSubscription(std::string_view subscription, std::string_view topic,
                            const SubscriptionOptions& options) override {
    return inner_.EnsureSubscription(subscription, topic, options);
  }
  Status Publish(std::string_view topic, std::span<const BusMessage> messages) override {
    syncs_at_publish.push_back(syncs_.wal_syncs());
    return inner_.Publish(topic, messages);
  }
  Result<std::vector<Delivery>> Pull(std::string_view subscription, size_t max,
                                     Micros wait) override {
    return inner_.Pull(subscription, max, wait);
  }
  Status Ack(std::string_view subscription, std::span<const std::string> ids) override {
    return inner_.Ack(subscription, ids);
  }
  Status Nack(std::string_view subscription, std::span<const std::string> ids) override {
    return inner_.Nack(subscription, ids);
  }
  Status ExtendDeadline(std::string_view subscription, std::span<const std::string> ids,
                        Micros deadline) override {
    return inner_.ExtendDeadline(subscription, ids, deadline);
  }

 private:
  const testing::SqliteSyncCounter& syncs_;
  InMemoryChangeBus inner_;
};

// Writers commit at synchronous=NORMAL; the relay must make their commits durable before the
// bus (and so the history) holds them, or a power loss could take back versions the history
// has, and the same version numbers would come back with other content. A real power loss
// cannot be simulated here: the test checks that the WAL fsync happens between the commits and
// the publish.
TEST(CaptureRelayTest, ASqliteOutboxIsFsyncedAfterTheCommitsAndBeforeThePublish) {
  for (bool sync_wal : {true, false}) {
    SCOPED_TRACE(sync_wal ? "sync_wal" : "without sync_wal (the old relay)");
    testing::SqliteSyncCounter syncs;  // first: every connection below goes through it
    testing::TempDir dir;
    const std::string path = dir.File("campaigns.db");
    SqliteCampaignStoreOptions so{.path = path, .rows_if_new = OutboxRows::kFull};
    ASSERT_OK_AND_ASSIGN(auto store, SqliteCampaignStore::Open(so));
    CampaignService service(*store);
    ASSERT_OK_AND_ASSIGN(auto source,
                         SqliteOutboxSource::Open({.path = path, .sync_wal = sync_wal}));
    Campaign draft{.customer_id = 1, .name = "a", .content = R"({"t":"x"})"};
    for (int i = 0; i < 3; ++i) ASSERT_OK(service.Create(draft, {.actor = "user:1"}));
    const int64_t committed = syncs.wal_syncs();
    SyncNotingBus bus(syncs);
    ASSERT_OK(bus.EnsureTopic("campaign-changes"));
    CaptureRelay relay({.source = source.get(), .bus = &bus});
    ASSERT_OK_AND_ASSIGN(int64_t n, relay.RunOnce(Micros(0)));
    EXPECT_EQ(n, 6);
    EXPECT_EQ(bus.syncs_at_publish, std::vector<int64_t>{committed + (sync_wal ? 1 : 0)});
    source.reset();
    store.reset();
  }
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
    EXPECT_EQ(e.capture, CaptureMode::kNotify);  // one message per change: never a batch
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
