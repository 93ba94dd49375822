#include "campaign/pg_campaign_store.h"

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <mutex>
#include <utility>

#include "campaign/pg_client.h"
#include "campaign/pg_schema.h"
#include "common/timed_mutex.h"

namespace ch {

namespace {

using Params = std::vector<std::optional<std::string>>;

const std::string kSelectCampaign =
    std::string("SELECT ") + kPgCampaignColumnList + " FROM campaigns ";

Result<Campaign> ReadRow(const PgResult& r, int row) {
  std::array<std::optional<std::string_view>, kPgCampaignColumns.size()> values;
  for (size_t c = 0; c < values.size(); ++c) values[c] = r.GetOpt(row, static_cast<int>(c));
  return CampaignFromPgValues(values);
}

Result<std::vector<Campaign>> ReadRows(const PgResult& r) {
  std::vector<Campaign> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(Campaign c, ReadRow(r, i));
    out.push_back(std::move(c));
  }
  return out;
}

Result<std::optional<Campaign>> ReadOptionalRow(const PgResult& r) {
  if (r.rows() == 0) return std::optional<Campaign>();
  ASSIGN_OR_RETURN(Campaign c, ReadRow(r, 0));
  return std::optional<Campaign>(std::move(c));
}

// Everything the store and its transactions share (PgCampaignStore::Impl is this).
struct PgStoreState {
  PgCampaignStoreOptions options;
  Clock* clock = nullptr;
  PgConnectOptions connect;
  std::string where;

  // Held by the open write transaction of this process for its whole lifetime.
  TimedMutex writer_mu;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<PgConn>> idle;  // guarded by pool_mu

  // A connection borrowed for one call or one transaction; returned to the pool when healthy
  // and outside any transaction.
  class Lease {
   public:
    Lease(PgStoreState* impl, std::unique_ptr<PgConn> conn, bool reused)
        : impl_(impl), conn_(std::move(conn)), reused_(reused) {}
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = default;
    ~Lease() {
      if (conn_ == nullptr || !conn_->ok() || conn_->InTransaction()) return;
      std::lock_guard lock(impl_->pool_mu);
      if (impl_->idle.size() <
          static_cast<size_t>(std::max(impl_->options.max_idle_connections, 0))) {
        impl_->idle.push_back(std::move(conn_));
      }
    }
    PgConn& conn() { return *conn_; }
    // True when the connection came from the pool (it may have been broken while idle).
    bool reused() const { return reused_; }

   private:
    PgStoreState* impl_;
    std::unique_ptr<PgConn> conn_;
    bool reused_;
  };

  Result<Lease> Acquire(bool allow_idle = true) {
    if (allow_idle) {
      std::lock_guard lock(pool_mu);
      if (!idle.empty()) {
        auto conn = std::move(idle.back());
        idle.pop_back();
        return Lease(this, std::move(conn), /*reused=*/true);
      }
    }
    ASSIGN_OR_RETURN(auto conn, PgConn::Connect(connect));
    return Lease(this, std::move(conn), /*reused=*/false);
  }

  // Run `fn` on a pooled connection. A pooled connection may have died while idle (server
  // restart, idle timeout): when the call fails because the connection is broken, retry once on
  // a new one. Only for work that changed nothing when it failed.
  template <typename T>
  Result<T> WithConnection(const std::function<Result<T>(PgConn&)>& fn) {
    ASSIGN_OR_RETURN(Lease lease, Acquire());
    Result<T> r = fn(lease.conn());
    if (r.ok() || !lease.reused() || lease.conn().ok()) return r;
    ASSIGN_OR_RETURN(Lease fresh, Acquire(/*allow_idle=*/false));
    return fn(fresh.conn());
  }
};

// ---- the write transaction ---------------------------------------------------------------------

class PgCampaignTransaction final : public CampaignTransaction {
 public:
  PgCampaignTransaction(std::unique_lock<TimedMutex> lock, PgStoreState& impl,
                        PgStoreState::Lease lease, Timestamp commit_time, std::string txn_id)
      : lock_(std::move(lock)),
        impl_(impl),
        lease_(std::move(lease)),
        commit_time_(commit_time),
        transaction_id_(std::move(txn_id)) {}

  ~PgCampaignTransaction() override {
    if (open_) Rollback();
  }

  Timestamp commit_time() const override { return commit_time_; }
  const std::string& transaction_id() const override { return transaction_id_; }

  Result<std::optional<Campaign>> Get(int64_t id) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(PgResult r, Run(kSelectCampaign + "WHERE id = $1", {std::to_string(id)}));
    return ReadOptionalRow(r);
  }

