// PgCampaignStore beyond the shared contract (tests/contract/ runs the service semantics over it):
// PostgreSQL specifics such as transaction ids, cross-process writer serialization, lock
// timeouts, schema versions, capture setup and error translation. Needs CH_TEST_PG_URL (each
// test creates and drops its own database); skipped without it, except the tests that need no
// server.
#include "campaign/pg_campaign_store.h"

#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/pg_client.h"
#include "campaign/pg_test_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

Campaign Draft(int64_t customer, std::string name) {
  Campaign c;
  c.customer_id = customer;
  c.name = std::move(name);
  c.content = R"({"title":"Hi"})";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext ctx;
  ctx.actor = std::move(actor);
  return ctx;
}

class PgCampaignStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::PgTestUrl().empty()) GTEST_SKIP() << ::ch::testing::kPgTestSkipMessage;
    ASSERT_OK_AND_ASSIGN(db_, ::ch::testing::PgTestDatabase::Create());
    ASSERT_OK_AND_ASSIGN(admin_, db_->Connect());
  }

  Result<std::unique_ptr<PgCampaignStore>> Open(StoreCapture capture = StoreCapture::kLog) {
    PgCampaignStoreOptions o;
    o.url = db_->url();
    o.clock = &clock_;
    o.capture = capture;
    return PgCampaignStore::Open(o);
  }

  std::string Query(const std::string& sql) {
    auto r = admin_->Exec(sql);
    EXPECT_OK(r);
    return r.ok() && r->rows() > 0 ? std::string(r->Get(0, 0)) : std::string();
  }

  FakeClock clock_;
  std::unique_ptr<::ch::testing::PgTestDatabase> db_;
  std::unique_ptr<PgConn> admin_;
};

TEST_F(PgCampaignStoreTest, TransactionIdIsThePostgresTransactionId) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  CampaignService service(*store);
  ASSERT_OK_AND_ASSIGN(auto info, service.Create(Draft(1, "a"), As("user:1")));
  EXPECT_EQ(Query("SELECT xmin::text FROM campaigns WHERE id = 1"), info.transaction_id);
  EXPECT_EQ(Query("SELECT txn_id::text FROM ch_customer_txn WHERE customer_id = 1"),
            info.transaction_id);
  ASSERT_OK_AND_ASSIGN(auto next, service.Create(Draft(1, "b"), As("user:1")));
  EXPECT_GT(std::stoll(next.transaction_id), std::stoll(info.transaction_id));
}

TEST_F(PgCampaignStoreTest, ReadersDoNotWaitForAWriter) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto tx, store->BeginWrite("user:2"));
  ASSERT_OK_AND_ASSIGN(auto shifted, tx->Shift(1, 1, 1, std::nullopt, "user:2"));
  ASSERT_EQ(shifted.size(), 1u);
  auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto row, store->Get(1));
  ASSERT_OK_AND_ASSIGN(auto rows, store->List(1));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_EQ(row->priority, 1);  // the committed state
  EXPECT_EQ(rows.size(), 1u);
  ASSERT_OK(tx->Commit());
  ASSERT_OK_AND_ASSIGN(row, store->Get(1));
  EXPECT_EQ(row->priority, 2);
}

// Two stores on one database behave like two processes: the row lock on the customer's
// ch_customer_txn row serializes their writers of that customer, so stamps increase in commit
// order and priorities stay dense.
TEST_F(PgCampaignStoreTest, WritersOfSeveralProcessesAreSerialized) {
  ASSERT_OK_AND_ASSIGN(auto a, Open());
  ASSERT_OK_AND_ASSIGN(auto b, Open());
  CampaignService sa(*a);
  CampaignService sb(*b);
  std::mutex mu;
  std::vector<CommitInfo> infos;
  auto writer = [&](CampaignService& s, int t) {
    for (int i = 0; i < 15; ++i) {
      auto r = s.Create(Draft(1, "w"), As("user:" + std::to_string(t)));
      EXPECT_OK(r);
      if (r.ok()) {
        std::lock_guard lock(mu);
        infos.push_back(*r);
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(writer, std::ref(sa), 0);
  threads.emplace_back(writer, std::ref(sb), 1);
  threads.emplace_back(writer, std::ref(sa), 2);
  threads.emplace_back(writer, std::ref(sb), 3);
  for (auto& t : threads) t.join();
  ASSERT_OK_AND_ASSIGN(auto rows, a->List(1));
  ASSERT_EQ(rows.size(), 60u);
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i].priority, static_cast<int64_t>(i + 1));
    EXPECT_EQ(rows[i].version, rows[i].priority);
  }
  // Unique stamps and ids across both stores. (Transaction ids are not in commit order: a
  // writer gets its xid before it waits for the lock.)
  std::set<Timestamp> times;
  std::set<std::string> txns;
  Timestamp last{};
  for (const CommitInfo& info : infos) {
    times.insert(info.committed_at);
    txns.insert(info.transaction_id);
    last = std::max(last, info.committed_at);
  }
  EXPECT_EQ(times.size(), infos.size());
  EXPECT_EQ(txns.size(), infos.size());
  // The newest stamp is the last commit: the top campaign was created by it.
  EXPECT_EQ(rows.front().updated_at, last);
}

