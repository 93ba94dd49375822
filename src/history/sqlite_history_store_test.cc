// SqliteHistoryStore specifics. The query semantics are checked by the contract suite
// (tests/contract/history_store_contract_test.cc); this file covers what only the SQLite store
// has: persistence, read-only access, the file's identity and version, compact storage, caches.
#include "history/sqlite_history_store.h"

#include <fmt/format.h>

#include <map>

#include "common/sqlite.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::ch::testing::TempDir;

Timestamp T(int seconds) {
  return *ParseTimestamp("2026-03-01T00:00:00Z") + Micros(seconds * 1000000LL);
}

std::string Snapshot(int64_t id, int64_t customer, int64_t priority, int64_t version, Timestamp at,
                     const std::string& actor, const std::string& body = "Hello") {
  return fmt::format(
      R"({{"id":{},"customer_id":{},"name":"Campaign {}","status":"active","priority":{},)"
      R"("trigger_event":"app_open","audience_segment":"vip","start_at":null,"end_at":null,)"
      R"("frequency_cap":3,"version":{},"created_at":"2026-01-01T00:00:00.000000Z",)"
      R"("updated_at":"{}","updated_by":"{}","content":{{"body":"{}","title":"T"}}}})",
      id, customer, id, priority, version, FormatTimestamp(at), actor, body);
}

HistoryRecord Rec(int64_t customer, int64_t id, int64_t version, int seconds, int64_t priority,
                  const std::string& actor = "user:1", const std::string& body = "Hello") {
  HistoryRecord r;
  r.customer_id = customer;
  r.campaign_id = id;
  r.version = version;
  r.event_time = T(seconds);
  r.event_type = version == 1 ? ChangeOp::kCreated : ChangeOp::kUpdated;
  r.actor = actor;
  r.transaction_id = std::to_string(seconds);
  r.priority = priority;
  r.snapshot = Snapshot(id, customer, priority, version, r.event_time, actor, body);
  return r;
}

class SqliteHistoryStoreTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<SqliteHistoryStore>> Open(bool read_only = false) {
    SqliteHistoryOptions o;
    o.path = dir_.File("history.db");
    o.clock = &clock_;
    o.read_only = read_only;
    return SqliteHistoryStore::Open(o);
  }
  // A store that starts merging `recent` at `threshold` rows, `chunk` rows per append.
  Result<std::unique_ptr<SqliteHistoryStore>> OpenMerging(int64_t threshold, int64_t chunk) {
    SqliteHistoryOptions o;
    o.path = dir_.File("history.db");
    o.clock = &clock_;
    o.merge_threshold_rows = threshold;
    o.merge_chunk_rows = chunk;
    return SqliteHistoryStore::Open(o);
  }
  int64_t Count(const char* sql) {
    auto db = SqliteDb::Open(dir_.File("history.db"));
    EXPECT_OK(db);
    auto s = (*db)->Prepare(sql);
    EXPECT_OK(s);
    auto row = (*s)->Step();
    EXPECT_OK(row);
    int64_t n = (*s)->ColumnInt64(0);
    (*s)->Reset();
    return n;
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(SqliteHistoryStoreTest, PersistsAcrossReopen) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    std::vector<HistoryRecord> batch = {Rec(1, 10, 1, 0, 1), Rec(1, 10, 2, 5, 2)};
    ASSERT_OK_AND_ASSIGN(int64_t n, store->Append(batch));
    EXPECT_EQ(n, 2);
  }
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK_AND_ASSIGN(auto rec, store->GetVersion(10, 2));
  ASSERT_TRUE(rec.has_value());
  HistoryRecord want = Rec(1, 10, 2, 5, 2);
  want.ingested_at = clock_.Now();
  EXPECT_EQ(*rec, want);
  std::vector<HistoryRecord> again = {Rec(1, 10, 2, 5, 2)};
  ASSERT_OK_AND_ASSIGN(int64_t n, store->Append(again));
  EXPECT_EQ(n, 0);
}