  Result<int64_t> CountCustomer(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(PgResult r, Run("SELECT count(*) FROM campaigns WHERE customer_id = $1",
                                     {std::to_string(customer_id)}));
    return r.GetInt(0, 0);
  }

  Result<std::vector<Campaign>> List(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    ASSIGN_OR_RETURN(PgResult r,
                     Run(kSelectCampaign + "WHERE customer_id = $1 ORDER BY priority, id",
                         {std::to_string(customer_id)}));
    return ReadRows(r);
  }

  Result<int64_t> AllocateId() override {
    RETURN_IF_ERROR(CheckOpen());
    // Both maxima are index lookups. Writers are serialized, so nobody else allocates meanwhile.
    ASSIGN_OR_RETURN(PgResult r,
                     Run("SELECT GREATEST((SELECT COALESCE(max(id), 0) FROM campaigns), "
                         "(SELECT COALESCE(max(id), 0) FROM ch_deleted_campaigns)) + 1",
                         {}));
    ASSIGN_OR_RETURN(int64_t next, r.GetInt(0, 0));
    // Two allocations without an insert in between must still differ.
    next = std::max(next, last_allocated_ + 1);
    last_allocated_ = next;
    return next;
  }

  Status Insert(const Campaign& row) override {
    RETURN_IF_ERROR(CheckOpen());
    if (row.id <= 0) {
      return InvalidArgumentError(fmt::format("id: must be positive (got {})", row.id));
    }
    RETURN_IF_ERROR(CheckPgText(row));
    // Inserting only when the id is new keeps the transaction usable after AlreadyExists (a
    // unique violation would abort the whole PostgreSQL transaction).
    ASSIGN_OR_RETURN(
        PgResult r,
        Run(std::string("INSERT INTO campaigns (") + kPgCampaignColumnList +
                ") SELECT $1::bigint, $2::bigint, $3::text, $4::text, $5::bigint, $6::text, "
                "$7::text, $8::timestamptz, $9::timestamptz, $10::bigint, $11::text, $12::bigint, "
                "$13::timestamptz, $14::timestamptz, $15::text "
                "WHERE NOT EXISTS (SELECT 1 FROM campaigns WHERE id = $1::bigint) "
                "AND NOT EXISTS (SELECT 1 FROM ch_deleted_campaigns WHERE id = $1::bigint)",
            CampaignToPgValues(row)));
    if (r.AffectedRows() == 1) return Status::OK();
    ASSIGN_OR_RETURN(PgResult exists, Run("SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1)",
                                          {std::to_string(row.id)}));
    if (exists.Get(0, 0) == "t") {
      return AlreadyExistsError(fmt::format("campaign {} already exists", row.id));
    }
    return AlreadyExistsError(
        fmt::format("campaign id {} was used before (ids are never reused)", row.id));
  }

