// PgLogicalSource against a real PostgreSQL (CH_TEST_PG_URL; each test creates its own database
// and slot and drops them): every committed version arrives once, whole and in commit order,
// with the store's stamps and actors; restarts redeliver what was not confirmed and skip what
// was; slot lag is visible; setup and cleanup are explicit and idempotent.
#include "capture/pg_logical_source.h"

#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"
#include "campaign/pg_test_util.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::testing::ElementsAre;

Campaign Draft(int64_t customer, std::string name) {
  Campaign c;
  c.customer_id = customer;
  c.name = std::move(name);
  c.trigger_event = "app_open";
  c.content = R"({"title":"Hi"})";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext ctx;
  ctx.actor = std::move(actor);
  return ctx;
}

// "created c3@v1 by user:1"
std::string Render(const ChangeEvent& e) {
  return std::string(ChangeOpName(e.op)) + " c" + std::to_string(e.campaign_id) + "@v" +
         std::to_string(e.version) + " by " + e.actor;
}

class PgLogicalSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::PgTestUrl().empty()) GTEST_SKIP() << ::ch::testing::kPgTestSkipMessage;
    ASSERT_OK_AND_ASSIGN(db_, ::ch::testing::PgTestDatabase::Create());
    std::random_device rd;
    slot_ = fmt::format("ch_test_slot_{:08x}", rd());
    PgCampaignStoreOptions o;
    o.url = db_->url();
    o.clock = &clock_;
    ASSERT_OK_AND_ASSIGN(store_, PgCampaignStore::Open(o));
    service_ = std::make_unique<CampaignService>(*store_);
    ASSERT_OK(PgLogicalSource::CreateCapture(db_->url(), slot_, kPub));
  }

  void TearDown() override {
    if (db_ == nullptr) return;
    service_.reset();
    store_.reset();
    EXPECT_OK(PgLogicalSource::DropCapture(db_->url(), slot_, kPub));
  }

  PgLogicalSourceOptions SourceOptions() {
    PgLogicalSourceOptions o;
    o.url = db_->url();
    o.slot = slot_;
    o.publication = kPub;
    return o;
  }

  Result<std::unique_ptr<PgLogicalSource>> OpenSource() {
    return PgLogicalSource::Open(SourceOptions());
  }

  // Poll until `n` events arrived (or 10 s passed); return the batches.
  std::vector<SourceBatch> PollEvents(PgLogicalSource& source, size_t n, size_t max_events = 1000) {
    std::vector<SourceBatch> out;
    size_t got = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (got < n && std::chrono::steady_clock::now() < deadline) {
      auto batch = source.Poll(max_events, std::chrono::milliseconds(100));
      EXPECT_OK(batch);
      if (!batch.ok() || batch->events.empty()) continue;
      got += batch->events.size();
      out.push_back(std::move(*batch));
    }
    EXPECT_EQ(got, n);
    return out;
  }

  static std::vector<ChangeEvent> Flatten(const std::vector<SourceBatch>& batches) {
    std::vector<ChangeEvent> out;
    for (const auto& b : batches) out.insert(out.end(), b.events.begin(), b.events.end());
    return out;
  }

  // Expect nothing more to arrive within `wait`.
  void ExpectNothingMore(PgLogicalSource& source, Micros wait = std::chrono::milliseconds(300)) {
    auto batch = source.Poll(1000, wait);
    ASSERT_OK(batch);
    EXPECT_TRUE(batch->events.empty()) << Render(batch->events.front());
  }

  std::string Query(const std::string& sql) {
    auto conn = db_->Connect();
    EXPECT_OK(conn);
    if (!conn.ok()) return "";
    auto r = (*conn)->Exec(sql);
    EXPECT_OK(r);
    return r.ok() && r->rows() > 0 ? std::string(r->Get(0, 0)) : std::string();
  }

  static constexpr char kPub[] = "ch_test_pub";
  FakeClock clock_;
  std::unique_ptr<::ch::testing::PgTestDatabase> db_;
  std::string slot_;
  std::unique_ptr<PgCampaignStore> store_;
  std::unique_ptr<CampaignService> service_;
};

