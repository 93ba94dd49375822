// HistoryStoreContractTest: one suite, every HistoryStore implementation (conventions §3).
//
// The as-of tests follow the LevelDB snapshot script (conventions §7): write v1 at t1 and v2 at
// t2, then assert the state at t1, between, at t2, before the first change, exactly at a
// boundary (inclusive), after a delete, and under duplicate and reordered delivery. State is
// rendered as compact strings ("c7@v2 p1") so every assertion reads like the spec.
#include "tests/contract/history_store_contract.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <random>
#include <set>

#include "campaign/pg_test_util.h"
#include "common/time_util.h"
#include "history/as_of_cache.h"
#include "history/clickhouse_history_store.h"
#include "history/in_memory_history_store.h"
#include "history/pg_history_store.h"
#include "history/sqlite_history_store.h"
#include "testing/test_util.h"

namespace ch::testing {
namespace {

// ---- backends ---------------------------------------------------------------------------------

HistoryStoreBackend InMemoryBackend() {
  HistoryStoreBackend b;
  b.name = "InMemory";
  b.open = [](const Clock& clock, const std::string&) -> Result<std::unique_ptr<HistoryStore>> {
    InMemoryHistoryOptions o;
    o.clock = &clock;
    return std::unique_ptr<HistoryStore>(std::make_unique<InMemoryHistoryStore>(o));
  };
  return b;
}

// SQLite, named `name`, with the suite's options changed by `tune`.
HistoryStoreBackend SqliteVariant(std::string name,
                                  std::function<void(SqliteHistoryOptions&)> tune) {
  HistoryStoreBackend b;
  b.name = std::move(name);
  b.caps.reports_bytes = true;
  b.caps.persistent = true;
  b.open = [tune](const Clock& clock,
                  const std::string& dir) -> Result<std::unique_ptr<HistoryStore>> {
    SqliteHistoryOptions o;
    o.path = dir + "/history.db";
    o.clock = &clock;
    o.synchronous = "NORMAL";  // durability is not what this suite tests; speed is welcome
    tune(o);
    ASSIGN_OR_RETURN(auto store, SqliteHistoryStore::Open(o));
    return std::unique_ptr<HistoryStore>(std::move(store));
  };
  return b;
}

HistoryStoreBackend SqliteBackend() {
  return SqliteVariant("Sqlite", [](SqliteHistoryOptions&) {});
}

// SQLite with a tiny merge threshold: records move from the `recent` table into the history
// table after almost every Append, so every query meets both tables in every combination.
HistoryStoreBackend SqliteMergingBackend() {
  return SqliteVariant("SqliteMerging", [](SqliteHistoryOptions& o) {
    o.merge_threshold_rows = 3;
    o.body_cache_bytes = 4096;  // and caches too small to hold anything for long
  });
}

// SQLite with a checkpoint after every second record (and a tiny merge threshold): almost every
// as-of reads a checkpoint plus the records after it, and every late, duplicate or reordered
// record meets checkpoints it has to correct.
HistoryStoreBackend SqliteCheckpointBackend() {
  return SqliteVariant("SqliteCheckpoint", [](SqliteHistoryOptions& o) {
    o.merge_threshold_rows = 3;
    o.checkpoint_every = 2;
  });
}

// ClickHouse (CH_TEST_CLICKHOUSE_URL=clickhouse://HOST:PORT/DB): every test gets its own database,
// DB_<hash of the test's directory>, dropped when the test first opens it and kept for reopens.
HistoryStoreBackend ClickHouseBackend() {
  HistoryStoreBackend b;
  b.name = "ClickHouse";
  b.caps.reports_bytes = true;
  b.caps.persistent = true;
  b.skip_reason = [] {
    const char* url = std::getenv("CH_TEST_CLICKHOUSE_URL");
    return url != nullptr && *url != '\0'
               ? std::string()
               : std::string(
                     "CH_TEST_CLICKHOUSE_URL is not set (scripts/services.sh start "
                     "clickhouse)");
  };
  b.open = [](const Clock& clock, const std::string& dir) -> Result<std::unique_ptr<HistoryStore>> {
    static std::mutex mu;
    static std::set<std::string> seen;
    ClickHouseHistoryOptions o;
    o.url = fmt::format("{}_{:x}", std::getenv("CH_TEST_CLICKHOUSE_URL"),
                        std::hash<std::string>()(dir));
    o.clock = &clock;
    bool fresh = false;
    {
      std::lock_guard<std::mutex> lock(mu);
      fresh = seen.insert(dir).second;
    }
    if (fresh) {
      ASSIGN_OR_RETURN(auto old, ClickHouseHistoryStore::Open(o));
      RETURN_IF_ERROR(old->DropDatabaseForTesting());
    }
    ASSIGN_OR_RETURN(auto store, ClickHouseHistoryStore::Open(o));
    return std::unique_ptr<HistoryStore>(std::move(store));
  };
  return b;
}

// PostgreSQL (CH_TEST_PG_URL): one throwaway database per test process, a fresh schema per test
// (derived from the test's location, so reopening finds the same one).
const PgTestDatabase* PgContractDatabase() {
  static std::unique_ptr<PgTestDatabase> db = [] {
    auto r = PgTestDatabase::Create();
    EXPECT_OK(r);
    return r.ok() ? std::move(r).value() : nullptr;
  }();
  return db.get();
}

HistoryStoreBackend PostgresBackend(size_t body_cache_bytes = 32 << 20) {
  HistoryStoreBackend b;
  b.name = "Postgres";
  b.caps.reports_bytes = true;
  b.caps.persistent = true;
  b.skip_reason = [] { return PgTestUrl().empty() ? std::string(kPgTestSkipMessage) : ""; };
  b.open = [body_cache_bytes](const Clock& clock,
                              const std::string& dir) -> Result<std::unique_ptr<HistoryStore>> {
    const PgTestDatabase* db = PgContractDatabase();
    if (db == nullptr) return UnavailableError("no PostgreSQL test database");
    PgHistoryOptions o;
    o.url = db->url();
    o.schema = fmt::format("h_{:016x}", std::hash<std::string>()(dir));
    o.clock = &clock;
    o.body_cache_bytes = body_cache_bytes;
    ASSIGN_OR_RETURN(auto store, PgHistoryStore::Open(o));
    return std::unique_ptr<HistoryStore>(std::move(store));
  };
  return b;
}

// PostgreSQL with a body cache too small to hold anything for long: every read resolves bodies
// (and deltas) from the tables.
HistoryStoreBackend PostgresTinyCacheBackend() {
  HistoryStoreBackend b = PostgresBackend(4096);
  b.name = "PostgresTinyCache";
  return b;
}

// The support role's as-of cache over SQLite: it must be indistinguishable from the store.
HistoryStoreBackend CachedSqliteBackend() {
  HistoryStoreBackend b = SqliteBackend();
  b.name = "CachedSqlite";
  b.caps.reports_bytes = true;
  auto open = b.open;
  b.open = [open](const Clock& clock,
                  const std::string& dir) -> Result<std::unique_ptr<HistoryStore>> {
    ASSIGN_OR_RETURN(std::unique_ptr<HistoryStore> inner, open(clock, dir));
    return std::unique_ptr<HistoryStore>(
        std::make_unique<AsOfCachingHistoryStore>(std::move(inner)));
  };
  return b;
}

// Every store under contract. Adding one is one line here.
std::vector<HistoryStoreBackend> AllHistoryStoreBackends() {
  return {
      InMemoryBackend(),     SqliteBackend(),           SqliteMergingBackend(),
      CachedSqliteBackend(), PostgresBackend(),         PostgresTinyCacheBackend(),
      ClickHouseBackend(),   SqliteCheckpointBackend(),
  };
}

// ---- records ----------------------------------------------------------------------------------

const Timestamp kT0 = *ParseTimestamp("2026-11-03T14:00:00Z");

// The instant `s` seconds after kT0.
Timestamp T(double s) { return kT0 + Micros(static_cast<int64_t>(s * 1e6)); }

struct Content {
  std::string title = "Welcome";
  std::string body = "Hello there";
};

// A snapshot in the canonical field order of CampaignToJson (campaign/campaign.h).
std::string Snapshot(int64_t id, int64_t customer, int64_t priority, int64_t version,
                     Timestamp updated_at, const std::string& updated_by,
                     const std::string& content_json) {
  return fmt::format(
      R"({{"id":{},"customer_id":{},"name":"Campaign {}","status":"active","priority":{},)"
      R"("trigger_event":"app_open","audience_segment":"all_users","start_at":null,)"
      R"("end_at":null,"frequency_cap":2,"version":{},)"
      R"("created_at":"2026-11-01T00:00:00.000000Z","updated_at":"{}","updated_by":"{}",)"
      R"("content":{}}})",
      id, customer, id, priority, version, FormatTimestamp(updated_at), updated_by, content_json);
}

std::string DefaultContent() { return R"({"body":"Hello there","title":"Welcome"})"; }

struct Rec {
  int64_t customer = 1;
  int64_t campaign = 7;
  int64_t version = 1;
  double at = 0;  // seconds after kT0
  int64_t priority = 1;
  ChangeOp op = ChangeOp::kUpdated;
  std::string actor = "user:101";
  std::string tx = "";  // default: derived from `at`
  std::string content = DefaultContent();

