#include "campaign/sqlite_campaign_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <iterator>
#include <limits>
#include <mutex>
#include <unordered_set>
#include <utility>

#include "campaign/sqlite_capture_internal.h"
#include "campaign/sqlite_schema_internal.h"
#include "common/sqlite.h"

namespace ch {

using sqlite_schema::StmtReset;

namespace {

constexpr char kSelectCampaign[] = "SELECT " CH_CAMPAIGN_COLUMNS " FROM campaigns ";
constexpr size_t kMaxIdleReaders = 4;

Status ReadCampaigns(SqliteStmt* st, std::vector<Campaign>& out) {
  StmtReset reset(st);
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return Status::OK();
    ASSIGN_OR_RETURN(Campaign c, sqlite_schema::ReadCampaignColumns(*st, 0));
    out.push_back(std::move(c));
  }
}

Result<std::optional<Campaign>> ReadOneCampaign(SqliteStmt* st) {
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<Campaign>();
  ASSIGN_OR_RETURN(Campaign c, sqlite_schema::ReadCampaignColumns(*st, 0));
  return std::optional<Campaign>(std::move(c));
}

Result<std::optional<int64_t>> ReadOneInt(SqliteStmt* st) {
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row || st->ColumnIsNull(0)) return std::optional<int64_t>();
  return std::optional<int64_t>(st->ColumnInt64(0));
}

Result<std::optional<int64_t>> QueryInt(SqliteDb& db, const std::string& sql) {
  ASSIGN_OR_RETURN(SqliteStmt * st, db.Prepare(sql));
  return ReadOneInt(st);
}

}  // namespace

struct SqliteCampaignStore::Impl {
  SqliteCampaignStoreOptions options;
  Clock* clock = nullptr;
  // Log capture with compact rows: shifts are captured as one outbox row (format 3).
  bool shift_rows = false;

  // Held by the open write transaction for its whole lifetime; guards `writer`.
  TimedMutex writer_mu;
  std::unique_ptr<SqliteDb> writer;

  std::mutex readers_mu;
  std::vector<std::unique_ptr<SqliteDb>> idle_readers;  // guarded by readers_mu

  // A read-only connection borrowed from the pool for one call.
  class Reader {
   public:
    Reader(Impl& impl, std::unique_ptr<SqliteDb> db) : impl_(impl), db_(std::move(db)) {}
    Reader(Reader&&) = default;
    ~Reader() {
      if (db_ == nullptr) return;
      std::lock_guard lock(impl_.readers_mu);
      if (impl_.idle_readers.size() < kMaxIdleReaders) impl_.idle_readers.push_back(std::move(db_));
    }
    SqliteDb& db() { return *db_; }

   private:
    Impl& impl_;
    std::unique_ptr<SqliteDb> db_;
  };

  Result<Reader> AcquireReader() {
    {
      std::lock_guard lock(readers_mu);
      if (!idle_readers.empty()) {
        auto db = std::move(idle_readers.back());
        idle_readers.pop_back();
        return Reader(*this, std::move(db));
      }
    }
    SqliteOptions o;
    o.read_only = true;
    o.busy_timeout_ms = options.busy_timeout_ms;
    o.cache_kib = options.cache_kib;
    ASSIGN_OR_RETURN(auto db, SqliteDb::Open(options.path, o));
    return Reader(*this, std::move(db));
  }
};

// ---- the write transaction ---------------------------------------------------------------------

namespace {

class SqliteCampaignTransaction final : public CampaignTransaction {
 public:
  SqliteCampaignTransaction(std::unique_lock<TimedMutex> lock, SqliteDb& db,
                            std::unique_ptr<SqliteTransaction> tx, Timestamp commit_time,
                            int64_t txn_id, std::string actor, bool shift_rows)
      : lock_(std::move(lock)),
        db_(db),
        tx_(std::move(tx)),
        commit_time_(commit_time),
        txn_id_(txn_id),
        transaction_id_(std::to_string(txn_id)),
        context_actor_(std::move(actor)),
        shift_rows_(shift_rows) {}

  // Members are destroyed in reverse order: the SQLite transaction rolls back (when still open)
  // before the writer lock is released.
  ~SqliteCampaignTransaction() override = default;

  Timestamp commit_time() const override { return commit_time_; }
  const std::string& transaction_id() const override { return transaction_id_; }

  Result<std::optional<Campaign>> Get(int64_t id) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(SqliteStmt * st, db_.Prepare(std::string(kSelectCampaign) + "WHERE id = ?1"));
    st->Bind(1, id);
    return ReadOneCampaign(st);
  }

