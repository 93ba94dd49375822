#include "common/sqlite.h"

#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "testing/sqlite_sync_counter.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::SqliteSyncCounter;
using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::ch::testing::TempDir;

TEST(SqliteTest, PreparesBindsAndReads) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir.File("t.db")));
  ASSERT_OK(db->Exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)"));
  ASSERT_OK_AND_ASSIGN(SqliteStmt * ins, db->Prepare("INSERT INTO t(k, v) VALUES (?1, ?2)"));
  ASSERT_OK(ins->Bind(1, int64_t{1}).Bind(2, "caf\xc3\xa9").Run());
  ASSERT_OK(ins->Bind(1, int64_t{2}).BindNull(2).Run());
  EXPECT_THAT(ins->Bind(1, int64_t{1}).Bind(2, "dup").Run(), StatusIs(StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(SqliteStmt * sel, db->Prepare("SELECT k, v FROM t ORDER BY k"));
  ASSERT_OK_AND_ASSIGN(bool row, sel->Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(sel->ColumnInt64(0), 1);
  EXPECT_EQ(sel->ColumnText(1), "caf\xc3\xa9");
  ASSERT_OK_AND_ASSIGN(row, sel->Step());
  ASSERT_TRUE(row);
  EXPECT_TRUE(sel->ColumnIsNull(1));
  ASSERT_OK_AND_ASSIGN(row, sel->Step());
  EXPECT_FALSE(row);
}

TEST(SqliteTest, TransactionRollsBackUnlessCommitted) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir.File("t.db")));
  ASSERT_OK(db->Exec("CREATE TABLE t(k INTEGER)"));
  {
    ASSERT_OK_AND_ASSIGN(auto tx, SqliteTransaction::Begin(*db));
    ASSERT_OK(db->Exec("INSERT INTO t VALUES (1)"));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto tx, SqliteTransaction::Begin(*db));
    ASSERT_OK(db->Exec("INSERT INTO t VALUES (2)"));
    ASSERT_OK(tx->Commit());
  }
  ASSERT_OK_AND_ASSIGN(SqliteStmt * sel, db->Prepare("SELECT group_concat(k) FROM t"));
  ASSERT_OK_AND_ASSIGN(bool row, sel->Step());
  ASSERT_TRUE(row);
  EXPECT_EQ(sel->ColumnText(0), "2");
}

TEST(SqliteTest, SyncWalFsyncsWhatNormalCommitsLeftInTheOsCache) {
  SqliteSyncCounter counter;
  TempDir dir;
  SqliteOptions normal;
  normal.synchronous = "NORMAL";
  {
    ASSERT_OK_AND_ASSIGN(auto writer, SqliteDb::Open(dir.File("t.db"), normal));
    ASSERT_OK(writer->Exec("CREATE TABLE t(k INTEGER)"));
    const int64_t before = counter.wal_syncs();
    for (int i = 0; i < 5; ++i) ASSERT_OK(writer->Exec("INSERT INTO t VALUES (1)"));
    // The premise: commits at synchronous=NORMAL do not fsync the WAL.
    EXPECT_EQ(counter.wal_syncs(), before);
    // Another connection (the relay's) makes them durable, without writing anything.
    ASSERT_OK_AND_ASSIGN(auto other, SqliteDb::Open(dir.File("t.db"), normal));
    ASSERT_OK(other->SyncWal());
    EXPECT_EQ(counter.wal_syncs(), before + 1);
    // The counter sees real WAL fsyncs: a commit at synchronous=FULL makes one.
    ASSERT_OK_AND_ASSIGN(auto full, SqliteDb::Open(dir.File("t.db")));
    ASSERT_OK(full->Exec("INSERT INTO t VALUES (2)"));
    EXPECT_EQ(counter.wal_syncs(), before + 2);
  }
}

TEST(SqliteTest, SyncWalRefusesADatabaseNotInWalMode) {
  TempDir dir;
  SqliteOptions rollback;
  rollback.wal = false;
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir.File("t.db"), rollback));
  ASSERT_OK(db->Exec("CREATE TABLE t(k INTEGER); INSERT INTO t VALUES (1)"));
  EXPECT_THAT(db->SyncWal(), StatusIsWith(StatusCode::kFailedPrecondition, "not in WAL mode"));
}

TEST(SqliteTest, OpenFailureNamesThePath) {
  auto r = SqliteDb::Open("/nonexistent-dir/x/y.db");
  EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable));
  EXPECT_NE(r.status().message().find("/nonexistent-dir/x/y.db"), std::string::npos);
}

TEST(SqliteTest, BadSqlIsAnError) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir.File("t.db")));
  EXPECT_FALSE(db->Exec("SELEC nonsense").ok());
  EXPECT_FALSE(db->Prepare("SELECT * FROM missing").ok());
}

// A full disk and a read-only file are the store's state, not a problem of what is written:
// a bus consumer must hold its messages for them (ClassifyFailure), never dead-letter them.
TEST(SqliteTest, FullAndReadOnlyDatabasesAreDependencyFailures) {
  TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir.File("t.db")));
  ASSERT_OK(db->Exec("CREATE TABLE t(v BLOB)"));
  ASSERT_OK(db->Exec("PRAGMA max_page_count = 20"));  // what a full disk looks like to SQLite
  ASSERT_OK_AND_ASSIGN(SqliteStmt * ins, db->Prepare("INSERT INTO t(v) VALUES (?1)"));
  Status full = ins->BindBlob(1, std::string(200000, 'x')).Run();
  EXPECT_THAT(full, StatusIs(StatusCode::kResourceExhausted));
  EXPECT_EQ(ClassifyFailure(full.code()), FailureKind::kDependency) << full.ToString();
  EXPECT_NE(full.message().find("full"), std::string::npos) << full.ToString();
  db.reset();

  ASSERT_OK_AND_ASSIGN(auto ro, SqliteDb::Open(dir.File("t.db"), {.read_only = true}));
  Status read_only = ro->Exec("INSERT INTO t(v) VALUES (x'00')");
  EXPECT_FALSE(read_only.ok());
  EXPECT_EQ(ClassifyFailure(read_only.code()), FailureKind::kDependency) << read_only.ToString();
  EXPECT_NE(read_only.message().find("readonly"), std::string::npos) << read_only.ToString();
}

// Processes opening the same new file at once (two publishers sharing a history store) must all
// get it: switching to WAL waits for the others instead of failing with "database is locked".
TEST(SqliteTest, ConcurrentOpensOfANewFileInSeparateProcessesAllSucceed) {
  for (int round = 0; round < 5; ++round) {
    TempDir dir;
    const std::string path = dir.File("shared.db");
    std::vector<pid_t> children;
    for (int i = 0; i < 6; ++i) {
      pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        auto db = SqliteDb::Open(path, {});
        if (!db.ok()) _exit(1);
        // As a store's Open does: create the schema in a transaction that takes a while.
        auto tx = SqliteTransaction::Begin(**db);
        if (!tx.ok()) _exit(2);
        if (!(*db)->Exec("CREATE TABLE IF NOT EXISTS t (x INTEGER)").ok()) _exit(3);
        usleep(20000);
        _exit((*tx)->Commit().ok() ? 0 : 4);
      }
      children.push_back(pid);
    }
    for (pid_t pid : children) {
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
          << "round " << round << ": a concurrent open failed (exit " << WEXITSTATUS(status) << ")";
    }
  }
}

}  // namespace
}  // namespace ch