  HistoryRecord Build() const {
    HistoryRecord r;
    r.customer_id = customer;
    r.campaign_id = campaign;
    r.version = version;
    r.event_time = T(at);
    r.event_type = op;
    r.actor = actor;
    r.transaction_id = tx.empty() ? fmt::format("{}", static_cast<int64_t>(at * 1000)) : tx;
    r.priority = priority;
    r.snapshot =
        Snapshot(campaign, customer, priority, op == ChangeOp::kDeleted ? version - 1 : version,
                 r.event_time, actor, content);
    return r;
  }
};

HistoryRecord Created(int64_t campaign, double at, int64_t priority = 1) {
  return Rec{
      .campaign = campaign, .version = 1, .at = at, .priority = priority, .op = ChangeOp::kCreated}
      .Build();
}
HistoryRecord Updated(int64_t campaign, int64_t version, double at, int64_t priority = 1) {
  return Rec{.campaign = campaign, .version = version, .at = at, .priority = priority}.Build();
}
HistoryRecord Deleted(int64_t campaign, int64_t version, double at, int64_t priority = 1) {
  return Rec{.campaign = campaign,
             .version = version,
             .at = at,
             .priority = priority,
             .op = ChangeOp::kDeleted}
      .Build();
}

// ---- rendering --------------------------------------------------------------------------------

std::string Short(const HistoryRecord& r) {
  std::string s = fmt::format("c{}@v{} p{}", r.campaign_id, r.version, r.priority);
  if (r.event_type == ChangeOp::kDeleted) s += " deleted";
  return s;
}

std::string Render(const std::vector<HistoryRecord>& rs) {
  std::string out;
  for (const auto& r : rs) {
    if (!out.empty()) out += ", ";
    out += Short(r);
  }
  return out.empty() ? "(none)" : out;
}

std::string Render(const std::optional<HistoryRecord>& r) { return r ? Short(*r) : "(none)"; }

// ---- fixture ----------------------------------------------------------------------------------

class HistoryStoreContractTest : public ::testing::TestWithParam<HistoryStoreBackend> {
 protected:
  void SetUp() override {
    std::string why = GetParam().skip_reason();
    if (!why.empty()) GTEST_SKIP() << GetParam().name << ": " << why;
    store_ = MakeEmptyStore();
    ASSERT_NE(store_, nullptr);
  }

