#include "history/sqlite_history_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <list>
#include <unordered_map>

#include "common/sqlite.h"
#include "history/in_memory_history_store.h"
#include "history/snapshot_codec.h"

namespace ch {
namespace {

// Identifies the file as ours (meta.format). DO NOT CHANGE.
constexpr char kFormatName[] = "campaign-history/sqlite-history";
// Layout version of this file (meta.schema_version); bump with a migration. DO NOT CHANGE the
// meaning of a released value.
constexpr int64_t kSqliteSchemaVersion = 1;
// Event times are stored as microseconds after this instant (2025-01-01T00:00:00Z) so that they
// fit SQLite's 6-byte integer for +-4.4 years around it; other times take 8 bytes and still work.
// Written to meta.time_epoch_us on creation and read back from there. DO NOT CHANGE.
constexpr int64_t kDefaultEpochUs = int64_t{1735689600} * 1000000;

// history.kind = event_type | capture << 2. DO NOT CHANGE (stored).
//   event_type: 0 created, 1 updated, 2 deleted;  capture: 0 log, 1 notify.
// "updated, log" is 1, which SQLite stores in zero bytes.
constexpr int64_t kKindDeleted = 2;
int64_t EncodeKind(const HistoryRecord& r) {
  int64_t op = r.event_type == ChangeOp::kCreated ? 0 : r.event_type == ChangeOp::kUpdated ? 1 : 2;
  return op | (r.capture == CaptureMode::kNotify ? 4 : 0);
}
void DecodeKind(int64_t kind, HistoryRecord& r) {
  int64_t op = kind & 3;
  r.event_type = op == 0 ? ChangeOp::kCreated : op == 1 ? ChangeOp::kUpdated : ChangeOp::kDeleted;
  r.capture = (kind & 4) ? CaptureMode::kNotify : CaptureMode::kLog;
}

// A body whose delta against the campaign's key body is larger than this fraction of its own
// size is stored in full and becomes the new key body (see docs/formats/history-record.md).
constexpr size_t kDeltaDivisor = 5;

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
  last_t INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS campaigns_by_customer ON campaigns(customer_id, first_t);
CREATE TABLE IF NOT EXISTS history(
  campaign_id INTEGER NOT NULL,
  t INTEGER NOT NULL,
  version INTEGER NOT NULL,
  customer_id INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  kind INTEGER NOT NULL,
  actor INTEGER NOT NULL,
  tx,
  missed INTEGER NOT NULL,
  batch INTEGER NOT NULL,
  body INTEGER NOT NULL,
  extras BLOB,
  PRIMARY KEY(campaign_id, t, version)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_by_customer ON history(customer_id, t);
)sql";

// The columns every read returns, in this order, and the joins that produce them.
constexpr char kRowColumns[] =
    "h.campaign_id, h.t, h.version, h.customer_id, h.priority, h.kind, h.actor, h.tx, "
    "h.missed, h.batch, h.extras, b.base, b.data, k.data";
constexpr char kRowJoins[] = " JOIN bodies b ON b.id = h.body LEFT JOIN bodies k ON k.id = b.base";

// One index seek per campaign of the customer, all inside SQLite's VM: the correlated subquery
// finds the (t, version) of the campaign's latest record at or before ?2 on the primary key, and
// the join fetches that row by the same key. Campaigns first seen after ?2 are skipped without a
// seek. Sorting by priority happens in C++ (cheaper than moving the bodies through a sorter).
constexpr char kAsOfSql[] =
    "SELECT h.campaign_id, h.t, h.version, h.customer_id, h.priority, h.kind, h.actor, h.tx, "
    "h.missed, h.batch, h.extras, b.base, b.data, k.data "
    "FROM campaigns c "
    "JOIN history h ON h.campaign_id = c.campaign_id AND (h.t, h.version) = "
    "(SELECT i.t, i.version FROM history i WHERE i.campaign_id = c.campaign_id AND i.t <= ?2 "
    "ORDER BY i.t DESC, i.version DESC LIMIT 1) "
    "JOIN bodies b ON b.id = h.body LEFT JOIN bodies k ON k.id = b.base "
    "WHERE c.customer_id = ?1 AND c.first_t <= ?2 AND (h.kind & 3) <> 2";

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

// Return true when `tx` is a canonical non-negative decimal that fits 60 bits: such ids are
// stored as SQLite integers (a few bytes) and read back as the same text.
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

// A small LRU map bounded by the summed "cost" of its values.
template <typename V>
class LruMap {
 public:
  explicit LruMap(size_t capacity) : capacity_(capacity) {}