// The same script, at the same fake times, through any service.
std::vector<CommitInfo> RunScript(CampaignService& service, FakeClock& clock) {
  std::vector<CommitInfo> out;
  auto ok = [&](Result<CommitInfo> r) {
    EXPECT_OK(r);
    if (r.ok()) out.push_back(*r);
    clock.Advance(Micros(250));
  };
  std::vector<Campaign> seed;
  for (int p = 1; p <= 4; ++p) {
    Campaign c = Draft(2, "seed " + std::to_string(p));
    c.id = 100 + p;
    c.priority = p;
    c.updated_by = "user:seed";
    seed.push_back(c);
  }
  ok(service.Import(2, seed));
  for (int i = 0; i < 3; ++i) {
    ok(service.Create(Draft(1, "c" + std::to_string(i)), As("user:" + std::to_string(i))));
  }
  CampaignPatch patch;
  patch.name = "Renamed \xf0\x9f\x8e\x89 \"q\"";
  patch.content = std::string(R"({"big":")") + std::string(9000, 'x') + "\"}";  // TOASTed
  ok(service.Update(102, patch, As("api:key")));
  CampaignPatch small;
  small.frequency_cap = 9;  // the TOASTed content is unchanged in this version
  ok(service.Update(102, small, As("api:key2")));
  ok(service.Move(104, 1, As("user:mover")));
  WriteContext stale = As("user:late");
  stale.expect_version = 1;
  EXPECT_THAT(service.Update(102, patch, stale), StatusIs(StatusCode::kFailedPrecondition));
  ok(service.Delete(103, As("user:deleter")));
  ok(service.Delete(106, As("user:deleter2")));  // customer 1's last but one... and shifts
  return out;
}

TEST_F(PgLogicalSourceTest, DeliversEveryVersionLikeTheInMemoryCapture) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  std::vector<CommitInfo> commits = RunScript(*service_, clock_);

  FakeClock mem_clock;
  InMemoryCampaignStore mem(mem_clock, StoreCapture::kLog);
  CampaignService mem_service(mem);
  RunScript(mem_service, mem_clock);
  std::vector<CapturedChange> expected = mem.AllChanges();
  // The in-memory capture may leave an unchanged content out (as the compact SQLite outbox
  // does); PostgreSQL's images are always whole. Fill it in from the previous version.
  std::map<int64_t, std::string> content;
  for (CapturedChange& c : expected) {
    if (c.row.content.empty()) c.row.content = content[c.row.id];
    content[c.row.id] = c.row.content;
  }

  std::vector<SourceBatch> batches = PollEvents(*source, expected.size());
  std::vector<ChangeEvent> got = Flatten(batches);
  ASSERT_EQ(got.size(), expected.size());
  // Transactions in commit order; each one's events in any order (one statement's row order is
  // the database's business), so compare per transaction.
  std::map<std::string, std::string> pg_to_mem;  // transaction ids differ (xid vs counter)
  std::map<std::string, std::multiset<std::string>> want;
  std::map<std::string, std::multiset<std::string>> have;
  std::vector<std::string> want_order;
  std::vector<std::string> have_order;
  auto render = [](ChangeEvent e) {
    std::string r = Render(e) + " " + FormatTimestamp(e.event_time) + " " + CampaignToJson(*e.row);
    return r;
  };
  for (const CapturedChange& c : expected) {
    if (want_order.empty() || want_order.back() != c.transaction_id) {
      want_order.push_back(c.transaction_id);
    }
    want[c.transaction_id].insert(render(ChangeEventFromCapture(c)));
  }
  for (const ChangeEvent& e : got) {
    if (have_order.empty() || have_order.back() != e.transaction_id) {
      have_order.push_back(e.transaction_id);
    }
    have[e.transaction_id].insert(render(e));
    EXPECT_EQ(e.capture, CaptureMode::kLog);
  }
  ASSERT_EQ(have_order.size(), want_order.size());
  ASSERT_EQ(have_order.size(), commits.size());
  for (size_t t = 0; t < want_order.size(); ++t) {
    SCOPED_TRACE("transaction #" + std::to_string(t));
    EXPECT_EQ(have_order[t], commits[t].transaction_id);  // the store's transaction id
    EXPECT_EQ(have[have_order[t]], want[want_order[t]]);
  }
  // Positions: one per transaction, increasing; batches end at their last transaction.
  std::string last;
  for (const SourceBatch& b : batches) {
    EXPECT_EQ(b.end_position, b.events.back().source_position);
    for (const ChangeEvent& e : b.events) {
      if (e.source_position != last) {
        if (!last.empty()) {
          EXPECT_GT(*ParseLsn(e.source_position), *ParseLsn(last));
        }
        last = e.source_position;
      }
    }
  }
  ExpectNothingMore(*source);
}