  // Return a new, empty store of the backend under test.
  std::unique_ptr<HistoryStore> MakeEmptyStore() {
    auto dir = std::make_unique<TempDir>();
    auto r = GetParam().open(clock_, dir->path().string());
    EXPECT_OK(r);
    location_ = dir->path().string();
    dirs_.push_back(std::move(dir));
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // Close and reopen the current store (a new, empty one unless caps.persistent).
  void Reopen() {
    store_.reset();
    auto r = GetParam().open(clock_, location_);
    ASSERT_OK(r);
    store_ = std::move(r).value();
  }

  const HistoryStoreCapabilities& caps() const { return GetParam().caps; }

  int64_t Append(std::vector<HistoryRecord> records) {
    auto r = store_->Append(records);
    EXPECT_OK(r);
    return r.ok() ? *r : -1;
  }

  std::string AsOf(double at, int64_t customer = 1) {
    auto r = store_->AsOf(customer, T(at));
    EXPECT_OK(r);
    return r.ok() ? Render(*r) : r.status().ToString();
  }
  std::string AsOfAt(Timestamp at, int64_t customer = 1) {
    auto r = store_->AsOf(customer, at);
    EXPECT_OK(r);
    return r.ok() ? Render(*r) : r.status().ToString();
  }
  std::string Log(int64_t campaign, TimeRange range = {}) {
    auto r = store_->CampaignLog(campaign, range);
    EXPECT_OK(r);
    return r.ok() ? Render(*r) : r.status().ToString();
  }
  std::string LatestAt(int64_t campaign, double at) {
    auto r = store_->LatestAt(campaign, T(at));
    EXPECT_OK(r);
    return r.ok() ? Render(*r) : r.status().ToString();
  }
  int64_t Records() {
    auto r = store_->Stats();
    EXPECT_OK(r);
    return r.ok() ? r->records : -1;
  }

  FakeClock clock_{*ParseTimestamp("2026-12-01T00:00:00Z")};
  std::unique_ptr<HistoryStore> store_;

 private:
  std::vector<std::unique_ptr<TempDir>> dirs_;
  std::string location_;
};

// ---- as-of: the snapshot script ---------------------------------------------------------------

TEST_P(HistoryStoreContractTest, AsOfFollowsTheSnapshotScript) {
  // v1 at t1 = 10 s, v2 at t2 = 20 s.
  EXPECT_EQ(Append({Created(7, 10), Updated(7, 2, 20, 1)}), 2);
  EXPECT_EQ(AsOf(0), "(none)") << "before the first change";
  EXPECT_EQ(AsOfAt(T(10) - Micros(1)), "(none)") << "one microsecond before t1";
  EXPECT_EQ(AsOf(10), "c7@v1 p1") << "exactly at t1 (inclusive)";
  EXPECT_EQ(AsOf(15), "c7@v1 p1") << "between t1 and t2";
  EXPECT_EQ(AsOfAt(T(20) - Micros(1)), "c7@v1 p1") << "one microsecond before t2";
  EXPECT_EQ(AsOf(20), "c7@v2 p1") << "exactly at t2 (inclusive)";
  EXPECT_EQ(AsOf(1e6), "c7@v2 p1") << "long after";
}

TEST_P(HistoryStoreContractTest, AsOfOmitsDeletedCampaigns) {
  Append({Created(7, 10), Updated(7, 2, 20), Deleted(7, 3, 30), Created(8, 25)});
  EXPECT_EQ(AsOf(29), "c7@v2 p1, c8@v1 p1");
  EXPECT_EQ(AsOf(30), "c8@v1 p1") << "deleted at 30: gone at 30";
  EXPECT_EQ(AsOf(1e6), "c8@v1 p1");
  EXPECT_EQ(LatestAt(7, 30), "c7@v3 p1 deleted") << "LatestAt includes deletes";
}

TEST_P(HistoryStoreContractTest, AsOfOrdersByPriorityThenCampaignId) {
  // A create puts the new campaign at priority 1 and shifts the others down, in one transaction
  // at one commit time.
  Append({Created(1, 10)});
  Append({Rec{.campaign = 1, .version = 2, .at = 20, .priority = 2, .tx = "t20"}.Build(),
          Rec{.campaign = 2,
              .version = 1,
              .at = 20,
              .priority = 1,
              .op = ChangeOp::kCreated,
              .tx = "t20"}
              .Build()});
  Append({Rec{.campaign = 1, .version = 3, .at = 30, .priority = 3, .tx = "t30"}.Build(),
          Rec{.campaign = 2, .version = 2, .at = 30, .priority = 2, .tx = "t30"}.Build(),
          Rec{.campaign = 3,
              .version = 1,
              .at = 30,
              .priority = 1,
              .op = ChangeOp::kCreated,
              .tx = "t30"}
              .Build()});
  EXPECT_EQ(AsOf(10), "c1@v1 p1");
  EXPECT_EQ(AsOf(20), "c2@v1 p1, c1@v2 p2");
  EXPECT_EQ(AsOf(30), "c3@v1 p1, c2@v2 p2, c1@v3 p3");
  // Equal priorities (a moment inside a reorder, seen from a lossy capture) fall back to id.
  Append({Updated(3, 2, 40, 2)});
  EXPECT_EQ(AsOf(40), "c2@v2 p2, c3@v2 p2, c1@v3 p3");
}

TEST_P(HistoryStoreContractTest, EqualEventTimesResolveByVersion) {
  // Two versions of one campaign committed at the same instant: the higher version wins.
  Append({Created(7, 10), Updated(7, 2, 20, 5), Updated(7, 3, 20, 6)});
  EXPECT_EQ(AsOf(20), "c7@v3 p6");
  EXPECT_EQ(LatestAt(7, 20), "c7@v3 p6");
  EXPECT_EQ(AsOf(19.999999), "c7@v1 p1");
}

TEST_P(HistoryStoreContractTest, AsOfIsPerCustomer) {
  Append({Rec{.customer = 1, .campaign = 7, .at = 10}.Build(),
          Rec{.customer = 2, .campaign = 8, .at = 10}.Build()});
  EXPECT_EQ(AsOf(10, 1), "c7@v1 p1");
  EXPECT_EQ(AsOf(10, 2), "c8@v1 p1");
  EXPECT_EQ(AsOf(10, 3), "(none)") << "an unknown customer is an empty answer, not an error";
}

// ---- at-least-once delivery -------------------------------------------------------------------

TEST_P(HistoryStoreContractTest, DuplicateDeliveryStoresOnce) {
  std::vector<HistoryRecord> batch = {Created(7, 10), Updated(7, 2, 20)};
  EXPECT_EQ(Append(batch), 2);
  EXPECT_EQ(Append(batch), 0) << "the same batch again";
  EXPECT_EQ(Append({batch[1], Updated(7, 3, 30)}), 1) << "an overlapping batch";
  EXPECT_EQ(Records(), 3);
  EXPECT_EQ(Log(7), "c7@v1 p1, c7@v2 p1, c7@v3 p1");
  EXPECT_EQ(AsOf(20), "c7@v2 p1");
}

TEST_P(HistoryStoreContractTest, ReorderedDeliveryGivesTheSameAnswers) {
  // v2 arrives before v1 (e.g. a redelivery after a nack).
  EXPECT_EQ(Append({Updated(7, 2, 20, 2)}), 1);
  EXPECT_EQ(AsOf(15), "(none)");
  EXPECT_EQ(AsOf(20), "c7@v2 p2");
  EXPECT_EQ(Append({Created(7, 10)}), 1);
  EXPECT_EQ(AsOf(10), "c7@v1 p1");
  EXPECT_EQ(AsOf(15), "c7@v1 p1");
  EXPECT_EQ(AsOf(20), "c7@v2 p2");
  EXPECT_EQ(Log(7), "c7@v1 p1, c7@v2 p2");
  auto latest = store_->LatestVersion(7);
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, std::optional<int64_t>(2));
}

TEST_P(HistoryStoreContractTest, TheStoredRecordWinsOverARedelivery) {
  Append({Rec{.campaign = 7, .version = 1, .at = 10, .actor = "user:first"}.Build()});
  // The same key again with other contents and another time: skipped, not merged.
  HistoryRecord other = Rec{.campaign = 7,
                            .version = 1,
                            .at = 12,
                            .actor = "user:second",
                            .content = R"({"body":"other"})"}
                            .Build();
  EXPECT_EQ(Append({other}), 0);
  auto r = store_->GetVersion(7, 1);
  ASSERT_OK(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->actor, "user:first");
  EXPECT_EQ((*r)->event_time, T(10));
}

TEST_P(HistoryStoreContractTest, DuplicatesInsideOneBatchKeepTheFirst) {
  HistoryRecord a = Rec{.campaign = 7, .at = 10, .actor = "user:a"}.Build();
  HistoryRecord b = Rec{.campaign = 7, .at = 10, .actor = "user:b"}.Build();
  EXPECT_EQ(Append({a, b, a}), 1);
  auto r = store_->GetVersion(7, 1);
  ASSERT_OK(r);
  ASSERT_TRUE(r->has_value());
  EXPECT_EQ((*r)->actor, "user:a");
}

TEST_P(HistoryStoreContractTest, IngestedAtComesFromTheStoreClock) {
  HistoryRecord r = Created(7, 10);
  r.ingested_at = T(-1000);  // ignored: the store stamps it
  Append({r});
  const Timestamp first = clock_.Now();
  clock_.Advance(Micros(5'000'000));
  Append({Updated(7, 2, 20), r});
  auto log = store_->CampaignLog(7, {});
  ASSERT_OK(log);
  ASSERT_EQ(log->size(), 2u);
  EXPECT_EQ((*log)[0].ingested_at, first) << "a redelivery does not restamp";
  EXPECT_EQ((*log)[1].ingested_at, first + Micros(5'000'000));
}

// ---- contents ---------------------------------------------------------------------------------

TEST_P(HistoryStoreContractTest, EveryFieldRoundTrips) {
  HistoryRecord a = Rec{.customer = 3,
                        .campaign = 9,
                        .version = 4,
                        .at = 1.000001,
                        .priority = 17,
                        .actor = "api:key-\xc3\xa9",
                        .tx = "pg-xid:123/456"}
                        .Build();
  a.capture = CaptureMode::kNotify;
  a.missed_versions = 2;
  HistoryRecord d = Deleted(9, 5, 2.5, 17);
  d.customer_id = 3;
  d.actor = "worker:scheduler";  // the deleter differs from the snapshot's updated_by
  d.transaction_id = "";
  Append({a, d});
  a.ingested_at = d.ingested_at = clock_.Now();
  auto got = store_->CampaignLog(9, {});
  ASSERT_OK(got);
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0], a);
  EXPECT_EQ((*got)[1], d);
}

TEST_P(HistoryStoreContractTest, UnicodeSnapshotsRoundTripByteForByte) {
  const std::string content =
      R"({"body":"Grüße, \"quoted\", back\\slash, tab\t, nul\u0000, snowman ☃, emoji 🎉🇩🇪,)"
      R"( </script>, \ud83d\ude00 escaped","title":"日本語 — ελληνικά — עברית"})";
  HistoryRecord r = Rec{.campaign = 7, .at = 10, .actor = "user:Zoë", .content = content}.Build();
  Append({r});
  auto got = store_->GetVersion(7, 1);
  ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->snapshot, r.snapshot);
  EXPECT_EQ((*got)->actor, "user:Zoë");
  auto asof = store_->AsOf(1, T(10));
  ASSERT_OK(asof);
  ASSERT_EQ(asof->size(), 1u);
  EXPECT_EQ((*asof)[0].snapshot, r.snapshot);
}

TEST_P(HistoryStoreContractTest, LargeContentRoundTrips) {
  // 60 KiB of content, then small edits of it, then a shift: every version reads back exactly.
  std::string body;
  for (int i = 0; body.size() < 60 * 1024; ++i) body += fmt::format("word{} ", i);
  std::vector<HistoryRecord> batch;
  for (int v = 1; v <= 6; ++v) {
    std::string edited = body;
    edited.replace(static_cast<size_t>(v) * 7000, 5, fmt::format("EDIT{}", v));
    batch.push_back(Rec{.campaign = 7,
                        .version = v,
                        .at = static_cast<double>(v),
                        .priority = v == 6 ? 2 : 1,
                        .content = fmt::format(R"({{"body":"{}"}})", v == 6 ? body : edited)}
                        .Build());
  }
  Append(batch);
  auto log = store_->CampaignLog(7, {});
  ASSERT_OK(log);
  ASSERT_EQ(log->size(), batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ((*log)[i].snapshot, batch[i].snapshot) << "version " << i + 1;
  }
}

TEST_P(HistoryStoreContractTest, SnapshotsThatAreNotCanonicalStillRoundTrip) {
  // The store must not depend on the snapshot's layout: any non-empty text comes back as given.
  std::vector<std::string> texts = {
      R"({ "priority" : 3 , "version":1, "id":7 })", R"({"version":"one"})", "[1,2]",
      R"({"updated_at":"2026-11-03T14:00:10Z","updated_by":"someone else","priority":-2})"};
  std::vector<HistoryRecord> batch;
  for (size_t i = 0; i < texts.size(); ++i) {
    HistoryRecord r = Updated(7, static_cast<int64_t>(i) + 1, 10 + static_cast<double>(i), 3);
    r.snapshot = texts[i];
    batch.push_back(r);
  }
  Append(batch);
  auto log = store_->CampaignLog(7, {});
  ASSERT_OK(log);
  ASSERT_EQ(log->size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) EXPECT_EQ((*log)[i].snapshot, texts[i]);
}