  Result<int64_t> CountCustomer(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(SqliteStmt * st,
                     db_.Prepare("SELECT count(*) FROM campaigns WHERE customer_id = ?1"));
    st->Bind(1, customer_id);
    ASSIGN_OR_RETURN(auto n, ReadOneInt(st));
    return n.value_or(0);
  }

  Result<std::vector<Campaign>> List(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(SqliteStmt * st, db_.Prepare(std::string(kSelectCampaign) +
                                                  "WHERE customer_id = ?1 ORDER BY priority, id"));
    st->Bind(1, customer_id);
    std::vector<Campaign> out;
    RETURN_IF_ERROR(ReadCampaigns(st, out));
    return out;
  }

  Result<int64_t> AllocateId() override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(auto id, QueryInt(db_,
                                       "UPDATE txn_context SET max_id = max_id + 1 WHERE id = 1 "
                                       "RETURNING max_id"));
    if (!id) return InternalError("txn_context row is missing");
    return *id;
  }

  Status Insert(const Campaign& row) override {
    RETURN_IF_ERROR(CheckOpen());
    if (row.id <= 0)
      return InvalidArgumentError(fmt::format("id: must be positive (got {})", row.id));
    {
      ASSIGN_OR_RETURN(SqliteStmt * st,
                       db_.Prepare("SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = ?1), "
                                   "EXISTS (SELECT 1 FROM deleted_campaigns WHERE id = ?1)"));
      st->Bind(1, row.id);
      StmtReset reset(st);
      ASSIGN_OR_RETURN(bool found, st->Step());
      if (found && st->ColumnInt64(0) != 0) {
        return AlreadyExistsError(fmt::format("campaign {} already exists", row.id));
      }
      if (found && st->ColumnInt64(1) != 0) {
        return AlreadyExistsError(
            fmt::format("campaign id {} was used before (ids are never reused)", row.id));
      }
    }
    ASSIGN_OR_RETURN(SqliteStmt * ins,
                     db_.Prepare("INSERT INTO campaigns (" CH_CAMPAIGN_COLUMNS
                                 ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                                 "?13, ?14, ?15)"));
    sqlite_schema::BindCampaignColumns(*ins, 1, row);
    RETURN_IF_ERROR(ins->Run());
    ASSIGN_OR_RETURN(
        SqliteStmt * max,
        db_.Prepare("UPDATE txn_context SET max_id = ?1 WHERE id = 1 AND max_id < ?1"));
    max->Bind(1, row.id);
    return max->Run();
  }

  Status Replace(const Campaign& row) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(
        SqliteStmt * st,
        db_.Prepare("UPDATE campaigns SET customer_id = ?2, name = ?3, status = ?4, priority = ?5, "
                    "trigger_event = ?6, audience_segment = ?7, start_at = ?8, end_at = ?9, "
                    "frequency_cap = ?10, content = ?11, version = ?12, created_at = ?13, "
                    "updated_at = ?14, updated_by = ?15 WHERE id = ?1"));
    sqlite_schema::BindCampaignColumns(*st, 1, row);
    RETURN_IF_ERROR(st->Run());
    if (db_.Changes() == 0) return NotFoundError(fmt::format("campaign {} not found", row.id));
    return Status::OK();
  }

  Status Remove(int64_t id, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    if (actor != context_actor_) {
      // The delete trigger takes the actor from the context row (the row itself names the
      // previous writer).
      RETURN_IF_ERROR(ValidateActor(actor));
      ASSIGN_OR_RETURN(SqliteStmt * st,
                       db_.Prepare("UPDATE txn_context SET actor = ?1 WHERE id = 1"));
      st->Bind(1, actor);
      RETURN_IF_ERROR(st->Run());
      context_actor_ = std::string(actor);
    }
    ASSIGN_OR_RETURN(SqliteStmt * del, db_.Prepare("DELETE FROM campaigns WHERE id = ?1"));
    del->Bind(1, id);
    RETURN_IF_ERROR(del->Run());
    if (db_.Changes() == 0) return NotFoundError(fmt::format("campaign {} not found", id));
    ASSIGN_OR_RETURN(SqliteStmt * mark,
                     db_.Prepare("INSERT OR IGNORE INTO deleted_campaigns (id) VALUES (?1)"));
    mark->Bind(1, id);
    return mark->Run();
  }

  Result<std::vector<RowChange>> Shift(int64_t customer_id, int64_t delta, int64_t lo,
                                       std::optional<int64_t> hi, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    if (!shift_rows_ || delta == 0) return ShiftRows(customer_id, delta, lo, hi, actor);
    ASSIGN_OR_RETURN(bool any, AnyInRange(customer_id, lo, hi));
    if (!any) return std::vector<RowChange>();
    shift_unfinished_ = true;
    ASSIGN_OR_RETURN(int64_t shift_seq, OpenShiftRow(customer_id, delta, actor));
    Result<std::vector<RowChange>> out = ShiftRows(customer_id, delta, lo, hi, actor);
    if (!out.ok()) {
      // The caller rolls the transaction back; even so, never leave shift_seq set (while it is,
      // the update trigger skips version + 1 updates).
      (void)SetShiftSeq(0);
      return out;
    }
    RETURN_IF_ERROR(CloseShiftRow(shift_seq, *out));
    shift_unfinished_ = false;
    return out;
  }

  Status AdvanceReplay(const ReplayAdvance& advance) override;
  Status Commit() override;

 private:
  Status CheckOpen() const {
    if (tx_ == nullptr) return FailedPreconditionError("transaction already finished");
    return Status::OK();
  }

  Result<bool> AnyInRange(int64_t customer_id, int64_t lo, std::optional<int64_t> hi) {
    ASSIGN_OR_RETURN(SqliteStmt * st,
                     db_.Prepare("SELECT EXISTS (SELECT 1 FROM campaigns WHERE customer_id = ?1 "
                                 "AND priority >= ?2 AND priority <= ?3)"));
    st->Bind(1, customer_id).Bind(2, lo).Bind(3, hi.value_or(std::numeric_limits<int64_t>::max()));
    ASSIGN_OR_RETURN(std::optional<int64_t> any, ReadOneInt(st));
    return any.value_or(0) != 0;
  }

  // Insert the (still open: version -1) shift row and name it in txn_context, so that the
  // update trigger skips the rows the shift statement changes (outbox format 3).
  Result<int64_t> OpenShiftRow(int64_t customer_id, int64_t delta, std::string_view actor) {
    ASSIGN_OR_RETURN(
        SqliteStmt * ins,
        db_.Prepare("INSERT INTO outbox (txn_id, commit_us, op, actor, version, campaign_id, "
                    "customer_id, name, status, priority, trigger_event, audience_segment, "
                    "start_at, end_at, frequency_cap, content, row_version, created_at, "
                    "updated_at, updated_by) VALUES (?1, ?2, 'shifted', ?3, -1, 0, ?4, '', '', "
                    "?5, '', '', NULL, NULL, 0, '', 0, ?2, ?2, ?3) RETURNING seq"));
    ins->Bind(1, txn_id_)
        .Bind(2, ToUnixMicros(commit_time_))
        .Bind(3, actor)
        .Bind(4, customer_id)
        .Bind(5, delta);
    ASSIGN_OR_RETURN(std::optional<int64_t> seq, ReadOneInt(ins));
    if (!seq) return InternalError("inserting the shift row returned no seq");
    RETURN_IF_ERROR(SetShiftSeq(*seq));
    return *seq;
  }

  Status SetShiftSeq(int64_t seq) {
    ASSIGN_OR_RETURN(SqliteStmt * st,
                     db_.Prepare("UPDATE txn_context SET shift_seq = ?1 WHERE id = 1"));
    st->Bind(1, seq);
    return st->Run();
  }

  // Close the shift row: list the shifted campaigns the trigger skipped (those it captured row by
  // row, e.g. listed in capture_baseline, follow the shift row), or drop the row when it
  // skipped none (full-row triggers).
  Status CloseShiftRow(int64_t shift_seq, const std::vector<RowChange>& shifted) {
    RETURN_IF_ERROR(SetShiftSeq(0));
    ASSIGN_OR_RETURN(SqliteStmt * captured,
                     db_.Prepare("SELECT campaign_id FROM outbox WHERE seq > ?1"));
    captured->Bind(1, shift_seq);
    std::unordered_set<int64_t> by_row;
    {
      StmtReset reset(captured);
      while (true) {
        ASSIGN_OR_RETURN(bool row, captured->Step());
        if (!row) break;
        by_row.insert(captured->ColumnInt64(0));
      }
    }
    std::string list;
    int64_t count = 0;
    for (const RowChange& c : shifted) {
      if (by_row.contains(c.campaign_id)) continue;
      if (count++ > 0) list += ',';
      fmt::format_to(std::back_inserter(list), "{}:{}", c.campaign_id, c.version);
    }
    if (count == 0) {
      // Not the newest row (the captured rows follow it), so outbox_keep_newest lets it go.
      ASSIGN_OR_RETURN(SqliteStmt * del, db_.Prepare("DELETE FROM outbox WHERE seq = ?1"));
      del->Bind(1, shift_seq);
      return del->Run();
    }
    ASSIGN_OR_RETURN(SqliteStmt * close,
                     db_.Prepare("UPDATE outbox SET version = ?2, content = ?3 WHERE seq = ?1"));
    close->Bind(1, shift_seq).Bind(2, count).Bind(3, list);
    return close->Run();
  }

  Result<std::vector<RowChange>> ShiftRows(int64_t customer_id, int64_t delta, int64_t lo,
                                           std::optional<int64_t> hi, std::string_view actor) {
    // One statement for the whole shift; RETURNING gives the new versions without a re-read.
    ASSIGN_OR_RETURN(
        SqliteStmt * st,
        db_.Prepare("UPDATE campaigns SET priority = priority + ?2, version = version + 1, "
                    "updated_at = ?3, updated_by = ?4 "
                    "WHERE customer_id = ?1 AND priority >= ?5 AND priority <= ?6 "
                    "RETURNING id, version"));
    st->Bind(1, customer_id)
        .Bind(2, delta)
        .Bind(3, ToUnixMicros(commit_time_))
        .Bind(4, actor)
        .Bind(5, lo)
        .Bind(6, hi.value_or(std::numeric_limits<int64_t>::max()));
    StmtReset reset(st);
    std::vector<RowChange> out;
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      out.push_back({ChangeOp::kUpdated, st->ColumnInt64(0), customer_id, st->ColumnInt64(1)});
    }
    return out;
  }

  std::unique_lock<TimedMutex> lock_;
  SqliteDb& db_;
  std::unique_ptr<SqliteTransaction> tx_;
  const Timestamp commit_time_;
  const int64_t txn_id_;
  const std::string transaction_id_;
  std::string context_actor_;
  // Capture shifts as one outbox row each (log capture, compact rows; outbox format 3).
  const bool shift_rows_;
  // A shift row was opened and not closed (its shift failed): the transaction must not commit
  // (the row would stay open, and shift_seq might stay set).
  bool shift_unfinished_ = false;
};

