#include "campaign/sqlite_campaign_store.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "campaign/campaign_service.h"
#include "campaign/sqlite_outbox.h"
#include "common/sqlite.h"
#include "common/time_util.h"
#include "testing/sqlite_sync_counter.h"
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
  c.content = R"({"body":"b","title":"t"})";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext w;
  w.actor = std::move(actor);
  return w;
}

class SqliteCampaignStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<SqliteCampaignStore> Open(CaptureSetting capture = CaptureSetting::kLog,
                                            OutboxRows rows = OutboxRows::kCompact,
                                            bool one_row_per_shift = true) {
    return OpenAt(path_, capture, rows, one_row_per_shift);
  }

  std::unique_ptr<SqliteCampaignStore> OpenAt(const std::string& path,
                                              CaptureSetting capture = CaptureSetting::kLog,
                                              OutboxRows rows = OutboxRows::kCompact,
                                              bool one_row_per_shift = true) {
    SqliteCampaignStoreOptions o;
    o.path = path;
    o.one_row_per_shift = one_row_per_shift;
    o.clock = &clock_;
    o.capture = capture;
    o.rows_if_new = rows;
    auto r = SqliteCampaignStore::Open(o);
    EXPECT_OK(r);
    return r.ok() ? std::move(r).value() : nullptr;
  }

  // The outbox as stored (unchanged content omitted).
  std::vector<CapturedChange> RawOutbox() {
    auto db = SqliteDb::Open(path_);
    EXPECT_OK(db);
    if (!db.ok()) return {};
    auto rows = ReadOutbox(**db, 0, 1'000'000);
    EXPECT_OK(rows);
    return rows.ok() ? *rows : std::vector<CapturedChange>{};
  }

  // Read the outbox through a connection of its own, as the relay does.
  std::vector<CapturedChange> Outbox() { return OutboxAt(path_); }

  std::vector<CapturedChange> OutboxAt(const std::string& path) {
    auto db = SqliteDb::Open(path);
    EXPECT_OK(db);
    if (!db.ok()) return {};
    auto rows = ReadOutbox(**db, 0, 1'000'000);
    EXPECT_OK(rows);
    if (!rows.ok()) return {};
    // Unchanged content is omitted (outbox format 2); the whole outbox is here to resolve it.
    EXPECT_OK(ResolveOmittedContent(*rows));
    return *rows;
  }

  std::vector<std::string> OutboxStrings() {
    std::vector<std::string> out;
    for (const auto& c : Outbox()) out.push_back(DebugString(c));
    return out;
  }

  testing::TempDir dir_;
  std::string path_ = dir_.File("campaigns.db");
  FakeClock clock_;
};

TEST_F(SqliteCampaignStoreTest, OutboxHasOneFullRowImagePerVersion) {
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK_AND_ASSIGN(auto a, service.Create(Draft(1, "a"), As("user:1")));
  clock_.Advance(Micros(10));
  Campaign b = Draft(1, "b \"quoted\" \xf0\x9f\x8e\x89");
  b.end_at = ParseTimestamp("2026-06-01").value();
  ASSERT_OK_AND_ASSIGN(auto created, service.Create(b, As("user:2")));
  CampaignPatch p;
  p.status = CampaignStatus::kPaused;
  ASSERT_OK_AND_ASSIGN(auto updated, service.Update(2, p, As("api:k")));
  ASSERT_OK_AND_ASSIGN(auto deleted, service.Delete(1, As("user:3")));

  EXPECT_THAT(
      OutboxStrings(),
      ElementsAre("#1 tx 1 c1@v1 created p1 by user:1", "#2 tx 2 c1@v2 updated p2 by user:2",
                  "#3 tx 2 c2@v1 created p1 by user:2", "#4 tx 3 c2@v2 updated p1 by api:k",
                  "#5 tx 4 c1@v3 deleted p2 by user:3"));
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 5u);
  // Every image is the whole row as the service committed it.
  EXPECT_EQ(rows[0].row, *a.row);
  EXPECT_EQ(rows[2].row, *created.row);
  EXPECT_EQ(rows[3].row, *updated.row);
  EXPECT_EQ(rows[4].row, *deleted.row);  // the row before the delete
  EXPECT_EQ(rows[4].row.updated_by, "user:2");
  EXPECT_EQ(rows[1].commit_time, created.committed_at);
  EXPECT_EQ(rows[1].transaction_id, created.transaction_id);
  EXPECT_EQ(rows[4].commit_time, deleted.committed_at);
}