TEST_F(SqliteHistoryStoreTest, ReadOnlyStoreReadsButDoesNotWrite) {
  EXPECT_THAT(Open(/*read_only=*/true), StatusIs(StatusCode::kUnavailable));  // no file yet
  ASSERT_OK_AND_ASSIGN(auto writer, Open());
  std::vector<HistoryRecord> batch = {Rec(1, 10, 1, 0, 1)};
  ASSERT_OK(writer->Append(batch));
  ASSERT_OK_AND_ASSIGN(auto reader, Open(/*read_only=*/true));
  ASSERT_OK_AND_ASSIGN(auto asof, reader->AsOf(1, T(1)));
  EXPECT_EQ(asof.size(), 1u);
  EXPECT_THAT(reader->Append(batch), StatusIs(StatusCode::kFailedPrecondition));
  // The reader sees later writes of the other connection.
  std::vector<HistoryRecord> more = {Rec(1, 11, 1, 2, 1)};
  ASSERT_OK(writer->Append(more));
  ASSERT_OK_AND_ASSIGN(asof, reader->AsOf(1, T(3)));
  EXPECT_EQ(asof.size(), 2u);
}

TEST_F(SqliteHistoryStoreTest, RefusesForeignFilesAndNewerSchemas) {
  {
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("other.db")));
    ASSERT_OK(db->Exec("CREATE TABLE x(a)"));
  }
  SqliteHistoryOptions o;
  o.path = dir_.File("other.db");
  EXPECT_THAT(SqliteHistoryStore::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition, "not a campaign-history"));
  o.path = "";
  EXPECT_THAT(SqliteHistoryStore::Open(o), StatusIs(StatusCode::kInvalidArgument));
  { ASSERT_OK(Open()); }
  {
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("history.db")));
    ASSERT_OK(db->Exec("UPDATE meta SET value = 99 WHERE key = 'schema_version'"));
  }
  EXPECT_THAT(Open(), StatusIsWith(StatusCode::kFailedPrecondition, "schema_version 99"));
  {
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("history.db")));
    ASSERT_OK(
        db->Exec("UPDATE meta SET value = 1 WHERE key = 'schema_version'; "
                 "DROP TABLE recent;"));
  }
  {
    // A missing table is recreated, a missing column cannot be.
    ASSERT_OK(Open());
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("history.db")));
    ASSERT_OK(
        db->Exec("DROP INDEX campaigns_by_customer; "
                 "ALTER TABLE campaigns DROP COLUMN recent_first_t"));
  }
  EXPECT_THAT(Open(), StatusIsWith(StatusCode::kFailedPrecondition, "incompatible"));
}

TEST_F(SqliteHistoryStoreTest, AVersion2FileIsReadAsItIsAndUpgradedWhenOpenedForWriting) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    std::vector<HistoryRecord> batch = {Rec(1, 10, 1, 0, 1), Rec(1, 10, 2, 5, 2)};
    ASSERT_OK(store->Append(batch));
  }
  {  // What schema_version 2 had: no retention tables, held without customer_id.
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("history.db")));
    ASSERT_OK(db->Exec(
        "DROP TABLE purges; DROP TABLE erased_customers; DROP TABLE audit; DROP TABLE held; "
        "CREATE TABLE held(campaign_id INTEGER NOT NULL, version INTEGER NOT NULL, seq INTEGER "
        "NOT NULL, record TEXT NOT NULL, PRIMARY KEY(campaign_id, version)) WITHOUT ROWID; "
        "UPDATE meta SET value = 2 WHERE key = 'schema_version'"));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto reader, Open(/*read_only=*/true));
    ASSERT_OK_AND_ASSIGN(auto audit, reader->AuditLog(10));
    EXPECT_TRUE(audit.empty());
    ASSERT_OK_AND_ASSIGN(auto purged, reader->PurgedBefore(1));
    EXPECT_FALSE(purged.has_value());
    ASSERT_OK_AND_ASSIGN(bool erased, reader->Erased(1));
    EXPECT_FALSE(erased);
  }
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  EXPECT_EQ(Count("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM pragma_table_info('held') WHERE name = 'customer_id'"), 1);
  ASSERT_OK_AND_ASSIGN(int64_t removed, store->PurgeCustomer(1, T(6), "admin:test"));
  EXPECT_EQ(removed, 1);
  ASSERT_OK_AND_ASSIGN(auto audit, store->AuditLog(10));
  ASSERT_EQ(audit.size(), 1u);
  EXPECT_EQ(audit[0].records, 1);
}