Status SqliteCampaignTransaction::AdvanceReplay(const ReplayAdvance& advance) {
  RETURN_IF_ERROR(CheckOpen());
  const ReplayPosition& to = advance.to;
  RETURN_IF_ERROR(ValidateReplayPosition(to));
  // A compare-and-set: update only from the expected seq, insert only when nothing is there.
  ASSIGN_OR_RETURN(
      SqliteStmt * st,
      db_.Prepare(advance.from_seq
                      ? "UPDATE replay_positions SET seq = ?2, digest = ?3, source = ?4, "
                        "commit_us = ?5 WHERE workload = ?1 AND seq = ?6"
                      : "INSERT INTO replay_positions (workload, seq, digest, source, commit_us) "
                        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (workload) DO NOTHING"));
  st->Bind(1, to.workload)
      .Bind(2, to.seq)
      .Bind(3, to.digest)
      .Bind(4, to.source)
      .Bind(5, ToUnixMicros(commit_time_));
  if (advance.from_seq) st->Bind(6, *advance.from_seq);
  RETURN_IF_ERROR(st->Run());
  if (db_.Changes() == 1) return Status::OK();
  ASSIGN_OR_RETURN(SqliteStmt * q,
                   db_.Prepare("SELECT seq FROM replay_positions WHERE workload = ?1"));
  q->Bind(1, to.workload);
  ASSIGN_OR_RETURN(std::optional<int64_t> recorded, ReadOneInt(q));
  return ReplayPositionConflict(advance, recorded);
}

Status SqliteCampaignTransaction::Commit() {
  RETURN_IF_ERROR(CheckOpen());
  if (shift_unfinished_) {
    tx_.reset();
    lock_.unlock();
    return FailedPreconditionError("a priority shift of this transaction failed: rolled back");
  }
  Status s = tx_->Commit();
  tx_.reset();  // on failure: roll back now
  lock_.unlock();
  return s;
}

Status CheckSynchronous(const std::string& value) {
  std::string v;
  for (char c : value) v.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  if (v == "OFF" || v == "NORMAL" || v == "FULL" || v == "EXTRA") return Status::OK();
  return InvalidArgumentError(
      fmt::format("synchronous: unknown value '{}' (expected OFF, NORMAL, FULL, EXTRA)", value));
}

// Create or check the schema and capture, in one write transaction.
Status PrepareSchema(SqliteDb& db, const SqliteCampaignStoreOptions& options) {
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
  ASSIGN_OR_RETURN(auto existing, QueryInt(db,
                                           "SELECT count(*) FROM sqlite_master WHERE type = "
                                           "'table' AND name = 'campaigns'"));
  RETURN_IF_ERROR(db.Exec(sqlite_schema::kCreateTables));
  ASSIGN_OR_RETURN(auto version, QueryInt(db,
                                          "SELECT CAST(value AS INTEGER) FROM meta WHERE key = "
                                          "'schema_version'"));
  if (version.value_or(0) > sqlite_schema::kSchemaVersion) {
    return FailedPreconditionError(fmt::format(
        "'{}' has campaign schema version {}, newer than the supported {}: upgrade the binary",
        options.path, *version, sqlite_schema::kSchemaVersion));
  }
  ASSIGN_OR_RETURN(auto outbox, QueryInt(db,
                                         "SELECT CAST(value AS INTEGER) FROM meta WHERE key = "
                                         "'outbox_version'"));
  if (outbox.value_or(0) > sqlite_schema::kOutboxVersion) {
    return FailedPreconditionError(
        fmt::format("'{}' has outbox format {}, newer than the supported {}: upgrade the binary",
                    options.path, *outbox, sqlite_schema::kOutboxVersion));
  }
  sqlite_capture::OpenCheck check;
  check.configured = options.capture;
  check.rows_if_new = options.rows_if_new;
  check.fresh = existing.value_or(0) == 0;
  RETURN_IF_ERROR(sqlite_capture::CheckOnOpen(db, check));
  return tx->Commit();
}

}  // namespace

// ---- the store ---------------------------------------------------------------------------------

SqliteCampaignStore::SqliteCampaignStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteCampaignStore::~SqliteCampaignStore() = default;

Result<std::unique_ptr<SqliteCampaignStore>> SqliteCampaignStore::Open(
    const SqliteCampaignStoreOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("path: must not be empty");
  RETURN_IF_ERROR(CheckSynchronous(options.synchronous));
  if (options.busy_timeout_ms < 0) {
    return InvalidArgumentError(
        fmt::format("busy_timeout_ms: must not be negative (got {})", options.busy_timeout_ms));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->clock = options.clock != nullptr ? options.clock : &SystemClock::Default();
  std::error_code ec;
  if (options.page_size > 0 && !std::filesystem::exists(options.path, ec)) {
    // The page size of a new database is fixed by its first write, and cannot change once it
    // is in WAL mode: set it on a bootstrap connection before anything else touches the file.
    SqliteOptions boot;
    boot.wal = false;
    boot.busy_timeout_ms = options.busy_timeout_ms;
    ASSIGN_OR_RETURN(auto db, SqliteDb::Open(options.path, boot));
    RETURN_IF_ERROR(
        db->Exec(fmt::format("PRAGMA page_size = {}; PRAGMA journal_mode = WAL; "
                             "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, "
                             "value TEXT NOT NULL) WITHOUT ROWID;",
                             options.page_size)));
  }
  SqliteOptions o;
  o.wal = true;
  o.synchronous = options.synchronous;
  o.busy_timeout_ms = options.busy_timeout_ms;
  o.cache_kib = options.cache_kib;
  ASSIGN_OR_RETURN(impl->writer, SqliteDb::Open(options.path, o));
  Status s = PrepareSchema(*impl->writer, options);
  if (!s.ok()) return s.WithContext(fmt::format("cannot open campaign store '{}'", options.path));
  if (options.capture == CaptureSetting::kLog) {
    ASSIGN_OR_RETURN(sqlite_capture::Recorded recorded,
                     sqlite_capture::ReadRecorded(*impl->writer));
    impl->shift_rows = options.one_row_per_shift &&
                       recorded.rows.value_or(options.rows_if_new) == OutboxRows::kCompact;
  }
  return std::unique_ptr<SqliteCampaignStore>(new SqliteCampaignStore(std::move(impl)));
}

const std::string& SqliteCampaignStore::path() const { return impl_->options.path; }
StoreCapture SqliteCampaignStore::capture() const {
  return impl_->options.capture == CaptureSetting::kLog ? StoreCapture::kLog : StoreCapture::kNone;
}

Result<std::unique_ptr<CampaignTransaction>> SqliteCampaignStore::BeginWrite(
    std::string_view actor) {
  RETURN_IF_ERROR(ValidateActor(actor));
  std::unique_lock lock(impl_->writer_mu, std::defer_lock);
  if (!lock.try_lock_for(std::chrono::milliseconds(impl_->options.busy_timeout_ms))) {
    return UnavailableError(fmt::format("another writer held '{}' for more than {} ms",
                                        impl_->options.path, impl_->options.busy_timeout_ms));
  }
  SqliteDb& db = *impl_->writer;
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
  // The stamp: under the write lock, persisted, strictly increasing across processes/restarts.
  // The same row is the context the capture triggers read.
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare("UPDATE txn_context SET txn_id = txn_id + 1, "
                              "commit_us = max(commit_us + 1, ?1), actor = ?2 WHERE id = 1 "
                              "RETURNING txn_id, commit_us"));
  st->Bind(1, ToUnixMicros(impl_->clock->Now())).Bind(2, actor);
  int64_t txn_id = 0;
  int64_t commit_us = 0;
  {
    StmtReset reset(st);
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return InternalError(fmt::format("'{}': txn_context row is missing", db.path()));
    txn_id = st->ColumnInt64(0);
    commit_us = st->ColumnInt64(1);
  }
  return std::unique_ptr<CampaignTransaction>(
      new SqliteCampaignTransaction(std::move(lock), db, std::move(tx), FromUnixMicros(commit_us),
                                    txn_id, std::string(actor), impl_->shift_rows));
}

Result<std::optional<Campaign>> SqliteCampaignStore::Get(int64_t id) {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   reader.db().Prepare(std::string(kSelectCampaign) + "WHERE id = ?1"));
  st->Bind(1, id);
  return ReadOneCampaign(st);
}