TEST_F(SqliteCampaignStoreTest, RolledBackChangesLeaveNoOutboxRows) {
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  WriteContext ctx = As("user:1");
  ctx.expect_shifted = 3;  // fails after the shift statement ran
  EXPECT_THAT(service.Create(Draft(1, "b"), ctx), StatusIs(StatusCode::kFailedPrecondition));
  {
    ASSERT_OK_AND_ASSIGN(auto tx, store->BeginWrite("user:9"));
    ASSERT_OK(tx->Remove(1, "user:9"));
  }  // destroyed without Commit
  EXPECT_EQ(Outbox().size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto row, store->Get(1));
  EXPECT_EQ(row->version, 1);
}

TEST_F(SqliteCampaignStoreTest, WritesThatBypassTheStoreAreCapturedToo) {
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK(
      db->Exec("UPDATE campaigns SET name = 'by hand', version = version + 1, "
               "updated_by = 'user:dba' WHERE id = 1"));
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1].row.name, "by hand");
  EXPECT_EQ(rows[1].actor, "user:dba");
}

// A shift-shaped update (priority + 1, version + 1) by another writer is not a shift of the
// store: the update trigger skips rows only while the store's own shift statement runs.
TEST_F(SqliteCampaignStoreTest, AShiftByHandIsCapturedRowByRow) {
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));
  const size_t before = Outbox().size();
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK(
      db->Exec("UPDATE campaigns SET priority = priority + 1, version = version + 1, "
               "updated_by = 'user:dba' WHERE customer_id = 1"));
  auto rows = Outbox();
  ASSERT_EQ(rows.size(), before + 2);
  for (size_t i = before; i < rows.size(); ++i) {
    EXPECT_FALSE(rows[i].image_omitted) << DebugString(rows[i]);
    EXPECT_EQ(rows[i].actor, "user:dba");
  }
}

// A shift whose statement fails leaves its transaction unable to commit: no open shift row and no
// set shift_seq (which would make the trigger skip later writers' updates) can become durable.
TEST_F(SqliteCampaignStoreTest, AFailedShiftCannotCommit) {
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));
  const size_t before = Outbox().size();
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK(
      db->Exec("CREATE TRIGGER test_refuse BEFORE UPDATE OF priority ON campaigns "
               "WHEN NEW.priority > 2 BEGIN SELECT RAISE(ABORT, 'refused by test'); END"));
  {
    ASSERT_OK_AND_ASSIGN(auto tx, store->BeginWrite("user:1"));
    EXPECT_FALSE(tx->Shift(1, +1, 1, std::nullopt, "user:1").ok());
    EXPECT_THAT(tx->Commit(), StatusIsWith(StatusCode::kFailedPrecondition, "rolled back"));
  }
  ASSERT_OK(db->Exec("DROP TRIGGER test_refuse"));
  EXPECT_EQ(Outbox().size(), before);
  ASSERT_OK_AND_ASSIGN(SqliteStmt * st, db->Prepare("SELECT shift_seq FROM txn_context"));
  ASSERT_OK_AND_ASSIGN(bool row, st->Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(st->ColumnInt64(0), 0);
  st->Reset();
  ASSERT_OK(db->Exec("UPDATE campaigns SET version = version + 1 WHERE id = 1"));
  EXPECT_EQ(Outbox().size(), before + 1);
}

