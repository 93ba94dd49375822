#include "history/sqlite_history_store.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <set>
#include <unordered_map>

#include "common/sqlite.h"
#include "history/asof_checkpoint.h"
#include "history/in_memory_history_store.h"
#include "history/snapshot_codec.h"

namespace ch {
namespace {

// The reused versions one Append met, logged once it committed (one line per call, not per
// version: a restored database can bring back thousands).
struct ConflictNote {
  int64_t count = 0;
  int64_t campaign_id = 0;
  int64_t version = 0;
  void Note(int64_t campaign, int64_t v) {
    if (count++ == 0) {
      campaign_id = campaign;
      version = v;
    }
  }
  void Log(const std::string& path) const {
    if (count == 0) return;
    spdlog::warn(
        "history '{}': {} versions arrived again with other content (first: campaign {} "
        "version {}): version numbers were reused; kept as evidence in table conflicts "
        "(docs/operations.md, \"Conflicting versions\")",
        path, count, campaign_id, version);
  }
};

// Identifies the file as ours (meta.format). DO NOT CHANGE.
constexpr char kFormatName[] = "campaign-history/sqlite-history";
// Layout version of this file (meta.schema_version); bump with a migration. DO NOT CHANGE the
// meaning of a released value.
//   1: the history, recent, campaigns, bodies, actors and batches tables.
//   2: rows may carry the transaction fields (kKindTxnFields); tables held, txn_progress,
//      heartbeats and conflicts; meta watermark_seq / watermark_us. A version 1 file is
//      upgraded in place when opened for writing (its rows stay valid as they are).
//   3: retention and erasure: tables purges, erased_customers and audit; held.customer_id.
//      Upgraded in place likewise (held rows of a version 2 file get customer_id 0).
//   4: as-of checkpoints: tables checkpoints and checkpoint_due; the customer indexes cover the
//      packed row (history_by_customer_row, recent_by_customer_row replace history_by_customer
//      and recent_by_customer). Upgraded when opened for writing: the indexes are rebuilt and
//      the checkpoints built from the stored records, in one transaction.
constexpr int64_t kSqliteSchemaVersion = 4;
// Event times are stored as microseconds after this instant (2025-01-01T00:00:00Z) so that they
// fit SQLite's 6-byte integer for +-4.4 years around it; other times take 8 bytes and still work.
// Written to meta.time_epoch_us on creation and read back from there. DO NOT CHANGE.
constexpr int64_t kDefaultEpochUs = int64_t{1735689600} * 1000000;

// Row kind = event_type | capture << 2 | has-transaction-fields << 3. DO NOT CHANGE (stored).
//   event_type: 0 created, 1 updated, 2 deleted;  capture: 0 log, 1 notify.
constexpr uint64_t kKindDeleted = 2;
constexpr uint64_t kKindTxnFields = 8;
uint64_t EncodeKind(const HistoryRecord& r) {
  uint64_t op = r.event_type == ChangeOp::kCreated ? 0 : r.event_type == ChangeOp::kUpdated ? 1 : 2;
  return op | (r.capture == CaptureMode::kNotify ? 4 : 0) | (r.txn_seq != 0 ? kKindTxnFields : 0);
}
void DecodeKind(uint64_t kind, HistoryRecord& r) {
  uint64_t op = kind & 3;
  r.event_type = op == 0 ? ChangeOp::kCreated : op == 1 ? ChangeOp::kUpdated : ChangeOp::kDeleted;
  r.capture = (kind & 4) ? CaptureMode::kNotify : CaptureMode::kLog;
}

// A body whose delta against the campaign's key body is larger than 1/kDeltaDivisor of its own
// size is stored in full and becomes the campaign's new key body.
constexpr size_t kDeltaDivisor = 5;

// See docs/formats/history-record.md ("SQLite layout") for every table and the row encoding.
constexpr char kSchemaSql[] = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS actors(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS batches(id INTEGER PRIMARY KEY, ingested_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bodies(id INTEGER PRIMARY KEY, base INTEGER, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns(
  campaign_id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL,
  max_version INTEGER NOT NULL,
  records INTEGER NOT NULL,
  first_t INTEGER NOT NULL,
  last_t INTEGER NOT NULL,
  last_version INTEGER NOT NULL,
  dead_t INTEGER,
  recent_first_t INTEGER);
CREATE INDEX IF NOT EXISTS campaigns_by_customer
  ON campaigns(customer_id, first_t, dead_t, recent_first_t);
CREATE TABLE IF NOT EXISTS history(
  campaign_id INTEGER NOT NULL,
  t INTEGER NOT NULL,
  version INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  row BLOB NOT NULL,
  PRIMARY KEY(campaign_id, t, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_by_customer_row ON history(customer_id, t, row);
CREATE TABLE IF NOT EXISTS recent(
  campaign_id INTEGER NOT NULL,
  t INTEGER NOT NULL,
  version INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  row BLOB NOT NULL,
  PRIMARY KEY(campaign_id, t, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS recent_by_customer_row ON recent(customer_id, t, row);
CREATE TABLE IF NOT EXISTS held(
  campaign_id INTEGER NOT NULL,
  version INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  record TEXT NOT NULL,
  PRIMARY KEY(campaign_id, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS held_by_seq ON held(seq);
CREATE TABLE IF NOT EXISTS txn_progress(
  seq INTEGER PRIMARY KEY,
  expected INTEGER NOT NULL,
  received INTEGER NOT NULL,
  commit_us INTEGER NOT NULL,
  complete INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS heartbeats(seq INTEGER PRIMARY KEY, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS purges(customer_id INTEGER PRIMARY KEY, before_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS erased_customers(customer_id INTEGER PRIMARY KEY, at_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS audit(
  id INTEGER PRIMARY KEY,
  at_us INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  customer_id INTEGER NOT NULL,
  before_us INTEGER,
  records INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints(
  customer_id INTEGER NOT NULL,
  t INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY(customer_id, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoint_due(
  customer_id INTEGER PRIMARY KEY,
  pending INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts(
  id INTEGER PRIMARY KEY,
  campaign_id INTEGER NOT NULL,
  version INTEGER NOT NULL,
  detected_us INTEGER NOT NULL,
  stored TEXT NOT NULL,
  received TEXT NOT NULL);
)sql";

// One index seek per campaign of the customer, all inside SQLite's VM: the correlated subquery
// finds the campaign's latest row at or before ?2 on the primary key and returns its packed
// `row`, which carries every field. A second seek, into the small `recent` table, happens only
// for campaigns with recent rows at or before ?2 (recent_first_t); C++ keeps the later of the
// two. Campaigns first seen after ?2, and campaigns whose last record is a delete at or before
// ?2 (dead_t), are skipped without a seek. Other deletes are dropped in C++, as is the sorting
// by priority.
constexpr char kAsOfSql[] =
    "SELECT c.campaign_id, (SELECT i.row FROM history i WHERE i.campaign_id = c.campaign_id "
    "AND i.t <= ?2 ORDER BY i.t DESC, i.version DESC LIMIT 1), "
    "CASE WHEN c.recent_first_t <= ?2 THEN (SELECT r.row FROM recent r "
    "WHERE r.campaign_id = c.campaign_id AND r.t <= ?2 ORDER BY r.t DESC, r.version DESC "
    "LIMIT 1) END "
    "FROM campaigns c WHERE c.customer_id = ?1 AND c.first_t <= ?2 "
    "AND (c.dead_t IS NULL OR c.dead_t > ?2)";

// Every history row of one selection, from both tables (?1.. as in `where`).
std::string FromBoth(std::string_view columns, std::string_view where) {
  return fmt::format("SELECT {0} FROM history WHERE {1} UNION ALL SELECT {0} FROM recent WHERE {1}",
                     columns, where);
}

// Resets a cached statement when it goes out of scope, so that no statement keeps a read
// transaction (and the WAL) pinned after a partial read.
class StmtScope {
 public:
  explicit StmtScope(SqliteStmt* s) : s_(s) {}
  ~StmtScope() { s_->Reset(); }
  StmtScope(const StmtScope&) = delete;
  StmtScope& operator=(const StmtScope&) = delete;

 private:
  SqliteStmt* s_;
};

// Return true when `tx` is a canonical non-negative decimal of at most 18 digits: such ids are
// stored as integers (a few bytes) and written back as the same text.
bool IsCanonicalDecimal(std::string_view tx) {
  if (tx.empty() || tx.size() > 18) return false;
  if (tx.size() > 1 && tx.front() == '0') return false;
  return std::all_of(tx.begin(), tx.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int64_t SaturatingSub(int64_t a, int64_t b) {
  if (b > 0 && a < std::numeric_limits<int64_t>::min() + b) {
    return std::numeric_limits<int64_t>::min();
  }
  if (b < 0 && a > std::numeric_limits<int64_t>::max() + b) {
    return std::numeric_limits<int64_t>::max();
  }
  return a - b;
}

// The fields of one history row (table history, column `row`), decoded.
struct PackedRow {
  int64_t t = 0;
  int64_t version = 0;
  int64_t priority = 0;
  uint64_t kind = 0;
  int64_t actor = 0;
  int64_t missed = 0;
  int64_t batch = 0;
  int64_t body = 0;
  std::string_view tx_text;  // when the transaction id is text
  int64_t tx_number = -1;    // when it is a canonical decimal
  // Present when kind has kKindTxnFields.
  int64_t txn_seq = 0;
  int64_t txn_changes = 0;
  std::string_view extras;
};

// Row encoding: varints t (zigzag), version, priority (zigzag), kind, actor, missed,
// batch, body; then the transaction id as varint n << 1 (a canonical decimal n) or
// varint len << 1 | 1 followed by len bytes; then, when kind has kKindTxnFields (schema_version
// 2), varints txn_seq and txn_changes; then the snapshot extras up to the end.
// DO NOT CHANGE (stored); a new layout needs a new schema_version.
void EncodeRow(const PackedRow& r, std::string_view tx, std::string& out) {
  out.clear();
  PutVarint(out, ZigZag(r.t));
  PutVarint(out, static_cast<uint64_t>(r.version));
  PutVarint(out, ZigZag(r.priority));
  PutVarint(out, r.kind);
  PutVarint(out, static_cast<uint64_t>(r.actor));
  PutVarint(out, static_cast<uint64_t>(r.missed));
  PutVarint(out, static_cast<uint64_t>(r.batch));
  PutVarint(out, static_cast<uint64_t>(r.body));
  if (IsCanonicalDecimal(tx)) {
    uint64_t n = 0;
    std::from_chars(tx.data(), tx.data() + tx.size(), n);
    PutVarint(out, n << 1);
  } else {
    PutVarint(out, (static_cast<uint64_t>(tx.size()) << 1) | 1);
    out.append(tx);
  }
  if (r.kind & kKindTxnFields) {
    PutVarint(out, static_cast<uint64_t>(r.txn_seq));
    PutVarint(out, static_cast<uint64_t>(r.txn_changes));
  }
  out.append(r.extras);
}

bool DecodeRow(std::string_view in, PackedRow& r) {
  uint64_t v[8];
  for (uint64_t& x : v) {
    if (!GetVarint(in, x)) return false;
  }
  r.t = UnZigZag(v[0]);
  r.version = static_cast<int64_t>(v[1]);
  r.priority = UnZigZag(v[2]);
  r.kind = v[3];
  r.actor = static_cast<int64_t>(v[4]);
  r.missed = static_cast<int64_t>(v[5]);
  r.batch = static_cast<int64_t>(v[6]);
  r.body = static_cast<int64_t>(v[7]);
  uint64_t tx = 0;
  if (!GetVarint(in, tx)) return false;
  if (tx & 1) {
    uint64_t len = tx >> 1;
    if (len > in.size()) return false;
    r.tx_text = in.substr(0, len);
    r.tx_number = -1;
    in.remove_prefix(len);
  } else {
    r.tx_text = {};
    r.tx_number = static_cast<int64_t>(tx >> 1);
  }
  r.txn_seq = r.txn_changes = 0;
  if (r.kind & kKindTxnFields) {
    uint64_t seq = 0, changes = 0;
    if (!GetVarint(in, seq) || !GetVarint(in, changes)) return false;
    r.txn_seq = static_cast<int64_t>(seq);
    r.txn_changes = static_cast<int64_t>(changes);
  }
  r.extras = in;
  return true;
}

// A map from int64 keys that forgets everything when it grows past `limit` entries: the
// cheapest bound for caches whose entries are hints or easily re-read (one hash probe per
// lookup, no recency bookkeeping on the append path).
template <typename V>
class BoundedMap {
 public:
  explicit BoundedMap(size_t limit) : limit_(limit) {}
  V* Find(int64_t key) {
    auto it = map_.find(key);
    return it == map_.end() ? nullptr : &it->second;
  }
  V& operator[](int64_t key) {
    if (map_.size() >= limit_ && !map_.count(key)) map_.clear();
    return map_[key];
  }
  void Clear() { map_.clear(); }
  template <typename F>
  void ForEach(F f) {
    for (auto& [key, value] : map_) f(key, value);
  }

 private:
  size_t limit_;
  std::unordered_map<int64_t, V> map_;
};

// The decoded bodies, by id, bounded by bytes. Bodies never change, so there is nothing to
// invalidate; eviction is first-in first-out, which keeps a lookup to one hash probe (this sits
// on the as-of path, once per campaign). Pointers returned by Get stay valid until the next Put.
class BodyCache {
 public:
  explicit BodyCache(size_t capacity_bytes) : capacity_(capacity_bytes) {}

  const std::string* Get(int64_t id) const {
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : &it->second;
  }

  // Forget `id` (its body was blanked). Its slot in the eviction order goes when it comes up.
  void Erase(int64_t id) {
    auto it = map_.find(id);
    if (it == map_.end()) return;
    used_ -= it->second.size() + 64;
    map_.erase(it);
  }

  void Put(int64_t id, std::string body) {
    size_t cost = body.size() + 64;
    auto [it, inserted] = map_.try_emplace(id, std::move(body));
    if (!inserted) return;
    order_.push_back(id);
    used_ += cost;
    while (used_ > capacity_ && order_.size() > 1) {
      auto old = map_.find(order_.front());
      if (old != map_.end()) {  // else erased already
        used_ -= old->second.size() + 64;
        map_.erase(old);
      }
      order_.pop_front();
    }
  }

 private:
  size_t capacity_;
  size_t used_ = 0;
  std::unordered_map<int64_t, std::string> map_;
  std::deque<int64_t> order_;
};

// The campaign's latest written body and the full body its delta refers to (itself when full).
struct BodyRef {
  int64_t body = 0;
  int64_t key = 0;
};

// Per-campaign bookkeeping row (table campaigns), staged during an Append.
struct CampaignRow {
  int64_t customer_id = 0;
  int64_t max_version = 0;
  int64_t records = 0;
  int64_t first_t = 0;
  int64_t last_t = 0;
  int64_t last_version = 0;
  bool dead = false;
  // Earliest t of the campaign's rows in `recent`, if any.
  std::optional<int64_t> recent_first_t;
  bool dirty = false;
};

// Bound for the id -> name/time dictionaries; they are cleared when they grow past it.
constexpr size_t kDictionaryLimit = 1 << 16;
// Bound for the per-campaign append cache (entries, ~150 bytes each).
constexpr size_t kCampaignCacheLimit = 1 << 17;

// What the append path remembers about a campaign between batches.
struct CampaignCache {
  // Its bookkeeping row as of this connection's last commit; valid while no other connection
  // has committed (PRAGMA data_version unchanged) and no merge happened since.
  std::optional<CampaignRow> row;
  // Its latest body as this process last wrote or read it: a hint for sharing and delta
  // encoding, never trusted for correctness (any body id is a valid base).
  std::optional<BodyRef> body;
};

}  // namespace

struct SqliteHistoryStore::Impl {
  std::unique_ptr<SqliteDb> db;
  const Clock* clock = nullptr;
  bool read_only = false;
  int64_t epoch_us = kDefaultEpochUs;
  int64_t merge_rows = SqliteHistoryOptions().merge_threshold_rows;
  int64_t merge_chunk_rows = 8192;
  // A merge cycle is under way: it started when `recent` reached merge_rows and goes on, a chunk
  // per append, until `recent` is empty. (Merging only while `recent` is above the threshold
  // would always take the lowest campaign ids and leave the others in `recent` for ever, with an
  // old recent_first_t: every as-of after it then pays a second seek per campaign -- measured,
  // twice the CPU of an as-of.)
  bool merging = false;

  // Caches of immutable facts (a body id's text, an actor id's name, a batch's time): valid
  // whatever other writers do. Filled only with committed data.
  BodyCache bodies{32 << 20};
  std::unordered_map<int64_t, std::string> actor_names;
  std::unordered_map<std::string, int64_t> actor_ids;
  std::unordered_map<int64_t, int64_t> batch_times;
  BoundedMap<CampaignCache> campaign_cache{kCampaignCacheLimit};
  int64_t data_version = -1;
  // The file has the completeness tables (schema_version >= 2; a read-only version 1 file has
  // not).
  bool has_ledger = true;
  // The file has the retention tables (schema_version >= 3).
  bool has_retention = true;
  // Forget the cached bookkeeping rows (keep the body hints, which stay valid).
  void ForgetCampaignRows();

  int64_t ToT(Timestamp t) const { return SaturatingSub(ToUnixMicros(t), epoch_us); }
  Timestamp FromT(int64_t t) const { return FromUnixMicros(t + epoch_us); }

  // The pointer is valid until the next call.
  Result<const std::string*> ActorName(int64_t id);
  Result<Timestamp> BatchTime(int64_t id);
  // Return the full body blob of `id` from the cache or the file. The pointer is valid until
  // the next call.
  Result<const std::string*> Body(int64_t id);
  // Read the bodies of `ids` that are not cached yet, in id order (neighbouring ids share
  // pages: a cold as-of reads each page once, in file order, instead of hopping).
  Status PrefetchBodies(std::vector<int64_t> ids);
  // Turn a decoded row into a record (REQUIRES: the campaign and customer ids are set in `r`).
  // Decode `p` into `r`; without the snapshot when `with_snapshot` is false.
  Status Fill(const PackedRow& p, HistoryRecord& r, bool with_snapshot = true);
  // Step `s` (columns: campaign_id, customer_id, row) to the end and decode every row.
  Result<std::vector<HistoryRecord>> ReadAll(SqliteStmt& s);
  // The campaigns whose rows a merge moved out of `recent`.
  struct Merged {
    bool all = true;
    int64_t upper = 0;  // when !all: campaign_id < upper, or <= upper when inclusive
    bool inclusive = false;
    bool Contains(int64_t id) const { return all || id < upper || (inclusive && id == upper); }
  };
  // Move rows of `recent` into `history`: every row (all), or about merge_chunk_rows of them,
  // whole campaigns at a time, lowest campaign ids first. REQUIRES: inside a write transaction.
  // The cached campaign rows are left alone (the transaction may still roll back): after the
  // commit, the caller clears recent_first_t of the campaigns returned (ClearRecentFirstT).
  Result<Merged> MergeRecent(bool all = true);
  // After a committed merge: the cached rows of the merged campaigns have nothing in `recent`.
  void ClearRecentFirstT(const Merged& merged);

  // ---- as-of checkpoints (history/asof_checkpoint.h; docs/formats/history-record.md) --------
  int64_t checkpoint_every = 1024;
  // The file has the checkpoint tables (schema_version >= 4).
  bool has_checkpoints = true;
  // What one Append stored of one customer, for its checkpoints.
  struct Touched {
    int64_t records = 0;
    int64_t min_t = std::numeric_limits<int64_t>::max();
    int64_t max_t = std::numeric_limits<int64_t>::min();
    std::vector<std::pair<int64_t, int64_t>> stored;  // (campaign_id, t)
  };
  // Return the customer's live campaigns at t (each one's latest row at or before t), sorted by
  // campaign id: from the latest checkpoint at or before t and the records after it when
  // `use_checkpoints` and there is one, else by one seek per campaign. The rows point into
  // `blob` and `arena`.
  Result<std::vector<CheckpointEntry>> StateAt(int64_t customer, int64_t t, bool use_checkpoints,
                                               std::string& blob, std::string& arena);
  // One seek per campaign (kAsOfSql): each campaign's latest row at or before t, deletes
  // included, rows copied into `arena`.
  Status CollectBySeeks(int64_t customer, int64_t t, std::string& arena,
                        std::vector<CheckpointChange>& out);
  // The customer's records with lo < t <= hi, from both tables, rows copied into `arena`.
  Status ReadChanges(int64_t customer, int64_t lo, int64_t hi, std::string& arena,
                     std::vector<CheckpointChange>& out);
  // The moment of the customer's latest checkpoint at or before t (its blob in `blob`), or
  // nullopt.
  Result<std::optional<int64_t>> LatestCheckpoint(int64_t customer, int64_t t, std::string& blob);
  // Store the customer's state at t as a checkpoint. REQUIRES: inside a write transaction.
  Status BuildCheckpoint(int64_t customer, int64_t t);
  // After an Append stored `touched` of the customer: correct the checkpoints at or after the
  // earliest of those records (each affected campaign's row is read again), count the records
  // towards the next checkpoint and build it when due. REQUIRES: inside the write transaction.
  Status UpdateCheckpoints(int64_t customer, const Touched& touched);
  // Build every customer's checkpoints from its stored records (the upgrade to schema 4), one
  // each checkpoint_every records in event-time order. REQUIRES: inside a write transaction.
  Status BackfillCheckpoints();
};

namespace {

// The completeness ledger (history/completeness.h) in the file's tables: meta watermark_seq /
// watermark_us, txn_progress, held (records as their JSON rows), heartbeats. Used inside the
// caller's write transaction.
class SqliteLedger final : public CompletenessLedger {
 public:
  explicit SqliteLedger(SqliteDb& db) : db_(db) {}

  Result<Watermark> GetWatermark() override {
    ASSIGN_OR_RETURN(SqliteStmt * s,
                     db_.Prepare("SELECT (SELECT value FROM meta WHERE key = 'watermark_seq'), "
                                 "(SELECT value FROM meta WHERE key = 'watermark_us')"));
    StmtScope scope(s);
    ASSIGN_OR_RETURN(bool row, s->Step());
    Watermark w;
    if (row && !s->ColumnIsNull(0)) w.seq = s->ColumnInt64(0);
    if (row && !s->ColumnIsNull(1)) w.time = FromUnixMicros(s->ColumnInt64(1));
    return w;
  }
  Status SetWatermark(const Watermark& w) override {
    ASSIGN_OR_RETURN(SqliteStmt * s, db_.Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES "
                                                 "('watermark_seq', ?1), ('watermark_us', ?2)"));
    StmtScope scope(s);
    s->Bind(1, w.seq);
    if (w.time) {
      s->Bind(2, ToUnixMicros(*w.time));
    } else {
      s->BindNull(2);
    }
    return s->Run();
  }
  Result<std::optional<TxnProgress>> GetProgress(int64_t seq) override {
    ASSIGN_OR_RETURN(SqliteStmt * s, db_.Prepare("SELECT expected, received, commit_us, complete "
                                                 "FROM txn_progress WHERE seq = ?1"));
    StmtScope scope(s);
    s->Bind(1, seq);
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return std::optional<TxnProgress>();
    return std::optional<TxnProgress>(TxnProgress{.seq = seq,
                                                  .expected = s->ColumnInt64(0),
                                                  .received = s->ColumnInt64(1),
                                                  .commit_time = FromUnixMicros(s->ColumnInt64(2)),
                                                  .complete = s->ColumnInt64(3) != 0});
  }
  Status PutProgress(const TxnProgress& p) override {
    ASSIGN_OR_RETURN(SqliteStmt * s,
                     db_.Prepare("INSERT OR REPLACE INTO txn_progress(seq, expected, received, "
                                 "commit_us, complete) VALUES (?1, ?2, ?3, ?4, ?5)"));
    StmtScope scope(s);
    s->Bind(1, p.seq)
        .Bind(2, p.expected)
        .Bind(3, p.received)
        .Bind(4, ToUnixMicros(p.commit_time))
        .Bind(5, int64_t{p.complete ? 1 : 0});
    return s->Run();
  }
  Status EraseProgress(int64_t seq) override {
    ASSIGN_OR_RETURN(SqliteStmt * s, db_.Prepare("DELETE FROM txn_progress WHERE seq = ?1"));
    StmtScope scope(s);
    s->Bind(1, seq);
    return s->Run();
  }
  Result<int64_t> Hold(int64_t seq, std::span<const HistoryRecord* const> records) override {
    ASSIGN_OR_RETURN(SqliteStmt * s,
                     db_.Prepare("INSERT OR IGNORE INTO held(campaign_id, version, seq, "
                                 "customer_id, record) VALUES (?1, ?2, ?3, ?4, ?5)"));
    int64_t added = 0;
    for (const HistoryRecord* r : records) {
      StmtScope scope(s);
      s->Bind(1, r->campaign_id)
          .Bind(2, r->version)
          .Bind(3, seq)
          .Bind(4, r->customer_id)
          // A placeholder (GateRecords: an erased customer's piece) keeps its key, no content.
          .Bind(5, r->snapshot.empty() ? std::string() : HistoryRecordToJson(*r));
      RETURN_IF_ERROR(s->Run());
      added += db_.Changes();
    }
    return added;
  }
  Result<std::vector<HistoryRecord>> Release(int64_t seq) override {
    std::vector<HistoryRecord> out;
    {
      ASSIGN_OR_RETURN(SqliteStmt * s,
                       db_.Prepare("SELECT record, campaign_id, version, customer_id FROM held "
                                   "WHERE seq = ?1"));
      StmtScope scope(s);
      s->Bind(1, seq);
      while (true) {
        ASSIGN_OR_RETURN(bool row, s->Step());
        if (!row) break;
        if (s->ColumnText(0).empty()) {  // a placeholder
          HistoryRecord placeholder;
          placeholder.campaign_id = s->ColumnInt64(1);
          placeholder.version = s->ColumnInt64(2);
          placeholder.customer_id = s->ColumnInt64(3);
          placeholder.txn_seq = seq;
          out.push_back(std::move(placeholder));
          continue;
        }
        Result<HistoryRecord> r = HistoryRecordFromJson(s->ColumnText(0));
        if (!r.ok())
          return DataLossError("history: a held record is unreadable: " +
                               std::string(r.status().message()));
        out.push_back(std::move(*r));
      }
    }
    ASSIGN_OR_RETURN(SqliteStmt * d, db_.Prepare("DELETE FROM held WHERE seq = ?1"));
    StmtScope scope(d);
    d->Bind(1, seq);
    RETURN_IF_ERROR(d->Run());
    return out;
  }
  Result<std::optional<CaptureHeartbeat>> TakeHeartbeat(int64_t through_seq) override {
    std::optional<CaptureHeartbeat> best;
    {
      ASSIGN_OR_RETURN(SqliteStmt * s, db_.Prepare("SELECT seq, at_us FROM heartbeats WHERE seq "
                                                   "<= ?1 ORDER BY at_us DESC LIMIT 1"));
      StmtScope scope(s);
      s->Bind(1, through_seq);
      ASSIGN_OR_RETURN(bool row, s->Step());
      if (row) best = CaptureHeartbeat{s->ColumnInt64(0), FromUnixMicros(s->ColumnInt64(1))};
    }
    if (!best) return best;
    ASSIGN_OR_RETURN(SqliteStmt * d, db_.Prepare("DELETE FROM heartbeats WHERE seq <= ?1"));
    StmtScope scope(d);
    d->Bind(1, through_seq);
    RETURN_IF_ERROR(d->Run());
    return best;
  }
  Status PutHeartbeat(const CaptureHeartbeat& h) override {
    ASSIGN_OR_RETURN(SqliteStmt * s,
                     db_.Prepare("INSERT INTO heartbeats(seq, at_us) VALUES (?1, ?2) ON "
                                 "CONFLICT(seq) DO UPDATE SET at_us = max(at_us, excluded.at_us)"));
    StmtScope scope(s);
    s->Bind(1, h.seq).Bind(2, ToUnixMicros(h.at));
    return s->Run();
  }

 private:
  SqliteDb& db_;
};

}  // namespace

Result<SqliteHistoryStore::Impl::Merged> SqliteHistoryStore::Impl::MergeRecent(bool all) {
  if (!all) {
    // A chunk: the campaigns below the one at position merge_chunk_rows (or that campaign
    // alone when it has more rows than that). Spreading the merge over several appends keeps
    // each append's pause short: a whole-table merge stalled the publisher for hundreds of
    // milliseconds, which showed up as the commit-to-queryable lag p99.
    ASSIGN_OR_RETURN(SqliteStmt * bound,
                     db->Prepare("SELECT (SELECT campaign_id FROM recent ORDER BY campaign_id "
                                 "LIMIT 1 OFFSET ?1), (SELECT min(campaign_id) FROM recent)"));
    std::optional<int64_t> upper, lowest;
    {
      StmtScope scope(bound);
      bound->Bind(1, merge_chunk_rows);
      ASSIGN_OR_RETURN(bool row, bound->Step());
      if (row) {
        upper = bound->ColumnOptInt64(0);
        lowest = bound->ColumnOptInt64(1);
      }
    }
    if (upper && lowest) {
      // Below `upper` every campaign is whole; when that is nothing, take the first campaign.
      const char* op = *upper == *lowest ? "<=" : "<";
      RETURN_IF_ERROR(db->Exec(fmt::format(
          "INSERT OR IGNORE INTO history(campaign_id, t, version, customer_id, row) "
          "SELECT campaign_id, t, version, customer_id, row FROM recent WHERE campaign_id {0} {1} "
          "ORDER BY campaign_id, t, version; "
          "DELETE FROM recent WHERE campaign_id {0} {1}; "
          "UPDATE campaigns SET recent_first_t = NULL WHERE campaign_id {0} {1} AND "
          "recent_first_t IS NOT NULL;",
          op, *upper)));
      return Merged{.all = false, .upper = *upper, .inclusive = *upper == *lowest};
    }
  }
  RETURN_IF_ERROR(db->Exec(
      "INSERT OR IGNORE INTO history(campaign_id, t, version, customer_id, row) "
      "SELECT campaign_id, t, version, customer_id, row FROM recent ORDER BY campaign_id, t, "
      "version; "
      "DELETE FROM recent; "
      "UPDATE campaigns SET recent_first_t = NULL WHERE recent_first_t IS NOT NULL;"));
  merging = false;  // `recent` is empty: the cycle is complete
  return Merged{};
}

void SqliteHistoryStore::Impl::ClearRecentFirstT(const Merged& merged) {
  campaign_cache.ForEach([&](int64_t id, CampaignCache& c) {
    if (c.row && merged.Contains(id)) c.row->recent_first_t.reset();
  });
}

void SqliteHistoryStore::Impl::ForgetCampaignRows() {
  campaign_cache.ForEach([](int64_t, CampaignCache& c) { c.row.reset(); });
}

namespace {

// Copies rows out of SQLite (a column's text is valid only until the next step) and points the
// changes at them once every row is in, since the arena moves while it grows.
class RowArena {
 public:
  explicit RowArena(std::string& arena) : arena_(arena) { arena_.clear(); }
  // Append `change` with a copy of `row`.
  void Add(CheckpointChange change, std::string_view row, std::vector<CheckpointChange>& out) {
    spans_.emplace_back(arena_.size(), row.size());
    arena_.append(row);
    out.push_back(change);
  }
  // Point out[first..] at their copies.
  void Finish(std::vector<CheckpointChange>& out, size_t first) {
    for (size_t i = 0; i < spans_.size(); ++i) {
      out[first + i].row = std::string_view(arena_).substr(spans_[i].first, spans_[i].second);
    }
  }

 private:
  std::string& arena_;
  std::vector<std::pair<size_t, size_t>> spans_;
};

CheckpointChange ChangeOf(int64_t campaign_id, const PackedRow& p) {
  return CheckpointChange{.campaign_id = campaign_id,
                          .t = p.t,
                          .version = p.version,
                          .deleted = (p.kind & 3) == kKindDeleted};
}

}  // namespace

namespace {

// Of columns 1 (`history`) and 2 (`recent`) of `s`'s current row -- each a campaign's newest
// packed row in that table, or NULL -- decode the newer by (t, version) into `p` and return its
// bytes; nullopt when both are NULL. `q` is scratch.
Result<std::optional<std::string_view>> NewerOfBothTables(SqliteStmt& s, PackedRow& p,
                                                          PackedRow& q) {
  const bool in_history = !s.ColumnIsNull(1);
  const bool in_recent = !s.ColumnIsNull(2);
  if (!in_history && !in_recent) return std::optional<std::string_view>();
  std::string_view text;
  if (in_history) {
    text = s.ColumnText(1);
    if (!DecodeRow(text, p)) return DataLossError("history: undecodable row");
  }
  if (in_recent) {
    std::string_view recent = s.ColumnText(2);
    if (!DecodeRow(recent, q)) return DataLossError("history: undecodable row");
    if (!in_history || std::pair(q.t, q.version) > std::pair(p.t, p.version)) {
      p = q;
      text = recent;
    }
  }
  return std::optional<std::string_view>(text);
}

}  // namespace

Status SqliteHistoryStore::Impl::CollectBySeeks(int64_t customer, int64_t t, std::string& arena,
                                                std::vector<CheckpointChange>& out) {
  ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare(kAsOfSql));
  StmtScope scope(s);
  s->Bind(1, customer).Bind(2, t);
  RowArena rows(arena);
  const size_t first = out.size();
  PackedRow p;
  PackedRow q;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    ASSIGN_OR_RETURN(std::optional<std::string_view> text, NewerOfBothTables(*s, p, q));
    if (!text) continue;  // no record at or before t
    rows.Add(ChangeOf(s->ColumnInt64(0), p), *text, out);
  }
  rows.Finish(out, first);
  return Status::OK();
}

Status SqliteHistoryStore::Impl::ReadChanges(int64_t customer, int64_t lo, int64_t hi,
                                             std::string& arena,
                                             std::vector<CheckpointChange>& out) {
  // Index-only: the customer indexes carry the row.
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      db->Prepare(FromBoth("campaign_id, row", "customer_id = ?1 AND t > ?2 AND t <= ?3")));
  StmtScope scope(s);
  s->Bind(1, customer).Bind(2, lo).Bind(3, hi);
  RowArena rows(arena);
  const size_t first = out.size();
  PackedRow p;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    std::string_view text = s->ColumnText(1);
    if (!DecodeRow(text, p)) return DataLossError("history: undecodable row");
    rows.Add(ChangeOf(s->ColumnInt64(0), p), text, out);
  }
  rows.Finish(out, first);
  return Status::OK();
}

Result<std::optional<int64_t>> SqliteHistoryStore::Impl::LatestCheckpoint(int64_t customer,
                                                                          int64_t t,
                                                                          std::string& blob) {
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   db->Prepare("SELECT t, data FROM checkpoints WHERE customer_id = ?1 AND "
                               "t <= ?2 ORDER BY t DESC LIMIT 1"));
  StmtScope scope(s);
  s->Bind(1, customer).Bind(2, t);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return std::optional<int64_t>();
  blob.assign(s->ColumnText(1));
  return std::optional<int64_t>(s->ColumnInt64(0));
}

Result<std::vector<CheckpointEntry>> SqliteHistoryStore::Impl::StateAt(int64_t customer, int64_t t,
                                                                       bool use_checkpoints,
                                                                       std::string& blob,
                                                                       std::string& arena) {
  std::vector<CheckpointChange> changes;
  if (use_checkpoints && has_checkpoints) {
    ASSIGN_OR_RETURN(std::optional<int64_t> at, LatestCheckpoint(customer, t, blob));
    if (at) {
      std::vector<CheckpointEntry> base;
      if (!DecodeCheckpoint(blob, base)) {
        return DataLossError(
            fmt::format("history: checkpoint of customer {} is undecodable", customer));
      }
      if (*at == t) return base;
      RETURN_IF_ERROR(ReadChanges(customer, *at, t, arena, changes));
      return ApplyCheckpointChanges(base, changes);
    }
  }
  RETURN_IF_ERROR(CollectBySeeks(customer, t, arena, changes));
  return ApplyCheckpointChanges({}, changes);
}

Status SqliteHistoryStore::Impl::BuildCheckpoint(int64_t customer, int64_t t) {
  std::string blob, arena;
  ASSIGN_OR_RETURN(std::vector<CheckpointEntry> state,
                   StateAt(customer, t, /*use_checkpoints=*/true, blob, arena));
  std::string data;
  EncodeCheckpoint(state, data);
  ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare("INSERT OR REPLACE INTO checkpoints(customer_id, "
                                               "t, data) VALUES (?1, ?2, ?3)"));
  StmtScope scope(s);
  return s->Bind(1, customer).Bind(2, t).BindBlob(3, data).Run();
}

Status SqliteHistoryStore::Impl::UpdateCheckpoints(int64_t customer, const Touched& touched) {
  if (!has_checkpoints || touched.records == 0) return Status::OK();
  // A record at or before a checkpoint's moment (late or reordered delivery, a released
  // transaction) changes that checkpoint: read each affected campaign's latest row at the
  // checkpoint's moment again. In-order delivery finds no checkpoint here.
  std::vector<std::pair<int64_t, std::string>> stale;
  {
    ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare("SELECT t, data FROM checkpoints WHERE "
                                                 "customer_id = ?1 AND t >= ?2"));
    StmtScope scope(s);
    s->Bind(1, customer).Bind(2, touched.min_t);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      stale.emplace_back(s->ColumnInt64(0), s->ColumnString(1));
    }
  }
  if (!stale.empty()) {
    ASSIGN_OR_RETURN(SqliteStmt * latest,
                     db->Prepare(FromBoth("row, t, version", "campaign_id = ?1 AND t <= ?2") +
                                 " ORDER BY 2 DESC, 3 DESC LIMIT 1"));
    ASSIGN_OR_RETURN(SqliteStmt * update,
                     db->Prepare("UPDATE checkpoints SET data = ?3 WHERE customer_id = ?1 AND "
                                 "t = ?2"));
    std::vector<CheckpointEntry> base;
    std::string arena, data;
    for (auto& [at, blob] : stale) {
      if (!DecodeCheckpoint(blob, base)) {
        return DataLossError(
            fmt::format("history: checkpoint of customer {} is undecodable", customer));
      }
      std::set<int64_t> affected;
      for (const auto& [campaign, t] : touched.stored) {
        if (t <= at) affected.insert(campaign);
      }
      std::vector<CheckpointChange> changes;
      RowArena rows(arena);
      PackedRow p;
      for (int64_t campaign : affected) {
        StmtScope scope(latest);
        latest->Bind(1, campaign).Bind(2, at);
        ASSIGN_OR_RETURN(bool row, latest->Step());
        if (!row) continue;
        if (!DecodeRow(latest->ColumnText(0), p)) return DataLossError("history: undecodable row");
        rows.Add(ChangeOf(campaign, p), latest->ColumnText(0), changes);
      }
      rows.Finish(changes, 0);
      std::vector<CheckpointEntry> fixed = ApplyCheckpointChanges(base, changes);
      data.clear();
      EncodeCheckpoint(fixed, data);
      StmtScope scope(update);
      RETURN_IF_ERROR(update->Bind(1, customer).Bind(2, at).BindBlob(3, data).Run());
    }
  }
  if (checkpoint_every <= 0) return Status::OK();
  int64_t pending = 0;
  {
    ASSIGN_OR_RETURN(SqliteStmt * s,
                     db->Prepare("INSERT INTO checkpoint_due(customer_id, pending) VALUES (?1, "
                                 "?2) ON CONFLICT(customer_id) DO UPDATE SET pending = pending + "
                                 "excluded.pending RETURNING pending"));
    StmtScope scope(s);
    s->Bind(1, customer).Bind(2, touched.records);
    ASSIGN_OR_RETURN(bool row, s->Step());
    pending = row ? s->ColumnInt64(0) : 0;
  }
  if (pending < checkpoint_every || touched.max_t == std::numeric_limits<int64_t>::min()) {
    return Status::OK();
  }
  // Just before the newest record: the rest of its transaction may still be on its way in the
  // next Append, and would otherwise correct the checkpoint at once.
  RETURN_IF_ERROR(BuildCheckpoint(customer, touched.max_t - 1));
  ASSIGN_OR_RETURN(SqliteStmt * reset,
                   db->Prepare("UPDATE checkpoint_due SET pending = 0 WHERE customer_id = ?1"));
  StmtScope scope(reset);
  return reset->Bind(1, customer).Run();
}

Status SqliteHistoryStore::Impl::BackfillCheckpoints() {
  if (checkpoint_every <= 0) return Status::OK();
  std::vector<int64_t> customers;
  {
    ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare("SELECT DISTINCT customer_id FROM campaigns"));
    StmtScope scope(s);
    while (true) {
      ASSIGN_OR_RETURN(bool row, s->Step());
      if (!row) break;
      customers.push_back(s->ColumnInt64(0));
    }
  }
  ASSIGN_OR_RETURN(
      SqliteStmt * walk,
      db->Prepare(FromBoth("campaign_id, t, row", "customer_id = ?1") + " ORDER BY 2"));
  ASSIGN_OR_RETURN(SqliteStmt * insert, db->Prepare("INSERT OR REPLACE INTO checkpoints("
                                                    "customer_id, t, data) VALUES (?1, ?2, ?3)"));
  ASSIGN_OR_RETURN(SqliteStmt * due,
                   db->Prepare("INSERT OR REPLACE INTO checkpoint_due(customer_id, pending) "
                               "VALUES (?1, ?2)"));
  struct Slot {
    int64_t t = 0;
    int64_t version = 0;
    bool deleted = false;
    std::string row;
  };
  for (int64_t customer : customers) {
    std::map<int64_t, Slot> state;  // by campaign id: the order of the blob
    int64_t count = 0;
    int64_t last_t = 0;
    std::string data;
    auto emit = [&](int64_t at) -> Status {
      std::vector<CheckpointEntry> live;
      for (const auto& [id, slot] : state) {
        if (!slot.deleted) live.push_back({id, slot.row});
      }
      data.clear();
      EncodeCheckpoint(live, data);
      StmtScope scope(insert);
      count = 0;
      return insert->Bind(1, customer).Bind(2, at).BindBlob(3, data).Run();
    };
    {
      StmtScope scope(walk);
      walk->Bind(1, customer);
      PackedRow p;
      while (true) {
        ASSIGN_OR_RETURN(bool row, walk->Step());
        if (!row) break;
        const int64_t t = walk->ColumnInt64(1);
        // Every record at or before last_t is in: a checkpoint at last_t is complete.
        if (count >= checkpoint_every && t > last_t) RETURN_IF_ERROR(emit(last_t));
        std::string_view text = walk->ColumnText(2);
        if (!DecodeRow(text, p)) return DataLossError("history: undecodable row");
        Slot& slot = state[walk->ColumnInt64(0)];
        if (slot.row.empty() || std::pair(p.t, p.version) > std::pair(slot.t, slot.version)) {
          slot = Slot{p.t, p.version, (p.kind & 3) == kKindDeleted, std::string(text)};
        }
        last_t = t;
        ++count;
      }
    }
    StmtScope scope(due);
    RETURN_IF_ERROR(due->Bind(1, customer).Bind(2, count).Run());
  }
  return Status::OK();
}

Result<const std::string*> SqliteHistoryStore::Impl::ActorName(int64_t id) {
  auto it = actor_names.find(id);
  if (it != actor_names.end()) return &it->second;
  ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare("SELECT name FROM actors WHERE id = ?1"));
  StmtScope scope(s);
  s->Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return DataLossError(fmt::format("history: actor id {} is missing", id));
  if (actor_names.size() >= kDictionaryLimit) actor_names.clear();
  return &actor_names.emplace(id, s->ColumnString(0)).first->second;
}

Result<Timestamp> SqliteHistoryStore::Impl::BatchTime(int64_t id) {
  auto it = batch_times.find(id);
  if (it != batch_times.end()) return FromUnixMicros(it->second);
  ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare("SELECT ingested_at FROM batches WHERE id = ?1"));
  StmtScope scope(s);
  s->Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return DataLossError(fmt::format("history: batch id {} is missing", id));
  if (batch_times.size() >= kDictionaryLimit) batch_times.clear();
  int64_t v = s->ColumnInt64(0);
  batch_times.emplace(id, v);
  return FromUnixMicros(v);
}

Result<const std::string*> SqliteHistoryStore::Impl::Body(int64_t id) {
  if (const std::string* hit = bodies.Get(id)) return hit;
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   db->Prepare("SELECT b.base, b.data, k.data FROM bodies b "
                               "LEFT JOIN bodies k ON k.id = b.base WHERE b.id = ?1"));
  StmtScope scope(s);
  s->Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return DataLossError(fmt::format("history: body {} is missing", id));
  std::string body;
  if (s->ColumnIsNull(0)) {
    body = s->ColumnString(1);
  } else {
    ASSIGN_OR_RETURN(body, ApplyDelta(s->ColumnText(2), s->ColumnText(1)));
  }
  bodies.Put(id, std::move(body));
  return bodies.Get(id);
}

Status SqliteHistoryStore::Impl::PrefetchBodies(std::vector<int64_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int64_t id : ids) {
    if (bodies.Get(id) == nullptr) RETURN_IF_ERROR(Body(id).status());
  }
  return Status::OK();
}

Status SqliteHistoryStore::Impl::Fill(const PackedRow& p, HistoryRecord& r, bool with_snapshot) {
  r.version = p.version;
  r.event_time = FromT(p.t);
  r.priority = p.priority;
  DecodeKind(p.kind, r);
  ASSIGN_OR_RETURN(const std::string* actor, ActorName(p.actor));
  r.actor = *actor;
  if (p.tx_number >= 0) {
    r.transaction_id = std::to_string(p.tx_number);
  } else {
    r.transaction_id = std::string(p.tx_text);
  }
  r.missed_versions = p.missed;
  r.txn_seq = p.txn_seq;
  r.txn_changes = p.txn_changes;
  ASSIGN_OR_RETURN(r.ingested_at, BatchTime(p.batch));
  if (!with_snapshot) {
    r.snapshot.clear();
    return Status::OK();
  }
  ASSIGN_OR_RETURN(const std::string* body, Body(p.body));
  return JoinSnapshotText(
      *body, p.extras, SnapshotColumns{r.priority, r.version, r.event_time, r.actor}, &r.snapshot);
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::Impl::ReadAll(SqliteStmt& s) {
  std::vector<HistoryRecord> out;
  PackedRow p;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    if (!DecodeRow(s.ColumnText(2), p)) return DataLossError("history: undecodable row");
    HistoryRecord r;
    r.campaign_id = s.ColumnInt64(0);
    r.customer_id = s.ColumnInt64(1);
    RETURN_IF_ERROR(Fill(p, r));
    out.push_back(std::move(r));
  }
  return out;
}

SqliteHistoryStore::SqliteHistoryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteHistoryStore::~SqliteHistoryStore() = default;

const char* SqliteHistoryStore::AsOfSqlForTesting() { return kAsOfSql; }

namespace {

// Schema version 3 added held.customer_id: add it to a version 2 file's table.
Status AddHeldCustomerColumn(SqliteDb& db) {
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare("SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'held'), "
                              "(SELECT count(*) FROM pragma_table_info('held') "
                              "WHERE name = 'customer_id')"));
  bool lacks = false;
  {
    StmtScope scope(st);
    ASSIGN_OR_RETURN(bool row, st->Step());
    lacks = row && st->ColumnInt64(0) > 0 && st->ColumnInt64(1) == 0;
  }
  if (!lacks) return Status::OK();
  return db.Exec("ALTER TABLE held ADD COLUMN customer_id INTEGER NOT NULL DEFAULT 0");
}

}  // namespace

Result<std::unique_ptr<SqliteHistoryStore>> SqliteHistoryStore::Open(
    const SqliteHistoryOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("history store: empty SQLite path");
  SqliteOptions so;
  so.read_only = options.read_only;
  so.synchronous = options.synchronous;
  so.cache_kib = options.cache_kib;
  so.mmap_kib = options.mmap_kib;
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->db, SqliteDb::Open(options.path, so));
  impl->clock = options.clock ? options.clock : &SystemClock::Default();
  impl->read_only = options.read_only;
  impl->bodies = BodyCache(options.body_cache_bytes);
  impl->merge_rows = std::max<int64_t>(1, options.merge_threshold_rows);
  impl->merge_chunk_rows =
      std::max<int64_t>(1, std::min(impl->merge_rows, options.merge_chunk_rows));
  impl->checkpoint_every = std::max<int64_t>(0, options.checkpoint_every);
  SqliteDb& db = *impl->db;
  auto not_ours = [&] {
    return FailedPreconditionError(
        fmt::format("'{}' is not a campaign-history SQLite history store", options.path));
  };
  // Files written by development builds before schema_version 1 was fixed lack some columns
  // (tables that are missing altogether are simply created).
  auto check_columns = [&]() -> Status {
    for (const char* probe : {"SELECT campaign_id, t, version, customer_id, row FROM history",
                              "SELECT dead_t, recent_first_t, last_version FROM campaigns",
                              "SELECT base FROM bodies"}) {
      ASSIGN_OR_RETURN(SqliteStmt * exists,
                       db.Prepare("SELECT count(*) FROM sqlite_master WHERE name = ?1"));
      std::string table = std::string(probe).substr(std::string(probe).rfind(' ') + 1);
      int64_t n = 0;
      {
        StmtScope scope(exists);
        exists->Bind(1, table);
        ASSIGN_OR_RETURN(bool row, exists->Step());
        n = row ? exists->ColumnInt64(0) : 0;
      }
      if (n > 0 && !db.Prepare(probe).ok()) {
        return FailedPreconditionError(fmt::format(
            "history store '{}' was written by an incompatible development build (table {} "
            "lacks columns); move it away and let it be rebuilt",
            options.path, table));
      }
    }
    return Status::OK();
  };
  if (!options.read_only) {
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db));
    // Create the schema only in an empty file or one that is already ours: never add tables to
    // somebody else's database.
    ASSIGN_OR_RETURN(SqliteStmt * probe,
                     db.Prepare("SELECT (SELECT count(*) FROM sqlite_master), "
                                "(SELECT count(*) FROM sqlite_master WHERE name = 'meta')"));
    int64_t objects = 0;
    int64_t metas = 0;
    {
      StmtScope scope(probe);
      ASSIGN_OR_RETURN(bool row, probe->Step());
      if (row) {
        objects = probe->ColumnInt64(0);
        metas = probe->ColumnInt64(1);
      }
    }
    if (objects > 0 && metas == 0) return not_ours();
    if (objects > 0) RETURN_IF_ERROR(check_columns());
    int64_t old_version = 0;  // 0: a new file
    if (objects > 0) {
      ASSIGN_OR_RETURN(SqliteStmt * sv, db.Prepare("SELECT CAST(value AS INTEGER) FROM meta "
                                                   "WHERE key = 'schema_version'"));
      StmtScope scope(sv);
      ASSIGN_OR_RETURN(bool row, sv->Step());
      if (row) old_version = sv->ColumnInt64(0);
    }
    const bool to_v4 = old_version >= 1 && old_version < 4;
    if (objects == 0 && options.page_size != 4096) {
      // A WAL file's page size is fixed once written; an empty one can still be rebuilt.
      RETURN_IF_ERROR(tx->Commit());
      RETURN_IF_ERROR(db.Exec(fmt::format(
          "PRAGMA journal_mode=DELETE; PRAGMA page_size={}; VACUUM; PRAGMA journal_mode=WAL;",
          options.page_size)));
      ASSIGN_OR_RETURN(tx, SqliteTransaction::Begin(db));
    }
    if (to_v4) {
      spdlog::info(
          "history '{}': upgrading from schema {} to {} (customer indexes rebuilt, as-of "
          "checkpoints built; once, in one transaction: about 25-40 s per million records)",
          options.path, old_version, kSqliteSchemaVersion);
    }
    Status s = AddHeldCustomerColumn(db);
    // Schema 4: the customer indexes cover the row (kSchemaSql creates them).
    if (s.ok() && to_v4) {
      s = db.Exec(
          "DROP INDEX IF EXISTS history_by_customer; "
          "DROP INDEX IF EXISTS recent_by_customer;");
    }
    if (s.ok()) s = db.Exec(kSchemaSql);
    if (s.ok()) {
      s =
          db.Exec(fmt::format("INSERT OR IGNORE INTO meta(key, value) VALUES ('format', '{}'), "
                              "('schema_version', {}), ('time_epoch_us', {})",
                              kFormatName, kSqliteSchemaVersion, kDefaultEpochUs));
    }
    if (s.ok()) {
      // Upgrade an older file in place: the new tables exist now, old rows stay as they are.
      s = db.Exec(fmt::format(
          "UPDATE meta SET value = {0} WHERE key = 'schema_version' AND CAST(value AS INTEGER) "
          "BETWEEN 1 AND {0}",
          kSqliteSchemaVersion));
    }
    if (s.ok() && to_v4) s = impl->BackfillCheckpoints();
    if (!s.ok()) return s.WithContext(fmt::format("history store '{}'", options.path));
    RETURN_IF_ERROR(tx->Commit());
    RETURN_IF_ERROR(
        db.Exec(fmt::format("PRAGMA wal_autocheckpoint={}", options.wal_autocheckpoint_pages)));
  }
  auto read_meta = [&](const char* key) -> Result<std::optional<std::string>> {
    ASSIGN_OR_RETURN(SqliteStmt * s, db.Prepare("SELECT value FROM meta WHERE key = ?1"));
    StmtScope scope(s);
    s->Bind(1, key);
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(s->ColumnString(0));
  };
  Result<std::optional<std::string>> format = read_meta("format");
  if (!format.ok() || !*format || **format != kFormatName) return not_ours();
  ASSIGN_OR_RETURN(std::optional<std::string> version, read_meta("schema_version"));
  int64_t v = version ? std::atoll(version->c_str()) : 0;
  if (v < 1 || v > kSqliteSchemaVersion) {
    return FailedPreconditionError(
        fmt::format("history store '{}' has schema_version {}; this build understands 1..{}",
                    options.path, version.value_or("?"), kSqliteSchemaVersion));
  }
  RETURN_IF_ERROR(check_columns());
  ASSIGN_OR_RETURN(std::optional<std::string> epoch, read_meta("time_epoch_us"));
  if (epoch) impl->epoch_us = std::atoll(epoch->c_str());
  impl->has_ledger = v >= 2;
  impl->has_retention = v >= 3;
  impl->has_checkpoints = v >= 4;
  return std::unique_ptr<SqliteHistoryStore>(new SqliteHistoryStore(std::move(impl)));
}

Result<int64_t> SqliteHistoryStore::Append(std::span<const HistoryRecord> records) {
  for (size_t i = 0; i < records.size(); ++i) {
    std::string problem = HistoryRecordProblem(records[i]);
    if (!problem.empty()) {
      return InvalidArgumentError(fmt::format("history record {} (c{}@v{}): {}", i,
                                              records[i].campaign_id, records[i].version, problem));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  if (m.read_only) return FailedPreconditionError("history store is read-only");
  if (records.empty()) return int64_t{0};
  SqliteDb& db = *m.db;
  ConflictNote conflicts;

  ASSIGN_OR_RETURN(SqliteStmt * get_campaign,
                   db.Prepare("SELECT customer_id, max_version, records, first_t, last_t, "
                              "last_version, dead_t IS NOT NULL, recent_first_t FROM campaigns "
                              "WHERE campaign_id = ?1"));
  ASSIGN_OR_RETURN(
      SqliteStmt * exists_exact,
      db.Prepare("SELECT EXISTS (SELECT 1 FROM recent WHERE campaign_id = ?1 AND t = ?2 "
                 "AND version = ?3) OR EXISTS (SELECT 1 FROM history WHERE campaign_id = ?1 "
                 "AND t = ?2 AND version = ?3)"));
  ASSIGN_OR_RETURN(
      SqliteStmt * exists_version,
      db.Prepare("SELECT EXISTS (SELECT 1 FROM recent WHERE campaign_id = ?1 AND version = ?2) "
                 "OR EXISTS (SELECT 1 FROM history WHERE campaign_id = ?1 AND version = ?2)"));
  ASSIGN_OR_RETURN(SqliteStmt * latest_row,
                   db.Prepare(FromBoth("row, t, version", "campaign_id = ?1") +
                              " ORDER BY 2 DESC, 3 DESC LIMIT 1"));
  ASSIGN_OR_RETURN(SqliteStmt * count_recent, db.Prepare("SELECT count(*) FROM recent"));
  ASSIGN_OR_RETURN(
      SqliteStmt * stored_version,
      db.Prepare(FromBoth("campaign_id, customer_id, row", "campaign_id = ?1 AND version = ?2") +
                 " LIMIT 1"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_conflict,
                   db.Prepare("INSERT INTO conflicts(campaign_id, version, detected_us, stored, "
                              "received) VALUES (?1, ?2, ?3, ?4, ?5)"));
  ASSIGN_OR_RETURN(SqliteStmt * body_base, db.Prepare("SELECT base FROM bodies WHERE id = ?1"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_body,
                   db.Prepare("INSERT INTO bodies(base, data) VALUES (?1, ?2)"));
  ASSIGN_OR_RETURN(SqliteStmt * find_actor, db.Prepare("SELECT id FROM actors WHERE name = ?1"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_actor, db.Prepare("INSERT INTO actors(name) VALUES (?1)"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_batch,
                   db.Prepare("INSERT INTO batches(ingested_at) VALUES (?1)"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_history,
                   db.Prepare("INSERT INTO recent(campaign_id, t, version, customer_id, row) "
                              "VALUES (?1, ?2, ?3, ?4, ?5)"));
  ASSIGN_OR_RETURN(
      SqliteStmt * upsert_campaign,
      db.Prepare("INSERT INTO campaigns(campaign_id, customer_id, max_version, records, first_t, "
                 "last_t, last_version, dead_t, recent_first_t) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
                 "ON CONFLICT(campaign_id) DO UPDATE SET max_version = excluded.max_version, "
                 "records = excluded.records, first_t = excluded.first_t, "
                 "last_t = excluded.last_t, last_version = excluded.last_version, "
                 "dead_t = excluded.dead_t, recent_first_t = excluded.recent_first_t"));

  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db));
  // Another connection may have written since our last commit: then the cached campaign rows may
  // be stale. (Bodies and dictionaries are immutable and stay valid.)
  {
    ASSIGN_OR_RETURN(SqliteStmt * dv, db.Prepare("PRAGMA data_version"));
    StmtScope scope(dv);
    ASSIGN_OR_RETURN(bool row, dv->Step());
    int64_t version = row ? dv->ColumnInt64(0) : -1;
    if (version != m.data_version) m.ForgetCampaignRows();
    m.data_version = version;
  }
  // Hold back pieces of incomplete transactions; release the ones this call completes. Records
  // of erased customers (EraseCustomer) are refused from then on.
  std::set<int64_t> erased;
  {
    ASSIGN_OR_RETURN(SqliteStmt * st, db.Prepare("SELECT customer_id FROM erased_customers"));
    StmtScope scope(st);
    while (true) {
      ASSIGN_OR_RETURN(bool row, st->Step());
      if (!row) break;
      erased.insert(st->ColumnInt64(0));
    }
  }
  SqliteLedger ledger(db);
  ASSIGN_OR_RETURN(GateResult gate, GateRecords(records, ledger, [&erased](const HistoryRecord& r) {
                     return erased.contains(r.customer_id);
                   }));
  std::vector<const HistoryRecord*> todo = std::move(gate.visible);
  const size_t counted = todo.size();  // released records were counted when they were held
  for (const HistoryRecord& r : gate.released) todo.push_back(&r);
  // Records stored by this call, by key: a duplicate within the call is compared with them in
  // memory (reading it back would cache data that is not committed yet).
  std::map<std::pair<int64_t, int64_t>, const HistoryRecord*> in_call;

  // Everything learned in this transaction is staged here and reaches the caches only after a
  // successful commit: an id handed out by a rolled-back transaction is reused later and must
  // not be remembered.
  std::unordered_map<int64_t, std::optional<CampaignRow>> campaigns;
  campaigns.reserve(records.size());
  std::unordered_map<int64_t, BodyRef> body_refs;       // campaign -> latest body
  std::unordered_map<int64_t, std::string> new_bodies;  // body id -> full body
  std::unordered_map<std::string, int64_t> new_actors;
  std::map<int64_t, Impl::Touched> touched;  // by customer, for the checkpoints
  int64_t batch_id = 0;
  const int64_t ingested_us = ToUnixMicros(m.clock->Now());
  int64_t stored = gate.held;
  SplitSnapshot split;
  std::string delta;
  std::string row;

  // Return the full text of body `id` (written in this transaction, cached, or read).
  auto body_text = [&](int64_t id) -> Result<const std::string*> {
    if (auto it = new_bodies.find(id); it != new_bodies.end()) return &it->second;
    return m.Body(id);
  };

  for (size_t i = 0; i < todo.size(); ++i) {
    const HistoryRecord& r = *todo[i];
    const int64_t t = m.ToT(r.event_time);

    // The campaign's bookkeeping row: owner check and the "is this version new?" fast path.
    auto cit = campaigns.find(r.campaign_id);
    if (cit == campaigns.end()) {
      const CampaignCache* cached = m.campaign_cache.Find(r.campaign_id);
      if (cached != nullptr && cached->row) {
        cit = campaigns.emplace(r.campaign_id, *cached->row).first;
      }
    }
    if (cit == campaigns.end()) {
      StmtScope scope(get_campaign);
      get_campaign->Bind(1, r.campaign_id);
      ASSIGN_OR_RETURN(bool found, get_campaign->Step());
      std::optional<CampaignRow> c;
      if (found) {
        c = CampaignRow{get_campaign->ColumnInt64(0),
                        get_campaign->ColumnInt64(1),
                        get_campaign->ColumnInt64(2),
                        get_campaign->ColumnInt64(3),
                        get_campaign->ColumnInt64(4),
                        get_campaign->ColumnInt64(5),
                        get_campaign->ColumnInt64(6) != 0,
                        get_campaign->ColumnOptInt64(7),
                        false};
      }
      cit = campaigns.emplace(r.campaign_id, c).first;
    }
    std::optional<CampaignRow>& c = cit->second;
    if (c && c->customer_id != r.customer_id) {
      return InvalidArgumentError(
          fmt::format("history record {} (c{}@v{}): campaign {} belongs to customer {}, not {}", i,
                      r.campaign_id, r.version, r.campaign_id, c->customer_id, r.customer_id));
    }
    if (c && r.version <= c->max_version) {
      // Possibly a redelivery. Exact key first (the usual duplicate), then any record with this
      // version (a redelivery with another event_time; scans only this campaign).
      bool found = false;
      {
        StmtScope scope(exists_exact);
        exists_exact->Bind(1, r.campaign_id).Bind(2, t).Bind(3, r.version);
        ASSIGN_OR_RETURN(bool row, exists_exact->Step());
        found = row && exists_exact->ColumnInt64(0) != 0;
      }
      if (!found) {
        StmtScope scope(exists_version);
        exists_version->Bind(1, r.campaign_id).Bind(2, r.version);
        ASSIGN_OR_RETURN(bool row, exists_version->Step());
        found = row && exists_version->ColumnInt64(0) != 0;
      }
      if (found) {
        // At-least-once delivery: the stored record wins. Different content is a reused
        // version number, not a redelivery: keep the evidence.
        HistoryRecord existing;
        if (auto it = in_call.find({r.campaign_id, r.version}); it != in_call.end()) {
          existing = *it->second;
        } else {
          StmtScope scope(stored_version);
          stored_version->Bind(1, r.campaign_id).Bind(2, r.version);
          ASSIGN_OR_RETURN(std::vector<HistoryRecord> rows, m.ReadAll(*stored_version));
          if (rows.empty()) return InternalError("history: a stored version vanished");
          existing = std::move(rows.front());
        }
        if (!SameVersionContent(existing, r)) {
          StmtScope scope(insert_conflict);
          RETURN_IF_ERROR(insert_conflict->Bind(1, r.campaign_id)
                              .Bind(2, r.version)
                              .Bind(3, ingested_us)
                              .Bind(4, HistoryRecordToJson(existing))
                              .Bind(5, HistoryRecordToJson(r))
                              .Run());
          conflicts.Note(r.campaign_id, r.version);
        }
        continue;
      }
    }

    // The body: shared with the campaign's previous version when equal, else a delta against
    // the campaign's key body when small enough, else a new key body.
    std::optional<BodyRef> prev;
    bool loaded_ref = false;
    if (auto b = body_refs.find(r.campaign_id); b != body_refs.end()) {
      prev = b->second;
    } else if (const CampaignCache* hint = m.campaign_cache.Find(r.campaign_id);
               hint != nullptr && hint->body) {
      prev = *hint->body;
    } else if (c) {
      StmtScope scope(latest_row);
      latest_row->Bind(1, r.campaign_id);
      ASSIGN_OR_RETURN(bool found, latest_row->Step());
      PackedRow p;
      if (found && DecodeRow(latest_row->ColumnText(0), p)) {
        StmtScope base_scope(body_base);
        body_base->Bind(1, p.body);
        ASSIGN_OR_RETURN(bool has_body, body_base->Step());
        if (!has_body) return DataLossError(fmt::format("history: body {} is missing", p.body));
        prev = BodyRef{p.body, body_base->ColumnIsNull(0) ? p.body : body_base->ColumnInt64(0)};
        loaded_ref = true;
      }
    }
    int64_t body_id = 0;
    const SnapshotColumns columns{r.priority, r.version, r.event_time, r.actor};
    if (prev) {
      ASSIGN_OR_RETURN(const std::string* prev_body, body_text(prev->body));
      if (SplitSnapshotUnlessSame(r.snapshot, columns, *prev_body, &split)) body_id = prev->body;
    } else {
      SplitSnapshotText(r.snapshot, columns, &split);
    }
    if (body_id == 0) {
      bool as_delta = false;
      if (prev) {
        ASSIGN_OR_RETURN(const std::string* key, body_text(prev->key));
        delta.clear();
        EncodeDelta(*key, split.body, delta);
        as_delta = delta.size() * kDeltaDivisor <= split.body.size();
      }
      StmtScope scope(insert_body);
      if (as_delta) {
        insert_body->Bind(1, prev->key).BindBlob(2, delta);
      } else {
        insert_body->BindNull(1).BindBlob(2, split.body);
      }
      RETURN_IF_ERROR(insert_body->Run());
      body_id = db.LastInsertRowId();
      new_bodies[body_id] = split.body;
      body_refs[r.campaign_id] = BodyRef{body_id, as_delta ? prev->key : body_id};
    } else if (loaded_ref) {
      body_refs[r.campaign_id] = *prev;  // read from the file: remember it for the next batch
    }

    // The actor, through the dictionary.
    int64_t actor_id = 0;
    if (auto a = m.actor_ids.find(r.actor); a != m.actor_ids.end()) {
      actor_id = a->second;
    } else if (auto n = new_actors.find(r.actor); n != new_actors.end()) {
      actor_id = n->second;
    } else {
      {
        StmtScope scope(find_actor);
        find_actor->Bind(1, r.actor);
        ASSIGN_OR_RETURN(bool found, find_actor->Step());
        if (found) actor_id = find_actor->ColumnInt64(0);
      }
      if (actor_id == 0) {
        RETURN_IF_ERROR(insert_actor->Bind(1, r.actor).Run());
        actor_id = db.LastInsertRowId();
      }
      new_actors.emplace(r.actor, actor_id);
    }

    if (batch_id == 0) {
      RETURN_IF_ERROR(insert_batch->Bind(1, ingested_us).Run());
      batch_id = db.LastInsertRowId();
    }

    PackedRow p;
    p.t = t;
    p.version = r.version;
    p.priority = r.priority;
    p.kind = EncodeKind(r);
    p.actor = actor_id;
    p.missed = r.missed_versions;
    p.txn_seq = r.txn_seq;
    p.txn_changes = r.txn_changes;
    p.batch = batch_id;
    p.body = body_id;
    p.extras = split.extras;
    EncodeRow(p, r.transaction_id, row);
    RETURN_IF_ERROR(insert_history->Bind(1, r.campaign_id)
                        .Bind(2, t)
                        .Bind(3, r.version)
                        .Bind(4, r.customer_id)
                        .BindBlob(5, row)
                        .Run());
    if (i < counted) ++stored;
    in_call.emplace(std::pair(r.campaign_id, r.version), &r);
    Impl::Touched& touch = touched[r.customer_id];
    touch.records += 1;
    touch.min_t = std::min(touch.min_t, t);
    touch.max_t = std::max(touch.max_t, t);
    touch.stored.emplace_back(r.campaign_id, t);

    if (!c) c = CampaignRow{r.customer_id, r.version, 0, t, t, r.version, false, t, true};
    c->max_version = std::max(c->max_version, r.version);
    c->records += 1;
    c->first_t = std::min(c->first_t, t);
    c->recent_first_t = std::min(c->recent_first_t.value_or(t), t);
    if (std::pair(t, r.version) >= std::pair(c->last_t, c->last_version)) {
      c->last_t = t;
      c->last_version = r.version;
      c->dead = r.event_type == ChangeOp::kDeleted;
    }
    c->dirty = true;
  }

  for (const auto& [campaign_id, c] : campaigns) {
    if (!c || !c->dirty) continue;
    RETURN_IF_ERROR(upsert_campaign->Bind(1, campaign_id)
                        .Bind(2, c->customer_id)
                        .Bind(3, c->max_version)
                        .Bind(4, c->records)
                        .Bind(5, c->first_t)
                        .Bind(6, c->last_t)
                        .Bind(7, c->last_version)
                        .Bind(8, c->dead ? std::optional<int64_t>(c->last_t) : std::nullopt)
                        .Bind(9, c->recent_first_t)
                        .Run());
  }
  for (const auto& [customer_id, touch] : touched) {
    RETURN_IF_ERROR(m.UpdateCheckpoints(customer_id, touch));
  }
  bool merged = false;
  {
    StmtScope scope(count_recent);
    ASSIGN_OR_RETURN(bool row, count_recent->Step());
    const int64_t rows = row ? count_recent->ColumnInt64(0) : 0;
    if (rows >= m.merge_rows) m.merging = true;
    merged = m.merging && rows > 0;
    if (rows == 0) m.merging = false;
  }
  std::optional<Impl::Merged> merge;
  if (merged) {
    ASSIGN_OR_RETURN(merge, m.MergeRecent(/*all=*/false));
  }
  RETURN_IF_ERROR(tx->Commit());
  conflicts.Log(db.path());

  // Committed: the staged facts are now true for every reader.
  if (m.actor_ids.size() + new_actors.size() > kDictionaryLimit) m.actor_ids.clear();
  for (auto& [name, id] : new_actors) m.actor_ids.emplace(name, id);
  if (batch_id != 0) {
    if (m.batch_times.size() >= kDictionaryLimit) m.batch_times.clear();
    m.batch_times.emplace(batch_id, ingested_us);
  }
  for (auto& [id, body] : new_bodies) m.bodies.Put(id, std::move(body));
  for (const auto& [campaign_id, ref] : body_refs) m.campaign_cache[campaign_id].body = ref;
  // A merge chunk moved whole campaigns out of `recent`: their recent_first_t is now NULL in
  // the table, in the cache and in the rows staged by this batch alike. (Forgetting every cached
  // row instead made each append after a merge chunk re-read its campaigns: smaller chunks then
  // cost more than they saved.)
  if (merge) m.ClearRecentFirstT(*merge);
  for (auto& [campaign_id, c] : campaigns) {
    if (!c) continue;
    c->dirty = false;
    if (merge && merge->Contains(campaign_id)) c->recent_first_t.reset();
    m.campaign_cache[campaign_id].row = *c;
  }
  return stored;
}

Status SqliteHistoryStore::RecordHeartbeat(const CaptureHeartbeat& h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (impl_->read_only) return FailedPreconditionError("history store is read-only");
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*impl_->db));
  SqliteLedger ledger(*impl_->db);
  RETURN_IF_ERROR(GateHeartbeat(h, ledger));
  return tx->Commit();
}

Result<Completeness> SqliteHistoryStore::GetCompleteness() {
  std::lock_guard<std::mutex> lock(mu_);
  Completeness c;
  if (!impl_->has_ledger) return c;  // a version 1 file: nothing is known
  SqliteDb& db = *impl_->db;
  // One read transaction, so that the counts and the watermark agree.
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/false));
  SqliteLedger ledger(db);
  ASSIGN_OR_RETURN(Watermark w, ledger.GetWatermark());
  c.through_seq = w.seq;
  c.complete_through = w.time;
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      db.Prepare(
          "SELECT (SELECT count(*) FROM txn_progress WHERE complete = 0), "
          "(SELECT count(*) FROM txn_progress WHERE complete != 0), "
          "(SELECT count(*) FROM held WHERE record != ''), (SELECT count(*) FROM conflicts)"));
  StmtScope scope(s);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (row) {
    c.partial_transactions = s->ColumnInt64(0);
    c.waiting_transactions = s->ColumnInt64(1);
    c.held_records = s->ColumnInt64(2);
    c.conflicts = s->ColumnInt64(3);
  }
  return c;
}

namespace {

// The body ids the rows of `campaign_id` use, with the key bodies their deltas refer to.
// REQUIRES: inside a transaction (reads what it sees).
Result<std::set<int64_t>> BodiesInUse(SqliteDb& db, int64_t campaign_id) {
  std::set<int64_t> out;
  ASSIGN_OR_RETURN(SqliteStmt * rows, db.Prepare(FromBoth("row", "campaign_id = ?1")));
  {
    StmtScope scope(rows);
    rows->Bind(1, campaign_id);
    PackedRow p;
    while (true) {
      ASSIGN_OR_RETURN(bool row, rows->Step());
      if (!row) break;
      if (!DecodeRow(rows->ColumnText(0), p)) return DataLossError("history: undecodable row");
      out.insert(p.body);
    }
  }
  ASSIGN_OR_RETURN(SqliteStmt * base, db.Prepare("SELECT base FROM bodies WHERE id = ?1"));
  std::set<int64_t> bases;
  for (int64_t id : out) {
    StmtScope scope(base);
    base->Bind(1, id);
    ASSIGN_OR_RETURN(bool row, base->Step());
    if (row && !base->ColumnIsNull(0)) bases.insert(base->ColumnInt64(0));
  }
  out.insert(bases.begin(), bases.end());
  return out;
}

// Blank the content of bodies nobody uses any more. Their ids stay taken (never reused: caches
// of other processes rely on that), their text is gone.
Status BlankBodies(SqliteDb& db, const std::set<int64_t>& ids) {
  ASSIGN_OR_RETURN(SqliteStmt * blank,
                   db.Prepare("UPDATE bodies SET base = NULL, data = X'' WHERE id = ?1"));
  for (int64_t id : ids) {
    StmtScope scope(blank);
    RETURN_IF_ERROR(blank->Bind(1, id).Run());
  }
  return Status::OK();
}

Result<std::vector<int64_t>> CampaignsOf(SqliteDb& db, int64_t customer_id) {
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   db.Prepare("SELECT campaign_id FROM campaigns WHERE customer_id = ?1"));
  StmtScope scope(s);
  s->Bind(1, customer_id);
  std::vector<int64_t> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(s->ColumnInt64(0));
  }
  return out;
}

