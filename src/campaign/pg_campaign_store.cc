#include "campaign/pg_campaign_store.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <utility>

#include "campaign/pg_client.h"
#include "campaign/pg_schema.h"

namespace ch {

namespace {

// Any constant: the advisory lock of PgCampaignStoreOptions::serialize_all_writers.
constexpr int64_t kGlobalWriterLockKey = 7346912270114;

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

  // The newest stamp (µs) this process committed (or found in the database when it opened):
  // proposals are above it, so one process writing alone stamps in commit order across customers,
  // and a rolled-back transaction gives its stamp back (lock-free; no writer mutex).
  mutable std::atomic<int64_t> last_stamp_us{0};

  // Return a proposal: max(now, the last committed stamp + 1 µs).
  int64_t ProposeStamp() const {
    return std::max(ToUnixMicros(clock->Now()), last_stamp_us.load() + 1);
  }
  void LearnStamp(int64_t us) const {
    int64_t prev = last_stamp_us.load();
    while (prev < us && !last_stamp_us.compare_exchange_weak(prev, us)) {
    }
  }

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
  PgCampaignTransaction(PgStoreState& impl, PgStoreState::Lease lease)
      : impl_(impl), lease_(std::move(lease)) {}

  ~PgCampaignTransaction() override {
    if (open_) Rollback();
  }

  Status ForCustomer(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    return LockCustomer(customer_id);
  }

  // Named before any customer was locked (the service never does), the stamp is fixed from this
  // process's clock, and a later customer lock fails with Aborted if the customer already has a
  // later stamp.
  Timestamp commit_time() const override {
    if (!stamp_us_) stamp_us_ = impl_.ProposeStamp();
    return FromUnixMicros(*stamp_us_);
  }
  const std::string& transaction_id() const override { return transaction_id_; }

  Result<std::optional<Campaign>> Get(int64_t id) override {
    RETURN_IF_ERROR(CheckOpen());
    if (customers_.empty()) {
      // The first read names the customer: lock it (and stamp), then read what its last writer
      // committed.
      ASSIGN_OR_RETURN(bool found, LockCustomerOf(id));
      if (!found) return std::optional<Campaign>();
    }
    ASSIGN_OR_RETURN(PgResult r, Run(kSelectCampaign + "WHERE id = $1", {std::to_string(id)}));
    ASSIGN_OR_RETURN(std::optional<Campaign> row, ReadOptionalRow(r));
    if (!row || customers_.count(row->customer_id) > 0) return row;
    // A campaign of a second customer: lock that one too, then read again.
    RETURN_IF_ERROR(LockCustomer(row->customer_id));
    ASSIGN_OR_RETURN(r, Run(kSelectCampaign + "WHERE id = $1", {std::to_string(id)}));
    return ReadOptionalRow(r);
  }

  Result<int64_t> CountCustomer(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(LockCustomer(customer_id));
    ASSIGN_OR_RETURN(PgResult r, Run("SELECT count(*) FROM campaigns WHERE customer_id = $1",
                                     {std::to_string(customer_id)}));
    return r.GetInt(0, 0);
  }

  Result<std::vector<Campaign>> List(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(LockCustomer(customer_id));
    ASSIGN_OR_RETURN(PgResult r,
                     Run(kSelectCampaign + "WHERE customer_id = $1 ORDER BY priority, id",
                         {std::to_string(customer_id)}));
    return ReadRows(r);
  }