TEST_F(SqliteCampaignStoreTest, NoCaptureWritesNoOutbox) {
  auto store = Open(CaptureSetting::kNone);
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  EXPECT_THAT(CheckOutbox(*db), StatusIsWith(StatusCode::kFailedPrecondition, "no outbox"));
  EXPECT_THAT(db->Prepare("SELECT 1 FROM outbox"), StatusIs(StatusCode::kInternal));
}

TEST_F(SqliteCampaignStoreTest, CaptureIsAPropertyOfTheFile) {
  { auto store = Open(CaptureSetting::kLog); }
  // A process configured otherwise cannot open it, and is told what to run.
  SqliteCampaignStoreOptions o;
  o.path = path_;
  o.capture = CaptureSetting::kNone;
  EXPECT_THAT(SqliteCampaignStore::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition,
                           "captures in mode 'log', but this process is configured for 'none'"));
  o.capture = CaptureSetting::kNotify;
  EXPECT_THAT(SqliteCampaignStore::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition,
                           "--campaign-db sqlite:" + path_ + " --capture notify capture setup"));
  // Only the admin action turns capture off...
  ASSERT_OK(SetSqliteCapture(path_, {.mode = CaptureSetting::kNone}).status());
  o.capture = CaptureSetting::kLog;
  EXPECT_THAT(SqliteCampaignStore::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition, "--capture log capture setup"));
  EXPECT_THAT(SqliteCampaignStore::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition, "captures in mode 'none'"));
  {
    auto store = Open(CaptureSetting::kNone);
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  }
  EXPECT_TRUE(Outbox().empty());
  // ... and back on.
  ASSERT_OK(SetSqliteCapture(path_, {.mode = CaptureSetting::kLog}).status());
  {
    auto store = Open(CaptureSetting::kLog);
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));
  }
  EXPECT_EQ(Outbox().size(), 2u);  // c2 created, c1 shifted
}

// Format 2 omits content an update did not change, except where the previous version was never
// captured (campaigns that existed before capture was turned on).
TEST_F(SqliteCampaignStoreTest, OutboxOmitsUnchangedContentOnlyWhenThePreviousVersionIsCaptured) {
  {
    auto store = Open(CaptureSetting::kNone);
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "existing"), As("user:1")));
  }
  ASSERT_OK(SetSqliteCapture(path_, {.mode = CaptureSetting::kLog}).status());
  auto store = Open(CaptureSetting::kLog);
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "new"), As("user:1")));  // shifts c1 (never captured)
  ASSERT_OK(service.Move(1, 1, As("user:2")));               // shifts c2, moves c1
  CampaignPatch p;
  p.content = R"({"title":"changed"})";
  ASSERT_OK(service.Update(2, p, As("user:3")));
  std::vector<std::string> got;
  for (const CapturedChange& c : RawOutbox()) {
    got.push_back(fmt::format("c{}@v{} {}", c.row.id, c.version,
                              c.row.content.empty() ? "omitted" : c.row.content));
  }
  // Statement order: create = shift, insert; move = shift, move. c1 existed before capture: its
  // versions carry the content until one of them is confirmed.
  EXPECT_THAT(
      got, ElementsAre("c1@v2 {\"body\":\"b\",\"title\":\"t\"}",
                       "c2@v1 {\"body\":\"b\",\"title\":\"t\"}", "c2@v2 omitted",
                       "c1@v3 {\"body\":\"b\",\"title\":\"t\"}", "c2@v3 {\"title\":\"changed\"}"));
  {
    auto db = SqliteDb::Open(path_);
    ASSERT_OK(db);
    ASSERT_OK(ConfirmOutboxThrough(**db, {RawOutbox().back().seq, 1}));
  }
  ASSERT_OK(service.Move(1, 2, As("user:4")));  // shifts c2 too
  std::vector<std::string> after;
  for (const CapturedChange& c : RawOutbox()) {
    after.push_back(fmt::format("c{}@v{} {}", c.row.id, c.version,
                                c.row.content.empty() ? "omitted" : "content"));
  }
  // The newest confirmed row is kept (seq never goes back); then the move's two rows.
  EXPECT_THAT(after, ElementsAre("c2@v3 content", "c2@v4 omitted", "c1@v4 omitted"));
}