Status Audit(SqliteDb& db, const AuditEntry& e) {
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   db.Prepare("INSERT INTO audit(at_us, actor, action, customer_id, before_us, "
                              "records) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"));
  StmtScope scope(s);
  s->Bind(1, ToUnixMicros(e.at))
      .Bind(2, e.actor)
      .Bind(3, e.action)
      .Bind(4, e.customer_id)
      .Bind(6, e.records);
  if (e.before) {
    s->Bind(5, ToUnixMicros(*e.before));
  } else {
    s->BindNull(5);
  }
  return s->Run();
}

}  // namespace

Result<int64_t> SqliteHistoryStore::PurgeCustomer(int64_t customer_id, Timestamp before,
                                                  std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  if (m.read_only) return FailedPreconditionError("history store is read-only");
  SqliteDb& db = *m.db;
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db));
  const int64_t t = m.ToT(before);
  ASSIGN_OR_RETURN(SqliteStmt * keep,
                   db.Prepare(FromBoth("t, version", "campaign_id = ?1 AND t <= ?2") +
                              " ORDER BY 1 DESC, 2 DESC LIMIT 1"));
  ASSIGN_OR_RETURN(SqliteStmt * doomed,
                   db.Prepare(FromBoth("row",
                                       "campaign_id = ?1 AND t < ?2 AND NOT (t = ?3 AND "
                                       "version = ?4)")));
  std::string del_where = "campaign_id = ?1 AND t < ?2 AND NOT (t = ?3 AND version = ?4)";
  ASSIGN_OR_RETURN(SqliteStmt * del_history, db.Prepare("DELETE FROM history WHERE " + del_where));
  ASSIGN_OR_RETURN(SqliteStmt * del_recent, db.Prepare("DELETE FROM recent WHERE " + del_where));
  ASSIGN_OR_RETURN(
      SqliteStmt * bookkeeping,
      db.Prepare("UPDATE campaigns SET records = records - ?2, first_t = (SELECT min(t) FROM (" +
                 FromBoth("t", "campaign_id = ?1") + ")) WHERE campaign_id = ?1"));
  ASSIGN_OR_RETURN(std::vector<int64_t> campaigns, CampaignsOf(db, customer_id));
  int64_t removed = 0;
  std::set<int64_t> blanked;
  for (int64_t id : campaigns) {
    int64_t kt = 0, kv = 0;
    {
      StmtScope scope(keep);
      keep->Bind(1, id).Bind(2, t);
      ASSIGN_OR_RETURN(bool row, keep->Step());
      if (!row) continue;  // nothing at or before the horizon
      kt = keep->ColumnInt64(0);
      kv = keep->ColumnInt64(1);
    }
    std::set<int64_t> bodies;
    {
      StmtScope scope(doomed);
      doomed->Bind(1, id).Bind(2, t).Bind(3, kt).Bind(4, kv);
      PackedRow p;
      while (true) {
        ASSIGN_OR_RETURN(bool row, doomed->Step());
        if (!row) break;
        if (!DecodeRow(doomed->ColumnText(0), p)) return DataLossError("history: undecodable row");
        bodies.insert(p.body);
      }
    }
    if (bodies.empty()) continue;
    int64_t gone = 0;
    for (SqliteStmt* del : {del_history, del_recent}) {
      StmtScope scope(del);
      RETURN_IF_ERROR(del->Bind(1, id).Bind(2, t).Bind(3, kt).Bind(4, kv).Run());
      gone += db.Changes();
    }
    {
      StmtScope scope(bookkeeping);
      RETURN_IF_ERROR(bookkeeping->Bind(1, id).Bind(2, gone).Run());
    }
    ASSIGN_OR_RETURN(std::set<int64_t> in_use, BodiesInUse(db, id));
    for (int64_t b : in_use) bodies.erase(b);
    RETURN_IF_ERROR(BlankBodies(db, bodies));
    blanked.insert(bodies.begin(), bodies.end());
    removed += gone;
  }
  {
    // A checkpoint at or after the horizon holds rows the purge keeps (each campaign's last
    // record at or before it); earlier ones answer moments that are refused from now on.
    ASSIGN_OR_RETURN(SqliteStmt * old_checkpoints,
                     db.Prepare("DELETE FROM checkpoints WHERE customer_id = ?1 AND t < ?2"));
    StmtScope scope(old_checkpoints);
    RETURN_IF_ERROR(old_checkpoints->Bind(1, customer_id).Bind(2, t).Run());
  }
  {
    ASSIGN_OR_RETURN(SqliteStmt * horizon,
                     db.Prepare("INSERT INTO purges(customer_id, before_us) VALUES (?1, ?2) ON "
                                "CONFLICT(customer_id) DO UPDATE SET before_us = "
                                "max(before_us, excluded.before_us)"));
    StmtScope scope(horizon);
    RETURN_IF_ERROR(horizon->Bind(1, customer_id).Bind(2, ToUnixMicros(before)).Run());
  }
  RETURN_IF_ERROR(Audit(db, {.at = m.clock->Now(),
                             .actor = std::string(actor),
                             .action = "purge",
                             .customer_id = customer_id,
                             .before = before,
                             .records = removed}));
  RETURN_IF_ERROR(tx->Commit());
  for (int64_t b : blanked) m.bodies.Erase(b);
  m.ForgetCampaignRows();
  return removed;
}