  Result<int64_t> AllocateId() override {
    RETURN_IF_ERROR(CheckOpen());
    // Writers of other customers allocate concurrently: the sequence hands out every value once.
    // It must also pass every id inserted with an explicit id (imports, workload replays): when
    // it is behind the highest id, take as many values as it lags (once; the sequence then leads).
    ASSIGN_OR_RETURN(
        PgResult r,
        Run("SELECT nextval('ch_campaign_ids'), GREATEST((SELECT COALESCE(max(id), 0) FROM "
            "campaigns), (SELECT COALESCE(max(id), 0) FROM ch_deleted_campaigns))",
            {}));
    ASSIGN_OR_RETURN(int64_t next, r.GetInt(0, 0));
    ASSIGN_OR_RETURN(int64_t highest, r.GetInt(0, 1));
    if (next <= highest) {
      ASSIGN_OR_RETURN(PgResult more,
                       Run("SELECT max(nextval('ch_campaign_ids')) FROM generate_series(1, $1)",
                           {std::to_string(highest - next + 1)}));
      ASSIGN_OR_RETURN(next, more.GetInt(0, 0));
    }
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
    RETURN_IF_ERROR(LockCustomer(row.customer_id));
    // Inserting only when the id is new keeps the transaction usable after AlreadyExists (a
    // unique violation would abort the whole PostgreSQL transaction). A concurrent delete of the
    // id by another customer's writer cannot slip through: this statement sees the row either
    // still there or in ch_deleted_campaigns.
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
    RETURN_IF_ERROR(LockCustomer(row.customer_id));
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
    if (customers_.empty()) {
      ASSIGN_OR_RETURN(bool found, LockCustomerOf(id));
      if (!found) return NotFoundError(fmt::format("campaign {} not found", id));
    }
    if (impl_.options.capture == StoreCapture::kLog) {
      // The deleted row names its previous writer, not the deleting actor: put the actor into
      // the WAL, in this transaction, just before the delete (PgLogicalSource attaches it).
      RETURN_IF_ERROR(
          Run(fmt::format("SELECT pg_logical_emit_message(true, '{}', $1)", kPgActorMessagePrefix),
              {std::string(actor)}));
    }
    for (int attempt = 0; attempt < 2; ++attempt) {
      // Only a campaign of a locked customer is deleted.
      ASSIGN_OR_RETURN(PgResult r,
                       Run("WITH d AS (DELETE FROM campaigns WHERE id = $1 AND customer_id = "
                           "ANY($2::bigint[]) RETURNING id), "
                           "k AS (INSERT INTO ch_deleted_campaigns (id) SELECT id FROM d "
                           "ON CONFLICT DO NOTHING) SELECT count(*) FROM d",
                           {std::to_string(id), LockedArray()}));
      ASSIGN_OR_RETURN(int64_t deleted, r.GetInt(0, 0));
      if (deleted == 1) return Status::OK();
      // Absent, or a campaign of a customer not locked yet: lock it and try once more.
      ASSIGN_OR_RETURN(PgResult owner, Run("SELECT customer_id FROM campaigns WHERE id = $1",
                                           {std::to_string(id)}));
      if (owner.rows() == 0) break;
      ASSIGN_OR_RETURN(int64_t customer, owner.GetInt(0, 0));
      RETURN_IF_ERROR(LockCustomer(customer));
    }
    return NotFoundError(fmt::format("campaign {} not found", id));
  }