// A relayed outbox (outbox rows "full") keeps every row self-contained.
TEST_F(SqliteCampaignStoreTest, FullOutboxRepeatsUnchangedContent) {
  auto store = Open(CaptureSetting::kLog, OutboxRows::kFull);
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));  // shifts c1
  for (const CapturedChange& c : RawOutbox()) EXPECT_FALSE(c.row.content.empty()) << DebugString(c);
  EXPECT_EQ(RawOutbox().size(), 3u);
}

// What the outbox says, row by row: the changes in commit order, those of one transaction
// sorted (the order within a shift statement is SQLite's), without the outbox seq.
std::vector<std::string> Canonical(std::vector<CapturedChange> changes) {
  std::stable_sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) {
    if (a.transaction_id != b.transaction_id) return a.seq < b.seq;
    return a.row.id < b.row.id;
  });
  std::vector<std::string> out;
  for (const CapturedChange& c : changes) {
    out.push_back(fmt::format("tx {} at {} {} v{} by {}: {}", c.transaction_id,
                              ToUnixMicros(c.commit_time), ChangeOpName(c.op), c.version, c.actor,
                              CampaignToJson(c.row)));
  }
  return out;
}

void Writes(CampaignService& service) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_OK(service.Create(Draft(1, "c" + std::to_string(i)), As("user:1")));  // shifts
  }
  ASSERT_OK(service.Create(Draft(2, "other"), As("user:9")));
  ASSERT_OK(service.Move(1, 3, As("user:2")));
  ASSERT_OK(service.Move(5, 5, As("user:3")));
  CampaignPatch p;
  p.content = R"({"title":"new"})";
  ASSERT_OK(service.Update(2, p, As("user:4")));
  ASSERT_OK(service.Delete(4, As("user:5")));
  ASSERT_OK(service.Delete(1, As("user:6")));
}

int64_t OutboxRowCount(const std::string& path) {
  auto db = SqliteDb::Open(path);
  EXPECT_OK(db);
  if (!db.ok()) return -1;
  auto st = (*db)->Prepare("SELECT count(*) FROM outbox");
  EXPECT_OK(st);
  if (!st.ok()) return -1;
  auto row = (*st)->Step();
  return row.ok() && *row ? (*st)->ColumnInt64(0) : -1;
}

// Format 3: each shift statement is one outbox row; expanded (and resolved from the earlier
// versions) it says exactly what the row-by-row capture of format 2 says.
TEST_F(SqliteCampaignStoreTest, AShiftIsOneOutboxRowThatExpandsToTheRowByRowChanges) {
  const std::string by_row = dir_.File("by_row.db");
  {
    auto a = Open();
    CampaignService sa(*a);
    Writes(sa);
    // The clock stands still: both files stamp the same commit times.
    auto b = OpenAt(by_row, CaptureSetting::kLog, OutboxRows::kCompact,
                    /*one_row_per_shift=*/false);
    CampaignService sb(*b);
    Writes(sb);
  }
  std::vector<std::string> expected = Canonical(OutboxAt(by_row));
  EXPECT_EQ(Canonical(Outbox()), expected);
  EXPECT_GT(expected.size(), 20u);
  EXPECT_LT(OutboxRowCount(path_), OutboxRowCount(by_row));
  // Raw, a shift's changes say only what changed.
  int shifted = 0;
  for (const CapturedChange& c : RawOutbox()) {
    if (!c.image_omitted) continue;
    ++shifted;
    EXPECT_EQ(c.op, ChangeOp::kUpdated);
    EXPECT_TRUE(c.row.content.empty());
    EXPECT_NE(c.priority_shift, 0);
  }
  EXPECT_GT(shifted, 10);
}