// A relay drains while writers run: every committed version arrives exactly once, whole
// transactions per batch, versions of each campaign in order.
TEST_F(PgLogicalSourceTest, ARelayReceivesEveryCommittedVersionOnce) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  std::atomic<bool> done{false};
  std::atomic<size_t> relayed{0};
  std::vector<SourceBatch> batches;  // the relay thread's until it is joined
  std::thread relay([&] {
    while (true) {
      bool finished = done.load();
      auto batch = source->Poll(7, std::chrono::milliseconds(50));
      ASSERT_OK(batch);
      if (batch->events.empty()) {
        if (finished) return;
        continue;
      }
      EXPECT_OK(source->Confirm(batch->end_position));
      relayed += batch->events.size();
      batches.push_back(std::move(*batch));
    }
  });
  std::mt19937 rng(11);
  std::vector<CommitInfo> commits;
  std::vector<std::vector<int64_t>> ids(4);
  for (int i = 0; i < 200; ++i) {
    clock_.Advance(Micros(10));
    int64_t customer = 1 + static_cast<int64_t>(rng() % 3);
    auto& mine = ids[customer];
    int kind = static_cast<int>(rng() % 10);
    Result<CommitInfo> r = InternalError("no action");
    if (mine.size() < 2 || kind < 3) {
      r = service_->Create(Draft(customer, "c"), As("user:" + std::to_string(i % 5)));
      if (r.ok()) mine.push_back(r->row->id);
    } else if (kind < 7) {
      CampaignPatch p;
      p.frequency_cap = i;
      r = service_->Update(mine[rng() % mine.size()], p, As("user:u"));
    } else if (kind < 9) {
      r = service_->Move(mine[rng() % mine.size()], 1 + static_cast<int64_t>(rng() % mine.size()),
                         As("user:m"));
    } else {
      size_t k = rng() % mine.size();
      r = service_->Delete(mine[k], As("user:d" + std::to_string(i)));
      mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(k));
    }
    ASSERT_OK(r);
    commits.push_back(*r);
  }
  // Wait until the relay has everything, then stop it.
  size_t total = 0;
  for (const CommitInfo& c : commits) total += c.changes.size();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (relayed.load() < total && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  done = true;
  relay.join();

  std::map<std::string, const CommitInfo*> by_txn;
  std::map<std::string, std::set<std::string>> expected;
  for (const CommitInfo& c : commits) {
    by_txn[c.transaction_id] = &c;
    for (const RowChange& rc : c.changes) {
      expected[c.transaction_id].insert(std::string(ChangeOpName(rc.op)) + " c" +
                                        std::to_string(rc.campaign_id) + "@v" +
                                        std::to_string(rc.version));
    }
  }
  std::map<std::string, std::set<std::string>> got;
  std::map<int64_t, int64_t> last_version;
  size_t events = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    if (b > 0) {
      EXPECT_NE(batches[b - 1].events.back().transaction_id,
                batches[b].events.front().transaction_id);
    }
    for (const ChangeEvent& e : batches[b].events) {
      ++events;
      got[e.transaction_id].insert(std::string(ChangeOpName(e.op)) + " c" +
                                   std::to_string(e.campaign_id) + "@v" +
                                   std::to_string(e.version));
      auto it = by_txn.find(e.transaction_id);
      ASSERT_NE(it, by_txn.end()) << e.transaction_id;
      EXPECT_EQ(e.event_time, it->second->committed_at);
      EXPECT_EQ(e.actor, it->second->actor);
      ASSERT_TRUE(e.row.has_value());
      EXPECT_EQ(e.row->version, e.op == ChangeOp::kDeleted ? e.version - 1 : e.version);
      EXPECT_EQ(e.version, last_version[e.campaign_id] + 1) << "campaign " << e.campaign_id;
      last_version[e.campaign_id] = e.version;
    }
  }
  EXPECT_EQ(events, total);
  EXPECT_EQ(got, expected);
}