Result<int64_t> SqliteHistoryStore::EraseCustomer(int64_t customer_id, std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  if (m.read_only) return FailedPreconditionError("history store is read-only");
  SqliteDb& db = *m.db;
  // Erasure means the bytes go, not only the rows: SQLite overwrites what it deletes, and the WAL
  // is checkpointed and truncated afterwards.
  RETURN_IF_ERROR(db.Exec("PRAGMA secure_delete = ON"));
  struct SecureDeleteOff {
    SqliteDb& db;
    ~SecureDeleteOff() { db.Exec("PRAGMA secure_delete = OFF").IgnoreError(); }
  } off{db};
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db));
  ASSIGN_OR_RETURN(std::vector<int64_t> campaigns, CampaignsOf(db, customer_id));
  std::set<int64_t> bodies;
  for (int64_t id : campaigns) {
    ASSIGN_OR_RETURN(std::set<int64_t> used, BodiesInUse(db, id));
    bodies.insert(used.begin(), used.end());
  }
  RETURN_IF_ERROR(BlankBodies(db, bodies));
  int64_t removed = 0;
  for (const char* sql :
       {"DELETE FROM history WHERE customer_id = ?1", "DELETE FROM recent WHERE customer_id = ?1",
        "DELETE FROM held WHERE customer_id = ?1"}) {
    ASSIGN_OR_RETURN(SqliteStmt * del, db.Prepare(sql));
    StmtScope scope(del);
    RETURN_IF_ERROR(del->Bind(1, customer_id).Run());
    removed += db.Changes();
  }
  for (const char* sql :
       {"DELETE FROM conflicts WHERE campaign_id IN (SELECT campaign_id FROM campaigns WHERE "
        "customer_id = ?1)",
        "DELETE FROM campaigns WHERE customer_id = ?1", "DELETE FROM purges WHERE customer_id = ?1",
        "DELETE FROM checkpoints WHERE customer_id = ?1",
        "DELETE FROM checkpoint_due WHERE customer_id = ?1",
        "INSERT OR REPLACE INTO erased_customers(customer_id, at_us) VALUES (?1, ?2)"}) {
    ASSIGN_OR_RETURN(SqliteStmt * st, db.Prepare(sql));
    StmtScope scope(st);
    st->Bind(1, customer_id);
    if (std::string_view(sql).find("?2") != std::string_view::npos) {
      st->Bind(2, ToUnixMicros(m.clock->Now()));
    }
    RETURN_IF_ERROR(st->Run());
  }
  RETURN_IF_ERROR(Audit(db, {.at = m.clock->Now(),
                             .actor = std::string(actor),
                             .action = "erase",
                             .customer_id = customer_id,
                             .records = removed}));
  RETURN_IF_ERROR(tx->Commit());
  for (int64_t b : bodies) m.bodies.Erase(b);
  m.ForgetCampaignRows();
  for (int64_t id : campaigns) {
    if (CampaignCache* c = m.campaign_cache.Find(id)) c->body.reset();
  }
  // Best effort: a reader in another process can hold the WAL open; then the erased pages leave
  // the WAL at its next checkpoint.
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)").IgnoreError();
  return removed;
}

