#include "capture/sqlite_outbox_source.h"

#include <fmt/format.h>

#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/sqlite_campaign_store.h"
#include "testing/sqlite_sync_counter.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::testing::ElementsAre;

Campaign Draft(int64_t customer) {
  Campaign c;
  c.customer_id = customer;
  c.name = "x";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext w;
  w.actor = std::move(actor);
  return w;
}

std::vector<std::string> Render(const SourceBatch& b) {
  std::vector<std::string> out;
  for (const auto& e : b.events) {
    out.push_back(e.source_position + " tx" + e.transaction_id + " " +
                  std::string(ChangeOpName(e.op)) + " c" + std::to_string(e.campaign_id) + "@v" +
                  std::to_string(e.version));
  }
  return out;
}

class SqliteOutboxSourceTest : public ::testing::Test {
 protected:
  // Row by row (outbox format 2), so that every change has its own seq; the shift rows of
  // format 3 have a test of their own.
  void SetUp() override { OpenStore(/*one_row_per_shift=*/false); }

  void OpenStore(bool one_row_per_shift) {
    service_.reset();
    store_.reset();
    SqliteCampaignStoreOptions o;
    o.path = path_;
    o.clock = &clock_;
    o.one_row_per_shift = one_row_per_shift;
    ASSERT_OK_AND_ASSIGN(store_, SqliteCampaignStore::Open(o));
    service_ = std::make_unique<CampaignService>(*store_);
  }

  std::unique_ptr<SqliteOutboxSource> OpenSource(Micros poll = std::chrono::milliseconds(5),
                                                 bool sync_wal = true) {
    SqliteOutboxSourceOptions o;
    o.path = path_;
    o.poll_interval = poll;
    o.sync_wal = sync_wal;
    o.clock = &clock_;
    auto r = SqliteOutboxSource::Open(o);
    EXPECT_OK(r);
    return r.ok() ? std::move(r).value() : nullptr;
  }

  testing::TempDir dir_;
  std::string path_ = dir_.File("campaigns.db");
  FakeClock clock_;
  std::unique_ptr<SqliteCampaignStore> store_;
  std::unique_ptr<CampaignService> service_;
};

TEST_F(SqliteOutboxSourceTest, PollReturnsWholeTransactionsInCommitOrder) {
  for (int i = 0; i < 3; ++i) ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  auto source = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto a, source->Poll(2, Micros(0)));
  EXPECT_THAT(Render(a),
              ElementsAre("1 tx1 created c1@v1", "2 tx2 updated c1@v2", "3 tx2 created c2@v1"));
  EXPECT_EQ(a.end_position, "3");
  ASSERT_OK_AND_ASSIGN(auto b, source->Poll(1, Micros(0)));
  EXPECT_THAT(Render(b),
              ElementsAre("4 tx3 updated c1@v3", "5 tx3 updated c2@v2", "6 tx3 created c3@v1"));
  ASSERT_OK_AND_ASSIGN(auto c, source->Poll(100, Micros(0)));
  EXPECT_TRUE(c.events.empty());
  EXPECT_EQ(c.end_position, "");
  // The events carry the full row.
  const ChangeEvent& e = b.events.back();
  ASSERT_TRUE(e.row.has_value());
  EXPECT_EQ(e.row->name, "x");
  EXPECT_EQ(e.row->version, 1);
  EXPECT_EQ(e.capture, CaptureMode::kLog);
  EXPECT_EQ(e.actor, "user:1");
  EXPECT_EQ(e.event_time, e.row->updated_at);
}