TEST_F(PgLogicalSourceTest, AWholeTransactionArrivesInOnePoll) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  std::vector<Campaign> rows;
  for (int p = 1; p <= 2000; ++p) {
    Campaign c = Draft(5, "seed " + std::to_string(p));
    c.id = 1000 + p;
    c.priority = p;
    c.updated_by = "user:seed";
    rows.push_back(c);
  }
  ASSERT_OK(service_->Import(5, rows));
  auto imported = PollEvents(*source, 2000, 100);
  ASSERT_EQ(imported.size(), 1u);  // one transaction, however small max_events is
  EXPECT_EQ(imported[0].events.size(), 2000u);
  ASSERT_OK(source->Confirm(imported[0].end_position));
  // Creating one more shifts all 2,000: 2,001 versions in one transaction, one batch.
  ASSERT_OK_AND_ASSIGN(auto info, service_->Create(Draft(5, "top"), As("user:top")));
  ASSERT_OK_AND_ASSIGN(auto batch, source->Poll(100, std::chrono::seconds(10)));
  ASSERT_EQ(batch.events.size(), 2001u);
  std::set<int64_t> ids;
  for (const ChangeEvent& e : batch.events) {
    EXPECT_EQ(e.transaction_id, info.transaction_id);
    EXPECT_EQ(e.event_time, info.committed_at);
    EXPECT_EQ(e.actor, "user:top");
    ids.insert(e.campaign_id);
  }
  EXPECT_EQ(ids.size(), 2001u);
  ExpectNothingMore(*source);
}

TEST_F(PgLogicalSourceTest, WhatIsNotConfirmedIsDeliveredAgainAfterARestart) {
  std::vector<CommitInfo> commits;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto c, service_->Create(Draft(1, "c"), As("user:1")));
    commits.push_back(c);
  }
  std::string first_position;
  {
    ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
    auto batches = PollEvents(*source, 1 + 2 + 3, /*max_events=*/1);
    ASSERT_EQ(batches.size(), 3u);
    first_position = batches[0].end_position;
  }  // crash before confirming anything
  {
    ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
    auto batches = PollEvents(*source, 6, 1);
    ASSERT_EQ(batches.size(), 3u);
    EXPECT_EQ(batches[0].end_position, first_position);
    EXPECT_EQ(batches[0].events[0].transaction_id, commits[0].transaction_id);
    ASSERT_OK(source->Confirm(first_position));  // only the first transaction
  }
  {
    ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
    auto batches = PollEvents(*source, 5, 1);
    ASSERT_EQ(batches.size(), 2u);
    EXPECT_EQ(batches[0].events[0].transaction_id, commits[1].transaction_id);
    EXPECT_EQ(batches[1].events[0].transaction_id, commits[2].transaction_id);
    ASSERT_OK(source->Confirm(batches[1].end_position));
    ExpectNothingMore(*source);
  }
  {
    ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
    ExpectNothingMore(*source);
  }
}

// PostgreSQL 15 can forget the position it was told (it does not always save it at shutdown) and
// resend confirmed transactions: the recorded progress makes the source skip them.
TEST_F(PgLogicalSourceTest, ConfirmedTransactionsAreSkippedWhenPostgresResendsThem) {
  ASSERT_OK_AND_ASSIGN(auto before, PgLogicalSource::SlotStatus(db_->url(), slot_));
  std::vector<CommitInfo> commits;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto c, service_->Create(Draft(1, "c"), As("user:1")));
    commits.push_back(c);
  }
  std::string confirmed;
  {
    PgLogicalSourceOptions o = SourceOptions();
    o.TEST_no_server_feedback = true;  // the server never learns of the Confirm
    ASSERT_OK_AND_ASSIGN(auto source, PgLogicalSource::Open(o));
    auto batches = PollEvents(*source, 6);
    confirmed = batches.back().end_position;
    ASSERT_OK(source->Confirm(confirmed));
  }
  ASSERT_OK_AND_ASSIGN(auto after, PgLogicalSource::SlotStatus(db_->url(), slot_));
  EXPECT_EQ(after.confirmed_flush_lsn, before.confirmed_flush_lsn);  // the slot did not move
  EXPECT_EQ(
      Query("SELECT confirmed_lsn::text FROM ch_capture_progress WHERE slot = '" + slot_ + "'"),
      confirmed);
  ASSERT_OK_AND_ASSIGN(auto fourth, service_->Create(Draft(1, "d"), As("user:4")));
  for (bool start_at_slot : {true, false}) {
    SCOPED_TRACE(start_at_slot ? "streaming from the slot's position" : "from the progress");
    PgLogicalSourceOptions o = SourceOptions();
    o.TEST_start_at_slot_position = start_at_slot;
    o.TEST_no_server_feedback = true;
    ASSERT_OK_AND_ASSIGN(auto source, PgLogicalSource::Open(o));
    auto batches = PollEvents(*source, 4);  // only the fourth transaction (1 + 3 shifted)
    ASSERT_EQ(batches.size(), 1u);
    EXPECT_EQ(batches[0].events[0].transaction_id, fourth.transaction_id);
    ExpectNothingMore(*source);
  }
}

