// PgHistoryStore beyond the contract suite (tests/contract/history_store_contract_test.cc): the
// URL's schema parameter, migrations, partitions, concurrent appenders and the as-of plan. The
// tests that need a server skip without CH_TEST_PG_URL.
#include "history/pg_history_store.h"

#include <fmt/format.h>

#include <map>
#include <thread>

#include "campaign/pg_test_util.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::PgTestDatabase;

HistoryRecord Rec(int64_t customer, int64_t id, int64_t version, Timestamp at, int64_t priority) {
  HistoryRecord r;
  r.customer_id = customer;
  r.campaign_id = id;
  r.version = version;
  r.event_time = at;
  r.event_type = version == 1 ? ChangeOp::kCreated : ChangeOp::kUpdated;
  r.actor = "user:1";
  r.transaction_id = fmt::format("tx-{}-{}", id, version);
  r.priority = priority;
  r.snapshot = fmt::format(R"({{"id":{},"priority":{},"version":{},"content":"c{}"}})", id,
                           priority, version, version % 3);
  return r;
}

TEST(PgHistoryUrlTest, TheSchemaParameterIsTakenOutOfTheUrl) {
  ASSERT_OK_AND_ASSIGN(auto plain, SplitPgHistoryUrl("postgresql://u@h:5432/db", "dflt"));
  EXPECT_EQ(plain.first, "postgresql://u@h:5432/db");
  EXPECT_EQ(plain.second, "dflt");
  ASSERT_OK_AND_ASSIGN(auto only, SplitPgHistoryUrl("postgresql://u@h/db?schema=hist", "dflt"));
  EXPECT_EQ(only.first, "postgresql://u@h/db");
  EXPECT_EQ(only.second, "hist");
  ASSERT_OK_AND_ASSIGN(auto mixed,
                       SplitPgHistoryUrl("postgresql://u@h/db?sslmode=disable&schema=h2&"
                                         "connect_timeout=3",
                                         "dflt"));
  EXPECT_EQ(mixed.first, "postgresql://u@h/db?sslmode=disable&connect_timeout=3");
  EXPECT_EQ(mixed.second, "h2");
}

TEST(PgHistoryUrlTest, ABadSchemaNameIsRefused) {
  EXPECT_THAT(SplitPgHistoryUrl("postgresql://u@h/db?schema=", "dflt"),
              ::ch::testing::StatusIsWith(StatusCode::kInvalidArgument, "schema name"));
  EXPECT_THAT(SplitPgHistoryUrl("postgresql://u@h/db?schema=" + std::string(64, 'x'), "dflt"),
              ::ch::testing::StatusIsWith(StatusCode::kInvalidArgument, "1 to 63"));
  PgHistoryOptions o;
  EXPECT_THAT(PgHistoryStore::Open(o),
              ::ch::testing::StatusIsWith(StatusCode::kInvalidArgument, "empty"));
}

class PgHistoryStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::PgTestUrl().empty()) GTEST_SKIP() << ::ch::testing::kPgTestSkipMessage;
    ASSERT_OK_AND_ASSIGN(db_, PgTestDatabase::Create());
  }
  Result<std::unique_ptr<PgHistoryStore>> Open(const std::string& schema = "pghistory_t") {
    PgHistoryOptions o;
    o.url = db_->url();
    o.schema = schema;
    o.clock = &clock_;
    return PgHistoryStore::Open(o);
  }
  FakeClock clock_{*ParseTimestamp("2026-12-01T00:00:00Z")};
  std::unique_ptr<PgTestDatabase> db_;
};

TEST_F(PgHistoryStoreTest, ANewerSchemaIsRefusedAndAnOlderOneIsKept) {
  ASSERT_OK(Open().status());
  ASSERT_OK(Open().status()) << "reopening applies nothing twice";
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  ASSERT_OK(conn->Exec("SELECT count(*) FROM pghistory_t.schema_version").status());
  ASSERT_OK(conn->Exec("INSERT INTO pghistory_t.schema_version VALUES (99)").status());
  EXPECT_THAT(Open(),
              ::ch::testing::StatusIsWith(StatusCode::kFailedPrecondition, "schema_version 99"));
}