// A shift that moves nothing writes nothing; one whose campaigns are all captured row by row
// (a relayed, "full" outbox) leaves no shift row behind.
TEST_F(SqliteCampaignStoreTest, ShiftRowsOnlyWhereTheyStandForRows) {
  {
    auto store = Open();
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));  // shifts nothing
    EXPECT_EQ(OutboxRowCount(path_), 1);
  }
  ASSERT_OK(
      SetSqliteCapture(path_, {.mode = CaptureSetting::kLog, .rows = OutboxRows::kFull}).status());
  // A process that still thinks the outbox is compact: the full-row trigger captures every row.
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));
  for (const CapturedChange& c : RawOutbox()) {
    EXPECT_FALSE(c.image_omitted) << DebugString(c);
    EXPECT_FALSE(c.row.content.empty()) << DebugString(c);
  }
  EXPECT_EQ(OutboxRowCount(path_), 3);
}

// A shift row that does not say what it must is refused with DataLoss naming the row, not
// expanded into wrong versions.
TEST_F(SqliteCampaignStoreTest, CorruptShiftRowsAreDataLoss) {
  auto store = Open();
  CampaignService service(*store);
  for (int i = 0; i < 3; ++i) ASSERT_OK(service.Create(Draft(1, "x"), As("user:1")));
  // tx3: seq 4 = the shift of c1, c2 (to versions 3 and 2), seq 5 = c3 created.
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK_AND_ASSIGN(auto good, ReadOutbox(*db, 3, 100));
  ASSERT_EQ(good.size(), 3u);
  EXPECT_TRUE(good[0].image_omitted);
  const char* corruptions[] = {
      "content = ''",    "content = '1:3,2'",   "content = '1:3,x:2'", "content = '1:3,2:2,'",
      "content = '1:3'", "content = '1:1,2:2'", "content = '0:3,2:2'", "version = -1",
      "version = 0",     "version = 3",         "priority = 0",        "content = '1:3;2:2'",
  };
  for (const char* c : corruptions) {
    ASSERT_OK(db->Exec("SAVEPOINT corrupt"));
    ASSERT_OK(db->Exec(std::string("UPDATE outbox SET ") + c + " WHERE seq = 4"));
    EXPECT_THAT(
        ReadOutbox(*db, 0, 100),
        StatusIsWith(StatusCode::kDataLoss, "outbox row 4 (a priority shift of customer 1)"))
        << c;
    ASSERT_OK(db->Exec("ROLLBACK TO corrupt; RELEASE corrupt"));
  }
  ASSERT_OK_AND_ASSIGN(auto again, ReadOutbox(*db, 3, 100));
  EXPECT_EQ(again, good);
}

// A format-2 file with a backlog: opened by this code it becomes format 3 in place; its queued
// rows still read as they were, new shifts are single rows, and the chain of captured versions
// is not restarted (no campaign is listed in capture_baseline).
TEST_F(SqliteCampaignStoreTest, AFormat2BacklogStillDrainsAfterTheUpgrade) {
  {
    auto store = Open(CaptureSetting::kLog, OutboxRows::kCompact, /*one_row_per_shift=*/false);
    CampaignService service(*store);
    for (int i = 0; i < 3; ++i) ASSERT_OK(service.Create(Draft(1, "x"), As("user:1")));
  }
  const std::vector<CapturedChange> old_rows = Outbox();
  ASSERT_EQ(old_rows.size(), 6u);
  {
    // What format 2 wrote: no shift_seq column, version 2, an update trigger without the skip.
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
    ASSERT_OK(
        db->Exec("DROP TRIGGER campaigns_capture_update; "
                 "ALTER TABLE txn_context DROP COLUMN shift_seq; "
                 "UPDATE meta SET value = '2' WHERE key = 'outbox_version'"));
  }
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "y"), As("user:1")));  // shifts c1..c3: one row
  EXPECT_EQ(OutboxRowCount(path_), 8);
  std::vector<CapturedChange> all = Outbox();
  ASSERT_EQ(all.size(), 10u);
  EXPECT_EQ(std::vector<CapturedChange>(all.begin(), all.begin() + 6), old_rows);
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK_AND_ASSIGN(SqliteStmt * st,
                       db->Prepare("SELECT (SELECT value FROM meta WHERE key = 'outbox_version'), "
                                   "(SELECT count(*) FROM capture_baseline)"));
  ASSERT_OK_AND_ASSIGN(bool row, st->Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(st->ColumnString(0), "3");
  EXPECT_EQ(st->ColumnInt64(1), 0);
}