  // Return the value or nullptr; a hit becomes the most recent entry.
  const V* Get(int64_t key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->value;
  }

  void Put(int64_t key, V value, size_t cost) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      used_ -= it->second->cost;
      order_.erase(it->second);
      index_.erase(it);
    }
    order_.push_front(Entry{key, std::move(value), cost});
    index_[key] = order_.begin();
    used_ += cost;
    while (used_ > capacity_ && order_.size() > 1) {
      used_ -= order_.back().cost;
      index_.erase(order_.back().key);
      order_.pop_back();
    }
  }

  void Clear() {
    order_.clear();
    index_.clear();
    used_ = 0;
  }

 private:
  struct Entry {
    int64_t key;
    V value;
    size_t cost;
  };
  size_t capacity_;
  size_t used_ = 0;
  std::list<Entry> order_;
  std::unordered_map<int64_t, typename std::list<Entry>::iterator> index_;
};

// The latest body written for a campaign and the full body its delta refers to.
struct BodyState {
  int64_t body_id = 0;
  std::string body;  // full body blob
  int64_t key_id = 0;
  std::string key;  // full body blob of key_id (equal to body when body_id == key_id)
};

// Per-campaign bookkeeping row (table campaigns), staged during an Append.
struct CampaignRow {
  int64_t customer_id = 0;
  int64_t max_version = 0;
  int64_t records = 0;
  int64_t first_t = 0;
  int64_t last_t = 0;
  bool dirty = false;
};

// Bound for the id -> name/time dictionaries; they are cleared when they grow past it.
constexpr size_t kDictionaryLimit = 1 << 16;

}  // namespace

struct SqliteHistoryStore::Impl {
  std::unique_ptr<SqliteDb> db;
  const Clock* clock = nullptr;
  bool read_only = false;
  int64_t epoch_us = kDefaultEpochUs;

  // Immutable facts, safe to cache across transactions and other writers.
  std::unordered_map<int64_t, std::string> actor_names;
  std::unordered_map<std::string, int64_t> actor_ids;
  std::unordered_map<int64_t, int64_t> batch_times;
  LruMap<BodyState> body_states{16 << 20};

  int64_t ToT(Timestamp t) const { return SaturatingSub(ToUnixMicros(t), epoch_us); }
  Timestamp FromT(int64_t t) const { return FromUnixMicros(t + epoch_us); }

  Result<std::string> ActorName(int64_t id);
  Result<Timestamp> BatchTime(int64_t id);
  // Decode the current row of `s` (columns as in kRowColumns).
  Result<HistoryRecord> ReadRow(SqliteStmt& s);
  // Run `s` (bound) and decode every row.
  Result<std::vector<HistoryRecord>> ReadAll(SqliteStmt& s);
  Result<std::optional<HistoryRecord>> ReadOne(SqliteStmt& s);
};