TEST_F(PgHistoryStoreTest, EachMonthGetsItsPartitionAndTwoSchemasAreIndependent) {
  ASSERT_OK_AND_ASSIGN(auto a, Open("pghistory_a"));
  ASSERT_OK_AND_ASSIGN(auto b, Open("pghistory_b"));
  const Timestamp nov = *ParseTimestamp("2026-11-30T23:59:59.999999Z");
  const Timestamp dec = *ParseTimestamp("2026-12-01T00:00:00Z");
  ASSERT_OK(a->Append(std::vector<HistoryRecord>{Rec(1, 7, 1, nov, 1), Rec(1, 7, 2, dec, 1)}));
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  ASSERT_OK_AND_ASSIGN(
      PgResult parts,
      conn->Exec("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN "
                 "pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = "
                 "'pghistory_a.history'::regclass"));
  EXPECT_EQ(parts.Get(0, 0), "history_2026_11,history_2026_12");
  ASSERT_OK_AND_ASSIGN(auto at_nov, a->AsOf(1, nov));
  ASSERT_EQ(at_nov.size(), 1u);
  EXPECT_EQ(at_nov[0].version, 1);
  ASSERT_OK_AND_ASSIGN(auto in_b, b->AsOf(1, dec));
  EXPECT_TRUE(in_b.empty());
}

// Two stores (two connections, as two processes would have) append at once, each creating the
// partitions of months the other may create too: every record is stored once, nothing fails.
TEST_F(PgHistoryStoreTest, ConcurrentAppendersCreatePartitionsWithoutRacing) {
  ASSERT_OK_AND_ASSIGN(auto first, Open());
  ASSERT_OK_AND_ASSIGN(auto second, Open());
  const Timestamp start = *ParseTimestamp("2025-01-15T00:00:00Z");
  auto run = [&](PgHistoryStore* store, int64_t campaign, Status* out) {
    for (int64_t v = 1; v <= 24; ++v) {
      // One version a month, both writers over the same months; every other batch redelivers.
      std::vector<HistoryRecord> batch = {
          Rec(1, campaign, v, start + std::chrono::hours(24 * 31 * (v - 1)), campaign)};
      if (v % 2 == 0) batch.push_back(batch.front());
      Result<int64_t> r = store->Append(batch);
      if (!r.ok() || *r != 1) {
        *out = r.ok() ? InternalError(fmt::format("stored {} of 1", *r)) : r.status();
        return;
      }
    }
  };
  Status s1, s2;
  std::thread t1(run, first.get(), 7, &s1);
  std::thread t2(run, second.get(), 8, &s2);
  t1.join();
  t2.join();
  EXPECT_OK(s1);
  EXPECT_OK(s2);
  ASSERT_OK_AND_ASSIGN(HistoryStats stats, first->Stats());
  EXPECT_EQ(stats.records, 48);
  EXPECT_EQ(stats.conflicts, 0);
  ASSERT_OK_AND_ASSIGN(auto answer, second->AsOf(1, start + std::chrono::hours(24 * 31 * 30)));
  ASSERT_EQ(answer.size(), 2u);
  EXPECT_EQ(answer[0].version, 24);
  EXPECT_EQ(answer[1].version, 24);
}

// As-of reads each campaign's latest row through the index: never a scan of the history.
TEST_F(PgHistoryStoreTest, AsOfIsOneIndexProbePerCampaign) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  const Timestamp start = *ParseTimestamp("2026-09-01T00:00:00Z");
  std::vector<HistoryRecord> batch;
  for (int64_t c = 1; c <= 200; ++c) {
    for (int64_t v = 1; v <= 10; ++v) {
      batch.push_back(Rec(1, c, v, start + std::chrono::hours(24 * 9 * v), c));
    }
  }
  ASSERT_OK(store->Append(batch));
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  ASSERT_OK(conn->Exec("ANALYZE pghistory_t.history; ANALYZE pghistory_t.campaigns").status());
  ASSERT_OK_AND_ASSIGN(std::string plan,
                       store->ExplainAsOf(1, start + std::chrono::hours(24 * 50), false));
  EXPECT_THAT(plan, ::testing::HasSubstr("Index Scan Backward")) << plan;
  EXPECT_THAT(plan, ::testing::HasSubstr("Limit")) << plan;
  EXPECT_THAT(plan, ::testing::Not(::testing::HasSubstr("Seq Scan on history"))) << plan;
  ASSERT_OK_AND_ASSIGN(auto answer, store->AsOf(1, start + std::chrono::hours(24 * 50)));
  ASSERT_EQ(answer.size(), 200u);
  EXPECT_EQ(answer[0].version, 5);
}