TEST_F(SqliteCampaignStoreTest, CommitTimesTransactionIdsAndIdsPersistAcrossReopen) {
  Timestamp first;
  {
    auto store = Open();
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
    ASSERT_OK_AND_ASSIGN(auto b, service.Create(Draft(1, "b"), As("user:1")));
    ASSERT_OK(service.Delete(2, As("user:1")));
    first = b.committed_at;
  }
  clock_.Advance(-std::chrono::hours(1));  // a restart with a clock that went back
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK_AND_ASSIGN(auto c, service.Create(Draft(1, "c"), As("user:1")));
  EXPECT_EQ(c.committed_at, first + Micros(2));
  EXPECT_EQ(c.transaction_id, "4");
  EXPECT_EQ(c.row->id, 3);  // 2 was deleted and is never reused
  Campaign again = Draft(1, "again");
  again.id = 2;
  EXPECT_THAT(service.Create(again, As("user:1")),
              StatusIsWith(StatusCode::kAlreadyExists, "never reused"));
}

// Replay positions live in the campaign file, beside the campaigns they describe: they survive a
// reopen, a file from before them gets the table, and they are never captured.
TEST_F(SqliteCampaignStoreTest, ReplayPositionsPersistAndAreNotCaptured) {
  {
    auto store = Open();
    CampaignService service(*store);
    WriteContext ctx = As("user:1");
    ctx.replay = ReplayAdvance{{"w1", 3, "d3", "a.jsonl", {}}, std::nullopt};
    ASSERT_OK(service.Create(Draft(1, "a"), ctx));
  }
  EXPECT_EQ(OutboxStrings().size(), 1u);
  {
    auto store = Open();
    ASSERT_OK_AND_ASSIGN(auto p, store->GetReplayPosition("w1"));
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->seq, 3);
    EXPECT_EQ(p->digest, "d3");
  }
  // A file written before replay positions existed.
  {
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
    ASSERT_OK(db->Exec("DROP TABLE replay_positions"));
  }
  auto store = Open();
  ASSERT_OK_AND_ASSIGN(auto none, store->GetReplayPosition("w1"));
  EXPECT_FALSE(none.has_value());
}

TEST_F(SqliteCampaignStoreTest, TwoConnectionsShareStampsAndSeeEachOthersCommits) {
  auto one = Open();
  auto two = Open();
  CampaignService s1(*one);
  CampaignService s2(*two);
  std::set<std::string> txns;
  Timestamp last{};
  for (int i = 0; i < 10; ++i) {
    auto& s = i % 2 == 0 ? s1 : s2;
    ASSERT_OK_AND_ASSIGN(auto info, s.Create(Draft(1, "x"), As("user:1")));
    EXPECT_GT(info.committed_at, last);
    last = info.committed_at;
    txns.insert(info.transaction_id);
    ASSERT_OK_AND_ASSIGN(auto seen, (i % 2 == 0 ? *two : *one).List(1));
    EXPECT_EQ(seen.size(), size_t(i + 1));
    EXPECT_EQ(seen.front().id, info.row->id);
  }
  EXPECT_EQ(txns.size(), 10u);
}