// Format 3: a shift row stands for one change per campaign it lists, all at its seq; the
// transaction's change count counts them, and a batch never ends inside a shift row.
TEST_F(SqliteOutboxSourceTest, AShiftRowIsHandedOutAsTheChangesItStandsFor) {
  OpenStore(/*one_row_per_shift=*/true);
  for (int i = 0; i < 3; ++i) ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  ASSERT_OK(service_->Delete(3, As("user:2")));  // shifts c1, c2 up
  auto source = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto a, source->Poll(4, Micros(0)));
  EXPECT_THAT(Render(a),
              ElementsAre("1 tx1 created c1@v1", "2 tx2 updated c1@v2", "3 tx2 created c2@v1",
                          "4 tx3 updated c1@v3", "4 tx3 updated c2@v2", "5 tx3 created c3@v1"));
  EXPECT_EQ(a.end_position, "5");
  EXPECT_EQ(a.events[3].txn_changes, 3);
  EXPECT_EQ(a.events[3].txn_seq, 3);
  EXPECT_TRUE(a.events[3].image_omitted);
  EXPECT_TRUE(a.events[3].content_omitted);
  EXPECT_EQ(a.events[3].priority_shift, 1);
  EXPECT_EQ(a.events[3].actor, "user:1");
  EXPECT_EQ(a.events[3].row->updated_at, a.events[3].event_time);
  ASSERT_OK(source->Confirm(a.end_position));
  ASSERT_OK_AND_ASSIGN(auto b, source->Poll(1, Micros(0)));
  // The delete of the top campaign: the tombstone, then the shift of the two below it.
  EXPECT_THAT(Render(b),
              ElementsAre("6 tx4 deleted c3@v2", "7 tx4 updated c1@v4", "7 tx4 updated c2@v3"));
  EXPECT_EQ(b.events[1].priority_shift, -1);
  EXPECT_EQ(b.events[1].actor, "user:2");
  EXPECT_EQ(b.events[1].txn_changes, 3);
  ASSERT_OK(service_->Delete(1, As("user:2")));  // the last one: shifts nothing
  ASSERT_OK_AND_ASSIGN(auto c, source->Poll(1, Micros(0)));
  EXPECT_THAT(Render(c), ElementsAre("8 tx5 deleted c1@v5"));
  EXPECT_EQ(*source->Backlog(), 4);  // changes (the shift row counts as its two)
}

TEST_F(SqliteOutboxSourceTest, ConfirmDeletesAndRestartResumesAfterIt) {
  for (int i = 0; i < 3; ++i) ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  {
    auto source = OpenSource();
    EXPECT_EQ(*source->Backlog(), 6);
    ASSERT_OK_AND_ASSIGN(auto a, source->Poll(1, Micros(0)));  // seq 1
    ASSERT_OK_AND_ASSIGN(auto b, source->Poll(1, Micros(0)));  // seq 2, 3
    ASSERT_OK(source->Confirm(a.end_position));
    EXPECT_EQ(*source->Backlog(), 5);
    ASSERT_OK(source->Confirm(a.end_position));  // idempotent
    ASSERT_OK(source->Confirm("0"));             // older: no-op
    EXPECT_EQ(*source->Backlog(), 5);
    EXPECT_THAT(source->Confirm("abc"), StatusIsWith(StatusCode::kInvalidArgument, "position"));
    EXPECT_THAT(source->Confirm("-1"), StatusIs(StatusCode::kInvalidArgument));
    // b (seq 2, 3) was polled but never confirmed: it must come again after a restart.
  }
  auto source = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto again, source->Poll(100, Micros(0)));
  EXPECT_THAT(Render(again),
              ElementsAre("2 tx2 updated c1@v2", "3 tx2 created c2@v1", "4 tx3 updated c1@v3",
                          "5 tx3 updated c2@v2", "6 tx3 created c3@v1"));
  ASSERT_OK(source->Confirm(again.end_position));
  EXPECT_EQ(*source->Backlog(), 0);
  // Everything confirmed: a new source starts after it (the kept newest row is not redelivered).
  auto fresh = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto none, fresh->Poll(100, Micros(0)));
  EXPECT_TRUE(none.events.empty());
  ASSERT_OK(service_->Delete(1, As("user:2")));
  ASSERT_OK_AND_ASSIGN(auto next, fresh->Poll(100, Micros(0)));
  EXPECT_THAT(Render(next), ElementsAre("7 tx4 deleted c1@v4"));
}

// "txn_seq/txn_changes" of every event.
std::vector<std::string> Numbers(const SourceBatch& b) {
  std::vector<std::string> out;
  for (const auto& e : b.events) out.push_back(fmt::format("{}/{}", e.txn_seq, e.txn_changes));
  return out;
}