TEST_F(PgCampaignStoreTest, AWriterThatCannotGetTheLockInTimeIsUnavailable) {
  ASSERT_OK_AND_ASSIGN(auto a, Open());
  PgCampaignStoreOptions o;
  o.url = db_->url();
  o.lock_timeout_ms = 200;
  ASSERT_OK_AND_ASSIGN(auto b, PgCampaignStore::Open(o));
  ASSERT_OK_AND_ASSIGN(auto held, a->BeginWrite("user:a"));
  ASSERT_OK(held->ForCustomer(1));
  ASSERT_OK_AND_ASSIGN(auto waiting, b->BeginWrite("user:b"));
  auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(waiting->ForCustomer(1), StatusIs(StatusCode::kUnavailable));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  waiting.reset();
  held.reset();  // rolled back: the lock is free again
  ASSERT_OK_AND_ASSIGN(auto tx, b->BeginWrite("user:b"));
  ASSERT_OK(tx->ForCustomer(1));
  ASSERT_OK(tx->Commit());
}

// The point of per-customer locks: while one customer's transaction is open (holding its lock),
// another customer's writes commit, from another store (process) and from the same one.
TEST_F(PgCampaignStoreTest, WritersOfDifferentCustomersDoNotBlockEachOther) {
  PgCampaignStoreOptions o;
  o.url = db_->url();
  o.clock = &clock_;
  o.lock_timeout_ms = 500;
  ASSERT_OK_AND_ASSIGN(auto a, PgCampaignStore::Open(o));
  ASSERT_OK_AND_ASSIGN(auto b, PgCampaignStore::Open(o));
  CampaignService sa(*a);
  CampaignService sb(*b);
  ASSERT_OK(sa.Create(Draft(1, "one"), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto held, a->BeginWrite("user:1"));
  ASSERT_OK(held->ForCustomer(1));
  ASSERT_OK(held->Shift(1, +1, 1, std::nullopt, "user:1"));
  // Customer 2 commits while customer 1's transaction holds its lock (a block would exceed the
  // 500 ms lock timeout and fail).
  ASSERT_OK_AND_ASSIGN(auto other, sb.Create(Draft(2, "two"), As("user:2")));
  ASSERT_OK(sa.Create(Draft(3, "three"), As("user:3")));
  ASSERT_OK_AND_ASSIGN(auto two, b->Get(other.row->id));
  ASSERT_TRUE(two.has_value());
  // Customer 1 itself still waits (and gives up after the timeout).
  EXPECT_THAT(sb.Create(Draft(1, "blocked"), As("user:1")), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(sb.Update(1, CampaignPatch{.name = "blocked"}, As("user:1")),
              StatusIs(StatusCode::kUnavailable));
  ASSERT_OK(held->Commit());
  ASSERT_OK_AND_ASSIGN(auto rows, a->List(1));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].priority, 2);
  EXPECT_OK(sb.Create(Draft(1, "now"), As("user:1")));
}

// serialize_all_writers (the benchmark's baseline) brings back one lock for the database.
TEST_F(PgCampaignStoreTest, SerializeAllWritersBlocksOtherCustomers) {
  PgCampaignStoreOptions o;
  o.url = db_->url();
  o.lock_timeout_ms = 300;
  o.serialize_all_writers = true;
  ASSERT_OK_AND_ASSIGN(auto a, PgCampaignStore::Open(o));
  ASSERT_OK_AND_ASSIGN(auto b, PgCampaignStore::Open(o));
  ASSERT_OK_AND_ASSIGN(auto held, a->BeginWrite("user:1"));
  ASSERT_OK(held->ForCustomer(1));
  CampaignService sb(*b);
  EXPECT_THAT(sb.Create(Draft(2, "two"), As("user:2")), StatusIs(StatusCode::kUnavailable));
  ASSERT_OK(held->Commit());
  EXPECT_OK(sb.Create(Draft(2, "two"), As("user:2")));
}