TEST_F(PgLogicalSourceTest, SlotStatusShowsWalRetainedWhileUnconfirmed) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  ASSERT_OK_AND_ASSIGN(auto st0, PgLogicalSource::SlotStatus(db_->url(), slot_));
  EXPECT_TRUE(st0.exists);
  EXPECT_TRUE(st0.active);
  EXPECT_TRUE(st0.active_pid.has_value());
  EXPECT_FALSE(st0.wal_status.empty());
  auto write = [&](int n) {
    for (int i = 0; i < n; ++i) {
      CampaignPatch p;
      p.content = R"({"n":")" + std::string(500, static_cast<char>('a' + i % 26)) + "\"}";
      ASSERT_OK(service_->Update(1, p, As("user:1")));
    }
  };
  ASSERT_OK(service_->Create(Draft(1, "a"), As("user:1")));
  write(50);
  auto batches = PollEvents(*source, 51);
  // Nothing confirmed: the slot keeps at least everything since the first transaction.
  const uint64_t first = *ParseLsn(batches.front().end_position);
  const int64_t since_first =
      static_cast<int64_t>(*ParseLsn(Query("SELECT pg_current_wal_lsn()")) - first);
  EXPECT_GT(since_first, 50 * 500);
  ASSERT_OK_AND_ASSIGN(auto st1, PgLogicalSource::SlotStatus(db_->url(), slot_));
  EXPECT_LT(*ParseLsn(st1.confirmed_flush_lsn), first);
  EXPECT_GE(st1.retained_wal_bytes, since_first);
  EXPECT_GE(st1.unconfirmed_wal_bytes, since_first);
  ASSERT_OK_AND_ASSIGN(int64_t backlog, source->Backlog());
  EXPECT_GE(backlog, since_first);
  // It keeps growing while the relay does not confirm.
  write(50);
  batches = PollEvents(*source, 50);
  ASSERT_OK_AND_ASSIGN(auto st2, PgLogicalSource::SlotStatus(db_->url(), slot_));
  EXPECT_GE(st2.retained_wal_bytes, st1.retained_wal_bytes + 50 * 500);
  EXPECT_EQ(st2.restart_lsn, st1.restart_lsn);

  ASSERT_OK(source->Confirm(batches.back().end_position));
  // The server applies the status update asynchronously.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  PgSlotStatus st3;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_OK(source->Poll(10, std::chrono::milliseconds(50)));
    ASSERT_OK_AND_ASSIGN(st3, PgLogicalSource::SlotStatus(db_->url(), slot_));
    if (*ParseLsn(st3.confirmed_flush_lsn) >= *ParseLsn(batches.back().end_position)) break;
  }
  EXPECT_GE(*ParseLsn(st3.confirmed_flush_lsn), *ParseLsn(batches.back().end_position));
  // Backlog now counts only WAL written after the confirmed position.
  ASSERT_OK_AND_ASSIGN(int64_t after, source->Backlog());
  EXPECT_LE(after, static_cast<int64_t>(*ParseLsn(Query("SELECT pg_current_wal_lsn()")) -
                                        *ParseLsn(batches.back().end_position)));
}

// An idle, fully confirmed source lets the slot follow the server's WAL, so WAL that other
// tables (or databases) write is not kept for it.
TEST_F(PgLogicalSourceTest, AnIdleSourceDoesNotPinUnrelatedWal) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  Query("CREATE TABLE unrelated (x text)");
  Query("INSERT INTO unrelated SELECT repeat('x', 1000) FROM generate_series(1, 200)");
  const uint64_t wal = *ParseLsn(Query("SELECT pg_current_wal_lsn()"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  uint64_t slot = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    ASSERT_OK_AND_ASSIGN(auto batch, source->Poll(10, std::chrono::milliseconds(100)));
    EXPECT_TRUE(batch.events.empty());
    ASSERT_OK_AND_ASSIGN(auto st, PgLogicalSource::SlotStatus(db_->url(), slot_));
    slot = *ParseLsn(st.confirmed_flush_lsn);
    if (slot >= wal) break;
  }
  EXPECT_GE(slot, wal);
}