  Result<std::vector<RowChange>> Shift(int64_t customer_id, int64_t delta, int64_t lo,
                                       std::optional<int64_t> hi, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(CheckPgText("actor", actor));
    RETURN_IF_ERROR(LockCustomer(customer_id));
    // One statement for the whole shift; RETURNING gives the new versions without a re-read.
    ASSIGN_OR_RETURN(
        PgResult r,
        Run("UPDATE campaigns SET priority = priority + $2, version = version + 1, "
            "updated_at = $3, updated_by = $4 "
            "WHERE customer_id = $1 AND priority >= $5 AND ($6::bigint IS NULL OR priority <= $6) "
            "RETURNING id, version",
            {std::to_string(customer_id), std::to_string(delta), FormatPgTimestamp(commit_time()),
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
    // A concurrent replay of the same workload waits for this row's lock and then finds another
    // seq (READ COMMITTED re-checks the WHERE clause on the row it waited for). The customer is
    // not known yet (the service advances first), so recorded_at is this process's clock, not
    // the stamp.
    const int64_t recorded_us = stamp_us_.value_or(ToUnixMicros(impl_.clock->Now()));
    Params params = {to.workload, std::to_string(to.seq), to.digest, to.source,
                     FormatPgTimestamp(FromUnixMicros(recorded_us))};
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
    if (!begun_) return Status::OK();  // nothing reached the server
    auto r = lease_.conn().Exec("COMMIT");
    Status s = r.status();
    // COMMIT of a transaction in which a statement failed answers ROLLBACK, not an error.
    if (s.ok() && r->CommandTag() != "COMMIT") {
      s = AbortedError(fmt::format(
          "PostgreSQL {}: the transaction was rolled back (an earlier statement failed)",
          impl_.where));
    }
    if (!s.ok() && lease_.conn().InTransaction()) Rollback();
    if (s.ok() && stamp_us_) impl_.LearnStamp(*stamp_us_);
    return s;
  }

 private:
  Status CheckOpen() const {
    if (!open_) return FailedPreconditionError("transaction already finished");
    return Status::OK();
  }

  // Run a simple-protocol statement (integer literals only), opening the transaction with it in
  // the same round trip when it is the first. A pooled connection that died while idle is
  // replaced once, when nothing happened on it yet.
  Result<PgResult> Start(const std::string& sql) {
    const std::string text = begun_ ? sql : (sql.empty() ? "BEGIN" : "BEGIN; " + sql);
    auto r = lease_.conn().Exec(text);
    if (!r.ok() && !begun_ && lease_.reused() && !lease_.conn().ok()) {
      ASSIGN_OR_RETURN(lease_, impl_.Acquire(/*allow_idle=*/false));
      r = lease_.conn().Exec(text);
    }
    if (r.ok() || lease_.conn().InTransaction()) begun_ = true;
    return r;
  }

  Result<PgResult> Run(const std::string& sql, const Params& params) {
    if (!begun_) RETURN_IF_ERROR(Start("").status());
    return lease_.conn().ExecParams(sql, params);
  }

  // The statement that locks and stamps a customer: an upsert of its ch_customer_txn row (the
  // row lock is held until COMMIT/ROLLBACK), from `source` (a VALUES list or a SELECT giving
  // customer_id, txn_id, commit_us). The stamp is GREATEST(the customer's last + 1 µs, proposed).
  std::string LockStatement(const std::string& source) const {
    return fmt::format(
        "{}INSERT INTO ch_customer_txn AS t (customer_id, txn_id, commit_us) {} "
        "ON CONFLICT (customer_id) DO UPDATE SET txn_id = EXCLUDED.txn_id, "
        "commit_us = GREATEST(t.commit_us + 1, EXCLUDED.commit_us) "
        "RETURNING customer_id, txn_id, commit_us",
        impl_.options.serialize_all_writers && customers_.empty()
            ? fmt::format("SELECT pg_advisory_xact_lock({}); ", kGlobalWriterLockKey)
            : std::string(),
        source);
  }

  int64_t Proposal() const { return stamp_us_ ? *stamp_us_ : impl_.ProposeStamp(); }

  Status LockCustomer(int64_t customer_id) {
    if (customers_.count(customer_id) > 0) return Status::OK();
    ASSIGN_OR_RETURN(PgResult r, Start(LockStatement(fmt::format("VALUES ({}, txid_current(), {})",
                                                                 customer_id, Proposal()))));
    if (r.rows() != 1) {
      return InternalError(fmt::format("PostgreSQL {}: locking customer {} returned {} rows",
                                       impl_.where, customer_id, r.rows()));
    }
    return TakeStamp(r);
  }

  // Lock the customer of campaign `id` (one round trip). Return false when there is no such
  // campaign (nothing is locked then).
  Result<bool> LockCustomerOf(int64_t id) {
    ASSIGN_OR_RETURN(PgResult r,
                     Start(LockStatement(fmt::format("SELECT customer_id, txid_current(), {} FROM "
                                                     "campaigns WHERE id = {}",
                                                     Proposal(), id))));
    if (r.rows() == 0) return false;
    RETURN_IF_ERROR(TakeStamp(r));
    return true;
  }

  Status TakeStamp(const PgResult& r) {
    ASSIGN_OR_RETURN(int64_t customer, r.GetInt(0, 0));
    ASSIGN_OR_RETURN(int64_t txn_id, r.GetInt(0, 1));
    ASSIGN_OR_RETURN(int64_t commit_us, r.GetInt(0, 2));
    if (stamp_us_ && *stamp_us_ != commit_us) {
      return AbortedError(fmt::format(
          "PostgreSQL {}: customer {} has a newer commit time than this transaction's (fixed "
          "before the customer was locked); retry the transaction",
          impl_.where, customer));
    }
    stamp_us_ = commit_us;
    transaction_id_ = std::to_string(txn_id);
    customers_.insert(customer);
    return Status::OK();
  }

  std::string LockedArray() const {
    std::string out = "{";
    for (int64_t c : customers_) {
      if (out.size() > 1) out += ',';
      out += std::to_string(c);
    }
    return out + "}";
  }

  void Rollback() {
    open_ = false;
    if (!begun_) return;
    // Failure here means the connection is broken: the server rolls back on its own, and the
    // lease is not returned to the pool.
    lease_.conn().Exec("ROLLBACK").status().IgnoreError();
  }

  PgStoreState& impl_;
  PgStoreState::Lease lease_;
  bool begun_ = false;
  std::set<int64_t> customers_;  // locked by this transaction
  mutable std::optional<int64_t> stamp_us_;
  std::string transaction_id_;
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
  // This process's stamps start above every stamp given so far (also schema version 1's), so a
  // single writer's transactions are stamped in commit order across customers, as before.
  auto floor = conn.Exec(
      "SELECT GREATEST((SELECT COALESCE(max(commit_us), 0) FROM ch_customer_txn), (SELECT "
      "COALESCE(max(value::bigint), 0) FROM ch_meta WHERE key = 'v1_commit_us'))");
  if (!floor.ok()) return fail(floor.status());
  auto floor_us = floor->GetInt(0, 0);
  if (!floor_us.ok()) return fail(floor_us.status());
  impl->last_stamp_us.store(*floor_us);
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
  // Nothing is locked yet: BEGIN goes out with the first statement, the customer lock and the
  // stamp with the statement that names the customer (ForCustomer, Get).
  ASSIGN_OR_RETURN(PgStoreState::Lease lease, impl_->Acquire());
  return std::unique_ptr<CampaignTransaction>(new PgCampaignTransaction(*impl_, std::move(lease)));
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