TEST_F(SqliteCampaignStoreTest, AnotherProcessWritesConsistently) {
  { auto store = Open(); }
  constexpr int kEach = 20;
  pid_t child = fork();
  ASSERT_NE(child, -1);
  if (child == 0) {
    // The child: its own store (and system clock) on the same file.
    SqliteCampaignStoreOptions o;
    o.path = path_;
    auto store = SqliteCampaignStore::Open(o);
    if (!store.ok()) _exit(2);
    CampaignService service(**store);
    for (int i = 0; i < kEach; ++i) {
      if (!service.Create(Draft(1, "child"), As("user:child")).ok()) _exit(3);
    }
    _exit(0);
  }
  {
    auto store = Open();
    CampaignService service(*store);
    for (int i = 0; i < kEach; ++i)
      ASSERT_OK(service.Create(Draft(1, "parent"), As("user:parent")));
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  auto store = Open();
  ASSERT_OK_AND_ASSIGN(auto rows, store->List(1));
  ASSERT_EQ(rows.size(), size_t{2 * kEach});
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].priority, int64_t(i + 1));
  // In commit (= seq) order, commit times strictly increase and transactions never interleave.
  auto outbox = Outbox();
  std::set<std::string> finished;
  for (size_t i = 1; i < outbox.size(); ++i) {
    const auto& prev = outbox[i - 1];
    const auto& cur = outbox[i];
    if (cur.transaction_id == prev.transaction_id) {
      EXPECT_EQ(cur.commit_time, prev.commit_time);
    } else {
      EXPECT_GT(cur.commit_time, prev.commit_time);
      EXPECT_GT(std::stoll(cur.transaction_id), std::stoll(prev.transaction_id));
      EXPECT_TRUE(finished.insert(prev.transaction_id).second)
          << "interleaved " << prev.transaction_id;
    }
  }
  // 40 creates: 40 inserts + 0 + 1 + ... + 39 shifted rows.
  EXPECT_EQ(outbox.size(), size_t{2 * kEach + (2 * kEach - 1) * 2 * kEach / 2});
}

TEST_F(SqliteCampaignStoreTest, OutboxSeqIsNeverReusedAfterEverythingIsConfirmed) {
  auto store = Open();
  CampaignService service(*store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));  // seq 2, 3
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK(ConfirmOutboxThrough(*db, {3, 3}));
  EXPECT_EQ(*CountUnconfirmed(*db), 0);
  EXPECT_EQ(ReadConfirmedPosition(*db)->seq, 3);
  // Even deleting by hand keeps the newest row, so the next change is seq 4, not 1.
  ASSERT_OK(db->Exec("DELETE FROM outbox"));
  ASSERT_OK(service.Create(Draft(1, "c"), As("user:1")));
  ASSERT_OK_AND_ASSIGN(auto rows, ReadOutbox(*db, 3, 100));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].seq, 4);
  EXPECT_EQ(*CountUnconfirmed(*db), 3);          // changes: the shift of a and b (one row), then c
  ASSERT_OK(ConfirmOutboxThrough(*db, {2, 2}));  // older: no-op
  EXPECT_EQ(ReadConfirmedPosition(*db)->seq, 3);
}

