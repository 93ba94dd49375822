#include "common/sqlite.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <thread>

namespace ch {

namespace {

// One writer mutex per database file in this process (see SqliteDb::writer_mutex).
std::shared_ptr<TimedMutex> WriterMutexFor(const std::string& path) {
  static std::mutex mu;
  static auto* mutexes = new std::map<std::string, std::weak_ptr<TimedMutex>>();
  std::error_code ec;
  std::string key = std::filesystem::weakly_canonical(path, ec).string();
  if (ec || key.empty()) key = path;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = (*mutexes)[key];
  std::shared_ptr<TimedMutex> m = slot.lock();
  if (!m) {
    m = std::make_shared<TimedMutex>();
    slot = m;
  }
  return m;
}

// Wait for another process's lock in short steps (SQLite's default handler sleeps 1, 2, 5, 10,
// ... 100 ms, which turns every collision into milliseconds of latency).
int BusyHandler(void* arg, int count) {
  const int timeout_ms = *static_cast<const int*>(arg);
  // 50 us, 100 us, 200 us, ... capped at 2 ms; the total waited so far is the sum.
  auto step = [](int i) { return std::min<int64_t>(50LL << std::min(i, 5), 2000); };
  int64_t waited_us = 0;
  for (int i = 0; i < count; ++i) waited_us += step(i);
  if (waited_us >= int64_t{timeout_ms} * 1000) return 0;
  std::this_thread::sleep_for(std::chrono::microseconds(step(count)));
  return 1;
}

Status TranslateSqlite(int rc, std::string_view what, const char* detail) {
  std::string msg =
      fmt::format("{}: {} ({})", what, detail ? detail : sqlite3_errstr(rc), sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
      return Status::OK();
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_PROTOCOL:
      return UnavailableError(std::move(msg));
    case SQLITE_CONSTRAINT:
      return AlreadyExistsError(std::move(msg));
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return DataLossError(std::move(msg));
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return ResourceExhaustedError(std::move(msg));
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH:
      return PermissionDeniedError(std::move(msg));
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
      return InvalidArgumentError(std::move(msg));
    default:
      return InternalError(std::move(msg));
  }
}
}  // namespace

SqliteStmt::~SqliteStmt() { sqlite3_finalize(stmt_); }

SqliteStmt& SqliteStmt::Bind(int idx, int64_t v) {
  sqlite3_bind_int64(stmt_, idx, v);
  return *this;
}
SqliteStmt& SqliteStmt::Bind(int idx, std::string_view v) {
  sqlite3_bind_text(stmt_, idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStmt& SqliteStmt::BindBlob(int idx, std::string_view v) {
  sqlite3_bind_blob(stmt_, idx, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}
SqliteStmt& SqliteStmt::BindNull(int idx) {
  sqlite3_bind_null(stmt_, idx);
  return *this;
}

Result<bool> SqliteStmt::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  Status s = TranslateSqlite(rc, sqlite3_sql(stmt_), sqlite3_errmsg(db_));
  sqlite3_reset(stmt_);
  return s;
}

Status SqliteStmt::Run() {
  Result<bool> r = Step();
  while (r.ok() && *r) r = Step();
  Reset();
  return r.status();
}

int64_t SqliteStmt::ColumnInt64(int col) const { return sqlite3_column_int64(stmt_, col); }
double SqliteStmt::ColumnDouble(int col) const { return sqlite3_column_double(stmt_, col); }
std::string_view SqliteStmt::ColumnText(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (p == nullptr) return {};
  return std::string_view(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}
bool SqliteStmt::ColumnIsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}
void SqliteStmt::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path,
                                                 const SqliteOptions& options) {
  sqlite3* raw = nullptr;
  int flags =
      options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string detail = raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
    sqlite3_close(raw);
    return UnavailableError(fmt::format("cannot open SQLite database '{}': {}", path, detail));
  }
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw, path));
  db->busy_timeout_ms_ = options.busy_timeout_ms;
  sqlite3_busy_handler(raw, BusyHandler, &db->busy_timeout_ms_);
  if (!path.empty() && path != ":memory:" && path.rfind("file::memory:", 0) != 0) {
    db->writer_mutex_ = WriterMutexFor(path);
  }
  sqlite3_extended_result_codes(raw, 1);
  std::string pragmas =
      fmt::format("PRAGMA cache_size=-{}; PRAGMA foreign_keys=ON;", options.cache_kib);
  if (options.mmap_kib > 0) pragmas += fmt::format("PRAGMA mmap_size={};", options.mmap_kib * 1024);
  if (!options.read_only) {
    if (options.wal) pragmas += "PRAGMA journal_mode=WAL;";
    pragmas += fmt::format("PRAGMA synchronous={};", options.synchronous);
  }
  // Switching to WAL needs the file to itself for a moment, and the pragma can fail with
  // SQLITE_BUSY without the busy handler having waited (seen: a second publisher process opening
  // the history file another one was creating): retry until the busy timeout, as every other
  // statement waits.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
  Status s = db->Exec(pragmas);
  for (int i = 0;
       s.code() == StatusCode::kUnavailable && std::chrono::steady_clock::now() < deadline; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(std::min(100 << std::min(i, 6), 5000)));
    s = db->Exec(pragmas);
  }
  if (!s.ok()) return s.WithContext(fmt::format("cannot open SQLite database '{}'", path));
  return db;
}