  Status Replace(const Campaign& row) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(CheckPgText(row));
    ASSIGN_OR_RETURN(
        PgResult r,
        Run("UPDATE campaigns SET customer_id = $2, name = $3, status = $4, priority = $5, "
            "trigger_event = $6, audience_segment = $7, start_at = $8, end_at = $9, "
            "frequency_cap = $10, content = $11, version = $12, created_at = $13, "
            "updated_at = $14, updated_by = $15 WHERE id = $1",
            CampaignToPgValues(row)));
    if (r.AffectedRows() == 0) return NotFoundError(fmt::format("campaign {} not found", row.id));
    return Status::OK();
  }

  Status Remove(int64_t id, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(ValidateActor(actor));
    RETURN_IF_ERROR(CheckPgText("actor", actor));
    if (impl_.options.capture == StoreCapture::kLog) {
      // The deleted row names its previous writer, not the deleting actor: put the actor into
      // the WAL, in this transaction, just before the delete (PgLogicalSource attaches it).
      RETURN_IF_ERROR(
          Run(fmt::format("SELECT pg_logical_emit_message(true, '{}', $1)", kPgActorMessagePrefix),
              {std::string(actor)}));
    }
    ASSIGN_OR_RETURN(PgResult r,
                     Run("WITH d AS (DELETE FROM campaigns WHERE id = $1 RETURNING id), "
                         "k AS (INSERT INTO ch_deleted_campaigns (id) SELECT id FROM d "
                         "ON CONFLICT DO NOTHING) SELECT count(*) FROM d",
                         {std::to_string(id)}));
    ASSIGN_OR_RETURN(int64_t deleted, r.GetInt(0, 0));
    if (deleted == 0) return NotFoundError(fmt::format("campaign {} not found", id));
    return Status::OK();
  }

  Result<std::vector<RowChange>> Shift(int64_t customer_id, int64_t delta, int64_t lo,
                                       std::optional<int64_t> hi, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(CheckPgText("actor", actor));
    // One statement for the whole shift; RETURNING gives the new versions without a re-read.
    ASSIGN_OR_RETURN(
        PgResult r,
        Run("UPDATE campaigns SET priority = priority + $2, version = version + 1, "
            "updated_at = $3, updated_by = $4 "
            "WHERE customer_id = $1 AND priority >= $5 AND ($6::bigint IS NULL OR priority <= $6) "
            "RETURNING id, version",
            {std::to_string(customer_id), std::to_string(delta), FormatPgTimestamp(commit_time_),
             std::string(actor), std::to_string(lo),
             hi ? std::optional<std::string>(std::to_string(*hi)) : std::nullopt}));
    std::vector<RowChange> out;
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) {
      ASSIGN_OR_RETURN(int64_t id, r.GetInt(i, 0));
      ASSIGN_OR_RETURN(int64_t version, r.GetInt(i, 1));
      out.push_back({ChangeOp::kUpdated, id, customer_id, version});
    }
    return out;
  }

  Status AdvanceReplay(const ReplayAdvance& advance) override {
    RETURN_IF_ERROR(CheckOpen());
    const ReplayPosition& to = advance.to;
    RETURN_IF_ERROR(ValidateReplayPosition(to));
    RETURN_IF_ERROR(CheckPgText("replay position: source", to.source));
    // A compare-and-set: update only from the expected seq, insert only when nothing is there.
    // Writers are serialized by the ch_txn row lock, so the row cannot change meanwhile.
    Params params = {to.workload, std::to_string(to.seq), to.digest, to.source,
                     FormatPgTimestamp(commit_time_)};
    if (advance.from_seq) params.push_back(std::to_string(*advance.from_seq));
    ASSIGN_OR_RETURN(
        PgResult r,
        Run(advance.from_seq
                ? "UPDATE ch_replay_positions SET seq = $2, digest = $3, source = $4, "
                  "recorded_at = $5 WHERE workload = $1 AND seq = $6"
                : "INSERT INTO ch_replay_positions (workload, seq, digest, source, recorded_at) "
                  "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workload) DO NOTHING",
            params));
    if (r.AffectedRows() == 1) return Status::OK();
    ASSIGN_OR_RETURN(PgResult now,
                     Run("SELECT seq FROM ch_replay_positions WHERE workload = $1", {to.workload}));
    std::optional<int64_t> recorded;
    if (now.rows() == 1) {
      ASSIGN_OR_RETURN(recorded, now.GetInt(0, 0));
    }
    return ReplayPositionConflict(advance, recorded);
  }

  Status Commit() override {
    RETURN_IF_ERROR(CheckOpen());
    open_ = false;
    auto r = lease_.conn().Exec("COMMIT");
    Status s = r.status();
    // COMMIT of a transaction in which a statement failed answers ROLLBACK, not an error.
    if (s.ok() && r->CommandTag() != "COMMIT") {
      s = AbortedError(fmt::format(
          "PostgreSQL {}: the transaction was rolled back (an earlier statement failed)",
          impl_.where));
    }
    if (!s.ok() && lease_.conn().InTransaction()) Rollback();
    lock_.unlock();
    return s;
  }

 private:
  Status CheckOpen() const {
    if (!open_) return FailedPreconditionError("transaction already finished");
    return Status::OK();
  }

  Result<PgResult> Run(const std::string& sql, const Params& params) {
    return lease_.conn().ExecParams(sql, params);
  }

  void Rollback() {
    open_ = false;
    // Failure here means the connection is broken: the server rolls back on its own, and the
    // lease is not returned to the pool.
    lease_.conn().Exec("ROLLBACK").status().IgnoreError();
  }

  // Destroyed in reverse order: the lease (connection) goes back to the pool after the rollback
  // in the destructor body, then the writer lock is released.
  std::unique_lock<TimedMutex> lock_;
  PgStoreState& impl_;
  PgStoreState::Lease lease_;
  const Timestamp commit_time_;
  const std::string transaction_id_;
  bool open_ = true;
  int64_t last_allocated_ = 0;
};

}  // namespace

struct PgCampaignStore::Impl : PgStoreState {};

// ---- the store ---------------------------------------------------------------------------------

PgCampaignStore::PgCampaignStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgCampaignStore::~PgCampaignStore() = default;