TEST_F(SqliteCampaignStoreTest, ReadOutboxNeverSplitsATransaction) {
  auto store = Open();
  CampaignService service(*store);
  for (int i = 0; i < 4; ++i) ASSERT_OK(service.Create(Draft(1, "x"), As("user:1")));
  // Rows (each shift is one, format 3): seq 1 (tx1) | 2,3 (tx2) | 4,5 (tx3) | 6,7 (tx4); the
  // changes of tx3 and tx4: 3 and 4.
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK_AND_ASSIGN(auto a, ReadOutbox(*db, 0, 2));
  EXPECT_EQ(a.size(), 3u);  // tx1 + the whole of tx2
  ASSERT_OK_AND_ASSIGN(auto b, ReadOutbox(*db, 3, 1));
  EXPECT_EQ(b.size(), 3u);  // the whole of tx3
  ASSERT_OK_AND_ASSIGN(auto c, ReadOutbox(*db, 5, 100));
  EXPECT_EQ(c.size(), 4u);
  ASSERT_OK_AND_ASSIGN(auto d, ReadOutbox(*db, 7, 100));
  EXPECT_TRUE(d.empty());
}

TEST_F(SqliteCampaignStoreTest, SyncCommittedFsyncsWhatNormalCommitsLeftUnsynced) {
  testing::SqliteSyncCounter syncs;
  {
    auto store = Open(CaptureSetting::kNone);  // synchronous=NORMAL, the default
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
    const int64_t before = syncs.wal_syncs();
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
    ASSERT_EQ(syncs.wal_syncs(), before);
    ASSERT_OK(store->SyncCommitted());
    EXPECT_EQ(syncs.wal_syncs(), before + 1);
  }
}

TEST_F(SqliteCampaignStoreTest, RejectsNewerSchemasAndBadOptions) {
  { auto store = Open(); }
  {
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
    ASSERT_OK(db->Exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'"));
  }
  SqliteCampaignStoreOptions o;
  o.path = path_;
  EXPECT_THAT(SqliteCampaignStore::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition, "schema version 99"));
  o.path = dir_.File("other.db");
  o.synchronous = "SOMETIMES";
  EXPECT_THAT(SqliteCampaignStore::Open(o),
              StatusIsWith(StatusCode::kInvalidArgument, "synchronous"));
  o.synchronous = "full";
  EXPECT_OK(SqliteCampaignStore::Open(o));
  o.path = "";
  EXPECT_THAT(SqliteCampaignStore::Open(o), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(SqliteCampaignStoreTest, PageSizeAppliesToNewFiles) {
  SqliteCampaignStoreOptions o;
  o.path = path_;
  o.page_size = 16384;
  { ASSERT_OK(SqliteCampaignStore::Open(o)); }
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  ASSERT_OK_AND_ASSIGN(auto st, db->Prepare("PRAGMA page_size"));
  ASSERT_OK_AND_ASSIGN(bool row, st->Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(st->ColumnInt64(0), 16384);
  st->Reset();
  ASSERT_OK_AND_ASSIGN(auto mode, db->Prepare("PRAGMA journal_mode"));
  ASSERT_OK_AND_ASSIGN(row, mode->Step());
  EXPECT_EQ(mode->ColumnString(0), "wal");
  mode->Reset();
}

TEST_F(SqliteCampaignStoreTest, ExpiryAndPriorityQueriesUseTheirIndexes) {
  auto store = Open();
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(path_));
  auto plan = [&](const std::string& sql) {
    auto st = db->Prepare("EXPLAIN QUERY PLAN " + sql);
    EXPECT_OK(st);
    std::string out;
    if (!st.ok()) return out;
    while (true) {
      auto row = (*st)->Step();
      if (!row.ok() || !*row) break;
      out += (*st)->ColumnString(3) + "; ";
    }
    (*st)->Reset();
    return out;
  };
  EXPECT_THAT(plan("SELECT * FROM campaigns WHERE status = 'active' AND end_at IS NOT NULL AND "
                   "end_at <= 5 ORDER BY end_at, id LIMIT 10"),
              ::testing::HasSubstr("campaigns_active_by_end"));
  EXPECT_THAT(plan("UPDATE campaigns SET priority = priority + 1 WHERE customer_id = 1 AND "
                   "priority >= 1 AND priority <= 9"),
              ::testing::HasSubstr("campaigns_by_customer_priority"));
}

}  // namespace
}  // namespace ch