SqliteDb::~SqliteDb() {
  cache_.clear();  // finalize statements before closing
  sqlite3_close(db_);
}

Status SqliteDb::Exec(std::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return Status::OK();
  Status s = TranslateSqlite(rc, fmt::format("SQLite error in '{}'", path_), err);
  sqlite3_free(err);
  return s;
}

Result<SqliteStmt*> SqliteDb::Prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it != cache_.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    return TranslateSqlite(rc, fmt::format("cannot prepare '{}'", sql), sqlite3_errmsg(db_));
  }
  auto owned = std::make_unique<SqliteStmt>(db_, stmt);
  SqliteStmt* p = owned.get();
  cache_.emplace(sql, std::move(owned));
  return p;
}

Status SqliteDb::SyncWal() {
  auto wal_file = [this]() -> Result<sqlite3_file*> {
    sqlite3_file* f = nullptr;
    int rc = sqlite3_file_control(db_, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f);
    if (rc != SQLITE_OK) return ToStatus(rc, fmt::format("'{}': find the WAL file", path_));
    return f != nullptr && f->pMethods != nullptr ? f : nullptr;
  };
  ASSIGN_OR_RETURN(sqlite3_file * wal, wal_file());
  if (wal == nullptr) {
    // A connection opens the WAL file when it first reads the database.
    RETURN_IF_ERROR(Exec("SELECT 1 FROM sqlite_master LIMIT 1"));
    ASSIGN_OR_RETURN(wal, wal_file());
  }
  ASSIGN_OR_RETURN(SqliteStmt * mode, Prepare("PRAGMA journal_mode"));
  ASSIGN_OR_RETURN(bool row, mode->Step());
  const bool in_wal = row && mode->ColumnText(0) == "wal";
  mode->Reset();
  if (!in_wal || wal == nullptr) {
    return FailedPreconditionError(
        fmt::format("'{}' is not in WAL mode: there is no WAL file to sync", path_));
  }
  int rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) return ToStatus(rc, fmt::format("'{}': fsync of the WAL file", path_));
  return Status::OK();
}

int64_t SqliteDb::LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
int64_t SqliteDb::Changes() const { return sqlite3_changes64(db_); }

Status SqliteDb::ToStatus(int rc, std::string_view what) const {
  return TranslateSqlite(rc, what, sqlite3_errmsg(db_));
}

Result<std::unique_ptr<SqliteTransaction>> SqliteTransaction::Begin(SqliteDb& db, bool immediate) {
  std::unique_lock<TimedMutex> writer;
  if (immediate && db.writer_mutex() != nullptr) {
    writer = std::unique_lock<TimedMutex>(*db.writer_mutex(), std::defer_lock);
    if (!writer.try_lock_for(std::chrono::milliseconds(db.busy_timeout_ms()))) {
      return UnavailableError(
          fmt::format("'{}': another writer in this process held the database for more than {} ms",
                      db.path(), db.busy_timeout_ms()));
    }
  }
  RETURN_IF_ERROR(db.Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED"));
  std::unique_ptr<SqliteTransaction> tx(new SqliteTransaction(db));
  tx->writer_lock_ = std::move(writer);
  return tx;
}

SqliteTransaction::~SqliteTransaction() { Rollback(); }

Status SqliteTransaction::Commit() {
  if (!open_) return FailedPreconditionError("transaction already finished");
  Status s = db_.Exec("COMMIT");
  if (s.ok()) {
    open_ = false;
    if (writer_lock_.owns_lock()) writer_lock_.unlock();
  }
  return s;
}

void SqliteTransaction::Rollback() {
  if (!open_) return;
  open_ = false;
  db_.Exec("ROLLBACK").IgnoreError();
  if (writer_lock_.owns_lock()) writer_lock_.unlock();
}

}  // namespace ch
