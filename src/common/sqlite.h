// A thin RAII wrapper over the sqlite3 C API, shared by every module that keeps a SQLite file
// (campaign store, outbox capture, embedded bus, history store).
//
// sqlite3.h stays out of this header (forward declarations only); errors come back as Status
// through one translation (SqliteToStatus in sqlite.cc):
//   BUSY/LOCKED -> Unavailable, CONSTRAINT -> AlreadyExists, CORRUPT/NOTADB -> DataLoss,
//   FULL -> ResourceExhausted, CANTOPEN -> Unavailable, others -> Internal.
//
// Thread-safety: a SqliteDb (and its statements) must be used by one thread at a time; callers
// serialize access. Separate SqliteDb objects on the same file may be used concurrently (SQLite's
// own file locking applies; WAL mode lets readers proceed during a write).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/timed_mutex.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ch {

class SqliteStmt {
 public:
  SqliteStmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;
  ~SqliteStmt();

  // Bind parameters (1-based, as in SQLite). Text is copied (SQLITE_TRANSIENT).
  SqliteStmt& Bind(int idx, int64_t v);
  SqliteStmt& Bind(int idx, int v) { return Bind(idx, static_cast<int64_t>(v)); }
  SqliteStmt& Bind(int idx, std::string_view v);
  SqliteStmt& Bind(int idx, const char* v) { return Bind(idx, std::string_view(v)); }
  SqliteStmt& Bind(int idx, const std::string& v) { return Bind(idx, std::string_view(v)); }
  SqliteStmt& BindBlob(int idx, std::string_view v);
  SqliteStmt& BindNull(int idx);
  SqliteStmt& Bind(int idx, const std::optional<int64_t>& v) {
    return v ? Bind(idx, *v) : BindNull(idx);
  }
  SqliteStmt& Bind(int idx, const std::optional<std::string>& v) {
    return v ? Bind(idx, std::string_view(*v)) : BindNull(idx);
  }

  // Advance. Return true when a row is available, false when done.
  Result<bool> Step();
  // Step until done, expecting no rows (INSERT/UPDATE/DELETE). Resets the statement afterwards.
  Status Run();

  int64_t ColumnInt64(int col) const;
  double ColumnDouble(int col) const;
  // The view is valid until the next Step/Reset.
  std::string_view ColumnText(int col) const;
  std::string ColumnString(int col) const { return std::string(ColumnText(col)); }
  bool ColumnIsNull(int col) const;
  std::optional<int64_t> ColumnOptInt64(int col) const {
    return ColumnIsNull(col) ? std::nullopt : std::optional<int64_t>(ColumnInt64(col));
  }
  std::optional<std::string> ColumnOptString(int col) const {
    return ColumnIsNull(col) ? std::nullopt : std::optional<std::string>(ColumnString(col));
  }

  // Reset for re-execution and clear bindings.
  void Reset();

 private:
  sqlite3* db_;         // not owned
  sqlite3_stmt* stmt_;  // owned
};

struct SqliteOptions {
  // Open read-only (no schema changes, no writes). Default: false.
  bool read_only = false;
  // Journal mode WAL: readers never block the writer. Default: true.
  bool wal = true;
  // PRAGMA synchronous: "FULL" survives power loss at every commit; "NORMAL" (with WAL) survives
  // process crashes and may lose the last commits on power loss. Default: "FULL".
  std::string synchronous = "FULL";
  // How long a statement waits for another connection's lock. Default: 10000 ms.
  int busy_timeout_ms = 10000;
  // Page cache size in KiB (PRAGMA cache_size = -N). Default: 32768 (32 MiB).
  int cache_kib = 32768;
  // Memory-mapped I/O limit in KiB (PRAGMA mmap_size): reads of pages within it come straight
  // from the OS page cache, without a copy into SQLite's cache. 0 = off. Default: 0.
  int64_t mmap_kib = 0;
};

class SqliteDb {
 public:
  // Open (creating when allowed) the database at `path`. Fails with Unavailable when the file
  // cannot be opened, naming the path.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path,
                                                const SqliteOptions& options = {});
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;
  ~SqliteDb();

  // Run one or more statements that return no rows.
  Status Exec(std::string_view sql);

  // Return a prepared statement cached by its SQL text (reset and ready to bind). The pointer
  // stays valid for the lifetime of this SqliteDb.
  Result<SqliteStmt*> Prepare(const std::string& sql);

  // Make every transaction committed to this database so far -- by any connection, in any
  // process -- survive a power loss, as synchronous=FULL would have made each of them: fsync the
  // WAL file. With synchronous=NORMAL (writers that do not sync at each commit), committed frames
  // may sit in the OS page cache; an fsync of the file flushes all of them, whoever wrote them,
  // and the older frames a checkpoint already copied are in the database file, which a completed
  // checkpoint syncs before the WAL is reused. Holds no SQLite lock: writers are not held up.
  // Fails with FailedPrecondition when the database is not in WAL mode, with the fsync's error
  // otherwise (Unavailable for an I/O error).
  Status SyncWal();

  int64_t LastInsertRowId() const;
  int64_t Changes() const;
  const std::string& path() const { return path_; }

  // Translate a sqlite3 result code into a Status, with `what` as context.
  Status ToStatus(int rc, std::string_view what) const;

  // The in-process writer lock of this database file, shared by every SqliteDb of this process
  // on the same file (null for in-memory databases). Write transactions take it before
  // BEGIN IMMEDIATE so that writers in one process queue on a mutex instead of polling SQLite's
  // file lock (whose busy handler sleeps in steps of milliseconds).
  TimedMutex* writer_mutex() const { return writer_mutex_.get(); }
  int busy_timeout_ms() const { return busy_timeout_ms_; }

 private:
  SqliteDb(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;  // owned
  std::string path_;
  std::shared_ptr<TimedMutex> writer_mutex_;
  int busy_timeout_ms_ = 0;
  std::map<std::string, std::unique_ptr<SqliteStmt>, std::less<>> cache_;
};

// RAII transaction: BEGIN IMMEDIATE (takes the write lock at once, after the file's in-process
// writer mutex) or BEGIN DEFERRED on construction through Begin(); rolls back on destruction
// unless Commit() succeeded.
class SqliteTransaction {
 public:
  // REQUIRES: `db` outlives the transaction.
  static Result<std::unique_ptr<SqliteTransaction>> Begin(SqliteDb& db, bool immediate = true);
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  ~SqliteTransaction();
  Status Commit();
  void Rollback();

 private:
  explicit SqliteTransaction(SqliteDb& db) : db_(db) {}
  SqliteDb& db_;
  bool open_ = true;
  std::unique_lock<TimedMutex> writer_lock_;  // held until commit or rollback
};

}  // namespace ch