TEST_F(SqliteHistoryStoreTest, PriorityShiftsShareBodiesAndEditsAreDeltas) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  // 20 campaigns created, then 50 shifts of every campaign, then one content edit each.
  std::vector<HistoryRecord> batch;
  for (int id = 1; id <= 20; ++id) batch.push_back(Rec(1, id, 1, 0, id));
  ASSERT_OK(store->Append(batch));
  for (int v = 2; v <= 51; ++v) {
    batch.clear();
    for (int id = 1; id <= 20; ++id) batch.push_back(Rec(1, id, v, v, id + v, "worker:rebalance"));
    ASSERT_OK(store->Append(batch));
  }
  EXPECT_EQ(Count("SELECT count(*) FROM bodies"), 20);
  // A shift's row holds a handful of small numbers, no snapshot text.
  EXPECT_LE(Count("SELECT max(length(row)) FROM recent"), 20);
  batch.clear();
  std::string long_body(600, 'x');
  for (int id = 1; id <= 20; ++id) {
    batch.push_back(Rec(1, id, 52, 60, 1, "user:2", "Hello there, " + long_body));
  }
  ASSERT_OK(store->Append(batch));
  batch.clear();
  for (int id = 1; id <= 20; ++id) {
    batch.push_back(Rec(1, id, 53, 61, 1, "user:2", "Hello here, " + long_body));
  }
  ASSERT_OK(store->Append(batch));
  EXPECT_EQ(Count("SELECT count(*) FROM bodies WHERE base IS NOT NULL"), 20);
  EXPECT_LT(Count("SELECT max(length(data)) FROM bodies WHERE base IS NOT NULL"), 40);
  // Everything reads back byte for byte, through a fresh store (cold caches) too.
  store.reset();
  ASSERT_OK_AND_ASSIGN(store, Open());
  for (int id : {1, 7, 20}) {
    ASSERT_OK_AND_ASSIGN(auto log, store->CampaignLog(id, {}));
    ASSERT_EQ(log.size(), 53u);
    EXPECT_EQ(log[30].snapshot, Rec(1, id, 31, 31, id + 31, "worker:rebalance").snapshot);
    EXPECT_EQ(log[52].snapshot,
              Rec(1, id, 53, 61, 1, "user:2", "Hello here, " + long_body).snapshot);
  }
}

TEST_F(SqliteHistoryStoreTest, TransactionIdsRoundTripAsText) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<std::string> ids = {
      "0", "007", "12", "", "tx-1", "-3", "123456789012345678", "18446744073709551616"};
  std::vector<HistoryRecord> batch;
  for (size_t i = 0; i < ids.size(); ++i) {
    batch.push_back(Rec(1, 10, static_cast<int64_t>(i) + 1, static_cast<int>(i), 1));
    batch.back().transaction_id = ids[i];
  }
  ASSERT_OK(store->Append(batch));
  ASSERT_OK_AND_ASSIGN(auto log, store->CampaignLog(10, {}));
  ASSERT_EQ(log.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(log[i].transaction_id, ids[i]);
}

