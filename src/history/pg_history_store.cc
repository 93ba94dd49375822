#include "history/pg_history_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <unordered_map>

#include "campaign/pg_client.h"
#include "history/in_memory_history_store.h"
#include "history/snapshot_codec.h"

namespace ch {
namespace {

using Params = std::vector<std::optional<std::string>>;

// The schema_version this build writes. Migrations below bring older schemas up to it.
constexpr int kSchemaVersion = 3;

// Migration N brings a schema from version N - 1 to N. DO NOT CHANGE an existing entry (schemas
// in the field were made by it); append a new one instead.
constexpr const char* kMigrations[] = {
    // 1: the initial layout (see pg_history_store.h).
    R"sql(
CREATE TABLE meta(key text PRIMARY KEY, value bigint);
INSERT INTO meta(key, value) VALUES ('next_body_id', 1), ('watermark_seq', 0), ('watermark_us', NULL);
CREATE TABLE campaigns(
  campaign_id bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  max_version bigint NOT NULL,
  last_body bigint NOT NULL,
  key_body bigint NOT NULL);
CREATE INDEX campaigns_by_customer ON campaigns(customer_id, campaign_id);
CREATE TABLE bodies(
  id bigint PRIMARY KEY,
  campaign_id bigint NOT NULL,
  base bigint,
  data bytea NOT NULL);
CREATE INDEX bodies_by_campaign ON bodies(campaign_id);
CREATE TABLE history(
  campaign_id bigint NOT NULL,
  event_us bigint NOT NULL,
  version bigint NOT NULL,
  body bigint NOT NULL,
  priority bigint NOT NULL,
  ingested_us bigint NOT NULL,
  txn_seq bigint,
  txn_changes bigint,
  missed bigint,
  kind smallint NOT NULL,
  actor text NOT NULL,
  transaction_id text NOT NULL,
  extras bytea
) PARTITION BY RANGE (event_us);
CREATE INDEX history_by_campaign ON history(campaign_id, event_us, version);
CREATE TABLE held(
  campaign_id bigint NOT NULL,
  version bigint NOT NULL,
  seq bigint NOT NULL,
  customer_id bigint NOT NULL,
  record text NOT NULL,
  PRIMARY KEY(campaign_id, version));
CREATE INDEX held_by_seq ON held(seq);
CREATE TABLE txn_progress(
  seq bigint PRIMARY KEY,
  expected bigint NOT NULL,
  received bigint NOT NULL,
  commit_us bigint NOT NULL,
  complete boolean NOT NULL);
CREATE TABLE heartbeats(seq bigint PRIMARY KEY, at_us bigint NOT NULL);
CREATE TABLE conflicts(
  id bigserial PRIMARY KEY,
  campaign_id bigint NOT NULL,
  version bigint NOT NULL,
  customer_id bigint NOT NULL,
  detected_us bigint NOT NULL,
  stored text NOT NULL,
  received text NOT NULL);
CREATE TABLE purges(customer_id bigint PRIMARY KEY, before_us bigint NOT NULL);
CREATE TABLE erased_customers(customer_id bigint PRIMARY KEY, at_us bigint NOT NULL);
CREATE TABLE audit(
  id bigserial PRIMARY KEY,
  at_us bigint NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  customer_id bigint NOT NULL,
  before_us bigint,
  records bigint NOT NULL);
)sql",
    // 2: the compact history row (docs/benchmarks.md "PostgreSQL history store"): 72 bytes of
    // tuple instead of ~120, and a two-column index whose 28-byte entries PostgreSQL's B-tree
    // packs full on a campaign's appends (its "localized monotonic insert" split applies only to
    // entries of at most two int8 keys). Actors are interned in `actors`; the rarely used fields
    // are varints in `info` (EncodeInfo). campaigns.tied: the campaign has two records of one
    // event_us (as-of then breaks the tie by version; kAsOfSql); max_event_us: the latest stored.
    // campaigns is updated by every Append: free room on its pages makes those updates HOT (no new
    // index entries, no bloat of its indexes).
    // Migrate() refuses to run it over recorded history.
    R"sql(
DROP TABLE history;
CREATE SEQUENCE actor_ids;
CREATE TABLE actors(id integer PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE history(
  campaign_id bigint NOT NULL,
  event_us bigint NOT NULL,
  version bigint NOT NULL,
  body integer NOT NULL,
  actor integer NOT NULL,
  transaction_id text NOT NULL,
  info bytea NOT NULL
) PARTITION BY RANGE (event_us);
CREATE INDEX history_by_campaign ON history(campaign_id, event_us) WITH (fillfactor = 100);
ALTER TABLE campaigns ADD COLUMN max_event_us bigint NOT NULL DEFAULT 0,
  ADD COLUMN tied boolean NOT NULL DEFAULT false;
DROP INDEX campaigns_by_customer;
CREATE INDEX campaigns_by_customer ON campaigns(customer_id, campaign_id) INCLUDE (tied);
ALTER TABLE campaigns SET (fillfactor = 75);
)sql",
    // 3: history.version as integer (docs/benchmarks.md "PostgreSQL history store"). The row's
    // data was 8 + 8 + 8 + 4 + 4 fixed bytes plus two short varlenas; 4 bytes less moves about
    // half the rows of the large shape from 80 to 72 bytes of tuple (PostgreSQL pads every
    // tuple to 8). A campaign's versions stay far below 2^31 (Append refuses more, clearly).
    // The ALTER rewrites the partitions and rebuilds their index packed.
    R"sql(
ALTER TABLE history ALTER COLUMN version TYPE integer;
)sql",
};
static_assert(std::size(kMigrations) == kSchemaVersion);

// A body whose delta against the campaign's key body is larger than 1/kDeltaDivisor of its own
// size is stored in full and becomes the campaign's new key body (as on SQLite).
constexpr size_t kDeltaDivisor = 5;

// Rows per multi-row INSERT (PostgreSQL allows 65535 parameters per statement).
constexpr size_t kRowsPerInsert = 8000;

// history.body is an integer (schema 2), history.version too (schema 3).
constexpr int64_t kMaxBodyId = 2147483647;
constexpr int64_t kMaxVersion = 2147483647;

// Columns every record query selects, in this order (DecodeRow).
constexpr char kCols[] =
    "h.campaign_id, h.event_us, h.version, h.body, h.actor, h.transaction_id, h.info, "
    "c.customer_id";

// Row kind = event_type | capture << 2 (as on SQLite). DO NOT CHANGE (stored).
int64_t EncodeKind(const HistoryRecord& r) {
  int64_t op = r.event_type == ChangeOp::kCreated ? 0 : r.event_type == ChangeOp::kUpdated ? 1 : 2;
  return op | (r.capture == CaptureMode::kNotify ? 4 : 0);
}
void DecodeKind(int64_t kind, HistoryRecord& r) {
  int64_t op = kind & 3;
  r.event_type = op == 0 ? ChangeOp::kCreated : op == 1 ? ChangeOp::kUpdated : ChangeOp::kDeleted;
  r.capture = (kind & 4) ? CaptureMode::kNotify : CaptureMode::kLog;
}

// history.info (schema 2), DO NOT CHANGE (stored): varints of ZigZag(ingested_us - event_us)
// << 3 | kind (|difference| < 2^59 for any two times of years 1 to 9999) and of ZigZag(priority);
// then, only when one of them is set or the snapshot has extras, a varint of which of txn_seq,
// txn_changes, missed follow (bits 1, 2, 4), their zigzag varints, and the extras (the rest).
constexpr uint64_t kHasTxnSeq = 1, kHasTxnChanges = 2, kHasMissed = 4;
void EncodeInfo(const HistoryRecord& r, int64_t ingested_us, std::string_view extras,
                std::string& out) {
  out.clear();
  PutVarint(out, ZigZag(ingested_us - ToUnixMicros(r.event_time)) << 3 |
                     static_cast<uint64_t>(EncodeKind(r)));
  PutVarint(out, ZigZag(r.priority));
  const uint64_t present = (r.txn_seq != 0 ? kHasTxnSeq : 0) |
                           (r.txn_changes != 0 ? kHasTxnChanges : 0) |
                           (r.missed_versions != 0 ? kHasMissed : 0);
  if (present == 0 && extras.empty()) return;
  PutVarint(out, present);
  if (r.txn_seq != 0) PutVarint(out, ZigZag(r.txn_seq));
  if (r.txn_changes != 0) PutVarint(out, ZigZag(r.txn_changes));
  if (r.missed_versions != 0) PutVarint(out, ZigZag(r.missed_versions));
  out += extras;
}
Status DecodeInfo(std::string_view in, HistoryRecord& r, std::string& extras) {
  auto bad = [&r] {
    return DataLossError(
        fmt::format("history: c{}@v{}: the info column is unreadable", r.campaign_id, r.version));
  };
  uint64_t v = 0;
  if (!GetVarint(in, v)) return bad();
  DecodeKind(static_cast<int64_t>(v & 7), r);
  r.ingested_at = FromUnixMicros(ToUnixMicros(r.event_time) + UnZigZag(v >> 3));
  if (!GetVarint(in, v)) return bad();
  r.priority = UnZigZag(v);
  r.txn_seq = r.txn_changes = r.missed_versions = 0;
  extras.clear();
  if (in.empty()) return Status::OK();
  uint64_t present = 0;
  if (!GetVarint(in, present) || present > 7) return bad();
  for (auto [bit, field] :
       {std::pair(kHasTxnSeq, &r.txn_seq), std::pair(kHasTxnChanges, &r.txn_changes),
        std::pair(kHasMissed, &r.missed_versions)}) {
    if ((present & bit) == 0) continue;
    if (!GetVarint(in, v)) return bad();
    *field = UnZigZag(v);
  }
  extras.assign(in);
  return Status::OK();
}