Result<std::string> SqliteHistoryStore::Impl::ActorName(int64_t id) {
  auto it = actor_names.find(id);
  if (it != actor_names.end()) return it->second;
  ASSIGN_OR_RETURN(SqliteStmt * s, db->Prepare("SELECT name FROM actors WHERE id = ?1"));
  StmtScope scope(s);
  s->Bind(1, id);
  ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return DataLossError(fmt::format("history: actor id {} is missing", id));
  if (actor_names.size() >= kDictionaryLimit) actor_names.clear();
  return actor_names.emplace(id, s->ColumnString(0)).first->second;
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

Result<HistoryRecord> SqliteHistoryStore::Impl::ReadRow(SqliteStmt& s) {
  HistoryRecord r;
  r.campaign_id = s.ColumnInt64(0);
  r.event_time = FromT(s.ColumnInt64(1));
  r.version = s.ColumnInt64(2);
  r.customer_id = s.ColumnInt64(3);
  r.priority = s.ColumnInt64(4);
  DecodeKind(s.ColumnInt64(5), r);
  ASSIGN_OR_RETURN(r.actor, ActorName(s.ColumnInt64(6)));
  r.transaction_id = s.ColumnString(7);
  r.missed_versions = s.ColumnInt64(8);
  ASSIGN_OR_RETURN(r.ingested_at, BatchTime(s.ColumnInt64(9)));
  std::string_view extras = s.ColumnText(10);
  SnapshotColumns cols{r.priority, r.version, r.event_time, r.actor};
  if (s.ColumnIsNull(11)) {
    ASSIGN_OR_RETURN(r.snapshot, JoinSnapshotText(s.ColumnText(12), extras, cols));
  } else {
    // ColumnText views are invalidated by later column calls of another type only; all
    // accesses here are text, so both views stay valid together.
    std::string_view delta = s.ColumnText(12);
    std::string_view key = s.ColumnText(13);
    ASSIGN_OR_RETURN(std::string body, ApplyDelta(key, delta));
    ASSIGN_OR_RETURN(r.snapshot, JoinSnapshotText(body, extras, cols));
  }
  return r;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::Impl::ReadAll(SqliteStmt& s) {
  std::vector<HistoryRecord> out;
  while (true) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    ASSIGN_OR_RETURN(HistoryRecord r, ReadRow(s));
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::optional<HistoryRecord>> SqliteHistoryStore::Impl::ReadOne(SqliteStmt& s) {
  ASSIGN_OR_RETURN(bool row, s.Step());
  if (!row) return std::optional<HistoryRecord>();
  ASSIGN_OR_RETURN(HistoryRecord r, ReadRow(s));
  return std::optional<HistoryRecord>(std::move(r));
}

SqliteHistoryStore::SqliteHistoryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqliteHistoryStore::~SqliteHistoryStore() = default;

const char* SqliteHistoryStore::AsOfSqlForTesting() { return kAsOfSql; }

Result<std::unique_ptr<SqliteHistoryStore>> SqliteHistoryStore::Open(
    const SqliteHistoryOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("history store: empty SQLite path");
  SqliteOptions so;
  so.read_only = options.read_only;
  so.synchronous = options.synchronous;
  so.cache_kib = options.cache_kib;
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->db, SqliteDb::Open(options.path, so));
  impl->clock = options.clock ? options.clock : &SystemClock::Default();
  impl->read_only = options.read_only;
  impl->body_states = LruMap<BodyState>(options.body_cache_bytes);
  SqliteDb& db = *impl->db;
  auto context = [&](const Status& s) {
    return s.WithContext(fmt::format("history store '{}'", options.path));
  };
  if (!options.read_only) {
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db));
    // Create the schema only in an empty file or one that is already ours: never add tables to
    // somebody else's database.
    ASSIGN_OR_RETURN(SqliteStmt * probe,
                     db.Prepare("SELECT (SELECT count(*) FROM sqlite_master), "
                                "(SELECT count(*) FROM sqlite_master WHERE name = 'meta')"));
    bool foreign = false;
    {
      StmtScope scope(probe);
      ASSIGN_OR_RETURN(bool row, probe->Step());
      foreign = row && probe->ColumnInt64(0) > 0 && probe->ColumnInt64(1) == 0;
    }
    if (foreign) {
      return FailedPreconditionError(
          fmt::format("'{}' is not a campaign-history SQLite history store", options.path));
    }
    Status s = db.Exec(kSchemaSql);
    if (!s.ok()) return context(s);
    s =
        db.Exec(fmt::format("INSERT OR IGNORE INTO meta(key, value) VALUES ('format', '{}'), "
                            "('schema_version', {}), ('time_epoch_us', {})",
                            kFormatName, kSqliteSchemaVersion, kDefaultEpochUs));
    if (!s.ok()) return context(s);
    RETURN_IF_ERROR(tx->Commit());
  }
  auto read_meta = [&](const char* key) -> Result<std::optional<std::string>> {
    Result<SqliteStmt*> s = db.Prepare("SELECT value FROM meta WHERE key = ?1");
    if (!s.ok()) return s.status();
    StmtScope scope(*s);
    (*s)->Bind(1, key);
    ASSIGN_OR_RETURN(bool row, (*s)->Step());
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>((*s)->ColumnString(0));
  };
  Result<std::optional<std::string>> format = read_meta("format");
  if (!format.ok() || !*format || **format != kFormatName) {
    return FailedPreconditionError(
        fmt::format("'{}' is not a campaign-history SQLite history store", options.path));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> version, read_meta("schema_version"));
  int64_t v = version ? std::atoll(version->c_str()) : 0;
  if (v < 1 || v > kSqliteSchemaVersion) {
    return FailedPreconditionError(
        fmt::format("history store '{}' has schema_version {}; this build understands 1..{}",
                    options.path, version.value_or("?"), kSqliteSchemaVersion));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> epoch, read_meta("time_epoch_us"));
  if (epoch) impl->epoch_us = std::atoll(epoch->c_str());
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

  ASSIGN_OR_RETURN(SqliteStmt * get_campaign,
                   db.Prepare("SELECT customer_id, max_version, records, first_t, last_t "
                              "FROM campaigns WHERE campaign_id = ?1"));
  ASSIGN_OR_RETURN(SqliteStmt * exists_exact,
                   db.Prepare("SELECT 1 FROM history WHERE campaign_id = ?1 AND t = ?2 "
                              "AND version = ?3"));
  ASSIGN_OR_RETURN(SqliteStmt * exists_version,
                   db.Prepare("SELECT 1 FROM history WHERE campaign_id = ?1 AND version = ?2 "
                              "LIMIT 1"));
  ASSIGN_OR_RETURN(
      SqliteStmt * latest_body,
      db.Prepare(std::string("SELECT b.id, b.base, b.data, k.data FROM history h") + kRowJoins +
                 " WHERE h.campaign_id = ?1 ORDER BY h.t DESC, h.version DESC "
                 "LIMIT 1"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_body,
                   db.Prepare("INSERT INTO bodies(base, data) VALUES (?1, ?2)"));
  ASSIGN_OR_RETURN(SqliteStmt * find_actor, db.Prepare("SELECT id FROM actors WHERE name = ?1"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_actor, db.Prepare("INSERT INTO actors(name) VALUES (?1)"));
  ASSIGN_OR_RETURN(SqliteStmt * insert_batch,
                   db.Prepare("INSERT INTO batches(ingested_at) VALUES (?1)"));
  ASSIGN_OR_RETURN(
      SqliteStmt * insert_history,
      db.Prepare("INSERT INTO history(campaign_id, t, version, customer_id, priority, kind, "
                 "actor, tx, missed, batch, body, extras) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
  ASSIGN_OR_RETURN(
      SqliteStmt * upsert_campaign,
      db.Prepare("INSERT INTO campaigns(campaign_id, customer_id, max_version, records, first_t, "
                 "last_t) VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(campaign_id) DO UPDATE SET "
                 "max_version = excluded.max_version, records = excluded.records, "
                 "first_t = excluded.first_t, last_t = excluded.last_t"));

  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db));
  // Everything learned in this transaction is staged here and reaches the caches only after a
  // successful commit: a rolled-back id must never be reused from a cache.
  std::unordered_map<int64_t, std::optional<CampaignRow>> campaigns;
  std::unordered_map<int64_t, BodyState> bodies;
  std::unordered_map<std::string, int64_t> new_actors;
  int64_t batch_id = 0;
  const int64_t ingested_us = ToUnixMicros(m.clock->Now());
  int64_t stored = 0;

  for (size_t i = 0; i < records.size(); ++i) {
    const HistoryRecord& r = records[i];
    const int64_t t = m.ToT(r.event_time);

    // The campaign's bookkeeping row: owner check and the "is this version new?" fast path.
    auto cit = campaigns.find(r.campaign_id);
    if (cit == campaigns.end()) {
      StmtScope scope(get_campaign);
      get_campaign->Bind(1, r.campaign_id);
      ASSIGN_OR_RETURN(bool row, get_campaign->Step());
      std::optional<CampaignRow> c;
      if (row) {
        c = CampaignRow{get_campaign->ColumnInt64(0), get_campaign->ColumnInt64(1),
                        get_campaign->ColumnInt64(2), get_campaign->ColumnInt64(3),
                        get_campaign->ColumnInt64(4), false};
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
      // version (a redelivery with a different event_time; scans only this campaign).
      bool found = false;
      {
        StmtScope scope(exists_exact);
        exists_exact->Bind(1, r.campaign_id).Bind(2, t).Bind(3, r.version);
        ASSIGN_OR_RETURN(found, exists_exact->Step());
      }
      if (!found) {
        StmtScope scope(exists_version);
        exists_version->Bind(1, r.campaign_id).Bind(2, r.version);
        ASSIGN_OR_RETURN(found, exists_version->Step());
      }
      if (found) continue;  // at-least-once delivery: the stored record wins
    }

    // The body: shared with the campaign's previous version when equal, else a delta against
    // the campaign's key body when small enough, else a new key body.
    SplitSnapshot split =
        SplitSnapshotText(r.snapshot, {r.priority, r.version, r.event_time, r.actor});
    const BodyState* prev = nullptr;
    if (auto bit = bodies.find(r.campaign_id); bit != bodies.end()) {
      prev = &bit->second;
    } else if (const BodyState* cached = m.body_states.Get(r.campaign_id)) {
      prev = cached;
    } else if (c) {
      StmtScope scope(latest_body);
      latest_body->Bind(1, r.campaign_id);
      ASSIGN_OR_RETURN(bool row, latest_body->Step());
      if (row) {
        BodyState loaded;
        loaded.body_id = latest_body->ColumnInt64(0);
        if (latest_body->ColumnIsNull(1)) {
          loaded.body = latest_body->ColumnString(2);
          loaded.key_id = loaded.body_id;
          loaded.key = loaded.body;
        } else {
          loaded.key_id = latest_body->ColumnInt64(1);
          loaded.key = latest_body->ColumnString(3);
          ASSIGN_OR_RETURN(loaded.body, ApplyDelta(loaded.key, latest_body->ColumnText(2)));
        }
        prev = &(bodies[r.campaign_id] = std::move(loaded));
      }
    }
    int64_t body_id = 0;
    if (prev != nullptr && prev->body == split.body) {
      body_id = prev->body_id;
      if (bodies.find(r.campaign_id) == bodies.end()) bodies[r.campaign_id] = *prev;
    } else {
      BodyState next;
      std::string delta;
      if (prev != nullptr) EncodeDelta(prev->key, split.body, delta);
      StmtScope scope(insert_body);
      if (prev != nullptr && delta.size() * kDeltaDivisor <= split.body.size()) {
        insert_body->Bind(1, prev->key_id).BindBlob(2, delta);
        next.key_id = prev->key_id;
        next.key = prev->key;
      } else {
        insert_body->BindNull(1).BindBlob(2, split.body);
      }
      RETURN_IF_ERROR(insert_body->Run());
      next.body_id = db.LastInsertRowId();
      if (next.key_id == 0) {
        next.key_id = next.body_id;
        next.key = split.body;
      }
      next.body = std::move(split.body);
      body_id = next.body_id;
      bodies[r.campaign_id] = std::move(next);
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
        ASSIGN_OR_RETURN(bool row, find_actor->Step());
        if (row) actor_id = find_actor->ColumnInt64(0);
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

    insert_history->Bind(1, r.campaign_id)
        .Bind(2, t)
        .Bind(3, r.version)
        .Bind(4, r.customer_id)
        .Bind(5, r.priority)
        .Bind(6, EncodeKind(r))
        .Bind(7, actor_id);
    if (IsCanonicalDecimal(r.transaction_id)) {
      int64_t n = 0;
      std::from_chars(r.transaction_id.data(), r.transaction_id.data() + r.transaction_id.size(),
                      n);
      insert_history->Bind(8, n);
    } else {
      insert_history->Bind(8, r.transaction_id);
    }
    insert_history->Bind(9, r.missed_versions).Bind(10, batch_id).Bind(11, body_id);
    if (split.extras.empty()) {
      insert_history->BindNull(12);
    } else {
      insert_history->BindBlob(12, split.extras);
    }
    RETURN_IF_ERROR(insert_history->Run());
    ++stored;

    if (!c) {
      c = CampaignRow{r.customer_id, r.version, 0, t, t, true};
    }
    c->max_version = std::max(c->max_version, r.version);
    c->records += 1;
    c->first_t = std::min(c->first_t, t);
    c->last_t = std::max(c->last_t, t);
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
                        .Run());
  }
  RETURN_IF_ERROR(tx->Commit());

  // Committed: the staged facts are now true for every reader.
  if (m.actor_ids.size() + new_actors.size() > kDictionaryLimit) m.actor_ids.clear();
  for (auto& [name, id] : new_actors) m.actor_ids.emplace(name, id);
  if (batch_id != 0) {
    if (m.batch_times.size() >= kDictionaryLimit) m.batch_times.clear();
    m.batch_times.emplace(batch_id, ingested_us);
  }
  for (auto& [campaign_id, state] : bodies) {
    size_t cost = state.body.size() + (state.key_id == state.body_id ? 0 : state.key.size()) + 64;
    m.body_states.Put(campaign_id, std::move(state), cost);
  }
  return stored;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::AsOf(int64_t customer_id, Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s, impl_->db->Prepare(kAsOfSql));
  StmtScope scope(s);
  s->Bind(1, customer_id).Bind(2, impl_->ToT(at));
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> out, impl_->ReadAll(*s));
  SortByPriority(out);
  return out;
}

Result<std::vector<HistoryRecord>> SqliteHistoryStore::CampaignLog(int64_t campaign_id,
                                                                   const TimeRange& range) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      impl_->db->Prepare(std::string("SELECT ") + kRowColumns + " FROM history h" + kRowJoins +
                         " WHERE h.campaign_id = ?1 AND h.t >= ?2 AND h.t <= ?3 "
                         "ORDER BY h.t, h.version"));
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
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      impl_->db->Prepare(std::string("SELECT ") + kRowColumns + " FROM history h" + kRowJoins +
                         " WHERE h.campaign_id = ?1 AND h.version = ?2 LIMIT 1"));
  StmtScope scope(s);
  s->Bind(1, campaign_id).Bind(2, version);
  return impl_->ReadOne(*s);
}