Result<std::optional<Timestamp>> SqliteHistoryStore::PurgedBefore(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!impl_->has_retention) return std::optional<Timestamp>();
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare("SELECT before_us FROM purges WHERE customer_id = ?1"));
  StmtScope scope(s);
  s->Bind(1, customer_id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return std::optional<Timestamp>();
  return std::optional<Timestamp>(FromUnixMicros(s->ColumnInt64(0)));
}

Result<bool> SqliteHistoryStore::Erased(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!impl_->has_retention) return false;
  ASSIGN_OR_RETURN(SqliteStmt * s, impl_->db->Prepare("SELECT EXISTS (SELECT 1 FROM "
                                                      "erased_customers WHERE customer_id = ?1)"));
  StmtScope scope(s);
  s->Bind(1, customer_id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  return row && s->ColumnInt64(0) != 0;
}

Result<std::vector<AuditEntry>> SqliteHistoryStore::AuditLog(int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AuditEntry> out;
  if (!impl_->has_retention) return out;
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare("SELECT at_us, actor, action, customer_id, before_us, "
                                      "records FROM audit ORDER BY id DESC LIMIT ?1"));
  StmtScope scope(s);
  s->Bind(1, limit);
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    AuditEntry e{.at = FromUnixMicros(s->ColumnInt64(0)),
                 .actor = s->ColumnString(1),
                 .action = s->ColumnString(2),
                 .customer_id = s->ColumnInt64(3),
                 .records = s->ColumnInt64(5)};
    if (!s->ColumnIsNull(4)) e.before = FromUnixMicros(s->ColumnInt64(4));
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<std::pair<HistoryRecord, HistoryRecord>>> SqliteHistoryStore::Conflicts() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::pair<HistoryRecord, HistoryRecord>> out;
  if (!impl_->has_ledger) return out;
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare("SELECT stored, received FROM conflicts ORDER BY id"));
  StmtScope scope(s);
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    ASSIGN_OR_RETURN(HistoryRecord stored, HistoryRecordFromJson(s->ColumnText(0)));
    ASSIGN_OR_RETURN(HistoryRecord received, HistoryRecordFromJson(s->ColumnText(1)));
    out.emplace_back(std::move(stored), std::move(received));
  }
  return out;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::AsOf(int64_t customer_id, Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  // One read transaction for the query and the body reads after it: one consistent snapshot,
  // and one WAL read lock instead of one per body read (each autocommit statement takes and
  // drops it: measured, the lock calls were ~7 % of a cold process's as-of).
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*m.db, /*immediate=*/false));
  std::string blob, arena;
  ASSIGN_OR_RETURN(std::vector<CheckpointEntry> live,
                   m.StateAt(customer_id, m.ToT(at), m.checkpoint_every > 0, blob, arena));
  // Two passes: first the chosen packed rows (a few bytes each), sorted by priority, then the
  // records built in their final order. Keeping the kilobyte-sized snapshots out of the first
  // pass keeps the rows in the CPU caches, and each record is constructed exactly once, in place.
  struct Chosen {
    int64_t priority;
    int64_t campaign_id;
    int64_t body;
    std::string_view row;
  };
  std::vector<Chosen> chosen;
  chosen.reserve(live.size());
  PackedRow p;
  for (const CheckpointEntry& e : live) {
    if (!DecodeRow(e.row, p)) return DataLossError("history: undecodable row");
    if ((p.kind & 3) == kKindDeleted) continue;
    chosen.push_back({p.priority, e.campaign_id, p.body, e.row});
  }
  std::sort(chosen.begin(), chosen.end(), [](const Chosen& a, const Chosen& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.campaign_id < b.campaign_id;
  });
  std::vector<int64_t> body_ids;
  body_ids.reserve(chosen.size());
  for (const Chosen& c : chosen) body_ids.push_back(c.body);
  RETURN_IF_ERROR(m.PrefetchBodies(std::move(body_ids)));
  std::vector<HistoryRecord> out(chosen.size());
  for (size_t k = 0; k < chosen.size(); ++k) {
    if (!DecodeRow(chosen[k].row, p)) return DataLossError("history: undecodable row");
    HistoryRecord& r = out[k];
    r.campaign_id = chosen[k].campaign_id;
    r.customer_id = customer_id;
    RETURN_IF_ERROR(m.Fill(p, r));
  }
  RETURN_IF_ERROR(tx->Commit());
  return out;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::CampaignLog(int64_t campaign_id,
                                                                   const TimeRange& range) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare(FromBoth("campaign_id, customer_id, row",
                                               "campaign_id = ?1 AND t >= ?2 AND t <= ?3")));
  StmtScope scope(s);
  s->Bind(1, campaign_id)
      .Bind(2, range.from ? impl_->ToT(*range.from) : std::numeric_limits<int64_t>::min())
      .Bind(3, range.to ? impl_->ToT(*range.to) : std::numeric_limits<int64_t>::max());
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> out, impl_->ReadAll(*s));
  std::stable_sort(out.begin(), out.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
    return a.version < b.version;
  });
  return out;
}