std::string Num(int64_t v) { return std::to_string(v); }
std::optional<std::string> NumOrNull(int64_t v) {
  return v == 0 ? std::nullopt : std::optional<std::string>(Num(v));
}
std::optional<std::string> OptTime(const std::optional<Timestamp>& t) {
  return t ? std::optional<std::string>(Num(ToUnixMicros(*t))) : std::nullopt;
}

// bytea in text form: \x followed by hex digits.
std::string ByteaHex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 + bytes.size() * 2);
  out += "\\x";
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}
int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
Result<std::string> UnByteaHex(std::string_view text) {
  if (text.substr(0, 2) != "\\x" || text.size() % 2 != 0) {
    return DataLossError("history: a bytea value is not in hex form");
  }
  std::string out;
  out.reserve((text.size() - 2) / 2);
  for (size_t i = 2; i < text.size(); i += 2) {
    int hi = HexDigit(text[i]), lo = HexDigit(text[i + 1]);
    if (hi < 0 || lo < 0) return DataLossError("history: a bytea value is not in hex form");
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

// An int8[] literal.
template <typename It>
std::string ArrayOf(It begin, It end) {
  std::string out = "{";
  for (It it = begin; it != end; ++it) {
    if (out.size() > 1) out += ',';
    out += Num(*it);
  }
  out += '}';
  return out;
}
// Append `text` to a text[] literal as one quoted element.
void AppendArrayText(std::string_view text, std::string& out) {
  out += '"';
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

std::string ArrayOf(const std::vector<int64_t>& v) { return ArrayOf(v.begin(), v.end()); }
std::string ArrayOf(const std::set<int64_t>& v) { return ArrayOf(v.begin(), v.end()); }

// The month partition [start, end) holding `us`, in Unix microseconds.
struct Month {
  int year = 0;
  unsigned month = 0;
  int64_t start_us = 0;
  int64_t end_us = 0;
};
Month MonthOf(int64_t us) {
  using namespace std::chrono;
  const sys_time<microseconds> t{microseconds(us)};
  const year_month_day ymd{floor<days>(t)};
  const year_month ym{ymd.year(), ymd.month()};
  const year_month next = ym + months(1);
  auto start = sys_days(ym / 1);
  auto end = sys_days(next / 1);
  return Month{static_cast<int>(ym.year()), static_cast<unsigned>(ym.month()),
               duration_cast<microseconds>(start.time_since_epoch()).count(),
               duration_cast<microseconds>(end.time_since_epoch()).count()};
}

struct DecodedRow {
  HistoryRecord r;
  int64_t body = 0;
  int64_t actor = 0;  // actors.id; r.actor is filled from it (ResolveActors)
  std::string extras;
};

Result<DecodedRow> DecodeRow(const PgResult& res, int i) {
  DecodedRow d;
  HistoryRecord& r = d.r;
  ASSIGN_OR_RETURN(r.campaign_id, res.GetInt(i, 0));
  ASSIGN_OR_RETURN(int64_t event_us, res.GetInt(i, 1));
  r.event_time = FromUnixMicros(event_us);
  ASSIGN_OR_RETURN(r.version, res.GetInt(i, 2));
  ASSIGN_OR_RETURN(d.body, res.GetInt(i, 3));
  ASSIGN_OR_RETURN(d.actor, res.GetInt(i, 4));
  r.transaction_id = std::string(res.Get(i, 5));
  ASSIGN_OR_RETURN(std::string info, UnByteaHex(res.Get(i, 6)));
  RETURN_IF_ERROR(DecodeInfo(info, r, d.extras));
  ASSIGN_OR_RETURN(r.customer_id, res.GetInt(i, 7));
  return d;
}

// Decoded bodies by id; cleared when full (bodies are immutable and ids never reused, so an entry
// never goes stale).
class BodyCache {
 public:
  explicit BodyCache(size_t capacity) : capacity_(capacity) {}
  const std::string* Find(int64_t id) const {
    auto it = map_.find(id);
    return it == map_.end() ? nullptr : &it->second;
  }
  void Put(int64_t id, std::string body) {
    if (bytes_ + body.size() > capacity_) {
      map_.clear();
      bytes_ = 0;
    }
    bytes_ += body.size();
    map_[id] = std::move(body);
  }

 private:
  size_t capacity_;
  size_t bytes_ = 0;
  std::unordered_map<int64_t, std::string> map_;
};

// The completeness ledger in the store's tables, used inside the Append transaction. The
// watermark and the transactions' progress are read once per call (Prefetch) and written once
// (Flush): a call of a thousand records of a hundred transactions costs a few round trips, not a
// few hundred. Held records and heartbeats go to their tables directly.
class PgLedger final : public CompletenessLedger {
 public:
  explicit PgLedger(PgConn& conn) : conn_(conn) {}

  // Read the watermark and the progress of `seqs`.
  Status Prefetch(const std::set<int64_t>& seqs) {
    ASSIGN_OR_RETURN(PgResult r, conn_.Exec("SELECT (SELECT value FROM meta WHERE key = "
                                            "'watermark_seq'), (SELECT value FROM meta WHERE "
                                            "key = 'watermark_us')"));
    Watermark w;
    if (!r.IsNull(0, 0)) {
      ASSIGN_OR_RETURN(w.seq, r.GetInt(0, 0));
    }
    if (!r.IsNull(0, 1)) {
      ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 1));
      w.time = FromUnixMicros(us);
    }
    watermark_ = w;
    stored_watermark_ = w;
    if (seqs.empty()) return Status::OK();
    ASSIGN_OR_RETURN(PgResult p, conn_.ExecParams("SELECT seq, expected, received, commit_us, "
                                                  "complete FROM txn_progress WHERE seq = "
                                                  "ANY($1::bigint[])",
                                                  {ArrayOf(seqs)}));
    for (int i = 0; i < p.rows(); ++i) {
      TxnProgress t;
      ASSIGN_OR_RETURN(t.seq, p.GetInt(i, 0));
      ASSIGN_OR_RETURN(t.expected, p.GetInt(i, 1));
      ASSIGN_OR_RETURN(t.received, p.GetInt(i, 2));
      ASSIGN_OR_RETURN(int64_t us, p.GetInt(i, 3));
      t.commit_time = FromUnixMicros(us);
      t.complete = p.Get(i, 4) == "t";
      progress_[t.seq] = t;
    }
    for (int64_t seq : seqs) progress_.try_emplace(seq, std::nullopt);
    return Status::OK();
  }

  // Write what changed.
  Status Flush() {
    std::vector<int64_t> erased;
    std::vector<int64_t> seq, expected, received, commit_us;
    std::string complete = "{";
    for (const int64_t s : dirty_) {
      const std::optional<TxnProgress>& p = progress_.at(s);
      if (!p) {
        erased.push_back(s);
        continue;
      }
      seq.push_back(p->seq);
      expected.push_back(p->expected);
      received.push_back(p->received);
      commit_us.push_back(ToUnixMicros(p->commit_time));
      complete += complete.size() > 1 ? "," : "";
      complete += p->complete ? "t" : "f";
    }
    complete += "}";
    if (!erased.empty()) {
      RETURN_IF_ERROR(conn_
                          .ExecParams("DELETE FROM txn_progress WHERE seq = ANY($1::bigint[])",
                                      {ArrayOf(erased)})
                          .status());
    }
    if (!seq.empty()) {
      RETURN_IF_ERROR(
          conn_
              .ExecParams(
                  "INSERT INTO txn_progress(seq, expected, received, commit_us, complete) SELECT "
                  "* FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], "
                  "$5::boolean[]) ON CONFLICT (seq) DO UPDATE SET expected = excluded.expected, "
                  "received = excluded.received, commit_us = excluded.commit_us, complete = "
                  "excluded.complete",
                  {ArrayOf(seq), ArrayOf(expected), ArrayOf(received), ArrayOf(commit_us),
                   complete})
              .status());
    }
    dirty_.clear();
    if (watermark_ != stored_watermark_) {
      RETURN_IF_ERROR(
          conn_
              .ExecParams(
                  "UPDATE meta SET value = CASE key WHEN 'watermark_seq' THEN $1::bigint ELSE "
                  "$2::bigint END WHERE key IN ('watermark_seq', 'watermark_us')",
                  {Num(watermark_.seq), OptTime(watermark_.time)})
              .status());
      stored_watermark_ = watermark_;
    }
    return Status::OK();
  }

  Result<Watermark> GetWatermark() override { return watermark_; }
  Status SetWatermark(const Watermark& w) override {
    watermark_ = w;
    return Status::OK();
  }
  Result<std::optional<TxnProgress>> GetProgress(int64_t seq) override {
    if (auto it = progress_.find(seq); it != progress_.end()) return it->second;
    ASSIGN_OR_RETURN(PgResult r, conn_.ExecParams("SELECT expected, received, commit_us, "
                                                  "complete FROM txn_progress WHERE seq = $1",
                                                  {Num(seq)}));
    std::optional<TxnProgress> out;
    if (r.rows() > 0) {
      TxnProgress p{.seq = seq};
      ASSIGN_OR_RETURN(p.expected, r.GetInt(0, 0));
      ASSIGN_OR_RETURN(p.received, r.GetInt(0, 1));
      ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 2));
      p.commit_time = FromUnixMicros(us);
      p.complete = r.Get(0, 3) == "t";
      out = p;
    }
    progress_[seq] = out;
    return out;
  }
  Status PutProgress(const TxnProgress& p) override {
    progress_[p.seq] = p;
    dirty_.insert(p.seq);
    return Status::OK();
  }
  Status EraseProgress(int64_t seq) override {
    progress_[seq] = std::nullopt;
    dirty_.insert(seq);
    return Status::OK();
  }
  Result<int64_t> Hold(int64_t seq, std::span<const HistoryRecord* const> records) override {
    // One statement for the whole piece: a transaction split over deliveries holds thousands of
    // records at once (a 2,000-campaign shift), and a round trip each made the publisher path
    // ~10x slower than the store API on this store.
    if (records.empty()) return int64_t{0};
    std::vector<int64_t> campaigns, versions, customers;
    std::string texts = "{";
    for (const HistoryRecord* r : records) {
      campaigns.push_back(r->campaign_id);
      versions.push_back(r->version);
      customers.push_back(r->customer_id);
      // A placeholder (GateRecords: an erased customer's piece) keeps its key, no content.
      texts += texts.size() > 1 ? "," : "";
      AppendArrayText(r->snapshot.empty() ? std::string() : HistoryRecordToJson(*r), texts);
    }
    texts += "}";
    ASSIGN_OR_RETURN(
        PgResult res,
        conn_.ExecParams(
            "INSERT INTO held(campaign_id, version, seq, customer_id, record) "
            "SELECT k.c, k.v, $3, k.cu, k.r FROM unnest($1::bigint[], $2::bigint[], "
            "$4::bigint[], $5::text[]) k(c, v, cu, r) ON CONFLICT DO NOTHING",
            {ArrayOf(campaigns), ArrayOf(versions), Num(seq), ArrayOf(customers), texts}));
    return static_cast<int64_t>(res.AffectedRows());
  }
  Result<std::vector<HistoryRecord>> Release(int64_t seq) override {
    ASSIGN_OR_RETURN(PgResult res, conn_.ExecParams("DELETE FROM held WHERE seq = $1 RETURNING "
                                                    "record, campaign_id, version, customer_id",
                                                    {Num(seq)}));
    std::vector<HistoryRecord> out;
    for (int i = 0; i < res.rows(); ++i) {
      if (res.Get(i, 0).empty()) {
        HistoryRecord placeholder;
        ASSIGN_OR_RETURN(placeholder.campaign_id, res.GetInt(i, 1));
        ASSIGN_OR_RETURN(placeholder.version, res.GetInt(i, 2));
        ASSIGN_OR_RETURN(placeholder.customer_id, res.GetInt(i, 3));
        placeholder.txn_seq = seq;
        out.push_back(std::move(placeholder));
        continue;
      }
      Result<HistoryRecord> r = HistoryRecordFromJson(res.Get(i, 0));
      if (!r.ok()) {
        return DataLossError("history: a held record is unreadable: " +
                             std::string(r.status().message()));
      }
      out.push_back(std::move(*r));
    }
    // Deterministic order (RETURNING has none).
    std::sort(out.begin(), out.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
      return std::pair(a.campaign_id, a.version) < std::pair(b.campaign_id, b.version);
    });
    return out;
  }
  Result<std::optional<CaptureHeartbeat>> TakeHeartbeat(int64_t through_seq) override {
    ASSIGN_OR_RETURN(PgResult r, conn_.ExecParams("SELECT seq, at_us FROM heartbeats WHERE seq "
                                                  "<= $1 ORDER BY at_us DESC LIMIT 1",
                                                  {Num(through_seq)}));
    if (r.rows() == 0) return std::optional<CaptureHeartbeat>();
    CaptureHeartbeat h;
    ASSIGN_OR_RETURN(h.seq, r.GetInt(0, 0));
    ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 1));
    h.at = FromUnixMicros(us);
    RETURN_IF_ERROR(
        conn_.ExecParams("DELETE FROM heartbeats WHERE seq <= $1", {Num(through_seq)}).status());
    return std::optional<CaptureHeartbeat>(h);
  }
  Status PutHeartbeat(const CaptureHeartbeat& h) override {
    return conn_
        .ExecParams(
            "INSERT INTO heartbeats(seq, at_us) VALUES ($1, $2) ON CONFLICT (seq) DO "
            "UPDATE SET at_us = GREATEST(heartbeats.at_us, excluded.at_us)",
            {Num(h.seq), Num(ToUnixMicros(h.at))})
        .status();
  }

 private:
  PgConn& conn_;
  Watermark watermark_, stored_watermark_;
  // seq -> progress (nullopt: none stored), as this call sees it.
  std::map<int64_t, std::optional<TxnProgress>> progress_;
  std::set<int64_t> dirty_;
};