TEST_F(SqliteHistoryStoreTest, RedeliveryWithAnotherEventTimeKeepsTheStoredRecord) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<HistoryRecord> batch = {Rec(1, 10, 1, 0, 1), Rec(1, 10, 2, 10, 1)};
  ASSERT_OK(store->Append(batch));
  std::vector<HistoryRecord> again = {Rec(1, 10, 1, 3, 1, "user:other")};
  ASSERT_OK_AND_ASSIGN(int64_t n, store->Append(again));
  EXPECT_EQ(n, 0);
  ASSERT_OK_AND_ASSIGN(auto rec, store->GetVersion(10, 1));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->actor, "user:1");
  EXPECT_EQ(rec->event_time, T(0));
}

TEST_F(SqliteHistoryStoreTest, FailedAppendLeavesNoTraceInCachesOrFile) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<HistoryRecord> first = {Rec(1, 10, 1, 0, 1)};
  ASSERT_OK(store->Append(first));
  // New actor, new campaign, new bodies, then a record that names another customer.
  std::vector<HistoryRecord> bad = {Rec(1, 11, 1, 1, 1, "user:new", "fresh"),
                                    Rec(1, 10, 2, 2, 2, "user:new", "edited"), Rec(2, 10, 3, 3, 1)};
  EXPECT_THAT(store->Append(bad), StatusIsWith(StatusCode::kInvalidArgument, "customer"));
  EXPECT_EQ(Count("SELECT (SELECT count(*) FROM history) + (SELECT count(*) FROM recent)"), 1);
  // Ids handed out inside the rolled-back transaction are reused now; nothing may point at them.
  std::vector<HistoryRecord> good = {Rec(1, 12, 1, 4, 1, "user:other", "other"),
                                     Rec(1, 10, 2, 5, 2, "user:new", "edited")};
  ASSERT_OK(store->Append(good));
  ASSERT_OK_AND_ASSIGN(auto rec, store->GetVersion(10, 2));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->snapshot, good[1].snapshot);
  EXPECT_EQ(rec->actor, "user:new");
  ASSERT_OK_AND_ASSIGN(rec, store->GetVersion(12, 1));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->snapshot, good[0].snapshot);
  EXPECT_EQ(rec->actor, "user:other");
}

TEST_F(SqliteHistoryStoreTest, AsOfSeeksPerCampaignAndNeverScansHistory) {
  { ASSERT_OK(Open()); }
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("history.db")));
  ASSERT_OK_AND_ASSIGN(SqliteStmt * s, db->Prepare(std::string("EXPLAIN QUERY PLAN ") +
                                                   SqliteHistoryStore::AsOfSqlForTesting()));
  std::string plan;
  while (true) {
    ASSERT_OK_AND_ASSIGN(bool row, s->Step());
    if (!row) break;
    plan += s->ColumnString(3) + "\n";
  }
  s->Reset();
  EXPECT_THAT(plan, ::testing::HasSubstr("SEARCH c USING COVERING INDEX campaigns_by_customer"));
  EXPECT_THAT(plan, ::testing::HasSubstr("CORRELATED SCALAR SUBQUERY"));
  EXPECT_THAT(plan, ::testing::HasSubstr("SEARCH i USING PRIMARY KEY (campaign_id=? AND t<?)"));
  EXPECT_THAT(plan, ::testing::HasSubstr("SEARCH r USING PRIMARY KEY (campaign_id=? AND t<?)"));
  EXPECT_THAT(plan, ::testing::Not(::testing::HasSubstr("SCAN")));
}

TEST_F(SqliteHistoryStoreTest, StatsCountBytesOnDisk) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  std::vector<HistoryRecord> batch = {Rec(1, 10, 1, 0, 1), Rec(2, 20, 1, 1, 1)};
  ASSERT_OK(store->Append(batch));
  ASSERT_OK_AND_ASSIGN(HistoryStats st, store->Stats());
  EXPECT_GT(st.bytes, 0);
  ASSERT_OK_AND_ASSIGN(auto space, store->SpaceByObject());
  EXPECT_FALSE(space.empty());
  EXPECT_OK(store->Checkpoint());
}