// Writers of many customers at once: every stamp is strictly increasing per customer, ids
// allocated concurrently are unique, and the allocation passes ids inserted explicitly.
TEST_F(PgCampaignStoreTest, ConcurrentCustomersGetUniqueIdsAndOrderedStamps) {
  ASSERT_OK_AND_ASSIGN(auto a, Open());
  ASSERT_OK_AND_ASSIGN(auto b, Open());
  CampaignService sa(*a);
  CampaignService sb(*b);
  Campaign explicit_id = Draft(9, "explicit");
  explicit_id.id = 500;
  ASSERT_OK(sa.Create(explicit_id, As("user:9")));
  std::mutex mu;
  std::map<int64_t, std::vector<Timestamp>> stamps;
  std::set<int64_t> ids;
  auto writer = [&](CampaignService& s, int64_t customer) {
    for (int i = 0; i < 10; ++i) {
      auto r = s.Create(Draft(customer, "w"), As("user:" + std::to_string(customer)));
      EXPECT_OK(r);
      if (!r.ok()) continue;
      clock_.Advance(Micros(1));
      std::lock_guard lock(mu);
      stamps[customer].push_back(r->committed_at);
      EXPECT_TRUE(ids.insert(r->row->id).second) << r->row->id;
      EXPECT_GT(r->row->id, 500);
    }
  };
  std::vector<std::thread> threads;
  for (int64_t c = 1; c <= 4; ++c) threads.emplace_back(writer, std::ref(c % 2 ? sa : sb), c);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ids.size(), 40u);
  for (const auto& [customer, times] : stamps) {
    for (size_t i = 1; i < times.size(); ++i) EXPECT_LT(times[i - 1], times[i]) << customer;
    ASSERT_OK_AND_ASSIGN(auto rows, a->List(customer));
    ASSERT_EQ(rows.size(), 10u);
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].priority, static_cast<int64_t>(i + 1));
    }
  }
}

// A database of schema version 1 (one ch_txn row for every writer) is upgraded when opened: the
// new stamps start above the old ones, ch_txn's row is retired (an older writer still running
// fails instead of writing without the customer lock) and publications of campaigns also get the
// customer stamps.
TEST_F(PgCampaignStoreTest, UpgradesASchemaVersion1Database) {
  { ASSERT_OK_AND_ASSIGN(auto store, Open()); }
  const int64_t old_stamp = ToUnixMicros(clock_.Now()) + 3'600'000'000;  // an hour ahead
  Query(
      "DROP TABLE ch_customer_txn; DROP SEQUENCE ch_campaign_ids; "
      "INSERT INTO campaigns SELECT 7, 1, 'old', 'draft', 1, 'app_open', 'all', NULL, NULL, 0, "
      "'{}', 1, now(), now(), 'user:old'; "
      "INSERT INTO ch_txn VALUES (1, 42, " +
      std::to_string(old_stamp) +
      "); UPDATE ch_meta SET value = '1' WHERE key = 'schema_version'; "
      "CREATE PUBLICATION old_capture FOR TABLE campaigns, ch_txn");
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  EXPECT_EQ(Query("SELECT value FROM ch_meta WHERE key = 'schema_version'"), "2");
  EXPECT_EQ(Query("SELECT count(*) FROM ch_txn"), "0");
  EXPECT_EQ(Query("SELECT value FROM ch_meta WHERE key = 'v1_commit_us'"),
            std::to_string(old_stamp));
  EXPECT_EQ(Query("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'old_capture' AND "
                  "tablename = 'ch_customer_txn'"),
            "1");
  CampaignService service(*store);
  ASSERT_OK_AND_ASSIGN(auto info, service.Create(Draft(2, "new"), As("user:2")));
  EXPECT_GT(ToUnixMicros(info.committed_at), old_stamp);
  EXPECT_GT(info.row->id, 7);
  // What a version-1 writer runs first now finds no row (its BeginWrite fails).
  EXPECT_EQ(Query("UPDATE ch_txn SET commit_us = commit_us + 1 WHERE id = 1 RETURNING 1"), "");
}

TEST_F(PgCampaignStoreTest, RefusesANewerSchema) {
  { ASSERT_OK_AND_ASSIGN(auto store, Open()); }
  Query("UPDATE ch_meta SET value = '3' WHERE key = 'schema_version'");
  EXPECT_THAT(Open(), StatusIsWith(StatusCode::kFailedPrecondition, "newer than the supported 2"));
}