// A campaign's bookkeeping row, as Append reads and updates it.
struct CampaignState {
  int64_t customer_id = 0;
  int64_t max_version = 0;
  int64_t last_body = 0;
  int64_t key_body = 0;
  int64_t max_event_us = 0;
  bool tied = false;    // two records of one event_us (see migration 2)
  bool stored = false;  // the row exists (or will, once this call commits)
  bool dirty = false;
};

struct NewBody {
  int64_t id = 0;
  int64_t campaign_id = 0;
  int64_t base = 0;  // 0: full
  std::string data;  // the full body, or the delta against `base`
};

}  // namespace

Result<std::pair<std::string, std::string>> SplitPgHistoryUrl(std::string_view url,
                                                              std::string_view default_schema) {
  std::string rest(url);
  std::string schema(default_schema);
  const size_t q = rest.find('?');
  if (q != std::string::npos) {
    std::string query = rest.substr(q + 1);
    std::string kept;
    size_t pos = 0;
    while (pos <= query.size()) {
      size_t amp = query.find('&', pos);
      if (amp == std::string::npos) amp = query.size();
      std::string_view part(query.data() + pos, amp - pos);
      if (part.substr(0, 7) == "schema=") {
        schema = std::string(part.substr(7));
      } else if (!part.empty()) {
        if (!kept.empty()) kept += '&';
        kept += part;
      }
      pos = amp + 1;
    }
    rest = rest.substr(0, q) + (kept.empty() ? "" : "?" + kept);
  }
  if (schema.empty() || schema.size() > 63) {
    return InvalidArgumentError(fmt::format(
        "history schema name must have 1 to 63 characters, got '{}'", schema.substr(0, 80)));
  }
  return std::pair(rest, schema);
}

struct PgHistoryStore::Impl {
  PgHistoryOptions options;
  std::string url;  // for libpq
  std::string schema;
  const Clock* clock = nullptr;
  std::unique_ptr<PgConn> conn;
  BodyCache bodies{32 << 20};
  // Months whose partition this process knows exists (start_us).
  std::set<int64_t> partitions;
  // actors.id -> name, as committed (ids come from a sequence and are never reused, so an entry
  // never goes stale; erase deletes unused ones, and clears this).
  std::unordered_map<int64_t, std::string> actor_names;

  Status Connect();
  Status EnsureConn() { return conn && conn->ok() ? Status::OK() : Connect(); }
  Status Migrate();
  Status RefuseLayout1Records();
  Result<PgResult> Q(std::string_view sql, const Params& params = {}) {
    return params.empty() ? conn->Exec(sql) : conn->ExecParams(sql, params);
  }
  // BEGIN and take the writers' lock of the schema.
  Status BeginWrite() {
    return conn
        ->Exec("BEGIN; SELECT pg_advisory_xact_lock(hashtext(" +
               PgQuoteLiteral("campaign-history:" + schema) + "))")
        .status();
  }
  Status Commit() {
    ASSIGN_OR_RETURN(PgResult r, conn->Exec("COMMIT"));
    if (r.CommandTag() != "COMMIT") return AbortedError("history: the transaction was rolled back");
    return Status::OK();
  }
  void Rollback() {
    if (conn && conn->InTransaction()) conn->Exec("ROLLBACK").status().IgnoreError();
  }