// Once `recent` reaches the merge threshold, a chunk is merged per append until it is empty:
// no campaign stays in `recent` for ever (merging only while above the threshold always took the
// lowest campaign ids and left the highest ones behind, with an old recent_first_t).
TEST_F(SqliteHistoryStoreTest, AMergeCycleEmptiesTheRecentTableChunkByChunk) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMerging(/*threshold=*/20, /*chunk=*/6));
  // 40 campaigns, 3 records per append (one per campaign id), ids low and high interleaved.
  int second = 0;
  std::vector<int64_t> recent_after;
  int64_t version[41] = {};
  // second -> (campaign, version) written at that second: the model for as-of.
  std::map<int, std::pair<int64_t, int64_t>> written;
  // As-of answers as "id@version" lists, in campaign order.
  auto asof = [&](int at) {
    std::map<int64_t, int64_t> want;
    for (const auto& [sec, cv] : written) {
      if (sec <= at) want[cv.first] = cv.second;
    }
    std::string w, g;
    for (const auto& [id, v] : want) w += fmt::format("{}@{} ", id, v);
    auto got = store->AsOf(1, T(at));
    EXPECT_OK(got.status());
    std::map<int64_t, int64_t> have;
    if (got.ok()) {
      for (const HistoryRecord& r : *got) have[r.campaign_id] = r.version;
    }
    for (const auto& [id, v] : have) g += fmt::format("{}@{} ", id, v);
    return std::pair(g, w);
  };
  for (int append = 0; append < 30; ++append) {
    std::vector<HistoryRecord> batch;
    for (int k = 0; k < 3; ++k) {
      int64_t id = 1 + (append * 3 + k) * 7 % 40;
      ++version[id];
      batch.push_back(Rec(1, id, version[id], ++second, 1));
      written[second] = {id, version[id]};
    }
    ASSERT_OK(store->Append(batch).status());
    recent_after.push_back(Count("SELECT count(*) FROM recent"));
    // Campaigns just merged keep being appended to: what the store remembers of them between
    // appends (which of them have rows in `recent`) must stay true, or as-of misses rows.
    for (int at : {second, second - 2, second / 2}) {
      auto [got, want] = asof(at);
      ASSERT_EQ(got, want) << "as-of second " << at << " after append " << append;
    }
  }
  int64_t records = Count("SELECT count(*) FROM history") + Count("SELECT count(*) FROM recent");
  EXPECT_EQ(records, 90);
  bool crossed = false, emptied_after_crossing = false;
  for (int64_t n : recent_after) {
    EXPECT_LT(n, 20 + 3) << "recent must never grow past the threshold plus one batch";
    if (n >= 18) crossed = true;
    if (crossed && n == 0) emptied_after_crossing = true;
  }
  EXPECT_TRUE(emptied_after_crossing) << ::testing::PrintToString(recent_after);
  // Every record is still answered (as-of at the end: the 40 campaigns' latest versions).
  ASSERT_OK_AND_ASSIGN(auto at, store->AsOf(1, T(second)));
  EXPECT_EQ(at.size(), 40u);
}