// Schema 2 replaced the history table: a schema 1 with records is refused (not converted, not
// dropped); an empty one is upgraded.
TEST_F(PgHistoryStoreTest, ASchema1WithRecordsIsRefusedAndAnEmptyOneUpgraded) {
  ASSERT_OK(Open().status());
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  // Back to what schema 1 looked like as far as migration 2 cares: its history table, a record.
  ASSERT_OK(conn->Exec("SET search_path TO pghistory_t; DELETE FROM schema_version WHERE version "
                       ">= 2; DROP TABLE history; DROP TABLE actors; DROP SEQUENCE actor_ids; "
                       "ALTER TABLE campaigns DROP COLUMN max_event_us, DROP COLUMN tied; "
                       "CREATE INDEX campaigns_by_customer ON campaigns(customer_id, "
                       "campaign_id); "
                       "CREATE TABLE history(campaign_id bigint, event_us bigint, version "
                       "bigint); INSERT INTO history VALUES (7, 1, 1)")
                .status());
  EXPECT_THAT(Open(), ::ch::testing::StatusIsWith(StatusCode::kFailedPrecondition,
                                                  "has schema_version 1 and records in it"));
  ASSERT_OK_AND_ASSIGN(PgResult kept, conn->Exec("SELECT count(*) FROM pghistory_t.history"));
  EXPECT_EQ(kept.Get(0, 0), "1") << "the refused migration changed nothing";
  ASSERT_OK(conn->Exec("DELETE FROM pghistory_t.history").status());
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  const Timestamp at = *ParseTimestamp("2026-09-01T00:00:00Z");
  ASSERT_OK(store->Append(std::vector<HistoryRecord>{Rec(1, 7, 1, at, 3)}));
  ASSERT_OK_AND_ASSIGN(auto answer, store->AsOf(1, at));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].priority, 3);
}

// Actor names are interned in `actors`; erasing a customer takes the names only its records used
// out of it too (they are personal data), and keeps the shared ones.
TEST_F(PgHistoryStoreTest, EraseForgetsTheActorsOnlyTheCustomerUsed) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  const Timestamp at = *ParseTimestamp("2026-09-01T00:00:00Z");
  std::vector<HistoryRecord> batch = {Rec(1, 7, 1, at, 1), Rec(1, 7, 2, at, 2),
                                      Rec(2, 8, 1, at, 1)};
  batch[1].actor = "user:only-customer-1";
  batch[2].actor = "user:\"quoted\", {braced}";
  ASSERT_OK(store->Append(batch));
  ASSERT_OK_AND_ASSIGN(auto log, store->CampaignLog(7, TimeRange{}));
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].actor, "user:1");
  EXPECT_EQ(log[1].actor, "user:only-customer-1");
  ASSERT_OK_AND_ASSIGN(auto other, store->GetVersion(8, 1));
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ(other->actor, "user:\"quoted\", {braced}");
  ASSERT_OK(store->EraseCustomer(1, "test").status());
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  ASSERT_OK_AND_ASSIGN(PgResult names, conn->Exec("SELECT string_agg(name, '|' ORDER BY name) "
                                                  "FROM pghistory_t.actors"));
  EXPECT_EQ(names.Get(0, 0), "user:\"quoted\", {braced}");
  ASSERT_OK(store->Append(std::vector<HistoryRecord>{Rec(3, 9, 1, at, 1)}));
  ASSERT_OK_AND_ASSIGN(auto again, store->GetVersion(9, 1));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->actor, "user:1") << "an erased name is interned again under a new id";
}