  Result<std::vector<HistoryRecord>> ReadRecords(std::string_view sql, const Params& params,
                                                 bool with_snapshots = true,
                                                 bool skip_deleted = false);
  Status ResolveActors(std::vector<DecodedRow>& rows);
  Result<std::unordered_map<std::string, int64_t>> InternActors(
      const std::vector<const HistoryRecord*>& records);
  Status FillSnapshots(std::vector<DecodedRow>& rows,
                       const std::unordered_map<int64_t, std::string>* pending);
  Result<std::unordered_map<int64_t, std::string>> LoadBodies(const std::set<int64_t>& ids);
  Result<int64_t> AppendLocked(std::span<const HistoryRecord> records);
  // Create the missing month partitions of `event_us`; `created` gets the months this process
  // knows exist from now on, `made` those this call actually created.
  Status EnsurePartitions(const std::set<int64_t>& event_us, std::set<int64_t>& created,
                          std::vector<Month>& made);
  void CompactMonthBefore(const Month& m);
  Status Audit(const AuditEntry& e);
};

Status PgHistoryStore::Impl::Connect() {
  PgConnectOptions o;
  o.url = url;
  o.application_name = "campaign-history (history)";
  ASSIGN_OR_RETURN(conn, PgConn::Connect(o));
  return conn->Exec("SET client_min_messages = warning; SET search_path TO " + PgQuoteIdent(schema))
      .status();
}

Status PgHistoryStore::Impl::Migrate() {
  // One transaction under the schema's lock: concurrent Opens of a new schema do not race.
  RETURN_IF_ERROR(BeginWrite());
  Status s = [&]() -> Status {
    RETURN_IF_ERROR(Q("CREATE SCHEMA IF NOT EXISTS " + PgQuoteIdent(schema)).status());
    RETURN_IF_ERROR(
        Q("CREATE TABLE IF NOT EXISTS schema_version(version integer NOT NULL)").status());
    ASSIGN_OR_RETURN(PgResult r, Q("SELECT coalesce(max(version), 0) FROM schema_version"));
    ASSIGN_OR_RETURN(int64_t current, r.GetInt(0, 0));
    if (current > kSchemaVersion) {
      return FailedPreconditionError(fmt::format(
          "history schema '{}' on {} has schema_version {}, newer than this build's {}: upgrade "
          "campaign-history",
          schema, conn->where(), current, kSchemaVersion));
    }
    for (int64_t v = current + 1; v <= kSchemaVersion; ++v) {
      if (v == 2) RETURN_IF_ERROR(RefuseLayout1Records());
      RETURN_IF_ERROR(Q(kMigrations[v - 1]).status());
      RETURN_IF_ERROR(Q("INSERT INTO schema_version(version) VALUES (" + Num(v) + ")").status());
    }
    return Commit();
  }();
  if (!s.ok()) Rollback();
  return s;
}

// Migration 2 replaces the history table; it does not convert records of schema 1.
Status PgHistoryStore::Impl::RefuseLayout1Records() {
  ASSIGN_OR_RETURN(PgResult r, Q("SELECT EXISTS (SELECT 1 FROM history)"));
  if (r.Get(0, 0) != "t") return Status::OK();
  return FailedPreconditionError(fmt::format(
      "history schema '{}' on {} has schema_version 1 and records in it; this build stores "
      "history in the compact layout of schema_version 2 and does not convert schema 1 records "
      "in place: keep the previous build for this schema, or load the history into a new schema "
      "(?schema=NAME) from the history topic (sink role)",
      schema, conn->where()));
}

Status PgHistoryStore::Impl::ResolveActors(std::vector<DecodedRow>& rows) {
  std::set<int64_t> missing;
  for (const DecodedRow& d : rows) {
    if (!actor_names.contains(d.actor)) missing.insert(d.actor);
  }
  if (!missing.empty()) {
    ASSIGN_OR_RETURN(PgResult r, Q("SELECT id, name FROM actors WHERE id = ANY($1::bigint[])",
                                   {ArrayOf(missing)}));
    for (int i = 0; i < r.rows(); ++i) {
      ASSIGN_OR_RETURN(int64_t id, r.GetInt(i, 0));
      actor_names[id] = std::string(r.Get(i, 1));
    }
  }
  for (DecodedRow& d : rows) {
    auto it = actor_names.find(d.actor);
    if (it == actor_names.end()) {
      return DataLossError(fmt::format("history: actor {} of c{}@v{} is missing", d.actor,
                                       d.r.campaign_id, d.r.version));
    }
    d.r.actor = it->second;
  }
  return Status::OK();
}

// The actors.id of every actor of `records`, adding the new ones (in the caller's transaction,
// under the writers' lock).
Result<std::unordered_map<std::string, int64_t>> PgHistoryStore::Impl::InternActors(
    const std::vector<const HistoryRecord*>& records) {
  std::set<std::string> names;
  for (const HistoryRecord* r : records) names.insert(r->actor);
  std::unordered_map<std::string, int64_t> out;
  if (names.empty()) return out;
  std::string array = "{";
  for (const std::string& n : names) {
    if (array.size() > 1) array += ',';
    array += '"';
    for (char c : n) {
      if (c == '"' || c == '\\') array += '\\';
      array += c;
    }
    array += '"';
  }
  array += '}';
  ASSIGN_OR_RETURN(
      PgResult r,
      Q("WITH want(name) AS (SELECT unnest($1::text[])), ins AS (INSERT INTO actors(id, name) "
        "SELECT nextval('actor_ids'), w.name FROM want w WHERE NOT EXISTS (SELECT 1 FROM actors "
        "a WHERE a.name = w.name) RETURNING id, name) SELECT id, name FROM ins UNION ALL SELECT "
        "a.id, a.name FROM actors a JOIN want w ON a.name = w.name",
        {array}));
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(int64_t id, r.GetInt(i, 0));
    out[std::string(r.Get(i, 1))] = id;
  }
  if (out.size() != names.size()) {
    return InternalError("history: interning the actors of a call did not give every one an id");
  }
  return out;
}

Result<std::unordered_map<int64_t, std::string>> PgHistoryStore::Impl::LoadBodies(
    const std::set<int64_t>& ids) {
  std::unordered_map<int64_t, std::string> out;
  if (ids.empty()) return out;
  ASSIGN_OR_RETURN(PgResult r, Q("SELECT b.id, b.data, k.id, k.data FROM bodies b LEFT JOIN "
                                 "bodies k ON k.id = b.base WHERE b.id = ANY($1::bigint[])",
                                 {ArrayOf(ids)}));
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(int64_t id, r.GetInt(i, 0));
    ASSIGN_OR_RETURN(std::string data, UnByteaHex(r.Get(i, 1)));
    if (r.IsNull(i, 2)) {
      out[id] = std::move(data);
      continue;
    }
    ASSIGN_OR_RETURN(int64_t base_id, r.GetInt(i, 2));
    std::string base;
    if (const std::string* cached = bodies.Find(base_id)) {
      base = *cached;
    } else {
      ASSIGN_OR_RETURN(base, UnByteaHex(r.Get(i, 3)));
    }
    ASSIGN_OR_RETURN(out[id], ApplyDelta(base, data));
  }
  for (int64_t id : ids) {
    if (!out.contains(id)) return DataLossError(fmt::format("history: body {} is missing", id));
  }
  return out;
}

Status PgHistoryStore::Impl::FillSnapshots(
    std::vector<DecodedRow>& rows, const std::unordered_map<int64_t, std::string>* pending) {
  std::set<int64_t> missing;
  for (const DecodedRow& d : rows) {
    if (pending != nullptr && pending->contains(d.body)) continue;
    if (bodies.Find(d.body) == nullptr) missing.insert(d.body);
  }
  ASSIGN_OR_RETURN(auto loaded, LoadBodies(missing));
  for (DecodedRow& d : rows) {
    const std::string* body = nullptr;
    if (pending != nullptr) {
      if (auto it = pending->find(d.body); it != pending->end()) body = &it->second;
    }
    if (body == nullptr) {
      if (auto it = loaded.find(d.body); it != loaded.end()) body = &it->second;
    }
    if (body == nullptr) body = bodies.Find(d.body);
    if (body == nullptr) return DataLossError(fmt::format("history: body {} is missing", d.body));
    const SnapshotColumns columns{d.r.priority, d.r.version, d.r.event_time, d.r.actor};
    RETURN_IF_ERROR(JoinSnapshotText(*body, d.extras, columns, &d.r.snapshot));
  }
  // Only committed bodies reach the cache (LoadBodies reads committed or own rows; the caller
  // passes `pending` inside a write transaction, whose new bodies are not loaded here).
  for (auto& [id, text] : loaded) bodies.Put(id, std::move(text));
  return Status::OK();
}

Result<std::vector<HistoryRecord>> PgHistoryStore::Impl::ReadRecords(std::string_view sql,
                                                                     const Params& params,
                                                                     bool with_snapshots,
                                                                     bool skip_deleted) {
  RETURN_IF_ERROR(EnsureConn());
  ASSIGN_OR_RETURN(PgResult res, Q(sql, params));
  std::vector<DecodedRow> rows;
  rows.reserve(res.rows());
  for (int i = 0; i < res.rows(); ++i) {
    ASSIGN_OR_RETURN(DecodedRow d, DecodeRow(res, i));
    if (skip_deleted && d.r.event_type == ChangeOp::kDeleted) continue;
    rows.push_back(std::move(d));
  }
  RETURN_IF_ERROR(ResolveActors(rows));
  if (with_snapshots) RETURN_IF_ERROR(FillSnapshots(rows, nullptr));
  std::vector<HistoryRecord> out;
  out.reserve(rows.size());
  for (DecodedRow& d : rows) out.push_back(std::move(d.r));
  return out;
}