Result<std::unique_ptr<PgCampaignStore>> PgCampaignStore::Open(
    const PgCampaignStoreOptions& options) {
  if (options.url.empty()) return InvalidArgumentError("url: must not be empty");
  if (options.lock_timeout_ms < 0) {
    return InvalidArgumentError(
        fmt::format("lock_timeout_ms: must not be negative (got {})", options.lock_timeout_ms));
  }
  if (options.statement_timeout_ms < 0) {
    return InvalidArgumentError(fmt::format("statement_timeout_ms: must not be negative (got {})",
                                            options.statement_timeout_ms));
  }
  ASSIGN_OR_RETURN(PgConnInfo info, ParsePgUrl(options.url));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->clock = options.clock != nullptr ? options.clock : &SystemClock::Default();
  impl->where = info.Describe();
  impl->connect.url = options.url;
  impl->connect.connect_timeout_s = options.connect_timeout_s;
  // lock_timeout 0 would mean "wait forever" to PostgreSQL; 1 ms is as close to "don't" as it gets.
  impl->connect.settings["lock_timeout"] = std::to_string(std::max(options.lock_timeout_ms, 1));
  impl->connect.settings["statement_timeout"] = std::to_string(options.statement_timeout_ms);

  auto fail = [&](const Status& s) {
    return s.WithContext(fmt::format("cannot open campaign store at {}", impl->where));
  };
  auto lease = impl->Acquire();
  if (!lease.ok()) return fail(lease.status());
  PgConn& conn = lease->conn();
  if (options.capture == StoreCapture::kLog) {
    // Without logical WAL nothing can ever read the changes: capture 'log' would be a promise the
    // database cannot keep.
    auto level = conn.Exec("SHOW wal_level");
    if (!level.ok()) return fail(level.status());
    if (level->Get(0, 0) != "logical") {
      return fail(FailedPreconditionError(fmt::format(
          "capture 'log' needs wal_level = logical, the server has '{}' (set it in "
          "postgresql.conf and restart PostgreSQL), or open the store with capture 'none'",
          level->Get(0, 0))));
    }
  }
  Status s = EnsurePgSchema(conn, options.capture == StoreCapture::kLog);
  if (!s.ok()) return fail(s);
  if (options.capture == StoreCapture::kNone && !options.ignore_existing_capture) {
    auto pubs = conn.Exec(
        "SELECT string_agg(DISTINCT pubname, ', ') FROM pg_publication_tables "
        "WHERE tablename = 'campaigns' AND schemaname = current_schema()");
    if (!pubs.ok()) return fail(pubs.status());
    if (!pubs->IsNull(0, 0)) {
      return fail(FailedPreconditionError(fmt::format(
          "the campaigns table is captured in mode 'log' (publication {}), but this process is "
          "configured without log capture (--capture notify or none): its deletes would reach "
          "the history without their actor. Run it with --capture log, or stop log capture "
          "first: campaign-history --campaign-db postgresql://... capture drop",
          pubs->Get(0, 0))));
    }
  }
  return std::unique_ptr<PgCampaignStore>(new PgCampaignStore(std::move(impl)));
}

const std::string& PgCampaignStore::where() const { return impl_->where; }
StoreCapture PgCampaignStore::capture() const { return impl_->options.capture; }

Result<std::unique_ptr<CampaignTransaction>> PgCampaignStore::BeginWrite(std::string_view actor) {
  RETURN_IF_ERROR(ValidateActor(actor));
  RETURN_IF_ERROR(CheckPgText("actor", actor));
  std::unique_lock lock(impl_->writer_mu, std::defer_lock);
  if (!lock.try_lock_for(std::chrono::milliseconds(impl_->options.lock_timeout_ms))) {
    return UnavailableError(
        fmt::format("PostgreSQL {}: another writer of this process held the "
                    "write lock for more than {} ms",
                    impl_->where, impl_->options.lock_timeout_ms));
  }
  // One round trip: BEGIN and the stamp (which takes the database-wide writer row lock). The
  // clock value is an integer literal, so the simple protocol (which allows two statements) is
  // safe here.
  const std::string sql = fmt::format(
      "BEGIN; UPDATE ch_txn SET txn_id = txid_current(), commit_us = GREATEST(commit_us + 1, {}) "
      "WHERE id = 1 RETURNING txn_id, commit_us",
      ToUnixMicros(impl_->clock->Now()));
  auto begin = [&](PgConn& conn) -> Result<std::pair<int64_t, int64_t>> {
    auto r = conn.Exec(sql);
    if (!r.ok() || r->rows() != 1) {
      if (conn.InTransaction()) conn.Exec("ROLLBACK").status().IgnoreError();
      if (!r.ok()) return r.status();
      return InternalError(fmt::format("PostgreSQL {}: the ch_txn row is missing", conn.where()));
    }
    ASSIGN_OR_RETURN(int64_t txn_id, r->GetInt(0, 0));
    ASSIGN_OR_RETURN(int64_t commit_us, r->GetInt(0, 1));
    return std::make_pair(txn_id, commit_us);
  };
  ASSIGN_OR_RETURN(PgStoreState::Lease lease, impl_->Acquire());
  auto stamp = begin(lease.conn());
  if (!stamp.ok() && lease.reused() && !lease.conn().ok()) {
    // The pooled connection had died while idle; nothing happened on it.
    ASSIGN_OR_RETURN(lease, impl_->Acquire(/*allow_idle=*/false));
    stamp = begin(lease.conn());
  }
  if (!stamp.ok()) return stamp.status().WithContext("cannot begin a write transaction");
  return std::unique_ptr<CampaignTransaction>(
      new PgCampaignTransaction(std::move(lock), *impl_, std::move(lease),
                                FromUnixMicros(stamp->second), std::to_string(stamp->first)));
}