// ---- per-campaign reads -----------------------------------------------------------------------

TEST_P(HistoryStoreContractTest, CampaignLogRangesAreInclusive) {
  Append({Created(7, 10), Updated(7, 2, 20), Updated(7, 3, 30), Updated(7, 4, 40),
          Updated(7, 5, 50), Created(8, 25)});
  EXPECT_EQ(Log(7), "c7@v1 p1, c7@v2 p1, c7@v3 p1, c7@v4 p1, c7@v5 p1");
  EXPECT_EQ(Log(7, {T(20), T(40)}), "c7@v2 p1, c7@v3 p1, c7@v4 p1");
  EXPECT_EQ(Log(7, {T(21), T(39)}), "c7@v3 p1");
  EXPECT_EQ(Log(7, {T(40), std::nullopt}), "c7@v4 p1, c7@v5 p1");
  EXPECT_EQ(Log(7, {std::nullopt, T(20)}), "c7@v1 p1, c7@v2 p1");
  EXPECT_EQ(Log(7, {T(41), T(49)}), "(none)");
  EXPECT_EQ(Log(7, {T(40), T(20)}), "(none)") << "an inverted range is empty at this level";
  EXPECT_EQ(Log(99), "(none)") << "an unknown campaign has an empty log";
}

TEST_P(HistoryStoreContractTest, CampaignLogIsInVersionOrder) {
  // Delivered out of order, with v3 committed at the same instant as v2.
  Append({Updated(7, 3, 20), Created(7, 10)});
  Append({Updated(7, 2, 20)});
  EXPECT_EQ(Log(7), "c7@v1 p1, c7@v2 p1, c7@v3 p1");
}

TEST_P(HistoryStoreContractTest, CountVersionsSeesAGapBelowTheLatestVersion) {
  auto count = [&](int64_t campaign, int64_t from, int64_t to) {
    auto n = store_->CountVersions(campaign, from, to);
    EXPECT_OK(n.status());
    return n.ok() ? *n : -1;
  };
  EXPECT_EQ(count(7, 1, 9), 0) << "unknown campaign";
  // v4 arrives before v2 and v3, as an unordered subscription may deliver them.
  Append({Created(7, 10), Updated(7, 4, 40)});
  auto latest = store_->LatestVersion(7);
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, std::optional<int64_t>(4)) << "the latest version alone hides the gap";
  EXPECT_EQ(count(7, 1, 4), 2);
  EXPECT_EQ(count(7, 2, 3), 0);
  Append({Updated(7, 3, 30), Updated(7, 3, 30)});
  EXPECT_EQ(count(7, 1, 4), 3) << "a redelivered version counts once";
  Append({Updated(7, 2, 20), Updated(8, 1, 20)});
  EXPECT_EQ(count(7, 1, 4), 4);
  EXPECT_EQ(count(7, 2, 3), 2);
  EXPECT_EQ(count(7, 4, 100), 1);
  EXPECT_EQ(count(7, 3, 2), 0) << "an inverted range is empty";
}

TEST_P(HistoryStoreContractTest, GetVersionLatestAtAndLatestVersion) {
  EXPECT_EQ(LatestAt(7, 100), "(none)");
  auto none = store_->LatestVersion(7);
  ASSERT_OK(none);
  EXPECT_FALSE(none->has_value());
  Append({Created(7, 10), Updated(7, 2, 20, 4), Deleted(7, 3, 30, 4)});
  EXPECT_EQ(LatestAt(7, 9), "(none)");
  EXPECT_EQ(LatestAt(7, 10), "c7@v1 p1");
  EXPECT_EQ(LatestAt(7, 29), "c7@v2 p4");
  EXPECT_EQ(LatestAt(7, 30), "c7@v3 p4 deleted");
  auto latest = store_->LatestVersion(7);
  ASSERT_OK(latest);
  EXPECT_EQ(*latest, std::optional<int64_t>(3));
  auto v2 = store_->GetVersion(7, 2);
  ASSERT_OK(v2);
  EXPECT_EQ(Render(*v2), "c7@v2 p4");
  auto v9 = store_->GetVersion(7, 9);
  ASSERT_OK(v9);
  EXPECT_FALSE(v9->has_value());
}

// ---- per-customer reads -----------------------------------------------------------------------

TEST_P(HistoryStoreContractTest, CustomerChangesOrderAndLimit) {
  // Order: (event_time, transaction_id, campaign_id, version), transaction ids compared as text.
  Append({Rec{.campaign = 3, .version = 1, .at = 10, .tx = "b"}.Build(),
          Rec{.campaign = 2, .version = 1, .at = 10, .tx = "b"}.Build(),
          Rec{.campaign = 9, .version = 1, .at = 10, .tx = "a"}.Build(),
          Rec{.campaign = 2, .version = 2, .at = 20, .tx = "c"}.Build(),
          Rec{.campaign = 3, .version = 2, .at = 30, .tx = "10"}.Build(),
          Rec{.campaign = 2, .version = 3, .at = 30, .tx = "9"}.Build(),
          Rec{.customer = 2, .campaign = 50, .version = 1, .at = 15}.Build()});
  auto changes = [&](TimeRange range, int64_t limit) {
    auto r = store_->CustomerChanges(1, range, limit);
    EXPECT_OK(r);
    std::string out;
    for (const auto& rec : *r) {
      if (!out.empty()) out += ", ";
      out += fmt::format("c{}@v{} tx {}", rec.campaign_id, rec.version, rec.transaction_id);
    }
    return out.empty() ? "(none)" : out;
  };
  EXPECT_EQ(changes({}, 100),
            "c9@v1 tx a, c2@v1 tx b, c3@v1 tx b, c2@v2 tx c, c3@v2 tx 10, c2@v3 tx 9");
  EXPECT_EQ(changes({}, 2), "c9@v1 tx a, c2@v1 tx b") << "the limit cuts inside a tie";
  EXPECT_EQ(changes({T(20), T(30)}, 100), "c2@v2 tx c, c3@v2 tx 10, c2@v3 tx 9");
  EXPECT_EQ(changes({T(11), T(19)}, 100), "(none)");
  EXPECT_EQ(changes({}, 0), "(none)");
}

TEST_P(HistoryStoreContractTest, TransactionChangesAreOneTransactionOfOneCustomer) {
  Append({Rec{.campaign = 3, .version = 1, .at = 10, .priority = 2, .tx = "b"}.Build(),
          Rec{.campaign = 2,
              .version = 1,
              .at = 10,
              .priority = 1,
              .op = ChangeOp::kCreated,
              .tx = "b"}
              .Build(),
          Rec{.campaign = 9, .version = 1, .at = 10, .tx = "a"}.Build(),
          Rec{.campaign = 3, .version = 2, .at = 20, .tx = "b"}.Build(),
          Rec{.customer = 2, .campaign = 50, .version = 1, .at = 10, .tx = "b"}.Build()});
  auto txn = [&](int64_t customer, double at, const std::string& tx, bool snapshots) {
    auto r = store_->TransactionChanges(customer, T(at), tx, snapshots);
    EXPECT_OK(r);
    std::string out;
    for (const auto& rec : *r) {
      if (!out.empty()) out += ", ";
      out += Short(rec) + " tx " + rec.transaction_id;
      EXPECT_EQ(rec.snapshot.empty(), !snapshots) << Short(rec);
      EXPECT_EQ(rec.event_time, T(at));
    }
    return out.empty() ? "(none)" : out;
  };
  EXPECT_EQ(txn(1, 10, "b", true), "c2@v1 p1 tx b, c3@v1 p2 tx b")
      << "ordered by campaign id; the other transaction of that instant, the same transaction "
         "id at another instant and the other customer are left out";
  EXPECT_EQ(txn(1, 10, "b", false), "c2@v1 p1 tx b, c3@v1 p2 tx b");
  EXPECT_EQ(txn(1, 20, "b", true), "c3@v2 p1 tx b");
  EXPECT_EQ(txn(2, 10, "b", false), "c50@v1 p1 tx b");
  EXPECT_EQ(txn(1, 10, "zz", true), "(none)");
  EXPECT_EQ(txn(1, 10, "", true), "(none)");
  EXPECT_EQ(txn(7, 10, "b", true), "(none)");
  // Without its snapshot a record still carries every other field.
  auto full = store_->TransactionChanges(1, T(10), "b", true);
  auto bare = store_->TransactionChanges(1, T(10), "b", false);
  ASSERT_OK(full);
  ASSERT_OK(bare);
  ASSERT_EQ(full->size(), bare->size());
  for (size_t i = 0; i < full->size(); ++i) {
    HistoryRecord expected = (*full)[i];
    expected.snapshot.clear();
    EXPECT_EQ((*bare)[i], expected);
  }
}