namespace {
std::string PartitionName(const Month& m) {
  return PgQuoteIdent(fmt::format("history_{:04}_{:02}", m.year, m.month));
}
}  // namespace

Status PgHistoryStore::Impl::EnsurePartitions(const std::set<int64_t>& event_us,
                                              std::set<int64_t>& created,
                                              std::vector<Month>& made) {
  for (int64_t us : event_us) {
    const Month m = MonthOf(us);
    if (partitions.contains(m.start_us) || created.contains(m.start_us)) continue;
    // Under the writers' lock: no other appender creates it concurrently.
    ASSIGN_OR_RETURN(PgResult exists,
                     Q("SELECT to_regclass($1) IS NOT NULL", {schema + "." + PartitionName(m)}));
    if (exists.Get(0, 0) != "t") {
      RETURN_IF_ERROR(Q(fmt::format("CREATE TABLE {} PARTITION OF history FOR VALUES FROM ({}) TO "
                                    "({})",
                                    PartitionName(m), m.start_us, m.end_us))
                          .status());
      made.push_back(m);
    }
    created.insert(m.start_us);
  }
  return Status::OK();
}

// Once a month's successor exists the month takes few inserts more, so its index is rebuilt
// packed (fillfactor 100): appends spread over every campaign's key range split leaf pages in
// the middle and leave them ~64 % full, a rebuilt index is ~100 % full (docs/benchmarks.md).
// REINDEX CONCURRENTLY blocks neither readers nor appenders; best effort (outside the Append's
// transaction, which has committed): a failure leaves the index as it was.
void PgHistoryStore::Impl::CompactMonthBefore(const Month& m) {
  if (!options.compact_finished_months) return;
  const Month before = MonthOf(m.start_us - 1);
  Q("REINDEX TABLE CONCURRENTLY " + PartitionName(before)).status().IgnoreError();
}

Status PgHistoryStore::Impl::Audit(const AuditEntry& e) {
  return Q("INSERT INTO audit(at_us, actor, action, customer_id, before_us, records) VALUES ($1, "
           "$2, $3, $4, $5, $6)",
           {Num(ToUnixMicros(e.at)), e.actor, e.action, Num(e.customer_id), OptTime(e.before),
            Num(e.records)})
      .status();
}