// What an append remembers of each campaign between appends includes whether (and since when) it
// has rows in `recent`. A merge chunk moves some campaigns out: only theirs may be forgotten.
// Campaign 20 stays in `recent` across two chunks and is appended to again; as-of between its
// two versions must still find the first one (a wrong recent_first_t skips the recent table).
TEST_F(SqliteHistoryStoreTest, AMergeChunkForgetsOnlyTheRecentRowsOfTheCampaignsItMoved) {
  ASSERT_OK_AND_ASSIGN(auto store, OpenMerging(/*threshold=*/6, /*chunk=*/2));
  std::vector<HistoryRecord> a;
  for (int64_t id = 1; id <= 6; ++id) a.push_back(Rec(1, id, 1, static_cast<int>(id), 1));
  ASSERT_OK(store->Append(a).status());  // chunk: campaigns 1, 2
  std::vector<HistoryRecord> b = {Rec(1, 20, 1, 10, 1)};
  ASSERT_OK(store->Append(b).status());  // chunk: campaigns 3, 4; 20 stays
  std::vector<HistoryRecord> c = {Rec(1, 20, 2, 12, 1)};
  ASSERT_OK(store->Append(c).status());  // chunk: campaigns 5, 6; 20 stays
  EXPECT_EQ(Count("SELECT count(*) FROM recent WHERE campaign_id = 20"), 2);
  ASSERT_OK_AND_ASSIGN(auto at, store->AsOf(1, T(11)));
  std::map<int64_t, int64_t> versions;
  for (const HistoryRecord& r : at) versions[r.campaign_id] = r.version;
  EXPECT_EQ(versions.size(), 7u);
  EXPECT_EQ(versions[20], 1) << "as-of between campaign 20's versions";
}

// The as-of read path (one read transaction, bodies prefetched in id order, mmap reads) gives
// the same answer whatever the read options: mmap off, and a body cache too small to hold one
// answer's bodies (the prefetch evicts what it read; Fill reads those again).
TEST_F(SqliteHistoryStoreTest, AsOfIsTheSameWithoutMmapAndWithATinyBodyCache) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    std::vector<HistoryRecord> batch;
    for (int id = 1; id <= 30; ++id) {
      batch.push_back(Rec(1, id, 1, 0, id, "user:1", "Body " + std::to_string(id)));
    }
    ASSERT_OK(store->Append(batch));
    batch.clear();
    for (int id = 1; id <= 30; id += 2) {
      batch.push_back(
          Rec(1, id, 2, 10, 31 - id, "user:2", std::string(300, 'a' + id % 26) + "edit"));
    }
    ASSERT_OK(store->Append(batch));
  }
  auto open = [&](int64_t mmap_kib, size_t body_cache_bytes) {
    SqliteHistoryOptions o;
    o.path = dir_.File("history.db");
    o.clock = &clock_;
    o.read_only = true;
    o.mmap_kib = mmap_kib;
    o.body_cache_bytes = body_cache_bytes;
    return SqliteHistoryStore::Open(o);
  };
  ASSERT_OK_AND_ASSIGN(auto usual, open(SqliteHistoryOptions().mmap_kib, 32 << 20));
  ASSERT_OK_AND_ASSIGN(auto no_mmap, open(0, 32 << 20));
  ASSERT_OK_AND_ASSIGN(auto tiny, open(SqliteHistoryOptions().mmap_kib, 200));
  for (int at : {0, 5, 10, 20}) {
    ASSERT_OK_AND_ASSIGN(auto want, usual->AsOf(1, T(at)));
    ASSERT_EQ(want.size(), 30u);
    // Campaign 29's edit (priority 2, after campaign 2 by id) is in the answer from T(10) on.
    HistoryRecord second =
        at < 10 ? Rec(1, 2, 1, 0, 2, "user:1", "Body 2")
                : Rec(1, 29, 2, 10, 2, "user:2", std::string(300, 'a' + 29 % 26) + "edit");
    EXPECT_EQ(want[1].snapshot, second.snapshot);
    for (int round = 0; round < 2; ++round) {  // cold, then with whatever the caches kept
      ASSERT_OK_AND_ASSIGN(auto a, no_mmap->AsOf(1, T(at)));
      EXPECT_EQ(a, want);
      ASSERT_OK_AND_ASSIGN(auto b, tiny->AsOf(1, T(at)));
      EXPECT_EQ(b, want);
    }
  }
}

}  // namespace
}  // namespace ch