Result<std::optional<HistoryRecord>> SqliteHistoryStore::GetVersion(int64_t campaign_id,
                                                                    int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare(FromBoth("campaign_id, customer_id, row",
                                               "campaign_id = ?1 AND version = ?2") +
                                      " LIMIT 1"));
  StmtScope scope(s);
  s->Bind(1, campaign_id).Bind(2, version);
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> out, impl_->ReadAll(*s));
  if (out.empty()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(std::move(out.front()));
}

Result<std::optional<HistoryRecord>> SqliteHistoryStore::LatestAt(int64_t campaign_id,
                                                                  Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare(FromBoth("campaign_id, customer_id, row, t, version",
                                               "campaign_id = ?1 AND t <= ?2") +
                                      " ORDER BY 4 DESC, 5 DESC LIMIT 1"));
  StmtScope scope(s);
  s->Bind(1, campaign_id).Bind(2, impl_->ToT(at));
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> out, impl_->ReadAll(*s));
  if (out.empty()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(std::move(out.front()));
}

Result<std::optional<int64_t>> SqliteHistoryStore::LatestVersion(int64_t campaign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare("SELECT max_version FROM campaigns WHERE campaign_id = ?1"));
  StmtScope scope(s);
  s->Bind(1, campaign_id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return std::optional<int64_t>();
  return std::optional<int64_t>(s->ColumnInt64(0));
}