TEST_F(PgLogicalSourceTest, ReconnectsAfterTheStreamIsDropped) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  ASSERT_OK_AND_ASSIGN(auto first, service_->Create(Draft(1, "a"), As("user:1")));
  auto batches = PollEvents(*source, 1);
  ASSERT_OK_AND_ASSIGN(auto second, service_->Create(Draft(1, "b"), As("user:2")));
  // Delivered, not confirmed, then the server drops the stream.
  Query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '" +
        slot_ + "'");
  ASSERT_OK_AND_ASSIGN(auto third, service_->Create(Draft(1, "c"), As("user:3")));
  std::vector<ChangeEvent> got;
  int unavailable = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (got.size() < 2 + 3 && std::chrono::steady_clock::now() < deadline) {
    auto batch = source->Poll(100, std::chrono::milliseconds(100));
    if (!batch.ok()) {
      EXPECT_THAT(batch, StatusIs(StatusCode::kUnavailable));
      ++unavailable;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    got.insert(got.end(), batch->events.begin(), batch->events.end());
  }
  // The second transaction may have been read before the drop; either way each arrives once.
  std::vector<std::string> txns;
  for (const ChangeEvent& e : got) {
    if (txns.empty() || txns.back() != e.transaction_id) txns.push_back(e.transaction_id);
  }
  EXPECT_THAT(txns, ElementsAre(second.transaction_id, third.transaction_id));
  EXPECT_GE(unavailable, 0);
  EXPECT_NE(first.transaction_id, second.transaction_id);
  ExpectNothingMore(*source);
}

// The stream drops while a transaction is handed out in parts: the source reconnects, PostgreSQL
// sends the whole transaction again, and only the parts not yet handed out come, with the same
// number. (2,000 changes: more than the socket buffers hold, so most come after the reconnect.)
TEST_F(PgLogicalSourceTest, ADroppedStreamInsideATransactionInPartsResumesAfterTheHandedOutParts) {
  constexpr int kRows = 2000;
  PgLogicalSourceOptions o = SourceOptions();
  o.max_buffered_changes = 4;
  ASSERT_OK_AND_ASSIGN(auto source, PgLogicalSource::Open(o));
  std::vector<Campaign> rows;
  for (int p = 1; p <= kRows; ++p) {
    Campaign c = Draft(5, "bulk " + std::to_string(p));
    c.id = 10000 + p;
    c.priority = p;
    c.updated_by = "user:bulk";
    rows.push_back(c);
  }
  ASSERT_OK_AND_ASSIGN(auto bulk, service_->Import(5, rows));
  std::vector<SourceBatch> parts = PollEvents(*source, 8, /*max_events=*/1);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_NE(parts[0].end_position.find('#'), std::string::npos) << parts[0].end_position;
  ASSERT_OK(source->Confirm(parts[0].end_position));
  EXPECT_EQ(Query("SELECT partial_changes FROM ch_capture_progress WHERE slot = '" + slot_ + "'"),
            "4");
  Query("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '" +
        slot_ + "'");
  std::vector<ChangeEvent> got = Flatten(parts);
  size_t after_reconnect = 0;
  bool dropped = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (got.size() < kRows && std::chrono::steady_clock::now() < deadline) {
    auto batch = source->Poll(1, std::chrono::milliseconds(100));
    if (!batch.ok()) {
      EXPECT_THAT(batch, StatusIs(StatusCode::kUnavailable));
      dropped = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (dropped) after_reconnect += batch->events.size();
    got.insert(got.end(), batch->events.begin(), batch->events.end());
    if (!batch->events.empty()) {
      ASSERT_OK(source->Confirm(batch->end_position));
    }
  }
  ASSERT_EQ(got.size(), static_cast<size_t>(kRows));
  EXPECT_GT(after_reconnect, 0u);  // the resent transaction, less what was handed out
  std::set<int64_t> ids;
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(ids.insert(got[i].campaign_id).second) << "again: " << Render(got[i]);
    EXPECT_EQ(got[i].transaction_id, bulk.transaction_id);
    EXPECT_EQ(got[i].txn_seq, 1);
    // Parts of 4; the last piece states the count.
    EXPECT_EQ(got[i].txn_changes, i >= kRows - 4 ? kRows : 0) << i;
  }
  ExpectNothingMore(*source);
  EXPECT_EQ(Query("SELECT confirmed_txns::text || ' ' || (partial_lsn IS NULL)::text FROM "
                  "ch_capture_progress WHERE slot = '" +
                  slot_ + "'"),
            "1 true");
}