Result<int64_t> PgHistoryStore::Impl::AppendLocked(std::span<const HistoryRecord> records) {
  // Bookkeeping rows of the campaigns of this call, and the owner check.
  std::set<int64_t> campaign_ids, customer_ids;
  for (const HistoryRecord& r : records) {
    campaign_ids.insert(r.campaign_id);
    customer_ids.insert(r.customer_id);
  }
  std::unordered_map<int64_t, CampaignState> camps;
  {
    ASSIGN_OR_RETURN(PgResult res,
                     Q("SELECT campaign_id, customer_id, max_version, last_body, key_body, "
                       "max_event_us, tied FROM campaigns WHERE campaign_id = ANY($1::bigint[])",
                       {ArrayOf(campaign_ids)}));
    for (int i = 0; i < res.rows(); ++i) {
      ASSIGN_OR_RETURN(int64_t id, res.GetInt(i, 0));
      CampaignState& c = camps[id];
      c.stored = true;
      ASSIGN_OR_RETURN(c.customer_id, res.GetInt(i, 1));
      ASSIGN_OR_RETURN(c.max_version, res.GetInt(i, 2));
      ASSIGN_OR_RETURN(c.last_body, res.GetInt(i, 3));
      ASSIGN_OR_RETURN(c.key_body, res.GetInt(i, 4));
      ASSIGN_OR_RETURN(c.max_event_us, res.GetInt(i, 5));
      c.tied = res.Get(i, 6) == "t";
    }
  }
  {
    std::map<int64_t, int64_t> owner;
    for (const auto& [id, c] : camps) owner[id] = c.customer_id;
    for (size_t i = 0; i < records.size(); ++i) {
      const HistoryRecord& r = records[i];
      if (r.version > kMaxVersion) {
        return InvalidArgumentError(fmt::format(
            "history record {} (c{}@v{}): version is above {}, the largest this store keeps "
            "(history.version is an integer)",
            i, r.campaign_id, r.version, kMaxVersion));
      }
      auto [it, inserted] = owner.emplace(r.campaign_id, r.customer_id);
      if (it->second != r.customer_id) {
        return InvalidArgumentError(
            fmt::format("history record {} (c{}@v{}): campaign {} belongs to customer {}, not {}",
                        i, r.campaign_id, r.version, r.campaign_id, it->second, r.customer_id));
      }
    }
  }
  std::set<int64_t> erased;
  {
    ASSIGN_OR_RETURN(PgResult res, Q("SELECT customer_id FROM erased_customers WHERE customer_id "
                                     "= ANY($1::bigint[])",
                                     {ArrayOf(customer_ids)}));
    for (int i = 0; i < res.rows(); ++i) {
      ASSIGN_OR_RETURN(int64_t id, res.GetInt(i, 0));
      erased.insert(id);
    }
  }
  PgLedger ledger(*conn);
  {
    std::set<int64_t> seqs;
    for (const HistoryRecord& r : records) {
      if (r.txn_seq != 0) seqs.insert(r.txn_seq);
    }
    RETURN_IF_ERROR(ledger.Prefetch(seqs));
  }
  ASSIGN_OR_RETURN(GateResult gate, GateRecords(records, ledger, [&erased](const HistoryRecord& r) {
                     return erased.contains(r.customer_id);
                   }));
  RETURN_IF_ERROR(ledger.Flush());
  std::vector<const HistoryRecord*> todo = std::move(gate.visible);
  const size_t counted = todo.size();  // released records were counted when they were held
  for (const HistoryRecord& r : gate.released) todo.push_back(&r);

  // Stored records with the keys of possible redeliveries (a version not above the campaign's
  // highest), read in one query.
  std::map<std::pair<int64_t, int64_t>, HistoryRecord> existing;
  {
    std::vector<int64_t> cs, vs;
    for (const HistoryRecord* r : todo) {
      auto it = camps.find(r->campaign_id);
      if (it != camps.end() && it->second.stored && r->version <= it->second.max_version) {
        cs.push_back(r->campaign_id);
        vs.push_back(r->version);
      }
    }
    if (!cs.empty()) {
      ASSIGN_OR_RETURN(
          std::vector<HistoryRecord> found,
          ReadRecords(fmt::format("SELECT {} FROM unnest($1::bigint[], $2::bigint[]) k(c, v) JOIN "
                                  "history h ON h.campaign_id = k.c AND h.version = k.v JOIN "
                                  "campaigns c ON c.campaign_id = h.campaign_id",
                                  kCols),
                      {ArrayOf(cs), ArrayOf(vs)}));
      for (HistoryRecord& r : found) existing.emplace(std::pair(r.campaign_id, r.version), r);
    }
  }

  ASSIGN_OR_RETURN(PgResult next, Q("SELECT value FROM meta WHERE key = 'next_body_id'"));
  ASSIGN_OR_RETURN(int64_t next_body_id, next.GetInt(0, 0));
  const int64_t first_body_id = next_body_id;
  std::unordered_map<int64_t, std::string> pending;  // new body id -> full body
  std::vector<NewBody> new_bodies;
  std::map<std::pair<int64_t, int64_t>, const HistoryRecord*> in_call;
  struct NewRow {
    const HistoryRecord* r;
    int64_t body;
    std::string extras;
  };
  std::vector<NewRow> rows;
  std::vector<std::pair<HistoryRecord, const HistoryRecord*>> conflicts;
  const int64_t ingested_us = ToUnixMicros(clock->Now());
  int64_t stored = gate.held;
  SplitSnapshot split;
  std::string delta;

  auto body_text = [&](int64_t id) -> Result<const std::string*> {
    if (auto it = pending.find(id); it != pending.end()) return &it->second;
    if (const std::string* b = bodies.Find(id)) return b;
    ASSIGN_OR_RETURN(auto loaded, LoadBodies({id}));
    bodies.Put(id, std::move(loaded[id]));
    return bodies.Find(id);
  };

  std::set<std::pair<int64_t, int64_t>> times_in_call;  // (campaign, event_us) written
  std::vector<std::pair<int64_t, int64_t>> maybe_tied;  // (campaign, event_us) to check
  for (size_t k = 0; k < todo.size(); ++k) {
    const HistoryRecord& r = *todo[k];
    const auto key = std::pair(r.campaign_id, r.version);
    const HistoryRecord* prior = nullptr;
    if (auto it = in_call.find(key); it != in_call.end()) {
      prior = it->second;
    } else if (auto e = existing.find(key); e != existing.end()) {
      prior = &e->second;
    }
    if (prior != nullptr) {
      // At-least-once delivery: the stored record wins; other content is a reused version.
      if (!SameVersionContent(*prior, r)) conflicts.emplace_back(*prior, &r);
      continue;
    }
    CampaignState& c = camps[r.campaign_id];
    const SnapshotColumns columns{r.priority, r.version, r.event_time, r.actor};
    int64_t body_id = 0;
    if (c.last_body != 0) {
      ASSIGN_OR_RETURN(const std::string* prev, body_text(c.last_body));
      if (SplitSnapshotUnlessSame(r.snapshot, columns, *prev, &split)) body_id = c.last_body;
    } else {
      SplitSnapshotText(r.snapshot, columns, &split);
    }
    if (body_id == 0) {
      NewBody b{.id = next_body_id++, .campaign_id = r.campaign_id, .base = 0, .data = {}};
      if (c.key_body != 0) {
        ASSIGN_OR_RETURN(const std::string* key_text, body_text(c.key_body));
        delta.clear();
        EncodeDelta(*key_text, split.body, delta);
        if (delta.size() * kDeltaDivisor <= split.body.size()) {
          b.base = c.key_body;
          b.data = delta;
        }
      }
      if (b.base == 0) {
        b.data = split.body;
        c.key_body = b.id;
      }
      body_id = b.id;
      pending[b.id] = split.body;
      new_bodies.push_back(std::move(b));
      c.last_body = body_id;
    }
    c.customer_id = r.customer_id;
    const int64_t event_us = ToUnixMicros(r.event_time);
    if (!times_in_call.emplace(r.campaign_id, event_us).second) {
      c.tied = true;
    } else if (c.stored && event_us <= c.max_event_us && !c.tied) {
      maybe_tied.emplace_back(r.campaign_id, event_us);  // a stored record may have this time
    }
    c.max_event_us = c.stored ? std::max(c.max_event_us, event_us) : event_us;
    c.max_version = c.stored ? std::max(c.max_version, r.version) : r.version;
    c.stored = true;
    c.dirty = true;
    in_call[key] = &r;
    rows.push_back(NewRow{&r, body_id, split.extras});
    if (k < counted) ++stored;
  }

  if (!maybe_tied.empty()) {
    // Before this call's rows are inserted: a match is a stored record.
    std::vector<int64_t> cs, es;
    for (const auto& [c, e] : maybe_tied) {
      cs.push_back(c);
      es.push_back(e);
    }
    ASSIGN_OR_RETURN(PgResult res,
                     Q("SELECT DISTINCT k.c FROM unnest($1::bigint[], $2::bigint[]) k(c, e) JOIN "
                       "history h ON h.campaign_id = k.c AND h.event_us = k.e",
                       {ArrayOf(cs), ArrayOf(es)}));
    for (int i = 0; i < res.rows(); ++i) {
      ASSIGN_OR_RETURN(int64_t id, res.GetInt(i, 0));
      camps[id].tied = true;
    }
  }
  std::set<int64_t> times, created;
  std::vector<Month> made;
  for (const NewRow& row : rows) times.insert(ToUnixMicros(row.r->event_time));
  RETURN_IF_ERROR(EnsurePartitions(times, created, made));
  for (size_t begin = 0; begin < new_bodies.size(); begin += kRowsPerInsert) {
    const size_t end = std::min(new_bodies.size(), begin + kRowsPerInsert);
    std::string sql = "INSERT INTO bodies(id, campaign_id, base, data) VALUES ";
    Params params;
    for (size_t i = begin; i < end; ++i) {
      const NewBody& b = new_bodies[i];
      const size_t n = params.size();
      sql += fmt::format("{}(${},${},${},${}::bytea)", i == begin ? "" : ",", n + 1, n + 2, n + 3,
                         n + 4);
      params.push_back(Num(b.id));
      params.push_back(Num(b.campaign_id));
      params.push_back(NumOrNull(b.base));
      params.push_back(ByteaHex(b.data));
    }
    RETURN_IF_ERROR(Q(sql, params).status());
  }
  if (next_body_id - 1 > kMaxBodyId) {
    return ResourceExhaustedError(fmt::format(
        "history schema '{}': body ids are exhausted (history.body is an integer)", schema));
  }
  std::unordered_map<std::string, int64_t> actor_ids;
  {
    std::vector<const HistoryRecord*> written;
    for (const NewRow& row : rows) written.push_back(row.r);
    ASSIGN_OR_RETURN(actor_ids, InternActors(written));
  }
  std::string info;
  for (size_t begin = 0; begin < rows.size(); begin += kRowsPerInsert) {
    const size_t end = std::min(rows.size(), begin + kRowsPerInsert);
    std::string sql =
        "INSERT INTO history(campaign_id, event_us, version, body, actor, transaction_id, info) "
        "VALUES ";
    Params params;
    for (size_t i = begin; i < end; ++i) {
      const HistoryRecord& r = *rows[i].r;
      const size_t n = params.size();
      sql += fmt::format("{}(${},${},${},${},${},${},${}::bytea)", i == begin ? "" : ",", n + 1,
                         n + 2, n + 3, n + 4, n + 5, n + 6, n + 7);
      EncodeInfo(r, ingested_us, rows[i].extras, info);
      params.push_back(Num(r.campaign_id));
      params.push_back(Num(ToUnixMicros(r.event_time)));
      params.push_back(Num(r.version));
      params.push_back(Num(rows[i].body));
      params.push_back(Num(actor_ids.at(r.actor)));
      params.push_back(r.transaction_id);
      params.push_back(ByteaHex(info));
    }
    RETURN_IF_ERROR(Q(sql, params).status());
  }
  {
    // One upsert for every campaign this call touched.
    std::vector<int64_t> ids, customers, max_versions, last_bodies, key_bodies, max_events;
    std::string tied = "{";
    for (const auto& [id, c] : camps) {
      if (!c.dirty) continue;
      ids.push_back(id);
      customers.push_back(c.customer_id);
      max_versions.push_back(c.max_version);
      last_bodies.push_back(c.last_body);
      key_bodies.push_back(c.key_body);
      max_events.push_back(c.max_event_us);
      tied += tied.size() > 1 ? "," : "";
      tied += c.tied ? "t" : "f";
    }
    tied += "}";
    if (!ids.empty()) {
      RETURN_IF_ERROR(
          Q("INSERT INTO campaigns(campaign_id, customer_id, max_version, last_body, key_body, "
            "max_event_us, tied) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], "
            "$4::bigint[], $5::bigint[], $6::bigint[], $7::boolean[]) ON CONFLICT (campaign_id) "
            "DO UPDATE SET max_version = excluded.max_version, last_body = excluded.last_body, "
            "key_body = excluded.key_body, max_event_us = excluded.max_event_us, tied = "
            "excluded.tied",
            {ArrayOf(ids), ArrayOf(customers), ArrayOf(max_versions), ArrayOf(last_bodies),
             ArrayOf(key_bodies), ArrayOf(max_events), tied})
              .status());
    }
  }
  for (const auto& [prior, received] : conflicts) {
    RETURN_IF_ERROR(
        Q("INSERT INTO conflicts(campaign_id, version, customer_id, detected_us, "
          "stored, received) VALUES ($1, $2, $3, $4, $5, $6)",
          {Num(prior.campaign_id), Num(prior.version), Num(prior.customer_id), Num(ingested_us),
           HistoryRecordToJson(prior), HistoryRecordToJson(*received)})
            .status());
  }
  if (next_body_id != first_body_id) {
    RETURN_IF_ERROR(
        Q("UPDATE meta SET value = $1 WHERE key = 'next_body_id'", {Num(next_body_id)}).status());
  }
  RETURN_IF_ERROR(Commit());
  for (auto& [id, text] : pending) bodies.Put(id, std::move(text));
  partitions.insert(created.begin(), created.end());
  for (const Month& m : made) CompactMonthBefore(m);
  return stored;
}

// ---- the public methods --------------------------------------------------------------------

PgHistoryStore::PgHistoryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgHistoryStore::~PgHistoryStore() = default;

const std::string& PgHistoryStore::schema() const { return impl_->schema; }

int PgHistoryStore::BackendPid() {
  std::lock_guard<std::mutex> lock(mu_);
  return impl_->conn && impl_->conn->ok() ? impl_->conn->backend_pid() : 0;
}

Result<std::unique_ptr<PgHistoryStore>> PgHistoryStore::Open(const PgHistoryOptions& options) {
  if (options.url.empty()) return InvalidArgumentError("history: the PostgreSQL URL is empty");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  ASSIGN_OR_RETURN(auto split, SplitPgHistoryUrl(options.url, options.schema));
  impl->url = split.first;
  impl->schema = split.second;
  impl->clock = options.clock ? options.clock : &SystemClock::Default();
  impl->bodies = BodyCache(options.body_cache_bytes);
  RETURN_IF_ERROR(impl->Connect());
  RETURN_IF_ERROR(impl->Migrate());
  return std::unique_ptr<PgHistoryStore>(new PgHistoryStore(std::move(impl)));
}