Result<std::optional<Campaign>> PgCampaignStore::Get(int64_t id) {
  return impl_->WithConnection<std::optional<Campaign>>(
      [&](PgConn& conn) -> Result<std::optional<Campaign>> {
        ASSIGN_OR_RETURN(PgResult r,
                         conn.ExecParams(kSelectCampaign + "WHERE id = $1", {std::to_string(id)}));
        return ReadOptionalRow(r);
      });
}

Result<std::vector<Campaign>> PgCampaignStore::List(int64_t customer_id) {
  return impl_->WithConnection<std::vector<Campaign>>(
      [&](PgConn& conn) -> Result<std::vector<Campaign>> {
        ASSIGN_OR_RETURN(
            PgResult r,
            conn.ExecParams(kSelectCampaign + "WHERE customer_id = $1 ORDER BY priority, id",
                            {std::to_string(customer_id)}));
        return ReadRows(r);
      });
}

Result<std::vector<int64_t>> PgCampaignStore::ListCustomers() {
  return impl_->WithConnection<std::vector<int64_t>>(
      [&](PgConn& conn) -> Result<std::vector<int64_t>> {
        ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT DISTINCT customer_id FROM campaigns "
                                               "ORDER BY customer_id"));
        std::vector<int64_t> out;
        for (int i = 0; i < r.rows(); ++i) {
          ASSIGN_OR_RETURN(int64_t c, r.GetInt(i, 0));
          out.push_back(c);
        }
        return out;
      });
}

Result<std::vector<Campaign>> PgCampaignStore::ListExpired(Timestamp now, int64_t limit) {
  return impl_->WithConnection<std::vector<Campaign>>(
      [&](PgConn& conn) -> Result<std::vector<Campaign>> {
        // The WHERE clause repeats the partial index's condition so the planner uses it.
        ASSIGN_OR_RETURN(
            PgResult r,
            conn.ExecParams(
                kSelectCampaign + "WHERE status = 'active' AND end_at IS NOT NULL AND end_at <= $1 "
                                  "ORDER BY end_at, id LIMIT $2",
                {FormatPgTimestamp(now),
                 limit < 0 ? std::nullopt : std::optional<std::string>(std::to_string(limit))}));
        return ReadRows(r);
      });
}

Result<std::optional<ReplayPosition>> PgCampaignStore::GetReplayPosition(
    std::string_view workload) {
  return impl_->WithConnection<std::optional<ReplayPosition>>(
      [&](PgConn& conn) -> Result<std::optional<ReplayPosition>> {
        ASSIGN_OR_RETURN(PgResult r, conn.ExecParams("SELECT seq, digest, source, recorded_at FROM "
                                                     "ch_replay_positions WHERE workload = $1",
                                                     {std::string(workload)}));
        if (r.rows() == 0) return std::optional<ReplayPosition>();
        ReplayPosition p;
        p.workload = std::string(workload);
        ASSIGN_OR_RETURN(p.seq, r.GetInt(0, 0));
        p.digest = std::string(r.Get(0, 1));
        p.source = std::string(r.Get(0, 2));
        ASSIGN_OR_RETURN(p.recorded_at, ParsePgTimestamp(r.Get(0, 3)));
        return std::optional<ReplayPosition>(std::move(p));
      });
}

Result<std::vector<Campaign>> PgCampaignStore::AllCampaigns() {
  return impl_->WithConnection<std::vector<Campaign>>(
      [&](PgConn& conn) -> Result<std::vector<Campaign>> {
        ASSIGN_OR_RETURN(PgResult r,
                         conn.Exec(kSelectCampaign + "ORDER BY customer_id, priority, id"));
        return ReadRows(r);
      });
}

}  // namespace ch