Result<int64_t> SqliteHistoryStore::CountVersions(int64_t campaign_id, int64_t from, int64_t to) {
  std::lock_guard<std::mutex> lock(mu_);
  // Append stores a version once (in either table; a merge moves rows in one transaction), but
  // count distinct versions anyway: a file written before that rule may hold a redelivered
  // version twice, under another event time.
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      impl_->db->Prepare("SELECT count(DISTINCT version) FROM (" +
                         FromBoth("version", "campaign_id = ?1 AND version BETWEEN ?2 AND ?3") +
                         ")"));
  StmtScope scope(s);
  s->Bind(1, campaign_id).Bind(2, from).Bind(3, to);
  ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? s->ColumnInt64(0) : int64_t{0};
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::CustomerChanges(int64_t customer_id,
                                                                       const TimeRange& range,
                                                                       int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  std::vector<HistoryRecord> out;
  if (limit <= 0) return out;
  // The index gives event_time order; ties are put in (transaction_id, campaign_id, version)
  // order in C++ (transaction ids compare as text on every store). Whole groups of equal
  // event_time are read so that the cut at `limit` falls in the right place.
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   m.db->Prepare(FromBoth("campaign_id, customer_id, row, t",
                                          "customer_id = ?1 AND t >= ?2 AND t <= ?3") +
                                 " ORDER BY 4"));
  StmtScope scope(s);
  s->Bind(1, customer_id)
      .Bind(2, range.from ? m.ToT(*range.from) : std::numeric_limits<int64_t>::min())
      .Bind(3, range.to ? m.ToT(*range.to) : std::numeric_limits<int64_t>::max());
  PackedRow p;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    if (out.size() >= static_cast<size_t>(limit) &&
        m.FromT(s->ColumnInt64(3)) != out.back().event_time) {
      break;
    }
    if (!DecodeRow(s->ColumnText(2), p)) return DataLossError("history: undecodable row");
    HistoryRecord& r = out.emplace_back();
    r.campaign_id = s->ColumnInt64(0);
    r.customer_id = s->ColumnInt64(1);
    RETURN_IF_ERROR(m.Fill(p, r));
  }
  SortCustomerChanges(out);
  if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
  return out;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::TransactionChanges(
    int64_t customer_id, Timestamp at, std::string_view transaction_id, bool with_snapshots) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  std::vector<HistoryRecord> out;
  if (transaction_id.empty()) return out;
  // The customer index finds the records of that instant; the transaction id is in the packed
  // row. Bodies are decoded only for the records asked for with their snapshots.
  ASSIGN_OR_RETURN(SqliteStmt * s, m.db->Prepare(FromBoth("campaign_id, customer_id, row",
                                                          "customer_id = ?1 AND t = ?2")));
  StmtScope scope(s);
  s->Bind(1, customer_id).Bind(2, m.ToT(at));
  PackedRow p;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    if (!DecodeRow(s->ColumnText(2), p)) return DataLossError("history: undecodable row");
    bool same = p.tx_number >= 0 ? std::to_string(p.tx_number) == transaction_id
                                 : p.tx_text == transaction_id;
    if (!same) continue;
    HistoryRecord& r = out.emplace_back();
    r.campaign_id = s->ColumnInt64(0);
    r.customer_id = s->ColumnInt64(1);
    RETURN_IF_ERROR(m.Fill(p, r, with_snapshots));
  }
  std::sort(out.begin(), out.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
    return a.campaign_id != b.campaign_id ? a.campaign_id < b.campaign_id : a.version < b.version;
  });
  return out;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::CustomerCampaigns(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  // Each campaign's newest row in either table: one backwards seek each, as as-of does.
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      m.db->Prepare("SELECT c.campaign_id, (SELECT i.row FROM history i WHERE i.campaign_id = "
                    "c.campaign_id ORDER BY i.t DESC, i.version DESC LIMIT 1), "
                    "CASE WHEN c.recent_first_t IS NOT NULL THEN (SELECT r.row FROM recent r "
                    "WHERE r.campaign_id = c.campaign_id ORDER BY r.t DESC, r.version DESC "
                    "LIMIT 1) END "
                    "FROM campaigns c WHERE c.customer_id = ?1 ORDER BY c.campaign_id"));
  StmtScope scope(s);
  s->Bind(1, customer_id);
  std::vector<HistoryRecord> out;
  PackedRow p;
  PackedRow q;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    ASSIGN_OR_RETURN(std::optional<std::string_view> text, NewerOfBothTables(*s, p, q));
    if (!text) continue;
    HistoryRecord& r = out.emplace_back();
    r.campaign_id = s->ColumnInt64(0);
    r.customer_id = customer_id;
    RETURN_IF_ERROR(m.Fill(p, r));
  }
  return out;
}