TEST_F(SqliteOutboxSourceTest, TransactionsAreNumberedDenselyAcrossRestarts) {
  // Creates 1, 2 and 3: transactions of 1, 2 and 3 changes (each create shifts the others).
  for (int i = 0; i < 3; ++i) ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  {
    auto source = OpenSource();
    ASSERT_OK_AND_ASSIGN(auto a, source->Poll(1, Micros(0)));
    EXPECT_THAT(Numbers(a), ElementsAre("1/1"));
    ASSERT_OK_AND_ASSIGN(auto b, source->Poll(1, Micros(0)));
    EXPECT_THAT(Numbers(b), ElementsAre("2/2", "2/2"));
    // Only the end of a batch this source handed out can be confirmed: its transaction count is
    // what is recorded with it.
    EXPECT_THAT(source->Confirm("2"), StatusIsWith(StatusCode::kInvalidArgument, "not the end"));
    ASSERT_OK(source->Confirm(a.end_position));
  }
  {
    // b was never confirmed: it comes again with the same numbers.
    auto source = OpenSource();
    ASSERT_OK_AND_ASSIGN(auto again, source->Poll(100, Micros(0)));
    EXPECT_THAT(Numbers(again), ElementsAre("2/2", "2/2", "3/3", "3/3", "3/3"));
    ASSERT_OK(source->Confirm(again.end_position));
  }
  ASSERT_OK(service_->Delete(1, As("user:2")));
  auto source = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto next, source->Poll(100, Micros(0)));
  ASSERT_FALSE(next.events.empty());
  for (const std::string& n : Numbers(next)) {
    EXPECT_EQ(n, fmt::format("4/{}", next.events.size()));
  }
}

TEST_F(SqliteOutboxSourceTest, HeartbeatsOnlyOnceEverythingIsReadAndConfirmed) {
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  auto source = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto none, source->Heartbeat());
  EXPECT_FALSE(none.has_value()) << "a row is unread";
  ASSERT_OK_AND_ASSIGN(auto a, source->Poll(100, Micros(0)));
  ASSERT_OK_AND_ASSIGN(none, source->Heartbeat());
  EXPECT_FALSE(none.has_value()) << "a row is not confirmed";
  ASSERT_OK(source->Confirm(a.end_position));
  clock_.Advance(std::chrono::seconds(5));
  ASSERT_OK_AND_ASSIGN(auto h, source->Heartbeat());
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->seq, 1);
  EXPECT_EQ(h->at, clock_.Now());
  // Every later transaction commits after the heartbeat, even if the writer's clock is behind.
  clock_.Advance(-std::chrono::seconds(3));
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto b, source->Poll(100, Micros(0)));
  ASSERT_FALSE(b.events.empty());
  EXPECT_GT(b.events.front().event_time, h->at);
  EXPECT_EQ(b.events.front().txn_seq, 2);
  // A commit the relay has not read yet means no heartbeat.
  ASSERT_OK(source->Confirm(b.end_position));
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  ASSERT_OK_AND_ASSIGN(none, source->Heartbeat());
  EXPECT_FALSE(none.has_value());
}

// Every connection of these tests (the store's too) goes through the counting VFS.
class SqliteOutboxSourceSyncTest : public SqliteOutboxSourceTest {
 protected:
  void TearDown() override {
    service_.reset();
    store_.reset();
  }
  testing::SqliteSyncCounter syncs_;
};