Result<int64_t> PgHistoryStore::Append(std::span<const HistoryRecord> records) {
  for (size_t i = 0; i < records.size(); ++i) {
    const HistoryRecord& r = records[i];
    std::string problem = HistoryRecordProblem(r);
    if (!problem.empty()) {
      return InvalidArgumentError(
          fmt::format("history record {} (c{}@v{}): {}", i, r.campaign_id, r.version, problem));
    }
  }
  if (records.empty()) return int64_t{0};
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.EnsureConn());
  RETURN_IF_ERROR(m.BeginWrite());
  Result<int64_t> r = m.AppendLocked(records);
  if (!r.ok()) m.Rollback();
  return r;
}

Status PgHistoryStore::RecordHeartbeat(const CaptureHeartbeat& h) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.EnsureConn());
  RETURN_IF_ERROR(m.BeginWrite());
  PgLedger ledger(*m.conn);
  Status s = ledger.Prefetch({});
  if (s.ok()) s = GateHeartbeat(h, ledger);
  if (s.ok()) s = ledger.Flush();
  if (s.ok()) s = m.Commit();
  if (!s.ok()) m.Rollback();
  return s;
}

Result<Completeness> PgHistoryStore::GetCompleteness() {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.EnsureConn());
  // One statement: one snapshot, so the counts and the watermark agree.
  ASSIGN_OR_RETURN(
      PgResult r,
      m.Q("SELECT (SELECT value FROM meta WHERE key = 'watermark_seq'), (SELECT value FROM meta "
          "WHERE key = 'watermark_us'), (SELECT count(*) FROM txn_progress WHERE NOT complete), "
          "(SELECT count(*) FROM txn_progress WHERE complete), (SELECT count(*) FROM held WHERE "
          "record <> ''), (SELECT count(*) FROM conflicts)"));
  Completeness c;
  if (!r.IsNull(0, 0)) {
    ASSIGN_OR_RETURN(c.through_seq, r.GetInt(0, 0));
  }
  if (!r.IsNull(0, 1)) {
    ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 1));
    c.complete_through = FromUnixMicros(us);
  }
  ASSIGN_OR_RETURN(c.partial_transactions, r.GetInt(0, 2));
  ASSIGN_OR_RETURN(c.waiting_transactions, r.GetInt(0, 3));
  ASSIGN_OR_RETURN(c.held_records, r.GetInt(0, 4));
  ASSIGN_OR_RETURN(c.conflicts, r.GetInt(0, 5));
  return c;
}

namespace {
// One index probe per campaign of the customer: the LATERAL subquery reads the campaign's
// latest row at or before $2 from the (campaign_id, event_us) index: one row for a campaign
// that never had two records of one event_us, and for those that had (campaigns.tied) an
// incremental sort by version breaks the tie. The partitions are scanned newest first (an
// ordered Append), so LIMIT 1 stops in the first partition that has a row. Deleted campaigns are
// dropped by the client (the kind is inside `info`).
constexpr char kAsOfSql[] =
    "SELECT {0} FROM campaigns c CROSS JOIN LATERAL (SELECT * FROM history h WHERE "
    "h.campaign_id = c.campaign_id AND h.event_us <= $2 ORDER BY h.event_us DESC LIMIT 1) h "
    "WHERE c.customer_id = $1 AND NOT c.tied UNION ALL SELECT {0} FROM campaigns c CROSS JOIN "
    "LATERAL (SELECT * FROM history h WHERE h.campaign_id = c.campaign_id AND h.event_us <= $2 "
    "ORDER BY h.event_us DESC, h.version DESC LIMIT 1) h WHERE c.customer_id = $1 AND c.tied";
constexpr char kFromHistory[] =
    " FROM history h JOIN campaigns c ON c.campaign_id = h.campaign_id ";
}  // namespace

Result<std::vector<HistoryRecord>> PgHistoryStore::AsOf(int64_t customer_id, Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(
      std::vector<HistoryRecord> out,
      impl_->ReadRecords(fmt::format(kAsOfSql, kCols), {Num(customer_id), Num(ToUnixMicros(at))},
                         /*with_snapshots=*/true, /*skip_deleted=*/true));
  SortByPriority(out);  // here rather than in the server: the answer is already in memory
  return out;
}

Result<std::string> PgHistoryStore::ExplainAsOf(int64_t customer_id, Timestamp at, bool analyze) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r,
                   impl_->Q(fmt::format("EXPLAIN {}{}", analyze ? "(ANALYZE, BUFFERS) " : "",
                                        fmt::format(kAsOfSql, kCols)),
                            {Num(customer_id), Num(ToUnixMicros(at))}));
  std::string out;
  for (int i = 0; i < r.rows(); ++i) {
    out += r.Get(i, 0);
    out += '\n';
  }
  return out;
}

Result<std::vector<HistoryRecord>> PgHistoryStore::CampaignLog(int64_t campaign_id,
                                                               const TimeRange& range) {
  std::lock_guard<std::mutex> lock(mu_);
  return impl_->ReadRecords(
      fmt::format("SELECT {}{} WHERE h.campaign_id = $1 AND ($2::bigint IS NULL OR h.event_us >= "
                  "$2) AND ($3::bigint IS NULL OR h.event_us <= $3) ORDER BY h.version",
                  kCols, kFromHistory),
      {Num(campaign_id), OptTime(range.from), OptTime(range.to)});
}

Result<std::optional<HistoryRecord>> PgHistoryStore::GetVersion(int64_t campaign_id,
                                                                int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto rows,
                   impl_->ReadRecords(fmt::format("SELECT {}{} WHERE h.campaign_id = $1 AND "
                                                  "h.version = $2 LIMIT 1",
                                                  kCols, kFromHistory),
                                      {Num(campaign_id), Num(version)}));
  if (rows.empty()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(std::move(rows.front()));
}

Result<std::optional<HistoryRecord>> PgHistoryStore::LatestAt(int64_t campaign_id, Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto rows,
                   impl_->ReadRecords(fmt::format("SELECT {}{} WHERE h.campaign_id = $1 AND "
                                                  "h.event_us <= $2 ORDER BY h.event_us DESC, "
                                                  "h.version DESC LIMIT 1",
                                                  kCols, kFromHistory),
                                      {Num(campaign_id), Num(ToUnixMicros(at))}));
  if (rows.empty()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(std::move(rows.front()));
}

Result<std::optional<int64_t>> PgHistoryStore::LatestVersion(int64_t campaign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r, impl_->Q("SELECT max(version) FROM history WHERE campaign_id = $1",
                                        {Num(campaign_id)}));
  if (r.IsNull(0, 0)) return std::optional<int64_t>();
  ASSIGN_OR_RETURN(int64_t v, r.GetInt(0, 0));
  return std::optional<int64_t>(v);
}

Result<int64_t> PgHistoryStore::CountVersions(int64_t campaign_id, int64_t from, int64_t to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (from > to) return int64_t{0};
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r, impl_->Q("SELECT count(*) FROM history WHERE campaign_id = $1 AND "
                                        "version BETWEEN $2 AND $3",
                                        {Num(campaign_id), Num(from), Num(to)}));
  return r.GetInt(0, 0);
}

Result<std::vector<HistoryRecord>> PgHistoryStore::CustomerChanges(int64_t customer_id,
                                                                   const TimeRange& range,
                                                                   int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (limit <= 0) return std::vector<HistoryRecord>();
  return impl_->ReadRecords(
      fmt::format("SELECT {}{} WHERE c.customer_id = $1 AND ($2::bigint IS NULL OR h.event_us >= "
                  "$2) AND ($3::bigint IS NULL OR h.event_us <= $3) ORDER BY h.event_us, "
                  "h.transaction_id COLLATE \"C\", h.campaign_id, h.version LIMIT $4",
                  kCols, kFromHistory),
      {Num(customer_id), OptTime(range.from), OptTime(range.to), Num(limit)});
}

Result<std::vector<HistoryRecord>> PgHistoryStore::TransactionChanges(
    int64_t customer_id, Timestamp at, std::string_view transaction_id, bool with_snapshots) {
  std::lock_guard<std::mutex> lock(mu_);
  if (transaction_id.empty()) return std::vector<HistoryRecord>();
  return impl_->ReadRecords(
      fmt::format("SELECT {}{} WHERE c.customer_id = $1 AND h.event_us = $2 AND "
                  "h.transaction_id = $3 ORDER BY h.campaign_id, h.version",
                  kCols, kFromHistory),
      {Num(customer_id), Num(ToUnixMicros(at)), std::string(transaction_id)}, with_snapshots);
}

Result<std::vector<HistoryRecord>> PgHistoryStore::CustomerCampaigns(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return impl_->ReadRecords(
      fmt::format("SELECT {} FROM campaigns c CROSS JOIN LATERAL (SELECT * FROM history h WHERE "
                  "h.campaign_id = c.campaign_id ORDER BY h.event_us DESC, h.version DESC LIMIT "
                  "1) h WHERE c.customer_id = $1 ORDER BY c.campaign_id",
                  kCols),
      {Num(customer_id)});
}

Result<std::vector<int64_t>> PgHistoryStore::ListCustomers() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r,
                   impl_->Q("SELECT DISTINCT customer_id FROM campaigns ORDER BY customer_id"));
  std::vector<int64_t> out;
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(int64_t id, r.GetInt(i, 0));
    out.push_back(id);
  }
  return out;
}