TEST_P(HistoryStoreContractTest, CustomerCampaignsHoldsEachCampaignsLatestRecord) {
  Append({Created(7, 10), Updated(7, 2, 20, 2), Created(8, 15), Deleted(8, 2, 30),
          Rec{.customer = 2, .campaign = 50, .version = 1, .at = 10}.Build()});
  Append({Updated(7, 3, 40, 1)});
  auto latest = store_->CustomerCampaigns(1);
  ASSERT_OK(latest);
  EXPECT_EQ(Render(*latest), "c7@v3 p1, c8@v2 p1 deleted") << "deleted campaigns included";
  ASSERT_FALSE(latest->empty());
  auto v3 = store_->GetVersion(7, 3);
  ASSERT_OK(v3);
  EXPECT_EQ(latest->front(), **v3);
  EXPECT_EQ(Render(*store_->CustomerCampaigns(2)), "c50@v1 p1");
  EXPECT_EQ(Render(*store_->CustomerCampaigns(3)), "(none)");
}

TEST_P(HistoryStoreContractTest, ListCustomersAndStats) {
  auto empty = store_->Stats();
  ASSERT_OK(empty);
  EXPECT_EQ(empty->records, 0);
  EXPECT_FALSE(empty->first_event.has_value());
  Append({Rec{.customer = 5, .campaign = 50, .at = 30}.Build(),
          Rec{.customer = 2, .campaign = 20, .at = 10}.Build(),
          Rec{.customer = 2, .campaign = 20, .version = 2, .at = 40}.Build(),
          Rec{.customer = 2, .campaign = 21, .at = 20}.Build()});
  auto customers = store_->ListCustomers();
  ASSERT_OK(customers);
  EXPECT_THAT(*customers, ::testing::ElementsAre(2, 5));
  auto st = store_->Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->records, 4);
  EXPECT_EQ(st->campaigns, 3);
  EXPECT_EQ(st->customers, 2);
  EXPECT_EQ(st->first_event, std::optional<Timestamp>(T(10)));
  EXPECT_EQ(st->last_event, std::optional<Timestamp>(T(40)));
  if (caps().reports_bytes) {
    EXPECT_GT(st->bytes, 0);
  } else {
    EXPECT_EQ(st->bytes, 0);
  }
}

// ---- rejected input ---------------------------------------------------------------------------

TEST_P(HistoryStoreContractTest, InvalidRecordsAreRejectedAndNothingIsStored) {
  struct Case {
    const char* what;
    std::function<void(HistoryRecord&)> spoil;
  };
  std::vector<Case> cases = {
      {"customer_id", [](HistoryRecord& r) { r.customer_id = 0; }},
      {"campaign_id", [](HistoryRecord& r) { r.campaign_id = -7; }},
      {"version", [](HistoryRecord& r) { r.version = 0; }},
      {"snapshot", [](HistoryRecord& r) { r.snapshot.clear(); }},
      {"missed_versions", [](HistoryRecord& r) { r.missed_versions = -1; }},
  };
  for (const Case& c : cases) {
    HistoryRecord bad = Updated(8, 2, 20);
    c.spoil(bad);
    EXPECT_THAT(store_->Append(std::vector<HistoryRecord>{Created(7, 10), bad}),
                StatusIsWith(StatusCode::kInvalidArgument, c.what));
  }
  EXPECT_EQ(Records(), 0);
  EXPECT_EQ(AsOf(100), "(none)");
  EXPECT_EQ(Append({}), 0) << "an empty batch is fine";
}

TEST_P(HistoryStoreContractTest, ACampaignBelongsToOneCustomer) {
  Append({Rec{.customer = 1, .campaign = 7, .at = 10}.Build()});
  std::vector<HistoryRecord> batch = {
      Rec{.customer = 1, .campaign = 8, .at = 20}.Build(),
      Rec{.customer = 2, .campaign = 7, .version = 2, .at = 20}.Build()};
  EXPECT_THAT(store_->Append(batch), StatusIsWith(StatusCode::kInvalidArgument, "customer"));
  // ... also when both records are in the same batch.
  std::vector<HistoryRecord> mixed = {
      Rec{.customer = 1, .campaign = 9, .at = 20}.Build(),
      Rec{.customer = 3, .campaign = 9, .version = 2, .at = 21}.Build()};
  EXPECT_THAT(store_->Append(mixed), StatusIsWith(StatusCode::kInvalidArgument, "customer"));
  EXPECT_EQ(Records(), 1);
  EXPECT_EQ(AsOf(100), "c7@v1 p1");
}

// ---- persistence ------------------------------------------------------------------------------

TEST_P(HistoryStoreContractTest, ReopenedStoreAnswersTheSame) {
  Append({Created(7, 10), Updated(7, 2, 20, 2), Created(8, 15)});
  std::string before = AsOf(20);
  Reopen();
  if (!caps().persistent) {
    // A store that says it keeps nothing across reopen starts empty again.
    EXPECT_EQ(Records(), 0);
    return;
  }
  EXPECT_EQ(AsOf(20), before);
  EXPECT_EQ(Append({Updated(7, 2, 20, 2), Updated(7, 3, 30, 1)}), 1);
  EXPECT_EQ(Log(7), "c7@v1 p1, c7@v2 p2, c7@v3 p1");
}

// ---- differential test against the reference --------------------------------------------------