TEST_F(SqliteOutboxSourceSyncTest, PollFsyncsTheWalBeforeItHandsOutChanges) {
  // The writers commit at synchronous=NORMAL (the store's default): nothing fsyncs their WAL.
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  const int64_t after_first = syncs_.wal_syncs();
  for (int i = 0; i < 3; ++i) ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  ASSERT_EQ(syncs_.wal_syncs(), after_first);
  auto source = OpenSource();
  const int64_t before = syncs_.wal_syncs();
  ASSERT_OK_AND_ASSIGN(auto a, source->Poll(100, Micros(0)));
  ASSERT_FALSE(a.events.empty());
  // The commits above are durable now, before anyone downstream has seen them.
  EXPECT_EQ(syncs_.wal_syncs(), before + 1);
  ASSERT_OK(source->Confirm(a.end_position));
  // Nothing read, nothing to make durable.
  ASSERT_OK_AND_ASSIGN(auto none, source->Poll(100, Micros(0)));
  EXPECT_TRUE(none.events.empty());
  EXPECT_EQ(syncs_.wal_syncs(), before + 1);
  // One fsync per batch, however many transactions it holds.
  for (int i = 0; i < 3; ++i) ASSERT_OK(service_->Create(Draft(2), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto b, source->Poll(100, Micros(0)));
  EXPECT_EQ(b.events.size(), 6u);
  EXPECT_EQ(syncs_.wal_syncs(), before + 2);
}

TEST_F(SqliteOutboxSourceSyncTest, HeartbeatFsyncsTheRaisedFloorBeforeHandingItOut) {
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  auto source = OpenSource();
  ASSERT_OK_AND_ASSIGN(auto a, source->Poll(100, Micros(0)));
  ASSERT_OK(source->Confirm(a.end_position));
  const int64_t before = syncs_.wal_syncs();
  clock_.Advance(std::chrono::seconds(5));
  ASSERT_OK_AND_ASSIGN(auto h, source->Heartbeat());
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(syncs_.wal_syncs(), before + 1);
}

TEST_F(SqliteOutboxSourceSyncTest, WithoutSyncWalNothingFsyncsTheChangesItHandsOut) {
  // What the relay did before: a power loss could take back what it had handed out.
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  ASSERT_OK(service_->Create(Draft(1), As("user:1")));
  auto source = OpenSource(std::chrono::milliseconds(5), /*sync_wal=*/false);
  const int64_t before = syncs_.wal_syncs();
  ASSERT_OK_AND_ASSIGN(auto a, source->Poll(100, Micros(0)));
  ASSERT_FALSE(a.events.empty());
  EXPECT_EQ(syncs_.wal_syncs(), before);
}

TEST_F(SqliteOutboxSourceTest, PollWaitsAndWakeCutsTheWaitShort) {
  // A poll interval of an hour: only Wake() can make the source look again in time.
  auto source = OpenSource(std::chrono::hours(1));
  service_->AddObserver(&source->commit_observer());
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto empty, source->Poll(10, std::chrono::milliseconds(30)));
  EXPECT_TRUE(empty.events.empty());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(30));

  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_OK(service_->Create(Draft(1), As("user:1")));  // the observer wakes the source
  });
  t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto batch, source->Poll(10, std::chrono::seconds(20)));
  auto waited = std::chrono::steady_clock::now() - t0;
  writer.join();
  EXPECT_EQ(batch.events.size(), 1u);
  EXPECT_LT(waited, std::chrono::seconds(10));
}

TEST_F(SqliteOutboxSourceTest, PollingFindsCommitsOfOtherProcessesWithoutWake) {
  auto source = OpenSource(std::chrono::milliseconds(2));
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_OK(service_->Create(Draft(1), As("user:1")));
  });
  ASSERT_OK_AND_ASSIGN(auto batch, source->Poll(10, std::chrono::seconds(20)));
  writer.join();
  EXPECT_EQ(batch.events.size(), 1u);
}

TEST_F(SqliteOutboxSourceTest, OpenFailsWithoutAnOutbox) {
  SqliteOutboxSourceOptions o;
  o.path = dir_.File("missing.db");
  EXPECT_THAT(SqliteOutboxSource::Open(o), StatusIs(StatusCode::kUnavailable));
  SqliteCampaignStoreOptions so;
  so.path = dir_.File("plain.db");
  so.capture = CaptureSetting::kNone;
  ASSERT_OK(SqliteCampaignStore::Open(so));
  o.path = so.path;
  EXPECT_THAT(SqliteOutboxSource::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition, "no outbox"));
}

}  // namespace
}  // namespace ch