Result<HistoryStats> PgHistoryStore::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(
      PgResult r,
      impl_->Q("SELECT (SELECT count(*) FROM history), (SELECT count(*) FROM campaigns), (SELECT "
               "count(DISTINCT customer_id) FROM campaigns), (SELECT min(event_us) FROM history), "
               "(SELECT max(event_us) FROM history), (SELECT count(*) FROM held WHERE record <> "
               "''), (SELECT count(*) FROM conflicts), (SELECT coalesce(sum(pg_total_relation_size("
               "c.oid)), 0) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
               "n.nspname = $1 AND c.relkind = 'r')",
               {impl_->schema}));
  HistoryStats s;
  ASSIGN_OR_RETURN(s.records, r.GetInt(0, 0));
  ASSIGN_OR_RETURN(s.campaigns, r.GetInt(0, 1));
  ASSIGN_OR_RETURN(s.customers, r.GetInt(0, 2));
  if (!r.IsNull(0, 3)) {
    ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 3));
    s.first_event = FromUnixMicros(us);
  }
  if (!r.IsNull(0, 4)) {
    ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 4));
    s.last_event = FromUnixMicros(us);
  }
  ASSIGN_OR_RETURN(s.held_records, r.GetInt(0, 5));
  ASSIGN_OR_RETURN(s.conflicts, r.GetInt(0, 6));
  ASSIGN_OR_RETURN(s.bytes, r.GetInt(0, 7));
  return s;
}

Result<std::vector<std::pair<std::string, int64_t>>> PgHistoryStore::SpaceByObject() {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(
      PgResult r,
      impl_->Q("SELECT CASE WHEN c.relispartition THEN 'history' ELSE c.relname::text END, "
               "sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)) FROM pg_class c JOIN "
               "pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = "
               "'r' GROUP BY 1 ORDER BY 1",
               {impl_->schema}));
  std::vector<std::pair<std::string, int64_t>> out;
  for (int i = 0; i < r.rows(); ++i) {
    ASSIGN_OR_RETURN(int64_t table, r.GetInt(i, 1));
    ASSIGN_OR_RETURN(int64_t indexes, r.GetInt(i, 2));
    out.emplace_back(std::string(r.Get(i, 0)), table);
    out.emplace_back(std::string(r.Get(i, 0)) + " (indexes)", indexes);
  }
  return out;
}

namespace {
// Delete the customer's bodies that no record, and no delta a record uses, needs any more (the
// campaign's latest and key bodies stay: the next version is encoded against them).
constexpr char kDeleteUnusedBodies[] = R"sql(
DELETE FROM bodies b USING campaigns c
 WHERE c.customer_id = $1 AND b.campaign_id = c.campaign_id
   AND b.id <> c.last_body AND b.id <> c.key_body
   AND NOT EXISTS (SELECT 1 FROM history h WHERE h.campaign_id = b.campaign_id AND h.body = b.id)
   AND NOT EXISTS (SELECT 1 FROM bodies d WHERE d.base = b.id AND d.campaign_id = b.campaign_id
                     AND (d.id = c.last_body OR EXISTS (SELECT 1 FROM history h2
                          WHERE h2.campaign_id = d.campaign_id AND h2.body = d.id))))sql";
}  // namespace

Result<int64_t> PgHistoryStore::PurgeCustomer(int64_t customer_id, Timestamp before,
                                              std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.EnsureConn());
  RETURN_IF_ERROR(m.BeginWrite());
  const std::string c = Num(customer_id), t = Num(ToUnixMicros(before));
  Result<int64_t> result = [&]() -> Result<int64_t> {
    ASSIGN_OR_RETURN(
        PgResult del,
        m.Q("WITH keep AS (SELECT c.campaign_id, l.event_us, l.version FROM campaigns c CROSS "
            "JOIN LATERAL (SELECT event_us, version FROM history h WHERE h.campaign_id = "
            "c.campaign_id AND h.event_us <= $2 ORDER BY event_us DESC, version DESC LIMIT 1) l "
            "WHERE c.customer_id = $1) DELETE FROM history h USING keep k WHERE h.campaign_id = "
            "k.campaign_id AND h.event_us < $2 AND (h.event_us, h.version) < (k.event_us, "
            "k.version)",
            {c, t}));
    const int64_t removed = del.AffectedRows();
    RETURN_IF_ERROR(m.Q(kDeleteUnusedBodies, {c}).status());
    RETURN_IF_ERROR(m.Q("INSERT INTO purges(customer_id, before_us) VALUES ($1, $2) ON CONFLICT "
                        "(customer_id) DO UPDATE SET before_us = GREATEST(purges.before_us, "
                        "excluded.before_us)",
                        {c, t})
                        .status());
    RETURN_IF_ERROR(m.Audit({.at = m.clock->Now(),
                             .actor = std::string(actor),
                             .action = "purge",
                             .customer_id = customer_id,
                             .before = before,
                             .records = removed}));
    RETURN_IF_ERROR(m.Commit());
    return removed;
  }();
  if (!result.ok()) m.Rollback();
  return result;
}

Result<int64_t> PgHistoryStore::EraseCustomer(int64_t customer_id, std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.EnsureConn());
  RETURN_IF_ERROR(m.BeginWrite());
  const std::string c = Num(customer_id);
  Result<int64_t> result = [&]() -> Result<int64_t> {
    ASSIGN_OR_RETURN(PgResult h, m.Q("DELETE FROM history h USING campaigns c WHERE "
                                     "c.customer_id = $1 AND h.campaign_id = c.campaign_id",
                                     {c}));
    ASSIGN_OR_RETURN(PgResult held, m.Q("DELETE FROM held WHERE customer_id = $1", {c}));
    const int64_t removed = h.AffectedRows() + held.AffectedRows();
    for (const char* sql :
         {"DELETE FROM bodies b USING campaigns c WHERE c.customer_id = $1 AND b.campaign_id = "
          "c.campaign_id",
          "DELETE FROM conflicts WHERE customer_id = $1",
          "DELETE FROM campaigns WHERE customer_id = $1",
          "DELETE FROM purges WHERE customer_id = $1"}) {
      RETURN_IF_ERROR(m.Q(sql, {c}).status());
    }
    // The actor names only this customer's records used (personal data, too).
    RETURN_IF_ERROR(m.Q("DELETE FROM actors a WHERE NOT EXISTS (SELECT 1 FROM history h WHERE "
                        "h.actor = a.id)")
                        .status());
    RETURN_IF_ERROR(m.Q("INSERT INTO erased_customers(customer_id, at_us) VALUES ($1, $2) ON "
                        "CONFLICT (customer_id) DO UPDATE SET at_us = excluded.at_us",
                        {c, Num(ToUnixMicros(m.clock->Now()))})
                        .status());
    RETURN_IF_ERROR(m.Audit({.at = m.clock->Now(),
                             .actor = std::string(actor),
                             .action = "erase",
                             .customer_id = customer_id,
                             .records = removed}));
    RETURN_IF_ERROR(m.Commit());
    return removed;
  }();
  if (!result.ok()) {
    m.Rollback();
    return result;
  }
  m.actor_names.clear();
  // Take the erased rows out of the data pages now, not at the next autovacuum (best effort: the
  // erase itself is committed).
  m.Q("VACUUM history, bodies, held, conflicts, actors").status().IgnoreError();
  return result;
}

Result<std::optional<Timestamp>> PgHistoryStore::PurgedBefore(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r, impl_->Q("SELECT before_us FROM purges WHERE customer_id = $1",
                                        {Num(customer_id)}));
  if (r.rows() == 0) return std::optional<Timestamp>();
  ASSIGN_OR_RETURN(int64_t us, r.GetInt(0, 0));
  return std::optional<Timestamp>(FromUnixMicros(us));
}

Result<bool> PgHistoryStore::Erased(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r, impl_->Q("SELECT 1 FROM erased_customers WHERE customer_id = $1",
                                        {Num(customer_id)}));
  return r.rows() > 0;
}

Result<std::vector<AuditEntry>> PgHistoryStore::AuditLog(int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  RETURN_IF_ERROR(impl_->EnsureConn());
  ASSIGN_OR_RETURN(PgResult r,
                   impl_->Q("SELECT at_us, actor, action, customer_id, before_us, records FROM "
                            "audit ORDER BY id DESC LIMIT $1",
                            {limit < 0 ? std::nullopt : std::optional<std::string>(Num(limit))}));
  std::vector<AuditEntry> out;
  for (int i = 0; i < r.rows(); ++i) {
    AuditEntry e;
    ASSIGN_OR_RETURN(int64_t at, r.GetInt(i, 0));
    e.at = FromUnixMicros(at);
    e.actor = std::string(r.Get(i, 1));
    e.action = std::string(r.Get(i, 2));
    ASSIGN_OR_RETURN(e.customer_id, r.GetInt(i, 3));
    if (!r.IsNull(i, 4)) {
      ASSIGN_OR_RETURN(int64_t before, r.GetInt(i, 4));
      e.before = FromUnixMicros(before);
    }
    ASSIGN_OR_RETURN(e.records, r.GetInt(i, 5));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ch