Result<std::optional<HistoryRecord>> SqliteHistoryStore::LatestAt(int64_t campaign_id,
                                                                  Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(SqliteStmt * s, impl_->db->Prepare(std::string("SELECT ") + kRowColumns +
                                                      " FROM history h" + kRowJoins +
                                                      " WHERE h.campaign_id = ?1 AND h.t <= ?2 "
                                                      "ORDER BY h.t DESC, h.version DESC LIMIT 1"));
  StmtScope scope(s);
  s->Bind(1, campaign_id).Bind(2, impl_->ToT(at));
  return impl_->ReadOne(*s);
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

Result<std::vector<HistoryRecord>> SqliteHistoryStore::CustomerChanges(int64_t customer_id,
                                                                       const TimeRange& range,
                                                                       int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  if (limit <= 0) return out;
  // The index gives event_time order; ties are put in (transaction_id, campaign_id, version)
  // order in C++ (transaction ids compare as text on every store). Read whole groups of equal
  // event_time so the cut at `limit` falls in the right place.
  ASSIGN_OR_RETURN(
      SqliteStmt * s,
      impl_->db->Prepare(std::string("SELECT ") + kRowColumns + " FROM history h" + kRowJoins +
                         " WHERE h.customer_id = ?1 AND h.t >= ?2 AND h.t <= ?3 "
                         "ORDER BY h.customer_id, h.t"));
  StmtScope scope(s);
  s->Bind(1, customer_id)
      .Bind(2, range.from ? impl_->ToT(*range.from) : std::numeric_limits<int64_t>::min())
      .Bind(3, range.to ? impl_->ToT(*range.to) : std::numeric_limits<int64_t>::max());
  while (true) {
    ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    if (out.size() >= static_cast<size_t>(limit) &&
        impl_->FromT(s->ColumnInt64(1)) != out.back().event_time) {
      break;
    }
    ASSIGN_OR_RETURN(HistoryRecord r, impl_->ReadRow(*s));
    out.push_back(std::move(r));
  }
  SortCustomerChanges(out);
  if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
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
  return impl_->db->Exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

}  // namespace ch