Result<std::vector<int64_t>> SqliteHistoryStore::ListCustomers() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s, impl_->db->Prepare("SELECT DISTINCT customer_id FROM campaigns "
                                                      "ORDER BY customer_id"));
  StmtScope scope(s);
  std::vector<int64_t> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(s->ColumnInt64(0));
  }
  return out;
}

Result<HistoryStats> SqliteHistoryStore::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  HistoryStats st;
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare("SELECT count(*), count(DISTINCT customer_id), "
                                      "coalesce(sum(records), 0), min(first_t), max(last_t) "
                                      "FROM campaigns"));
  {
    StmtScope scope(s);
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (row) {
      st.campaigns = s->ColumnInt64(0);
      st.customers = s->ColumnInt64(1);
      st.records = s->ColumnInt64(2);
      if (!s->ColumnIsNull(3)) st.first_event = impl_->FromT(s->ColumnInt64(3));
      if (!s->ColumnIsNull(4)) st.last_event = impl_->FromT(s->ColumnInt64(4));
    }
  }
  if (impl_->has_ledger) {
    ASSIGN_OR_RETURN(SqliteStmt * h,
                     impl_->db->Prepare("SELECT (SELECT count(*) FROM held WHERE record != ''), "
                                        "(SELECT count(*) FROM conflicts)"));
    StmtScope scope(h);
    ASSIGN_OR_RETURN(bool row, h->Step());
    if (row) {
      st.held_records = h->ColumnInt64(0);
      st.conflicts = h->ColumnInt64(1);
    }
  }
  ASSIGN_OR_RETURN(SqliteStmt * p,
                   impl_->db->Prepare("SELECT page_count * page_size FROM pragma_page_count(), "
                                      "pragma_page_size()"));
  StmtScope scope(p);
  ASSIGN_OR_RETURN(bool row, p->Step());
  if (row) st.bytes = p->ColumnInt64(0);
  return st;
}

Result<std::vector<std::pair<std::string, int64_t>>> SqliteHistoryStore::SpaceByObject() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s,
                   impl_->db->Prepare("SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
                                      "ORDER BY 2 DESC"));
  StmtScope scope(s);
  std::vector<std::pair<std::string, int64_t>> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.emplace_back(s->ColumnString(0), s->ColumnInt64(1));
  }
  return out;
}

Status SqliteHistoryStore::Checkpoint() {
  std::lock_guard<std::mutex> lock(mu_);
  if (impl_->read_only) return FailedPreconditionError("history store is read-only");
  {
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*impl_->db));
    RETURN_IF_ERROR(impl_->MergeRecent().status());
    RETURN_IF_ERROR(tx->Commit());
    impl_->ClearRecentFirstT(Impl::Merged{});
  }
  return impl_->db->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace ch