// A random history (creates with shifts, edits, reorders, deletes, several customers), delivered
// in random batches with duplicates and reordering, must give exactly the reference's answers.
TEST_P(HistoryStoreContractTest, RandomHistoryMatchesTheReference) {
  std::mt19937 rng(20261103);
  InMemoryHistoryStore reference(InMemoryHistoryOptions{&clock_});
  std::vector<HistoryRecord> all;
  struct Live {
    int64_t id;
    int64_t customer;
    int64_t version;
    std::string content;
  };
  std::map<int64_t, std::vector<Live>> order;  // customer -> campaigns by priority
  int64_t next_id = 1;
  double now = 0;
  auto emit = [&](int64_t customer, const Live& c, int64_t priority, ChangeOp op,
                  const std::string& tx, const std::string& actor) {
    HistoryRecord r;
    r.customer_id = customer;
    r.campaign_id = c.id;
    r.version = c.version;
    r.event_time = T(now);
    r.event_type = op;
    r.actor = actor;
    r.transaction_id = tx;
    r.priority = priority;
    r.snapshot =
        Snapshot(c.id, customer, priority, op == ChangeOp::kDeleted ? c.version - 1 : c.version,
                 r.event_time, actor, c.content);
    all.push_back(r);
  };
  for (int op = 0; op < 400; ++op) {
    now += (rng() % 4 == 0) ? 0 : static_cast<double>(rng() % 5000) / 1000.0;
    int64_t customer = 1 + rng() % 3;
    auto& list = order[customer];
    std::string tx = fmt::format("{}", op);
    std::string actor = fmt::format("user:{}", rng() % 4);
    int kind = list.size() < 3 ? 0 : static_cast<int>(rng() % 10);
    if (kind <= 1) {  // create at priority 1: everything shifts down
      for (size_t i = 0; i < list.size(); ++i) {
        ++list[i].version;
        emit(customer, list[i], static_cast<int64_t>(i) + 2, ChangeOp::kUpdated, tx, actor);
      }
      Live c{next_id++, customer, 1, fmt::format(R"({{"body":"text {}"}})", rng())};
      emit(customer, c, 1, ChangeOp::kCreated, tx, actor);
      list.insert(list.begin(), c);
    } else if (kind <= 6) {  // edit one
      size_t i = rng() % list.size();
      ++list[i].version;
      if (rng() % 2) list[i].content = fmt::format(R"({{"body":"text {}"}})", rng());
      emit(customer, list[i], static_cast<int64_t>(i) + 1, ChangeOp::kUpdated, tx, actor);
    } else if (kind <= 8) {  // move one to the top
      size_t i = rng() % list.size();
      Live moved = list[i];
      list.erase(list.begin() + static_cast<long>(i));
      list.insert(list.begin(), moved);
      for (size_t k = 0; k <= i; ++k) {
        ++list[k].version;
        emit(customer, list[k], static_cast<int64_t>(k) + 1, ChangeOp::kUpdated, tx, actor);
      }
    } else {  // delete one; the ones below move up
      size_t i = rng() % list.size();
      Live gone = list[i];
      ++gone.version;
      emit(customer, gone, static_cast<int64_t>(i) + 1, ChangeOp::kDeleted, tx, actor);
      list.erase(list.begin() + static_cast<long>(i));
      for (size_t k = i; k < list.size(); ++k) {
        ++list[k].version;
        emit(customer, list[k], static_cast<int64_t>(k) + 1, ChangeOp::kUpdated, tx, actor);
      }
    }
  }
  // Deliver in random batches, with duplicates and local reordering.
  std::vector<HistoryRecord> delivery = all;
  for (size_t i = 0; i + 1 < delivery.size(); ++i) {
    if (rng() % 8 == 0) std::swap(delivery[i], delivery[i + 1]);
    if (rng() % 16 == 0) delivery.insert(delivery.begin() + static_cast<long>(i), delivery[i + 1]);
  }
  for (size_t i = 0; i < delivery.size();) {
    size_t n = std::min<size_t>(1 + rng() % 40, delivery.size() - i);
    std::span<const HistoryRecord> batch(delivery.data() + i, n);
    ASSERT_OK(store_->Append(batch));
    ASSERT_OK(reference.Append(batch));
    i += n;
  }
  auto full = [](const std::vector<HistoryRecord>& rs) {
    std::string out;
    for (const auto& r : rs) out += DebugString(r) + " " + r.snapshot + "\n";
    return out;
  };
  for (int k = 0; k <= 60; ++k) {
    Timestamp at = T(now * k / 60.0);
    for (int64_t customer = 1; customer <= 3; ++customer) {
      auto got = store_->AsOf(customer, at);
      auto want = reference.AsOf(customer, at);
      ASSERT_OK(got);
      ASSERT_OK(want);
      ASSERT_EQ(full(*got), full(*want)) << "customer " << customer << " at " << k;
      auto changes = store_->CustomerChanges(customer, {at, at + Micros(30'000'000)}, 25);
      auto want_changes = reference.CustomerChanges(customer, {at, at + Micros(30'000'000)}, 25);
      ASSERT_OK(changes);
      ASSERT_EQ(full(*changes), full(*want_changes)) << "customer " << customer << " at " << k;
    }
  }
  for (int64_t id = 1; id < next_id; ++id) {
    auto got = store_->CampaignLog(id, {});
    auto want = reference.CampaignLog(id, {});
    ASSERT_OK(got);
    ASSERT_EQ(full(*got), full(*want)) << "campaign " << id;
    auto latest = store_->LatestVersion(id);
    auto want_latest = reference.LatestVersion(id);
    ASSERT_OK(latest);
    EXPECT_EQ(*latest, *want_latest);
    auto count = store_->CountVersions(id, 1, 1'000'000);
    ASSERT_OK(count);
    EXPECT_EQ(*count, static_cast<int64_t>(want->size())) << "campaign " << id;
  }
  auto st = store_->Stats();
  auto want_st = reference.Stats();
  ASSERT_OK(st);
  EXPECT_EQ(st->records, want_st->records);
  EXPECT_EQ(st->campaigns, want_st->campaigns);
  EXPECT_GT(st->records, 1000) << "the scenario should exercise long histories";
}

// ---- completeness: whole transactions only, and the watermark -------------------------------

// `records` as the pieces of captured transaction `seq` (of `changes` changes).
std::vector<HistoryRecord> Txn(int64_t seq, int64_t changes, std::vector<HistoryRecord> records) {
  for (HistoryRecord& r : records) {
    r.txn_seq = seq;
    r.txn_changes = changes;
  }
  return records;
}

std::string CompletenessText(HistoryStore& store) {
  auto c = store.GetCompleteness();
  EXPECT_OK(c);
  if (!c.ok()) return c.status().ToString();
  return fmt::format(
      "through #{} at {}, {} partial, {} waiting, {} held, {} conflicts", c->through_seq,
      c->complete_through ? FormatTimestamp(*c->complete_through) : "-", c->partial_transactions,
      c->waiting_transactions, c->held_records, c->conflicts);
}

TEST_P(HistoryStoreContractTest, NoReadSeesPartOfATransaction) {
  // Transaction 1 creates c7 at priority 1; transaction 2 creates c8 at priority 1 and moves c7
  // to priority 2 -- delivered in two pieces, the shift first.
  Append(Txn(1, 1, {Created(7, 10)}));
  EXPECT_EQ(Append(Txn(2, 2, {Updated(7, 2, 20, 2)})), 1) << "held back, but durable";
  EXPECT_EQ(AsOf(30), "c7@v1 p1") << "the shift alone is a state that never existed";
  EXPECT_EQ(Log(7), "c7@v1 p1");
  EXPECT_EQ(Render(*store_->GetVersion(7, 2)), "(none)");
  EXPECT_EQ(*store_->LatestVersion(7), 1);
  EXPECT_EQ(*store_->CountVersions(7, 1, 2), 1);
  EXPECT_EQ(store_->CustomerChanges(1, {}, 100)->size(), 1u);
  EXPECT_EQ(Records(), 1);
  EXPECT_EQ(store_->Stats()->held_records, 1);
  EXPECT_EQ(CompletenessText(*store_),
            "through #1 at 2026-11-03T14:00:10.000000Z, 1 partial, 0 waiting, 1 held, 0 conflicts");
  if (caps().persistent) Reopen();  // held records are durable
  // A redelivered piece counts once; the last piece shows the transaction whole.
  EXPECT_EQ(Append(Txn(2, 2, {Updated(7, 2, 20, 2)})), 0);
  EXPECT_EQ(AsOf(30), "c7@v1 p1");
  EXPECT_EQ(Append(Txn(2, 2, {Created(8, 20)})), 1);
  EXPECT_EQ(AsOf(30), "c8@v1 p1, c7@v2 p2");
  EXPECT_EQ(Records(), 3);
  EXPECT_EQ(CompletenessText(*store_),
            "through #2 at 2026-11-03T14:00:20.000000Z, 0 partial, 0 waiting, 0 held, 0 conflicts");
  // Afterwards a redelivery of it is just that.
  EXPECT_EQ(Append(Txn(2, 2, {Created(8, 20), Updated(7, 2, 20, 2)})), 0);
  EXPECT_EQ(Records(), 3);
}

TEST_P(HistoryStoreContractTest, CompleteThroughWaitsForTheEarliestMissingTransaction) {
  EXPECT_EQ(CompletenessText(*store_),
            "through #0 at -, 0 partial, 0 waiting, 0 held, 0 conflicts");
  // Transactions 2 and 3 arrive first, whole: visible (each is a state of its own campaigns),
  // but the history is not complete through them until transaction 1 is in.
  Append(Txn(3, 1, {Created(9, 30)}));
  Append(Txn(2, 1, {Created(8, 20)}));
  EXPECT_EQ(CompletenessText(*store_),
            "through #0 at -, 0 partial, 2 waiting, 0 held, 0 conflicts");
  if (caps().persistent) Reopen();
  Append(Txn(1, 1, {Created(7, 10)}));
  EXPECT_EQ(CompletenessText(*store_),
            "through #3 at 2026-11-03T14:00:30.000000Z, 0 partial, 0 waiting, 0 held, 0 conflicts");
  // Records without a transaction number (notify capture) neither wait nor move the watermark.
  HistoryRecord notify = Updated(9, 2, 40);
  notify.capture = CaptureMode::kNotify;
  Append({notify});
  EXPECT_EQ(Log(9), "c9@v1 p1, c9@v2 p1");
  EXPECT_EQ(CompletenessText(*store_),
            "through #3 at 2026-11-03T14:00:30.000000Z, 0 partial, 0 waiting, 0 held, 0 conflicts");
}