// A writer that bypasses PgCampaignStore (psql, a migration) is captured too: without the
// store's stamp, with PostgreSQL's commit time and xid, and "unknown" as a delete's actor.
TEST_F(PgLogicalSourceTest, ForeignWritersAreCapturedWithPostgresStamps) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  ASSERT_OK(service_->Create(Draft(1, "a"), As("user:1")));
  PollEvents(*source, 1);
  const std::string xid = Query(
      "WITH u AS (UPDATE campaigns SET name = 'by hand', version = version + 1, "
      "updated_by = 'user:dba' WHERE id = 1 RETURNING 1) SELECT txid_current()::text FROM u");
  Query("DELETE FROM campaigns WHERE id = 1");
  auto events = Flatten(PollEvents(*source, 2));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(Render(events[0]), "updated c1@v2 by user:dba");
  EXPECT_EQ(events[0].transaction_id, xid);
  EXPECT_EQ(events[0].row->name, "by hand");
  // PostgreSQL's commit time (the real clock), not a store stamp (the fake clock).
  const Micros off = events[0].event_time - SystemClock::Default().Now();
  EXPECT_LT(std::chrono::abs(off), std::chrono::minutes(1));
  EXPECT_EQ(Render(events[1]), "deleted c1@v3 by unknown");
}

// A change the source cannot decode stops it with DataLoss, but only after everything before it.
TEST_F(PgLogicalSourceTest, AnUndecodableChangeStopsTheSourceAfterWhatPrecedesIt) {
  ASSERT_OK_AND_ASSIGN(auto first, service_->Create(Draft(1, "a"), As("user:1")));
  Query("UPDATE campaigns SET status = 'archived' WHERE id = 1");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  ASSERT_OK_AND_ASSIGN(auto batch, source->Poll(100, std::chrono::seconds(5)));
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].transaction_id, first.transaction_id);
  ASSERT_OK(source->Confirm(batch.end_position));
  EXPECT_THAT(source->Poll(100, std::chrono::seconds(5)),
              StatusIsWith(StatusCode::kDataLoss, "campaigns.status"));
  // It stays stopped there (reconnecting), rather than skip a version.
  EXPECT_THAT(source->Poll(100, std::chrono::seconds(5)), StatusIs(StatusCode::kDataLoss));
}

TEST_F(PgLogicalSourceTest, OneConsumerPerSlot) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  EXPECT_THAT(OpenSource(), StatusIsWith(StatusCode::kUnavailable, "active"));
}

TEST_F(PgLogicalSourceTest, OpenNamesWhatIsMissingAndHowToCreateIt) {
  PgLogicalSourceOptions o = SourceOptions();
  o.slot = "ch_no_such_slot";
  EXPECT_THAT(PgLogicalSource::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition,
                           "replication slot 'ch_no_such_slot' does not exist; create the capture "
                           "first: PgLogicalSource::CreateCapture"));
  o = SourceOptions();
  o.publication = "ch_no_such_pub";
  EXPECT_THAT(
      PgLogicalSource::Open(o),
      StatusIsWith(StatusCode::kFailedPrecondition, "publication 'ch_no_such_pub' does not exist"));
}

// Writers of different customers commit out of stamp order: event times follow commit (WAL)
// order, max(stamp, previous + 1 us), so the completeness watermark can never pass a transaction
// still to come; a source that starts again from the confirmed position gives the resent
// transaction the same event time.
TEST_F(PgLogicalSourceTest, EventTimesFollowCommitOrderAcrossCustomers) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  ASSERT_OK(service_->Create(Draft(1, "one"), As("user:1")));
  ASSERT_OK(service_->Create(Draft(2, "two"), As("user:2")));
  ASSERT_OK(source->Confirm(PollEvents(*source, 2).back().end_position));
  clock_.Advance(std::chrono::milliseconds(1));
  ASSERT_OK_AND_ASSIGN(auto early, store_->BeginWrite("user:1"));
  ASSERT_OK(early->ForCustomer(1));  // stamped now
  const Timestamp early_stamp = early->commit_time();
  ASSERT_OK(early->Shift(1, +1, 1, std::nullopt, "user:1"));
  clock_.Advance(std::chrono::milliseconds(5));
  ASSERT_OK_AND_ASSIGN(auto late,
                       service_->Update(2, CampaignPatch{.name = "later"}, As("user:2")));
  EXPECT_GT(late.committed_at, early_stamp);
  ASSERT_OK(early->Commit());  // commits second, with the smaller stamp
  std::vector<ChangeEvent> got = Flatten(PollEvents(*source, 2));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].customer_id, 2);
  EXPECT_EQ(got[0].event_time, late.committed_at);
  EXPECT_EQ(got[1].customer_id, 1);
  EXPECT_EQ(got[1].event_time, late.committed_at + Micros(1));
  EXPECT_EQ(got[1].row->updated_at, early_stamp);  // the row keeps the writer's stamp
  // Confirm only the first; a new source resends the second with the same event time.
  ASSERT_OK(source->Confirm(got[0].source_position));
  source.reset();
  ASSERT_OK_AND_ASSIGN(source, OpenSource());
  std::vector<ChangeEvent> again = Flatten(PollEvents(*source, 1));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].customer_id, 1);
  EXPECT_EQ(again[0].event_time, late.committed_at + Micros(1));
}