Result<std::vector<Campaign>> SqliteCampaignStore::List(int64_t customer_id) {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   reader.db().Prepare(std::string(kSelectCampaign) +
                                       "WHERE customer_id = ?1 ORDER BY priority, id"));
  st->Bind(1, customer_id);
  std::vector<Campaign> out;
  RETURN_IF_ERROR(ReadCampaigns(st, out));
  return out;
}

Result<std::vector<int64_t>> SqliteCampaignStore::ListCustomers() {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   reader.db().Prepare("SELECT DISTINCT customer_id FROM campaigns "
                                       "ORDER BY customer_id"));
  StmtReset reset(st);
  std::vector<int64_t> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    out.push_back(st->ColumnInt64(0));
  }
  return out;
}

Result<std::vector<Campaign>> SqliteCampaignStore::ListExpired(Timestamp now, int64_t limit) {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  // The WHERE clause repeats the partial index's condition so the planner uses it.
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   reader.db().Prepare(std::string(kSelectCampaign) +
                                       "WHERE status = 'active' AND end_at IS NOT NULL AND "
                                       "end_at <= ?1 ORDER BY end_at, id LIMIT ?2"));
  st->Bind(1, ToUnixMicros(now)).Bind(2, limit < 0 ? int64_t{-1} : limit);
  std::vector<Campaign> out;
  RETURN_IF_ERROR(ReadCampaigns(st, out));
  return out;
}

Status SqliteCampaignStore::SyncCommitted() {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  return reader.db().SyncWal();
}

Result<std::optional<ReplayPosition>> SqliteCampaignStore::GetReplayPosition(
    std::string_view workload) {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   reader.db().Prepare("SELECT seq, digest, source, commit_us "
                                       "FROM replay_positions WHERE workload = ?1"));
  st->Bind(1, workload);
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<ReplayPosition>();
  ReplayPosition p;
  p.workload = std::string(workload);
  p.seq = st->ColumnInt64(0);
  p.digest = st->ColumnString(1);
  p.source = st->ColumnString(2);
  p.recorded_at = FromUnixMicros(st->ColumnInt64(3));
  return std::optional<ReplayPosition>(std::move(p));
}

Result<std::vector<Campaign>> SqliteCampaignStore::AllCampaigns() {
  ASSIGN_OR_RETURN(auto reader, impl_->AcquireReader());
  ASSIGN_OR_RETURN(SqliteStmt * st, reader.db().Prepare(std::string(kSelectCampaign) +
                                                        "ORDER BY customer_id, priority, id"));
  std::vector<Campaign> out;
  RETURN_IF_ERROR(ReadCampaigns(st, out));
  return out;
}

}  // namespace ch