// A database created before replay positions existed gets their table when opened.
TEST_F(PgCampaignStoreTest, OpeningAddsTheReplayPositionTable) {
  { ASSERT_OK_AND_ASSIGN(auto store, Open()); }
  Query("DROP TABLE ch_replay_positions");
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  CampaignService service(*store);
  WriteContext ctx = As("user:1");
  ctx.replay = ReplayAdvance{{"w1", 3, "d3", "a.jsonl", {}}, std::nullopt};
  ASSERT_OK(service.Create(Draft(1, "a"), ctx));
  EXPECT_EQ(Query("SELECT seq || ' ' || digest FROM ch_replay_positions WHERE workload = 'w1'"),
            "3 d3");
}

TEST_F(PgCampaignStoreTest, LogCaptureMakesDeletesCarryTheWholeRow) {
  ASSERT_OK_AND_ASSIGN(auto none, Open(StoreCapture::kNone));
  EXPECT_EQ(Query("SELECT relreplident FROM pg_class WHERE oid = 'campaigns'::regclass"), "d");
  ASSERT_OK_AND_ASSIGN(auto log, Open(StoreCapture::kLog));
  EXPECT_EQ(Query("SELECT relreplident FROM pg_class WHERE oid = 'campaigns'::regclass"), "f");
}

TEST_F(PgCampaignStoreTest, CaptureNoneRefusesACapturedDatabase) {
  { ASSERT_OK_AND_ASSIGN(auto store, Open()); }
  Query("CREATE PUBLICATION someone_captures FOR TABLE campaigns");
  EXPECT_THAT(Open(StoreCapture::kNone),
              StatusIsWith(StatusCode::kFailedPrecondition, "someone_captures"));
  PgCampaignStoreOptions o;
  o.url = db_->url();
  o.capture = StoreCapture::kNone;
  o.ignore_existing_capture = true;
  EXPECT_OK(PgCampaignStore::Open(o));
  EXPECT_OK(Open(StoreCapture::kLog));
}

TEST_F(PgCampaignStoreTest, TextThePostgresTextTypeCannotHoldIsInvalidArgument) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  CampaignPatch p;
  p.name = std::string("nul\0byte", 8);
  EXPECT_THAT(service.Update(1, p, As("user:1")),
              StatusIsWith(StatusCode::kInvalidArgument, "name: contains a NUL"));
  ASSERT_OK_AND_ASSIGN(auto row, store->Get(1));
  EXPECT_EQ(row->name, "a");
  EXPECT_EQ(row->version, 1);
}

TEST_F(PgCampaignStoreTest, SurvivesPooledConnectionsDroppedByTheServer) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(store->Get(1));
  // Kill every idle connection of the store (as a server restart or an idle timeout would).
  Query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" +
        db_->name() + "' AND pid <> pg_backend_pid()");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_OK_AND_ASSIGN(auto row, store->Get(1));
  EXPECT_EQ(row->name, "a");
  Query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" +
        db_->name() + "' AND pid <> pg_backend_pid()");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_OK(service.Create(Draft(1, "b"), As("user:1")));
}

TEST_F(PgCampaignStoreTest, AWrongDatabaseIsUnavailableAndNamed) {
  ASSERT_OK_AND_ASSIGN(std::string url,
                       PgUrlWithDatabase(db_->admin_url(), "ch_no_such_database_here"));
  PgCampaignStoreOptions o;
  o.url = url;
  EXPECT_THAT(PgCampaignStore::Open(o),
              StatusIsWith(StatusCode::kUnavailable, "ch_no_such_database_here"));
}

// ---- no server needed ---------------------------------------------------------------------------

TEST(PgCampaignStoreOpenTest, BadUrlIsInvalidArgument) {
  PgCampaignStoreOptions o;
  EXPECT_THAT(PgCampaignStore::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "url"));
  o.url = "postgresql://u@h:port/db";
  EXPECT_THAT(PgCampaignStore::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "url"));
  o.url = "not a url";
  EXPECT_THAT(PgCampaignStore::Open(o), StatusIsWith(StatusCode::kInvalidArgument, "url"));
}

TEST(PgCampaignStoreOpenTest, UnreachableServerIsUnavailableQuicklyWithoutThePassword) {
  PgCampaignStoreOptions o;
  o.url = "postgresql://alice:hunter2@127.0.0.1:1/campaigns";
  o.connect_timeout_s = 2;
  auto start = std::chrono::steady_clock::now();
  auto r = PgCampaignStore::Open(o);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_THAT(r, StatusIsWith(StatusCode::kUnavailable, "127.0.0.1:1/campaigns"));
  EXPECT_EQ(r.status().message().find("hunter2"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace ch