TEST_P(HistoryStoreContractTest, HeartbeatsExtendCompleteThroughOnceTheyAreReached) {
  ASSERT_OK(store_->RecordHeartbeat({.seq = 0, .at = T(5)}));
  EXPECT_EQ(CompletenessText(*store_),
            "through #0 at 2026-11-03T14:00:05.000000Z, 0 partial, 0 waiting, 0 held, 0 conflicts");
  ASSERT_OK(store_->RecordHeartbeat({.seq = 2, .at = T(60)}));  // waits for transaction 2
  Append(Txn(1, 1, {Created(7, 10)}));
  EXPECT_EQ(CompletenessText(*store_),
            "through #1 at 2026-11-03T14:00:10.000000Z, 0 partial, 0 waiting, 0 held, 0 conflicts");
  if (caps().persistent) Reopen();
  Append(Txn(2, 1, {Created(8, 20)}));
  EXPECT_EQ(CompletenessText(*store_),
            "through #2 at 2026-11-03T14:01:00.000000Z, 0 partial, 0 waiting, 0 held, 0 conflicts");
}

TEST_P(HistoryStoreContractTest, AReusedVersionIsKeptAsAConflictNotPassedOffAsARedelivery) {
  Append({Created(7, 10)});
  // The same key again with the same content: a redelivery. With other content: a conflict.
  EXPECT_EQ(Append({Created(7, 10)}), 0);
  HistoryRecord other = Created(7, 10);
  other.snapshot = Snapshot(7, 1, 1, 1, T(10), "user:101", R"({"title":"Something else"})");
  EXPECT_EQ(Append({other}), 0);
  HistoryRecord later = Created(7, 11);  // another commit time for the same version
  EXPECT_EQ(Append({later}), 0);
  EXPECT_EQ(AsOf(100), "c7@v1 p1");
  EXPECT_EQ(store_->GetVersion(7, 1)->value().snapshot, Created(7, 10).snapshot)
      << "the first stored record stays";
  EXPECT_EQ(store_->Stats()->conflicts, 2);
  EXPECT_EQ(store_->GetCompleteness()->conflicts, 2);
  if (caps().persistent) {
    Reopen();
    EXPECT_EQ(store_->GetCompleteness()->conflicts, 2);
  }
}

TEST_P(HistoryStoreContractTest, TransactionFieldsRoundTripAndAreValidated) {
  Append(Txn(1, 2, {Created(7, 10), Created(8, 10, 2)}));
  auto v = store_->GetVersion(8, 1);
  ASSERT_OK(v);
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ((*v)->txn_seq, 1);
  EXPECT_EQ((*v)->txn_changes, 2);
  HistoryRecord bad = Updated(7, 2, 20);
  bad.txn_changes = 3;  // without a txn_seq
  EXPECT_THAT(store_->Append(std::vector<HistoryRecord>{bad}),
              StatusIsWith(StatusCode::kInvalidArgument, "txn_changes"));
  EXPECT_EQ(Log(7), "c7@v1 p1") << "nothing of a refused call is stored";
}

// Days apart (the ClickHouse store keeps per-day checkpoints), in batches, with a late record
// that precedes days already answered, redeliveries and a purge: every as-of answer, snapshots
// included, is the model's.
TEST_P(HistoryStoreContractTest, AsOfOverManyDaysMatchesTheModelWithLateRecords) {
  constexpr double kDay = 86400, kMidnight = 10 * 3600;  // kT0 is 14:00 UTC
  auto with = [](HistoryRecord r, const std::string& body) {
    Rec x{.customer = r.customer_id,
          .campaign = r.campaign_id,
          .version = r.version,
          .at = (ToUnixMicros(r.event_time) - ToUnixMicros(kT0)) / 1e6,
          .priority = r.priority,
          .op = r.event_type,
          .content = fmt::format(R"({{"body":"{}","title":"Welcome"}})", body)};
    return x.Build();
  };
  auto other = [](int64_t campaign, int64_t version, double at, ChangeOp op) {
    return Rec{.customer = 2, .campaign = campaign, .version = version, .at = at, .op = op}.Build();
  };
  std::vector<std::vector<HistoryRecord>> batches = {
      {Created(7, 0), Created(8, 10, 2), with(Updated(7, 2, 3600), "A"),
       other(20, 1, 5, ChangeOp::kCreated)},
      {with(Updated(8, 2, kDay + 5, 2), "B"), with(Updated(7, 3, kDay + 100, 1), "A"),
       other(20, 2, kDay + 1, ChangeOp::kUpdated)},
      {Deleted(8, 3, 3 * kDay, 2), Created(9, 3 * kDay + 1, 2),
       other(20, 3, 3 * kDay + 2, ChangeOp::kDeleted)},
      {with(Updated(7, 4, 2 * kDay, 1), "C")},  // late: before day 3, already written
      {with(Updated(7, 5, 4 * kDay, 1), "C"), Updated(9, 2, 4 * kDay, 1)},
      {with(Updated(8, 2, kDay + 5, 2), "B"), with(Updated(7, 3, kDay + 100, 1), "A")},  // again
      {Updated(9, 3, 6 * kDay, 2), other(21, 1, 0.5, ChangeOp::kCreated)},  // late, far back
  };
  InMemoryHistoryStore model;
  for (const auto& b : batches) {
    Append(b);
    ASSERT_OK(model.Append(b).status());
  }
  std::vector<double> moments = {-1, 0, 10, 3600, 86399};
  for (int d = 0; d <= 7; ++d) {
    for (double off : {-1e-6, 0.0, 1.0, 5.0, 100.0}) moments.push_back(kMidnight + d * kDay + off);
    for (double off : {0.0, 1.0, 2.0, 5.0, 100.0}) moments.push_back(d * kDay + off);
  }
  auto full = [](const Result<std::vector<HistoryRecord>>& r) {
    if (!r.ok()) return r.status().ToString();
    std::string out;
    for (const HistoryRecord& x : *r) out += Short(x) + " " + x.snapshot + "\n";
    return out;
  };
  auto check = [&](double from) {
    for (double m : moments) {
      if (m < from) continue;
      for (int64_t customer : {1, 2}) {
        EXPECT_EQ(full(store_->AsOf(customer, T(m))), full(model.AsOf(customer, T(m))))
            << "customer " << customer << " at " << m;
      }
    }
  };
  check(-1);
  if (caps().persistent) Reopen();
  check(-1);
  ASSERT_OK(store_->PurgeCustomer(1, T(2 * kDay + 50), "admin:test").status());
  ASSERT_OK(model.PurgeCustomer(1, T(2 * kDay + 50), "admin:test").status());
  check(2 * kDay + 50);
  const std::vector<HistoryRecord> after = {with(Updated(7, 6, 2 * kDay + 60, 1), "D")};
  Append(after);  // after the horizon, before day 3
  ASSERT_OK(model.Append(after).status());
  check(2 * kDay + 50);
}

// ---- retention and erasure ----------------------------------------------------------------

TEST_P(HistoryStoreContractTest, PurgeKeepsWhatAsOfAtTheHorizonAndLaterNeeds) {
  // Customer 1: c7 edited at 10, 20, 30, 40; c8 created at 15, deleted at 25. Customer 2: c9.
  Append({Created(7, 10), Updated(7, 2, 20), Updated(7, 3, 30), Updated(7, 4, 40)});
  Append({Created(8, 15, 2), Deleted(8, 2, 25, 2)});
  Append({Rec{.customer = 2, .campaign = 9, .at = 12, .op = ChangeOp::kCreated}.Build()});
  const std::string at30 = AsOf(30), at35 = AsOf(35), at100 = AsOf(100);
  ASSERT_OK_AND_ASSIGN(int64_t removed, store_->PurgeCustomer(1, T(30), "admin:test"));
  // c7 v1, v2 go (v3 is the last at or before 30); c8 v1 goes (its delete at 25 is kept).
  EXPECT_EQ(removed, 3);
  EXPECT_EQ(AsOf(30), at30);
  EXPECT_EQ(AsOf(35), at35);
  EXPECT_EQ(AsOf(100), at100);
  EXPECT_EQ(Log(7), "c7@v3 p1, c7@v4 p1");
  EXPECT_EQ(Log(8), "c8@v2 p2 deleted");
  EXPECT_EQ(Log(9), "c9@v1 p1") << "another customer's history is untouched";
  EXPECT_EQ(*store_->PurgedBefore(1), T(30));
  EXPECT_EQ(*store_->PurgedBefore(2), std::nullopt);
  if (caps().persistent) Reopen();
  EXPECT_EQ(AsOf(30), at30);
  EXPECT_EQ(Records(), 4);
  // A later, earlier purge does not move the horizon back.
  ASSERT_OK(store_->PurgeCustomer(1, T(20), "admin:test").status());
  EXPECT_EQ(*store_->PurgedBefore(1), T(30));
  // New records still arrive and are answered.
  Append({Updated(7, 5, 50)});
  EXPECT_EQ(AsOf(60), "c7@v5 p1");
  ASSERT_OK_AND_ASSIGN(auto audit, store_->AuditLog(10));
  ASSERT_EQ(audit.size(), 2u);
  EXPECT_EQ(audit[1].action, "purge");
  EXPECT_EQ(audit[1].actor, "admin:test");
  EXPECT_EQ(audit[1].customer_id, 1);
  EXPECT_EQ(audit[1].before, T(30));
  EXPECT_EQ(audit[1].records, 3);
  EXPECT_EQ(audit[0].records, 0) << "newest first";
}