TEST_F(PgLogicalSourceTest, CaptureSetupAndCleanupAreIdempotent) {
  ASSERT_OK(PgLogicalSource::CreateCapture(db_->url(), slot_, kPub));  // again: fine
  EXPECT_EQ(Query("SELECT relreplident FROM pg_class WHERE oid = 'campaigns'::regclass"), "f");
  EXPECT_EQ(Query(std::string("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM "
                              "pg_publication_tables WHERE pubname = '") +
                  kPub + "'"),
            "campaigns,ch_customer_txn");
  {
    ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
    ASSERT_OK(service_->Create(Draft(1, "a"), As("user:1")));
    auto batches = PollEvents(*source, 1);
    ASSERT_OK(source->Confirm(batches[0].end_position));
  }
  EXPECT_EQ(Query("SELECT count(*) FROM ch_capture_progress"), "1");
  ASSERT_OK(PgLogicalSource::DropCapture(db_->url(), slot_, kPub));
  ASSERT_OK_AND_ASSIGN(auto st, PgLogicalSource::SlotStatus(db_->url(), slot_));
  EXPECT_FALSE(st.exists);
  EXPECT_EQ(
      Query(std::string("SELECT count(*) FROM pg_publication WHERE pubname = '") + kPub + "'"),
      "0");
  // The position is gone with the slot; the transaction count stays (numbering goes on).
  EXPECT_EQ(Query("SELECT confirmed_lsn::text || ' ' || confirmed_txns FROM ch_capture_progress"),
            "0/0 1");
  ASSERT_OK(PgLogicalSource::DropCapture(db_->url(), slot_, kPub));  // again: fine
  EXPECT_THAT(OpenSource(), StatusIs(StatusCode::kFailedPrecondition));
  // Recreated: a new slot starts at the current end of WAL, with no old progress.
  ASSERT_OK(PgLogicalSource::CreateCapture(db_->url(), slot_, kPub));
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource());
  ExpectNothingMore(*source);
  ASSERT_OK(service_->Create(Draft(1, "b"), As("user:2")));
  EXPECT_EQ(PollEvents(*source, 2).size(), 1u);
}

// ---- no server needed ---------------------------------------------------------------------------

TEST(PgLogicalSourceOpenTest, BadOptionsAreInvalidArgument) {
  PgLogicalSourceOptions o;
  o.slot = "s";
  o.publication = "p";
  EXPECT_THAT(PgLogicalSource::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "url"));
  o.url = "postgresql://u@h:99999/db";
  EXPECT_THAT(PgLogicalSource::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "port"));
  o.url = "postgresql://u@127.0.0.1:1/db";
  o.slot = "Bad-Slot";
  EXPECT_THAT(PgLogicalSource::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "slot"));
  o.slot = "s";
  o.publication = "a;drop";
  EXPECT_THAT(PgLogicalSource::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "publication"));
  EXPECT_THAT(PgLogicalSource::CreateCapture("", "s", "p"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PgLogicalSource::DropCapture("x", "s p", "p"),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST(PgLogicalSourceOpenTest, UnreachableServerIsUnavailableQuickly) {
  PgLogicalSourceOptions o;
  o.url = "postgresql://relay:hunter2@127.0.0.1:1/campaigns";
  o.slot = "s";
  o.publication = "p";
  o.connect_timeout_s = 2;
  auto start = std::chrono::steady_clock::now();
  auto r = PgLogicalSource::Open(o);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_THAT(r, StatusIsWith(StatusCode::kUnavailable, "127.0.0.1:1/campaigns"));
  EXPECT_EQ(r.status().message().find("hunter2"), std::string::npos);
  EXPECT_THAT(PgLogicalSource::SlotStatus(o.url, "s"), StatusIs(StatusCode::kUnavailable));
}

}  // namespace
}  // namespace ch