// Two records of one campaign and one event_us (one transaction changed it twice): as-of answers
// the higher version, whichever was stored first and whether they came in one call or two.
TEST_F(PgHistoryStoreTest, AsOfBreaksATieOfEventTimesByVersion) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  const Timestamp at = *ParseTimestamp("2026-09-01T00:00:00Z");
  ASSERT_OK(store->Append(std::vector<HistoryRecord>{Rec(1, 7, 2, at, 1), Rec(1, 9, 1, at, 3)}));
  ASSERT_OK(store->Append(std::vector<HistoryRecord>{Rec(1, 7, 1, at, 2)}));  // late, same time
  ASSERT_OK(store->Append(std::vector<HistoryRecord>{Rec(1, 8, 1, at, 4), Rec(1, 8, 2, at, 5)}));
  ASSERT_OK(store->Append(
      std::vector<HistoryRecord>{Rec(1, 9, 2, at + std::chrono::seconds(1), 6)}));  // no tie
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  ASSERT_OK_AND_ASSIGN(
      PgResult tied,
      conn->Exec("SELECT string_agg(campaign_id::text, ',' ORDER BY campaign_id) FROM "
                 "pghistory_t.campaigns WHERE tied"));
  EXPECT_EQ(tied.Get(0, 0), "7,8");
  for (const Timestamp t : {at, at + std::chrono::seconds(1)}) {
    ASSERT_OK_AND_ASSIGN(auto answer, store->AsOf(1, t));
    std::map<int64_t, int64_t> versions;
    for (const HistoryRecord& r : answer) versions[r.campaign_id] = r.version;
    EXPECT_EQ(versions[7], 2);
    EXPECT_EQ(versions[8], 2);
    EXPECT_EQ(versions[9], t == at ? 1 : 2);
  }
}

// Schema 3 keeps history.version as an integer: a schema 2 (bigint) with records is upgraded in
// place, records kept.
TEST_F(PgHistoryStoreTest, ASchema2IsUpgradedToIntegerVersionsKeepingItsRecords) {
  const Timestamp at = *ParseTimestamp("2026-09-01T00:00:00Z");
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open());
    ASSERT_OK(store->Append(std::vector<HistoryRecord>{Rec(1, 7, 1, at, 1), Rec(1, 7, 2, at, 2)}));
  }
  ASSERT_OK_AND_ASSIGN(auto conn, db_->Connect());
  ASSERT_OK(conn->Exec("SET search_path TO pghistory_t; DELETE FROM schema_version WHERE version "
                       "= 3; ALTER TABLE history ALTER COLUMN version TYPE bigint")
                .status());
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  ASSERT_OK_AND_ASSIGN(
      PgResult type,
      conn->Exec("SELECT data_type FROM information_schema.columns WHERE table_schema = "
                 "'pghistory_t' AND table_name = 'history' AND column_name = 'version'"));
  EXPECT_EQ(type.Get(0, 0), "integer");
  ASSERT_OK_AND_ASSIGN(auto answer, store->AsOf(1, at));
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_EQ(answer[0].version, 2);
}

// A version the integer column cannot hold is refused with a clear error, and nothing of the call
// is stored.
TEST_F(PgHistoryStoreTest, AVersionAboveTheIntegerRangeIsRefusedAndNothingStored) {
  ASSERT_OK_AND_ASSIGN(auto store, Open());
  const Timestamp at = *ParseTimestamp("2026-09-01T00:00:00Z");
  EXPECT_THAT(store->Append(std::vector<HistoryRecord>{Rec(1, 7, 1, at, 1),
                                                       Rec(1, 8, int64_t{1} << 31, at, 2)}),
              ::ch::testing::StatusIsWith(StatusCode::kInvalidArgument, "version is above"));
  ASSERT_OK_AND_ASSIGN(HistoryStats stats, store->Stats());
  EXPECT_EQ(stats.records, 0);
}

}  // namespace
}  // namespace ch