TEST_P(HistoryStoreContractTest, EraseRemovesEverythingOfTheCustomerAndRefusesItFromThenOn) {
  Append({Created(7, 10), Updated(7, 2, 20)});
  Append({Rec{.customer = 2, .campaign = 9, .at = 12, .op = ChangeOp::kCreated}.Build()});
  // A transaction of customer 1 half arrived (held back), and a conflict of it.
  Append(Txn(1, 2, {Updated(7, 3, 30)}));
  HistoryRecord other = Created(7, 10);
  other.actor = "user:someone-else";
  Append({other});
  ASSERT_OK_AND_ASSIGN(int64_t removed, store_->EraseCustomer(1, "admin:dpo"));
  EXPECT_EQ(removed, 3) << "two records and the held one";
  EXPECT_EQ(AsOf(100), "(none)");
  EXPECT_EQ(Log(7), "(none)");
  EXPECT_EQ(*store_->LatestVersion(7), std::nullopt);
  EXPECT_EQ(store_->CustomerChanges(1, {}, 100)->size(), 0u);
  EXPECT_EQ(*store_->ListCustomers(), std::vector<int64_t>{2});
  EXPECT_EQ(Log(9), "c9@v1 p1");
  EXPECT_EQ(store_->Stats()->conflicts, 0);
  EXPECT_TRUE(*store_->Erased(1));
  EXPECT_FALSE(*store_->Erased(2));
  if (caps().persistent) Reopen();
  // A change still on its way does not bring the customer back -- and its transaction still
  // completes, so the watermark moves on.
  EXPECT_EQ(Append(Txn(1, 2, {Created(8, 30, 2)})), 0);
  EXPECT_EQ(Append({Updated(7, 4, 40)}), 0);
  EXPECT_EQ(AsOf(100), "(none)");
  EXPECT_EQ(store_->GetCompleteness()->through_seq, 1);
  ASSERT_OK_AND_ASSIGN(auto audit, store_->AuditLog(10));
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].action, "erase");
  EXPECT_EQ(audit[0].actor, "admin:dpo");
  EXPECT_EQ(audit[0].records, 3);
}

INSTANTIATE_TEST_SUITE_P(Stores, HistoryStoreContractTest,
                         ::testing::ValuesIn(AllHistoryStoreBackends()),
                         [](const ::testing::TestParamInfo<HistoryStoreBackend>& info) {
                           return info.param.name;
                         });

// ---- ClickHouse schema migrations ---------------------------------------------------------------

// "c@v" of every campaign in an as-of answer, in answer order.
std::string AsOfKeys(HistoryStore& store, Timestamp at) {
  auto answer = store.AsOf(1, at);
  if (!answer.ok()) return answer.status().ToString();
  std::string out;
  for (const HistoryRecord& r : *answer) out += fmt::format("{}@{} ", r.campaign_id, r.version);
  return out;
}

// A database written at `old_schema` (as an older build wrote it) upgrades on open: as-of
// answers as before and as the in-memory store does, at moments around every summary bucket
// edge, also for `after` appended (twice: a redelivery changes nothing) after the upgrade; a
// build of `old_schema` then refuses the database.
void CheckClickHouseUpgrade(const char* db_suffix, int old_schema,
                            const std::vector<HistoryRecord>& after) {
  const char* base = std::getenv("CH_TEST_CLICKHOUSE_URL");
  if (base == nullptr || *base == '\0') {
    GTEST_SKIP() << "CH_TEST_CLICKHOUSE_URL is not set (scripts/services.sh start clickhouse)";
  }
  FakeClock clock(kT0);
  ClickHouseHistoryOptions o;
  o.url = fmt::format("{}_{}", base, db_suffix);
  o.clock = &clock;
  {
    auto stale = ClickHouseHistoryStore::Open(o);  // a previous run's database
    ASSERT_TRUE(stale.ok()) << stale.status().ToString();
    ASSERT_TRUE((*stale)->DropDatabaseForTesting().ok());
  }
  o.schema_version_for_testing = old_schema;
  // Hours and days apart (several summary levels), out of order, two versions at one instant.
  std::vector<HistoryRecord> before = {
      Created(10, 0),           Updated(10, 2, 3600, 2),  Updated(10, 3, 7 * 86400, 1),
      Created(11, 50, 2),       Deleted(11, 2, 5 * 3600), Created(12, 2 * 86400, 3),
      Updated(12, 3, 86400, 3), Updated(12, 2, 86400, 2), Updated(10, 4, 30 * 86400, 5),
  };
  InMemoryHistoryStore expected;
  ASSERT_TRUE(expected.Append(before).ok());
  std::vector<double> moments = {-1,        0,          49,         50,        3599,
                                 3600,      5 * 3600,   86400,      2 * 86400, 7 * 86400 - 1,
                                 7 * 86400, 30 * 86400, 400 * 86400};
  {
    auto old = ClickHouseHistoryStore::Open(o);
    ASSERT_TRUE(old.ok()) << old.status().ToString();
    ASSERT_TRUE((*old)->Append(before).ok());
    for (double m : moments) EXPECT_EQ(AsOfKeys(**old, T(m)), AsOfKeys(expected, T(m))) << m;
  }
  o.schema_version_for_testing = 0;
  {
    auto upgraded = ClickHouseHistoryStore::Open(o);
    ASSERT_TRUE(upgraded.ok()) << upgraded.status().ToString();
    for (double m : moments) EXPECT_EQ(AsOfKeys(**upgraded, T(m)), AsOfKeys(expected, T(m))) << m;
    ASSERT_TRUE(expected.Append(after).ok());
    ASSERT_TRUE((*upgraded)->Append(after).ok());
    ASSERT_TRUE((*upgraded)->Append(after).ok());
    for (double m : moments) EXPECT_EQ(AsOfKeys(**upgraded, T(m)), AsOfKeys(expected, T(m))) << m;
  }
  o.schema_version_for_testing = old_schema;
  auto refused = ClickHouseHistoryStore::Open(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(refused.status().message().find("newer than this build"), std::string::npos)
      << refused.status().ToString();
}

// Schema 1 -> 2: the as-of summary is backfilled.
TEST(ClickHouseHistoryMigration, SchemaOneUpgradesAndIsThenRefusedByOlderBuilds) {
  CheckClickHouseUpgrade(
      "migration", 1,
      {Updated(11, 1, 40, 4), Updated(10, 5, 30 * 86400 + 1, 1), Created(13, 6 * 3600, 4)});
}

// Schema 2 (13 summary rows per record written by the client) -> 3 (one row per record,
// expanded by the view).
TEST(ClickHouseHistoryMigration, SchemaTwoUpgradesToOneSummaryRowPerRecord) {
  CheckClickHouseUpgrade("migration2", 2,
                         {Updated(11, 1, 40, 4), Updated(10, 5, 30 * 86400 + 1, 1),
                          Created(13, 6 * 3600, 4), Updated(12, 4, 3 * 86400, 3)});
}

// Schema 3 (the summary) -> 4 (per-day checkpoints, backfilled from history): after the upgrade a
// late record (a day before checkpoints already built) must invalidate and rebuild them.
TEST(ClickHouseHistoryMigration, SchemaThreeUpgradesToDailyCheckpoints) {
  CheckClickHouseUpgrade(
      "migration3", 3,
      {Updated(11, 1, 40, 4), Updated(10, 5, 30 * 86400 + 1, 1), Created(13, 6 * 3600, 4),
       Updated(12, 4, 3 * 86400, 3), Updated(12, 5, 31 * 86400, 3)});
}

}  // namespace
}  // namespace ch::testing
