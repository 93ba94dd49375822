#include "history/clickhouse_history_store.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "history/in_memory_history_store.h"
#include "history/snapshot_codec.h"

namespace ch {
namespace {

// Schema version of the database (table schema_migrations); bump with a migration appended to
// Migrations(). DO NOT CHANGE the meaning of a released value.
//   1: history, campaigns, held, ledger, conflicts, retention.
//   2: asof_summary (+ asof_in, asof_mv), backfilled from history.
//   3: asof_one (+ asof_one_mv) replaces asof_in/asof_mv: Append sends one row per record and
//      the view expands it into the 13 bucket candidates (same asof_summary, nothing to backfill).
constexpr int64_t kChSchemaVersion = 3;

// The as-of summary (docs/clickhouse.md, "As-of"). Every history row is a candidate in
// 1 + kAsofLevels buckets: level 0 is its exact event_us; level j >= 1 is the bucket of
// 2^(j-1) units of 2^kAsofUnitShift us (about 71.6 min) that holds it, counted from
// -kAsofOrigin. DO NOT CHANGE these constants (stored): a change needs a migration.
constexpr int kAsofUnitShift = 32;
constexpr int kAsofLevels = 12;
constexpr int64_t kAsofOrigin = int64_t{1} << 62;

// The unit of an event time; times outside [-kAsofOrigin, kAsofOrigin) are clamped (they are
// then never inside a prefix bucket of an in-range moment, and as-of at such a moment does not
// use the summary).
uint64_t AsofUnit(int64_t event_us) {
  const int64_t t = std::clamp(event_us, -kAsofOrigin, kAsofOrigin - 1);
  return static_cast<uint64_t>(t + kAsofOrigin) >> kAsofUnitShift;
}
bool AsofInRange(int64_t at_us) { return at_us >= -kAsofOrigin && at_us < kAsofOrigin; }

// Row kind = event_type | capture << 2. DO NOT CHANGE (stored).
uint64_t EncodeKind(const HistoryRecord& r) {
  uint64_t op = r.event_type == ChangeOp::kCreated ? 0 : r.event_type == ChangeOp::kUpdated ? 1 : 2;
  return op | (r.capture == CaptureMode::kNotify ? 4 : 0);
}
void DecodeKind(uint64_t kind, HistoryRecord& r) {
  uint64_t op = kind & 3;
  r.event_type = op == 0 ? ChangeOp::kCreated : op == 1 ? ChangeOp::kUpdated : ChangeOp::kDeleted;
  r.capture = (kind & 4) ? CaptureMode::kNotify : CaptureMode::kLog;
}

// Ledger row kinds (table ledger). DO NOT CHANGE (stored).
constexpr int kLedgerWatermark = 0;
constexpr int kLedgerProgress = 1;
constexpr int kLedgerHeartbeat = 2;
// ledger.flag bits.
constexpr uint64_t kFlagComplete = 1;  // progress: complete; watermark: has a time
constexpr uint64_t kFlagGone = 2;      // the key was erased
// Retention row kinds (table retention). DO NOT CHANGE (stored).
constexpr int kRetAudit = 0;
constexpr int kRetHorizon = 1;
constexpr int kRetErased = 2;
constexpr int kRetRemoved = 3;

// The summary's key of an asof_in row: event_us + 2^62, version and holder, each with the top
// bit set (so hex() gives exactly 16 digits) and concatenated: string order = tuple order.
// DecodeAsofKey reverses it. DO NOT CHANGE (stored).
std::string AsofKeySql() {
  return "concat(hex(bitOr(toUInt64(event_us + 4611686018427387904), 9223372036854775808)),"
         " hex(bitOr(version, 9223372036854775808)), hex(bitOr(holder, 9223372036854775808)))";
}

struct AsofKey {
  int64_t event_us = 0;
  int64_t version = 0;
  int64_t holder = 0;
};
std::optional<AsofKey> DecodeAsofKey(std::string_view hex) {
  if (hex.size() != 48) return std::nullopt;
  uint64_t v[3];
  for (int i = 0; i < 3; ++i) {
    auto part = hex.substr(static_cast<size_t>(i) * 16, 16);
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v[i], 16);
    if (ec != std::errc() || p != part.data() + part.size()) return std::nullopt;
    v[i] &= ~(uint64_t{1} << 63);
  }
  return AsofKey{.event_us = static_cast<int64_t>(v[0]) - kAsofOrigin,
                 .version = static_cast<int64_t>(v[1]),
                 .holder = static_cast<int64_t>(v[2])};
}

// The bucket of level `lv` of `event_us`, in SQL, as AsofUnit and AppendAsofRows compute it.
std::string AsofBucketSql() {
  return fmt::format(
      "if(lv = 0, event_us, toInt64(bitShiftRight(toUInt64(greatest(least(event_us, {0} - 1),"
      " -{0}) + {0}), {1} + lv - 1)))",
      kAsofOrigin, kAsofUnitShift);
}
// The 1 + kAsofLevels levels, as the ARRAY JOIN that expands a row into its candidates.
std::string AsofLevelsJoinSql() {
  return fmt::format("ARRAY JOIN arrayMap(x -> toUInt8(x), range({})) AS lv", kAsofLevels + 1);
}

// The migration-2 backfill: every history row's candidates, bucketed as AsofUnit does.
std::string AsofBackfillSql() {
  return fmt::format(
      "INSERT INTO asof_in SELECT customer_id, lv, {}, campaign_id, event_us, version,"
      " if(body_ref = 0, version, body_ref) FROM history {}",
      AsofBucketSql(), AsofLevelsJoinSql());
}

// Schema 3's view: each asof_one row (one per history row) becomes its 13 candidates, aggregated
// per INSERT block into one part of asof_summary, exactly as schema 2's rows of asof_in were.
std::string AsofOneViewSql() {
  std::string key = AsofKeySql();
  return fmt::format(
      "CREATE MATERIALIZED VIEW IF NOT EXISTS asof_one_mv TO asof_summary AS SELECT customer_id,"
      " lv AS level, {} AS bucket, campaign_id, maxState({}) AS k FROM asof_one {}"
      " GROUP BY customer_id, level, bucket, campaign_id",
      AsofBucketSql(), key, AsofLevelsJoinSql());
}

// Every statement of every migration, in order. Statements are idempotent (IF NOT EXISTS), so a
// migration interrupted half way is simply run again.
std::vector<std::vector<std::string>> Migrations() {
  return {
      {
          // The history. event_time (seconds) exists for partitioning only; event_us is the time.
          "CREATE TABLE IF NOT EXISTS history ("
          " customer_id UInt64, campaign_id UInt64, version UInt64, event_us Int64,"
          " event_time DateTime DEFAULT toDateTime(intDiv(event_us, 1000000)),"
          " kind UInt8, priority Int64, actor String, transaction_id String,"
          " missed_versions UInt64, ingested_us Int64, txn_seq UInt64, txn_changes UInt64,"
          " body String, body_ref UInt64, extras String)"
          " ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(event_time)"
          " ORDER BY (customer_id, campaign_id, version)",
          // Which customer a campaign belongs to: reads by campaign find the primary-key range.
          "CREATE TABLE IF NOT EXISTS campaigns (campaign_id UInt64, customer_id UInt64)"
          " ENGINE = ReplacingMergeTree ORDER BY campaign_id",
          // Records held back until their transaction is complete. A row counts only when the
          // ledger holds a progress row of its seq written by the same commit.
          "CREATE TABLE IF NOT EXISTS held (seq UInt64, campaign_id UInt64, version UInt64,"
          " commit UInt64, customer_id UInt64, placeholder UInt8, record String)"
          " ENGINE = MergeTree ORDER BY (seq, campaign_id, version)",
          // The completeness ledger: versions of keys, the latest commit of each key wins.
          "CREATE TABLE IF NOT EXISTS ledger (kind UInt8, seq UInt64, commit UInt64,"
          " expected Int64, received Int64, at_us Int64, flag UInt8)"
          " ENGINE = MergeTree ORDER BY (kind, seq, commit)",
          "CREATE TABLE IF NOT EXISTS conflicts (campaign_id UInt64, version UInt64,"
          " customer_id UInt64, detected_us Int64, stored String, received String)"
          " ENGINE = MergeTree ORDER BY (campaign_id, version)",
          // Retention and erasure: audit entries, purge horizons, erased customers, removed keys.
          // One INSERT per action (one part of an unpartitioned table): atomic.
          "CREATE TABLE IF NOT EXISTS retention (kind UInt8, customer_id UInt64, campaign_id "
          "UInt64,"
          " version UInt64, seq UInt64, at_us Int64, before_us Int64, has_before UInt8,"
          " actor String, action String, records Int64)"
          " ENGINE = MergeTree ORDER BY (kind, customer_id, campaign_id, version)",
      },
      {
          // The as-of summary: per (customer, level, bucket, campaign) the greatest
          // (event_us, version) and the version holding that row's body, as one fixed-width hex
          // string (AsofKeySql; max over a String is exact and far cheaper than over a Tuple).
          // Candidates are written through the Null table asof_in (the view aggregates each INSERT
          // block: one part), before the history rows they name; duplicates are harmless (max).
          "CREATE TABLE IF NOT EXISTS asof_summary (customer_id UInt64, level UInt8, bucket Int64,"
          " campaign_id UInt64, k AggregateFunction(max, String))"
          " ENGINE = AggregatingMergeTree ORDER BY (customer_id, level, bucket, campaign_id)"
          " SETTINGS index_granularity = 1024",
          "CREATE TABLE IF NOT EXISTS asof_in (customer_id UInt64, level UInt8, bucket Int64,"
          " campaign_id UInt64, event_us Int64, version UInt64, holder UInt64) ENGINE = Null",
          "CREATE MATERIALIZED VIEW IF NOT EXISTS asof_mv TO asof_summary AS SELECT customer_id,"
          " level, bucket, campaign_id, maxState(" +
              AsofKeySql() +
              ") AS k FROM asof_in"
              " GROUP BY customer_id, level, bucket, campaign_id",
          // Backfill from the rows written before this migration (running it again only adds
          // duplicate candidates), then merge once so the first reads find few parts.
          AsofBackfillSql(),
          "OPTIMIZE TABLE asof_summary FINAL",
      },
      {
          // One row per history row instead of 13 (the view computes the buckets): an Append
          // sends and ClickHouse parses 13x fewer candidate rows. The summary is unchanged.
          "CREATE TABLE IF NOT EXISTS asof_one (customer_id UInt64, campaign_id UInt64,"
          " event_us Int64, version UInt64, holder UInt64) ENGINE = Null",
          AsofOneViewSql(),
          "DROP TABLE IF EXISTS asof_mv",
          "DROP TABLE IF EXISTS asof_in",
      }};
}

// What every read of history rows adds to its WHERE: erased customers and purged keys are gone.
constexpr char kVisible[] =
    " AND customer_id NOT IN (SELECT customer_id FROM retention WHERE kind = 2)"
    " AND (customer_id, campaign_id, version) NOT IN"
    " (SELECT customer_id, campaign_id, version FROM retention WHERE kind = 3)";

// The columns of a history record, in the order ParseRecord reads them.
constexpr char kCols[] =
    "customer_id, campaign_id, version, event_us, kind, priority, actor, transaction_id,"
    " missed_versions, ingested_us, txn_seq, txn_changes, body, extras, body_ref";
constexpr char kColsNoBody[] =
    "customer_id, campaign_id, version, event_us, kind, priority, actor, transaction_id,"
    " missed_versions, ingested_us, txn_seq, txn_changes, '', '', 0";

// ---- TabSeparated -------------------------------------------------------------------------------

void AppendEscaped(std::string& out, std::string_view s) {
  for (char c : s) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        out += c;
    }
  }
}

std::string Unescape(std::string_view s) {
  // Most fields hold no escape at all: one scan and one copy.
  size_t first = s.find('\\');
  if (first == std::string_view::npos) return std::string(s);
  std::string out(s.substr(0, first));
  out.reserve(s.size());
  for (size_t i = first; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      out += s[i];
      continue;
    }
    char c = s[++i];
    switch (c) {
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case '0':
        out += '\0';
        break;
      default:
        out += c;  // \\ \' and anything else: the character itself
    }
  }
  return out;
}

using Row = std::vector<std::string>;

std::vector<Row> ParseTsv(std::string_view text) {
  std::vector<Row> rows;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    Row row;
    row.reserve(rows.empty() ? 16 : rows.back().size());
    size_t f = 0;
    while (true) {
      size_t tab = line.find('\t', f);
      row.push_back(Unescape(line.substr(f, tab == std::string_view::npos ? line.npos : tab - f)));
      if (tab == std::string_view::npos) break;
      f = tab + 1;
    }
    rows.push_back(std::move(row));
    pos = end + 1;
  }
  return rows;
}

int64_t ToInt(const std::string& s) {
  int64_t v = 0;
  if (!s.empty() && s[0] != '-' && s.size() >= 19) {  // UInt64 beyond int64: keep the bits
    uint64_t u = 0;
    std::from_chars(s.data(), s.data() + s.size(), u);
    return static_cast<int64_t>(u);
  }
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::string SqlString(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\\' || c == '\'') out += '\\';
    if (c == '\0') {
      out += "\\0";
      continue;
    }
    out += c;
  }
  out += '\'';
  return out;
}

template <typename C>
std::string JoinInts(const C& values) {
  std::string out;
  for (int64_t v : values) {
    if (!out.empty()) out += ',';
    out += std::to_string(v);
  }
  return out;
}

// The month partition of an event time (toYYYYMM of its second).
int64_t MonthOf(int64_t event_us) {
  using namespace std::chrono;
  auto secs = sys_seconds(seconds(event_us >= 0 ? event_us / 1000000 : 0));
  year_month_day ymd(floor<days>(secs));
  return static_cast<int>(ymd.year()) * 100 + static_cast<int>(static_cast<unsigned>(ymd.month()));
}

struct ParsedUrl {
  std::string host;
  int port = 8123;
  std::string database;
};

Result<ParsedUrl> ParseUrl(std::string_view url) {
  constexpr std::string_view kPrefix = "clickhouse://";
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(
        fmt::format("history URL '{}': {} (expected clickhouse://HOST:PORT/DB)", url, why));
  };
  if (url.substr(0, kPrefix.size()) != kPrefix) return bad("not a clickhouse:// URL");
  std::string_view rest = url.substr(kPrefix.size());
  size_t slash = rest.find('/');
  if (slash == std::string_view::npos) return bad("no database");
  std::string_view hostport = rest.substr(0, slash);
  ParsedUrl out;
  out.database = std::string(rest.substr(slash + 1));
  if (out.database.empty()) return bad("no database");
  for (char c : out.database) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
      return bad("the database name may hold letters, digits and '_' only");
    }
  }
  size_t colon = hostport.rfind(':');
  out.host = std::string(hostport.substr(0, colon));
  if (colon != std::string_view::npos) {
    std::string_view p = hostport.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), out.port);
    if (ec != std::errc() || ptr != p.data() + p.size() || out.port <= 0 || out.port > 65535) {
      return bad("bad port");
    }
  }
  if (out.host.empty()) return bad("no host");
  return out;
}

// A record's key.
using Key = std::pair<int64_t, int64_t>;

}  // namespace

// ---- the store's state --------------------------------------------------------------------------

struct ClickHouseHistoryStore::Impl {
  ParsedUrl url;
  std::unique_ptr<httplib::Client> http;
  const Clock* clock = nullptr;
  uint64_t last_commit = 0;
  // The schema version this store works at (kChSchemaVersion unless a test asked for less).
  int64_t schema = kChSchemaVersion;
  // The ledger as of the last commit of this process (one writer per database).
  Watermark watermark;
  std::map<int64_t, TxnProgress> progress;
  std::map<int64_t, CaptureHeartbeat> heartbeats;

  // Run `sql` (in the database unless `in_db` is false); return the TabSeparated answer.
  Result<std::string> Run(const std::string& sql, bool in_db = true) {
    std::string path = "/?max_insert_block_size=100000000&max_query_size=104857600";
    if (in_db) path += "&database=" + url.database;
    auto res = http->Post(path, sql, "text/plain");
    return Answer(res, sql);
  }

  Result<std::string> Answer(httplib::Result& res, std::string_view sql) {
    if (!res) {
      return UnavailableError(
          fmt::format("clickhouse {}:{}: {}", url.host, url.port, httplib::to_string(res.error())));
    }
    if (res->status != 200) {
      std::string what = res->body.substr(0, 600);
      while (!what.empty() && what.back() == '\n') what.pop_back();
      return InternalError(fmt::format("clickhouse {}:{}: HTTP {}: {} (in: {})", url.host, url.port,
                                       res->status, what, sql.substr(0, 200)));
    }
    return std::move(res->body);  // as-of answers are megabytes: no copy
  }

  Result<std::vector<Row>> Select(const std::string& sql) {
    ASSIGN_OR_RETURN(std::string text, Run(sql + " FORMAT TabSeparated"));
    return ParseTsv(text);
  }

  // INSERT `tsv` (TabSeparated rows) into `table_cols` ("t (a, b)") in one request: one block.
  Status Insert(const std::string& table_cols, const std::string& tsv) {
    if (tsv.empty()) return Status::OK();
    std::string query = "INSERT INTO " + table_cols + " FORMAT TabSeparated";
    httplib::Params params{
        {"database", url.database}, {"query", query}, {"max_insert_block_size", "100000000"}};
    std::string path = httplib::append_query_params("/", params);
    auto res = http->Post(path, tsv, "text/tab-separated-values");
    return Answer(res, query).status();
  }

  uint64_t NextCommit() {
    auto now = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    last_commit = std::max(now, last_commit + 1);
    return last_commit;
  }

  Status Migrate() {
    RETURN_IF_ERROR(Run("CREATE DATABASE IF NOT EXISTS " + url.database, false).status());
    RETURN_IF_ERROR(Run("CREATE TABLE IF NOT EXISTS schema_migrations (version UInt32,"
                        " applied_us Int64) ENGINE = MergeTree ORDER BY version")
                        .status());
    ASSIGN_OR_RETURN(auto rows, Select("SELECT max(version) FROM schema_migrations"));
    int64_t have = rows.empty() ? 0 : ToInt(rows[0][0]);
    if (have > schema) {
      return FailedPreconditionError(fmt::format(
          "clickhouse database '{}' has history schema version {}, newer than this build's {}",
          url.database, have, schema));
    }
    auto migrations = Migrations();
    for (int64_t v = have + 1; v <= schema; ++v) {
      for (const std::string& stmt : migrations[static_cast<size_t>(v - 1)]) {
        RETURN_IF_ERROR(Run(stmt).status());
      }
      RETURN_IF_ERROR(Insert("schema_migrations (version, applied_us)",
                             fmt::format("{}\t{}\n", v, ToUnixMicros(clock->Now()))));
    }
    return Status::OK();
  }

  // Load the ledger (the latest row of every key) and the last commit id.
  Status LoadLedger() {
    ASSIGN_OR_RETURN(auto rows, Select("SELECT kind, seq, argMax(expected, commit),"
                                       " argMax(received, commit), argMax(at_us, commit),"
                                       " argMax(flag, commit), max(commit)"
                                       " FROM ledger GROUP BY kind, seq"));
    watermark = {};
    progress.clear();
    heartbeats.clear();
    for (const Row& r : rows) {
      const int kind = static_cast<int>(ToInt(r[0]));
      const int64_t seq = ToInt(r[1]);
      const uint64_t flag = static_cast<uint64_t>(ToInt(r[5]));
      last_commit = std::max(last_commit, static_cast<uint64_t>(ToInt(r[6])));
      if (flag & kFlagGone) continue;
      if (kind == kLedgerWatermark) {
        watermark.seq = ToInt(r[2]);
        if (flag & kFlagComplete) watermark.time = FromUnixMicros(ToInt(r[4]));
      } else if (kind == kLedgerProgress) {
        progress[seq] = TxnProgress{.seq = seq,
                                    .expected = ToInt(r[2]),
                                    .received = ToInt(r[3]),
                                    .commit_time = FromUnixMicros(ToInt(r[4])),
                                    .complete = (flag & kFlagComplete) != 0};
      } else if (kind == kLedgerHeartbeat) {
        heartbeats[seq] = CaptureHeartbeat{.seq = seq, .at = FromUnixMicros(ToInt(r[4]))};
      }
    }
    ASSIGN_OR_RETURN(auto max_ret, Select("SELECT max(seq) FROM retention"));
    if (!max_ret.empty()) {
      last_commit = std::max(last_commit, static_cast<uint64_t>(ToInt(max_ret[0][0])));
    }
    return Status::OK();
  }

  Result<std::set<int64_t>> ErasedCustomers() {
    ASSIGN_OR_RETURN(auto rows,
                     Select("SELECT DISTINCT customer_id FROM retention WHERE kind = 2"));
    std::set<int64_t> out;
    for (const Row& r : rows) out.insert(ToInt(r[0]));
    return out;
  }

  // Parse a row of kCols into `out`. A row whose body is shared (empty body, body_ref set) gets
  // its snapshot from ResolveShared: `*shared_ref` is then the version holding the body.
  Status ParseRecord(const Row& r, HistoryRecord& out, int64_t* shared_ref) {
    if (r.size() < 15) return DataLossError("clickhouse history: short row");
    *shared_ref = 0;
    out.customer_id = ToInt(r[0]);
    out.campaign_id = ToInt(r[1]);
    out.version = ToInt(r[2]);
    out.event_time = FromUnixMicros(ToInt(r[3]));
    DecodeKind(static_cast<uint64_t>(ToInt(r[4])), out);
    out.priority = ToInt(r[5]);
    out.actor = r[6];
    out.transaction_id = r[7];
    out.missed_versions = ToInt(r[8]);
    out.ingested_at = FromUnixMicros(ToInt(r[9]));
    out.txn_seq = ToInt(r[10]);
    out.txn_changes = ToInt(r[11]);
    out.snapshot.clear();
    if (r[12].empty()) {
      // Shared with an earlier version (body_ref), or asked for without snapshots (0). The
      // extras are kept in the snapshot field until ResolveShared joins them.
      *shared_ref = ToInt(r[14]);
      if (*shared_ref != 0) out.snapshot = r[13];
      return Status::OK();
    }
    return JoinSnapshotText(r[12], r[13], Columns(out), &out.snapshot);
  }

  static SnapshotColumns Columns(const HistoryRecord& r) {
    return SnapshotColumns{
        .priority = r.priority, .version = r.version, .event_time = r.event_time, .actor = r.actor};
  }

  // Fill in the snapshots of records whose body lives in another row of the same campaign.
  Status ResolveShared(std::vector<HistoryRecord>& out, const std::vector<int64_t>& refs) {
    std::set<int64_t> cust;
    std::set<Key> keys;
    for (size_t i = 0; i < out.size(); ++i) {
      if (refs[i] == 0) continue;
      cust.insert(out[i].customer_id);
      keys.emplace(out[i].campaign_id, refs[i]);
    }
    if (keys.empty()) return Status::OK();
    std::string tuples;
    for (const auto& [c, v] : keys) {
      if (!tuples.empty()) tuples += ',';
      tuples += fmt::format("({},{})", c, v);
    }
    // No visibility filter: a purged version may still hold the body of a kept one.
    ASSIGN_OR_RETURN(auto rows,
                     Select(fmt::format("SELECT campaign_id, version, body FROM history WHERE"
                                        " customer_id IN ({}) AND (campaign_id, version) IN ({})"
                                        " AND body != '' LIMIT 1 BY campaign_id, version",
                                        JoinInts(cust), tuples)));
    std::map<Key, std::string> bodies;
    for (Row& r : rows) bodies.emplace(Key{ToInt(r[0]), ToInt(r[1])}, std::move(r[2]));
    std::string joined;
    for (size_t i = 0; i < out.size(); ++i) {
      if (refs[i] == 0) continue;
      auto it = bodies.find({out[i].campaign_id, refs[i]});
      if (it == bodies.end()) {
        return DataLossError(
            fmt::format("clickhouse history: c{}@v{} shares the body of v{}, "
                        "which is missing",
                        out[i].campaign_id, out[i].version, refs[i]));
      }
      RETURN_IF_ERROR(JoinSnapshotText(it->second, out[i].snapshot, Columns(out[i]), &joined));
      out[i].snapshot.swap(joined);
    }
    return Status::OK();
  }

  Result<std::vector<HistoryRecord>> Records(const std::string& sql) {
    ASSIGN_OR_RETURN(auto rows, Select(sql));
    std::vector<HistoryRecord> out(rows.size());
    std::vector<int64_t> refs(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      RETURN_IF_ERROR(ParseRecord(rows[i], out[i], &refs[i]));
    }
    RETURN_IF_ERROR(ResolveShared(out, refs));
    return out;
  }

  // The body each campaign's latest written version has, as this process wrote it: a version
  // whose body is the same refers to it instead of repeating it. A hint only (any row holding a
  // body may be referred to); bounded by clearing.
  struct LastBody {
    int64_t version = 0;
    std::string body;
  };
  std::map<int64_t, LastBody> last_body;
  static constexpr size_t kLastBodyLimit = 20000;

  // What the writer knows without asking (one writer per database): each campaign's owner, and
  // a bound on its stored versions (none is greater). A record above its campaign's bound is new,
  // so the common Append needs neither the owner lookup nor the stored-keys check. Bounds are
  // only ever too high (rows removed by erasure), which sends records to the check; they are
  // forgotten when an Append fails part way. Bounded by clearing.
  std::unordered_map<int64_t, int64_t> known_owner;
  std::unordered_map<int64_t, int64_t> version_bound;
  std::set<int64_t> erased_seen;
  // known_owner holds every campaign of table campaigns (erased customers' aside): a campaign
  // it lacks is new, with no lookup.
  bool owners_complete = false;
  static constexpr size_t kKnownLimit = 200000;

  // Load every campaign's owner when there are not too many (at open, and after a failed
  // Append, which may have written some).
  Status LoadOwners() {
    owners_complete = false;
    known_owner.clear();
    ASSIGN_OR_RETURN(erased_seen, ErasedCustomers());
    ASSIGN_OR_RETURN(auto rows,
                     Select(fmt::format("SELECT campaign_id, any(customer_id) FROM campaigns"
                                        " WHERE customer_id NOT IN (SELECT customer_id FROM"
                                        " retention WHERE kind = 2) GROUP BY campaign_id LIMIT {}",
                                        kKnownLimit + 1)));
    if (rows.size() > kKnownLimit) return Status::OK();
    for (const Row& r : rows) known_owner[ToInt(r[0])] = ToInt(r[1]);
    owners_complete = true;
    return Status::OK();
  }

  // An erased customer's campaigns are looked up again (the lookup no longer finds them).
  void ForgetErased(const std::set<int64_t>& erased) {
    if (erased == erased_seen) return;
    std::erase_if(known_owner, [&](const auto& kv) { return erased.contains(kv.second); });
    erased_seen = erased;
  }

  // The owners of `campaign_ids` that are known (cached, or in table campaigns and not erased).
  Result<std::map<int64_t, int64_t>> Owners(const std::set<int64_t>& campaign_ids) {
    std::map<int64_t, int64_t> owner;
    std::vector<int64_t> unknown;
    for (int64_t id : campaign_ids) {
      auto it = known_owner.find(id);
      if (it != known_owner.end()) {
        owner[id] = it->second;
      } else {
        unknown.push_back(id);
      }
    }
    if (unknown.empty() || owners_complete) return owner;
    ASSIGN_OR_RETURN(auto rows, Select(fmt::format("SELECT campaign_id, any(customer_id) FROM"
                                                   " campaigns WHERE campaign_id IN ({}) AND"
                                                   " customer_id NOT IN (SELECT customer_id FROM"
                                                   " retention WHERE kind = 2) GROUP BY"
                                                   " campaign_id",
                                                   JoinInts(unknown))));
    for (const Row& r : rows) owner[ToInt(r[0])] = ToInt(r[1]);
    return owner;
  }

  // The candidates that may be stored already: those at or below their campaign's bound. Bounds
  // missing are established first: 0 for a new campaign (no row of a campaign precedes its
  // campaigns row), else its greatest stored version, visible or not.
  Result<std::vector<const HistoryRecord*>> MaybeStored(
      const std::vector<const HistoryRecord*>& candidates, const std::set<int64_t>& new_campaigns) {
    std::set<int64_t> cust, camp;
    for (const HistoryRecord* r : candidates) {
      if (version_bound.contains(r->campaign_id)) continue;
      if (new_campaigns.contains(r->campaign_id)) {
        version_bound[r->campaign_id] = 0;
        continue;
      }
      cust.insert(r->customer_id);
      camp.insert(r->campaign_id);
    }
    if (!camp.empty()) {
      for (int64_t c : camp) version_bound[c] = 0;
      ASSIGN_OR_RETURN(auto rows, Select(fmt::format("SELECT campaign_id, max(version) FROM"
                                                     " history WHERE customer_id IN ({}) AND"
                                                     " campaign_id IN ({}) GROUP BY campaign_id",
                                                     JoinInts(cust), JoinInts(camp))));
      for (const Row& r : rows) version_bound[ToInt(r[0])] = ToInt(r[1]);
    }
    std::vector<const HistoryRecord*> out;
    for (const HistoryRecord* r : candidates) {
      if (r->version <= version_bound[r->campaign_id]) out.push_back(r);
    }
    return out;
  }

  void ForgetBounds(const std::vector<const HistoryRecord*>& candidates) {
    for (const HistoryRecord* r : candidates) version_bound.erase(r->campaign_id);
  }

  // After a successful Append: the candidates are stored, the new campaigns' owners too.
  void Remember(const std::vector<const HistoryRecord*>& candidates,
                const std::map<int64_t, int64_t>& owner) {
    if (version_bound.size() > kKnownLimit || known_owner.size() > kKnownLimit) {
      version_bound.clear();
      known_owner.clear();
      owners_complete = false;
      return;
    }
    for (const HistoryRecord* r : candidates) {
      auto it = version_bound.find(r->campaign_id);
      if (it != version_bound.end()) it->second = std::max(it->second, r->version);
    }
    // Every owner is in table campaigns now; an erased customer's stay unknown (the lookup
    // skips them).
    for (const auto& [id, customer] : owner) {
      if (!erased_seen.contains(customer)) known_owner[id] = customer;
    }
  }

  // The WHERE prefix that finds a campaign's rows through the primary key.
  static std::string CampaignWhere(int64_t campaign_id) {
    return fmt::format(
        "customer_id IN (SELECT customer_id FROM campaigns WHERE campaign_id = {0}) AND "
        "campaign_id = {0}",
        campaign_id);
  }

  // Append the row of `r`; its body goes in full unless `shared` holds the same body, which a
  // row of the same INSERT or of an earlier, committed one holds: then body_ref names it.
  static int64_t AppendHistoryRow(const HistoryRecord& r, int64_t ingested_us, LastBody* shared,
                                  std::string& out) {
    SplitSnapshot split = SplitSnapshotText(r.snapshot, Columns(r));
    int64_t body_ref = 0;
    if (shared != nullptr && shared->version != 0 && shared->body == split.body) {
      body_ref = shared->version;
      split.body.clear();
    } else if (shared != nullptr) {
      shared->version = r.version;
      shared->body = split.body;
    }
    out += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t", r.customer_id, r.campaign_id, r.version,
                       ToUnixMicros(r.event_time), EncodeKind(r), r.priority);
    AppendEscaped(out, r.actor);
    out += '\t';
    AppendEscaped(out, r.transaction_id);
    out +=
        fmt::format("\t{}\t{}\t{}\t{}\t", r.missed_versions, ingested_us, r.txn_seq, r.txn_changes);
    AppendEscaped(out, split.body);
    out += fmt::format("\t{}\t", body_ref);
    AppendEscaped(out, split.extras);
    out += '\n';
    return body_ref;
  }

  // Append the as-of summary input of `r` (`body_ref` as its history row): at schema 3 one
  // asof_one row, at schema 2 its candidates as asof_in rows.
  static void AppendAsofRows(int64_t schema, const HistoryRecord& r, int64_t body_ref,
                             std::string& out) {
    const int64_t e = ToUnixMicros(r.event_time);
    const int64_t holder = body_ref != 0 ? body_ref : r.version;
    if (schema >= 3) {
      out +=
          fmt::format("{}\t{}\t{}\t{}\t{}\n", r.customer_id, r.campaign_id, e, r.version, holder);
      return;
    }
    const uint64_t unit = AsofUnit(e);
    for (int level = 0; level <= kAsofLevels; ++level) {
      const int64_t bucket = level == 0 ? e : static_cast<int64_t>(unit >> (level - 1));
      out += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", r.customer_id, level, bucket,
                         r.campaign_id, e, r.version, holder);
    }
  }

  // The summary buckets whose union is every moment up to and including `at_us`: the prefix of
  // whole units before at_us's unit (one bucket per set bit below the top level, a range of
  // top-level buckets) and the exact times of its own unit up to at_us (level 0).
  static std::string AsofBuckets(int64_t at_us) {
    const uint64_t n = AsofUnit(at_us);
    const int64_t unit_start = static_cast<int64_t>(n << kAsofUnitShift) - kAsofOrigin;
    std::string cond =
        fmt::format("(level = 0 AND bucket >= {} AND bucket <= {}) OR (level = {} AND bucket < {})",
                    unit_start, at_us, kAsofLevels, n >> (kAsofLevels - 1));
    for (int level = 1; level < kAsofLevels; ++level) {
      const uint64_t idx = n >> (level - 1);
      if (idx & 1) cond += fmt::format(" OR (level = {} AND bucket = {})", level, idx - 1);
    }
    return cond;
  }

  // As-of through the summary: each campaign's greatest (event_us, version) at or before at_us
  // and its body holder, then those rows. nullopt when a chosen row is not there as the summary
  // names it (a candidate written by an Append whose history INSERT failed, or a row hidden by
  // purge/erasure): the caller then scans.
  Result<std::optional<std::vector<Row>>> SummaryAsOfRows(int64_t customer_id, int64_t at_us) {
    const std::string winners_sql = fmt::format(
        "SELECT campaign_id, maxMerge(k) AS w FROM asof_summary WHERE customer_id = {} AND ({})"
        " GROUP BY campaign_id",
        customer_id, AsofBuckets(at_us));
    ASSIGN_OR_RETURN(auto winners, Select(winners_sql));
    std::optional<std::vector<Row>> out(std::in_place);
    if (winners.empty()) return out;
    std::vector<std::pair<Key, int64_t>> wanted;  // (campaign, version) -> event_us
    for (const Row& w : winners) {
      std::optional<AsofKey> k = w.size() < 2 ? std::nullopt : DecodeAsofKey(w[1]);
      if (!k) return DataLossError("clickhouse as-of summary: malformed row");
      wanted.push_back({Key{ToInt(w[0]), k->version}, k->event_us});
    }
    // The same winners again, decoded on the server (a literal list of thousands of keys costs
    // ClickHouse more to parse than recomputing them): the answer rows and their body rows.
    // PREWHERE: the key columns select the rows before the wide ones are read.
    auto field = [](int i) {
      return fmt::format(
          "bitAnd(reinterpretAsUInt64(reverse(unhex(substring(w, {}, 16)))),"
          " 9223372036854775807)",
          i * 16 + 1);
    };
    ASSIGN_OR_RETURN(
        *out, Select(fmt::format("SELECT {} FROM history PREWHERE customer_id = {} AND"
                                 " (campaign_id, version) IN (SELECT campaign_id, arrayJoin([{},"
                                 " {}]) FROM ({})) WHERE 1{} LIMIT 1 BY campaign_id, version",
                                 kCols, customer_id, field(1), field(2), winners_sql, kVisible)));
    std::map<Key, int64_t> found;  // (campaign, version) -> event_us
    for (const Row& r : *out) {
      if (r.size() < 15) return DataLossError("clickhouse history: short row");
      found.emplace(Key{ToInt(r[1]), ToInt(r[2])}, ToInt(r[3]));
    }
    for (const auto& [key, event_us] : wanted) {
      auto it = found.find(key);
      if (it == found.end() || it->second != event_us) return std::optional<std::vector<Row>>();
    }
    return out;
  }

  // As-of by scanning: the subquery picks, from the small columns, each campaign's latest key
  // and the key of the row holding its body (the same row unless the body is shared); the outer
  // query returns those rows, so shared bodies are resolved from the same answer.
  Result<std::vector<Row>> ScanAsOfRows(int64_t customer_id, int64_t at_us) {
    return Select(fmt::format(
        "SELECT {0} FROM history WHERE customer_id = {1} AND (campaign_id, version) IN"
        " (SELECT campaign_id, arrayJoin([argMax(version, (event_us, version)),"
        " argMax(if(body_ref = 0, version, body_ref), (event_us, version))]) FROM history"
        " WHERE customer_id = {1} AND event_us <= {2}{3} GROUP BY campaign_id)"
        " LIMIT 1 BY campaign_id, version",
        kCols, customer_id, at_us, kVisible));
  }

  // The as-of answer from rows holding each campaign's latest row at or before at_us (and the
  // rows holding their bodies): per campaign the row with the greatest (event_us, version) at
  // or before at_us, deletes dropped, sorted by priority.
  Result<std::vector<HistoryRecord>> AssembleAsOf(const std::vector<Row>& rows, int64_t at_us) {
    std::map<Key, const std::string*> bodies;
    // campaign -> the row with the greatest (event_us, version).
    std::map<int64_t, std::pair<std::pair<int64_t, int64_t>, size_t>> chosen;
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      if (r.size() < 15) return DataLossError("clickhouse history: short row");
      const int64_t campaign = ToInt(r[1]);
      const std::pair<int64_t, int64_t> order{ToInt(r[3]), ToInt(r[2])};
      if (!r[12].empty()) bodies[{campaign, order.second}] = &r[12];
      // A body row may be a later version (delivered first): never the answer. (Before a purge
      // horizon, a purged row could also come back here as a body row; as-of there is refused
      // by the query layer.)
      if (order.first > at_us) continue;
      auto [it, inserted] = chosen.emplace(campaign, std::pair(order, i));
      if (!inserted && order > it->second.first) it->second = {order, i};
    }
    std::vector<HistoryRecord> latest;
    std::vector<int64_t> unresolved_refs;
    std::string joined;
    for (const auto& [campaign, pick] : chosen) {
      HistoryRecord rec;
      int64_t ref = 0;
      RETURN_IF_ERROR(ParseRecord(rows[pick.second], rec, &ref));
      if (rec.event_type == ChangeOp::kDeleted) continue;
      if (ref != 0) {
        auto b = bodies.find({campaign, ref});
        if (b != bodies.end()) {
          RETURN_IF_ERROR(JoinSnapshotText(*b->second, rec.snapshot, Columns(rec), &joined));
          rec.snapshot.swap(joined);
          ref = 0;
        }
      }
      latest.push_back(std::move(rec));
      unresolved_refs.push_back(ref);
    }
    RETURN_IF_ERROR(ResolveShared(latest, unresolved_refs));
    SortByPriority(latest);
    return latest;
  }

  // Held records (valid ones: written by a commit whose ledger row exists) of partial
  // transactions, per customer when `customer_id` > 0.
  Result<int64_t> CountHeld(int64_t customer_id) {
    std::vector<int64_t> partial;
    for (const auto& [seq, p] : progress) {
      if (!p.complete) partial.push_back(seq);
    }
    if (partial.empty()) return int64_t{0};
    std::string sql = fmt::format(
        "SELECT count() FROM (SELECT seq, campaign_id, version FROM held WHERE placeholder = 0"
        " AND seq IN ({0}) AND commit IN (SELECT commit FROM ledger WHERE kind = 1 AND seq IN"
        " ({0})) AND customer_id NOT IN (SELECT customer_id FROM retention WHERE kind = 2){1}"
        " LIMIT 1 BY seq, campaign_id, version)",
        JoinInts(partial),
        customer_id > 0 ? fmt::format(" AND customer_id = {}", customer_id) : "");
    ASSIGN_OR_RETURN(auto rows, Select(sql));
    return rows.empty() ? int64_t{0} : ToInt(rows[0][0]);
  }
};

namespace {

// The ledger of one Append (or heartbeat): reads the store's cached state, buffers every change
// and writes them with Commit() in one INSERT, after everything else of the call.
class ChLedger final : public CompletenessLedger {
 public:
  ChLedger(ClickHouseHistoryStore::Impl& m, uint64_t commit)
      : m_(m),
        commit_(commit),
        watermark_(m.watermark),
        progress_(m.progress),
        heartbeats_(m.heartbeats) {}

  Result<Watermark> GetWatermark() override { return watermark_; }
  Status SetWatermark(const Watermark& w) override {
    watermark_ = w;
    wm_dirty_ = true;
    return Status::OK();
  }
  Result<std::optional<TxnProgress>> GetProgress(int64_t seq) override {
    auto it = progress_.find(seq);
    if (it == progress_.end()) return std::optional<TxnProgress>();
    return std::optional<TxnProgress>(it->second);
  }
  Status PutProgress(const TxnProgress& p) override {
    progress_[p.seq] = p;
    dirty_progress_.insert(p.seq);
    return Status::OK();
  }
  Status EraseProgress(int64_t seq) override {
    progress_.erase(seq);
    dirty_progress_.insert(seq);
    return Status::OK();
  }

  Result<int64_t> Hold(int64_t seq, std::span<const HistoryRecord* const> records) override {
    ASSIGN_OR_RETURN(std::set<Key> * keys, HeldKeys(seq));
    int64_t added = 0;
    for (const HistoryRecord* r : records) {
      if (!keys->insert({r->campaign_id, r->version}).second) continue;
      ++added;
      pending_[seq].push_back(*r);
      const bool placeholder = r->snapshot.empty();
      held_tsv_ += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t", seq, r->campaign_id, r->version, commit_,
                               r->customer_id, placeholder ? 1 : 0);
      AppendEscaped(held_tsv_, HistoryRecordToJson(*r));
      held_tsv_ += '\n';
    }
    return added;
  }

  Result<std::vector<HistoryRecord>> Release(int64_t seq) override {
    ASSIGN_OR_RETURN(auto rows, m_.Select(ValidHeldSql(seq, "placeholder, record")));
    std::vector<HistoryRecord> out;
    for (const Row& r : rows) {
      HistoryRecord rec;
      if (r[0] == "1") {
        // A placeholder has no snapshot, which HistoryRecordFromJson refuses: rebuild it.
        auto parsed = HistoryRecordFromJson(r[1]);
        if (parsed.ok()) rec = *parsed;
        rec.snapshot.clear();
      } else {
        ASSIGN_OR_RETURN(rec, HistoryRecordFromJson(r[1]));
      }
      out.push_back(std::move(rec));
    }
    for (HistoryRecord& r : pending_[seq]) out.push_back(std::move(r));
    pending_.erase(seq);
    return out;
  }

  Result<std::optional<CaptureHeartbeat>> TakeHeartbeat(int64_t through_seq) override {
    std::optional<CaptureHeartbeat> best;
    for (auto it = heartbeats_.begin(); it != heartbeats_.end() && it->first <= through_seq;) {
      if (!best || it->second.at > best->at) best = it->second;
      dirty_heartbeats_.insert(it->first);
      it = heartbeats_.erase(it);
    }
    return best;
  }
  Status PutHeartbeat(const CaptureHeartbeat& h) override {
    auto [it, inserted] = heartbeats_.emplace(h.seq, h);
    if (!inserted && h.at > it->second.at) it->second = h;
    dirty_heartbeats_.insert(h.seq);
    return Status::OK();
  }

  // Write the held records (before anything is visible).
  Status WriteHeld() {
    return m_.Insert("held (seq, campaign_id, version, commit, customer_id, placeholder, record)",
                     held_tsv_);
  }

  // Write the ledger changes in one INSERT (last), then adopt them as the store's state.
  Status Commit() {
    std::string tsv;
    if (wm_dirty_) {
      tsv += fmt::format("{}\t0\t{}\t{}\t0\t{}\t{}\n", kLedgerWatermark, commit_, watermark_.seq,
                         watermark_.time ? ToUnixMicros(*watermark_.time) : 0,
                         watermark_.time ? kFlagComplete : 0);
    }
    for (int64_t seq : dirty_progress_) {
      auto it = progress_.find(seq);
      if (it == progress_.end()) {
        tsv += fmt::format("{}\t{}\t{}\t0\t0\t0\t{}\n", kLedgerProgress, seq, commit_, kFlagGone);
        continue;
      }
      const TxnProgress& p = it->second;
      tsv += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", kLedgerProgress, seq, commit_, p.expected,
                         p.received, ToUnixMicros(p.commit_time), p.complete ? kFlagComplete : 0);
    }
    for (int64_t seq : dirty_heartbeats_) {
      auto it = heartbeats_.find(seq);
      tsv += fmt::format("{}\t{}\t{}\t0\t0\t{}\t{}\n", kLedgerHeartbeat, seq, commit_,
                         it == heartbeats_.end() ? 0 : ToUnixMicros(it->second.at),
                         it == heartbeats_.end() ? kFlagGone : 0);
    }
    RETURN_IF_ERROR(m_.Insert("ledger (kind, seq, commit, expected, received, at_us, flag)", tsv));
    m_.watermark = watermark_;
    m_.progress = std::move(progress_);
    m_.heartbeats = std::move(heartbeats_);
    return Status::OK();
  }

 private:
  std::string ValidHeldSql(int64_t seq, std::string_view cols) const {
    return fmt::format(
        "SELECT {1} FROM held WHERE seq = {0} AND commit IN (SELECT commit FROM ledger WHERE"
        " kind = 1 AND seq = {0}) ORDER BY campaign_id, version LIMIT 1 BY campaign_id, version",
        seq, cols);
  }

  Result<std::set<Key>*> HeldKeys(int64_t seq) {
    auto it = held_keys_.find(seq);
    if (it != held_keys_.end()) return &it->second;
    std::set<Key> keys;
    if (progress_.count(seq)) {  // nothing can be held for a transaction never seen
      ASSIGN_OR_RETURN(auto rows, m_.Select(ValidHeldSql(seq, "campaign_id, version")));
      for (const Row& r : rows) keys.emplace(ToInt(r[0]), ToInt(r[1]));
    }
    return &held_keys_.emplace(seq, std::move(keys)).first->second;
  }

  ClickHouseHistoryStore::Impl& m_;
  uint64_t commit_;
  Watermark watermark_;
  std::map<int64_t, TxnProgress> progress_;
  std::map<int64_t, CaptureHeartbeat> heartbeats_;
  bool wm_dirty_ = false;
  std::set<int64_t> dirty_progress_;
  std::set<int64_t> dirty_heartbeats_;
  std::map<int64_t, std::set<Key>> held_keys_;
  std::map<int64_t, std::vector<HistoryRecord>> pending_;
  std::string held_tsv_;
};

}  // namespace

// ---- open ---------------------------------------------------------------------------------------

ClickHouseHistoryStore::ClickHouseHistoryStore(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

ClickHouseHistoryStore::~ClickHouseHistoryStore() = default;

Result<std::unique_ptr<ClickHouseHistoryStore>> ClickHouseHistoryStore::Open(
    const ClickHouseHistoryOptions& options) {
  auto impl = std::make_unique<Impl>();
  ASSIGN_OR_RETURN(impl->url, ParseUrl(options.url));
  impl->clock = options.clock ? options.clock : &SystemClock::Default();
  impl->http = std::make_unique<httplib::Client>(impl->url.host, impl->url.port);
  impl->http->set_keep_alive(true);
  impl->http->set_tcp_nodelay(true);
  impl->http->set_connection_timeout(std::chrono::seconds(10));
  impl->http->set_read_timeout(std::chrono::seconds(options.timeout_seconds));
  impl->http->set_write_timeout(std::chrono::seconds(options.timeout_seconds));
  if (options.schema_version_for_testing > 0) {
    impl->schema = std::min(impl->schema, options.schema_version_for_testing);
  }
  RETURN_IF_ERROR(impl->Migrate());
  RETURN_IF_ERROR(impl->LoadLedger());
  RETURN_IF_ERROR(impl->LoadOwners());
  return std::unique_ptr<ClickHouseHistoryStore>(new ClickHouseHistoryStore(std::move(impl)));
}

Status ClickHouseHistoryStore::DropDatabaseForTesting() {
  std::lock_guard<std::mutex> lock(mu_);
  return impl_->Run("DROP DATABASE IF EXISTS " + impl_->url.database, false).status();
}

// ---- append -------------------------------------------------------------------------------------

Result<int64_t> ClickHouseHistoryStore::Append(std::span<const HistoryRecord> records) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  if (records.empty()) return int64_t{0};
  // Validate everything first, ownership included, so that a bad record stores nothing.
  std::set<int64_t> campaign_ids, customer_ids, versions;
  for (const HistoryRecord& r : records) {
    campaign_ids.insert(r.campaign_id);
    customer_ids.insert(r.customer_id);
    versions.insert(r.version);
  }
  std::map<int64_t, int64_t> owner;
  for (size_t i = 0; i < records.size(); ++i) {
    const HistoryRecord& r = records[i];
    std::string problem = HistoryRecordProblem(r);
    if (!problem.empty()) {
      return InvalidArgumentError(
          fmt::format("history record {} (c{}@v{}): {}", i, r.campaign_id, r.version, problem));
    }
  }
  ASSIGN_OR_RETURN(std::set<int64_t> erased, m.ErasedCustomers());
  m.ForgetErased(erased);
  ASSIGN_OR_RETURN(owner, m.Owners(campaign_ids));
  std::set<int64_t> new_campaigns;
  for (size_t i = 0; i < records.size(); ++i) {
    const HistoryRecord& r = records[i];
    auto [it, inserted] = owner.emplace(r.campaign_id, r.customer_id);
    if (inserted) new_campaigns.insert(r.campaign_id);
    if (it->second != r.customer_id) {
      return InvalidArgumentError(
          fmt::format("history record {} (c{}@v{}): campaign {} belongs to customer {}, not {}", i,
                      r.campaign_id, r.version, r.campaign_id, it->second, r.customer_id));
    }
  }
  const int64_t now_us = ToUnixMicros(m.clock->Now());
  ChLedger ledger(m, m.NextCommit());
  auto gate_or = GateRecords(records, ledger, [&](const HistoryRecord& r) {
    return erased.contains(r.customer_id);  // refused from then on
  });
  RETURN_IF_ERROR(gate_or.status());
  GateResult& gate = *gate_or;

  // Which of the candidates are stored already (a redelivery, or a reused version).
  std::vector<const HistoryRecord*> candidates = gate.visible;
  for (const HistoryRecord& r : gate.released) candidates.push_back(&r);
  std::map<Key, HistoryRecord> stored;
  ASSIGN_OR_RETURN(std::vector<const HistoryRecord*> maybe_stored,
                   m.MaybeStored(candidates, new_campaigns));
  if (!maybe_stored.empty()) {
    std::set<int64_t> cust, camp, ver;
    for (const HistoryRecord* r : maybe_stored) {
      cust.insert(r->customer_id);
      camp.insert(r->campaign_id);
      ver.insert(r->version);
    }
    // Keys first (small columns), whole records only of the keys found (redeliveries).
    ASSIGN_OR_RETURN(
        auto found, m.Select(fmt::format("SELECT DISTINCT campaign_id, version FROM history"
                                         " WHERE customer_id IN ({}) AND campaign_id IN ({})"
                                         " AND version IN ({}){}",
                                         JoinInts(cust), JoinInts(camp), JoinInts(ver), kVisible)));
    std::set<Key> wanted;
    for (const HistoryRecord* r : maybe_stored) wanted.emplace(r->campaign_id, r->version);
    std::string tuples;
    for (const Row& r : found) {
      if (!wanted.count({ToInt(r[0]), ToInt(r[1])})) continue;
      if (!tuples.empty()) tuples += ',';
      tuples += fmt::format("({},{})", r[0], r[1]);
    }
    if (!tuples.empty()) {
      ASSIGN_OR_RETURN(auto existing, m.Records(fmt::format(
                                          "SELECT {} FROM history WHERE customer_id IN ({}) AND"
                                          " (campaign_id, version) IN ({}){} ORDER BY ingested_us"
                                          " LIMIT 1 BY campaign_id, version",
                                          kCols, JoinInts(cust), tuples, kVisible)));
      for (HistoryRecord& r : existing) {
        stored.emplace(Key{r.campaign_id, r.version}, std::move(r));
      }
    }
  }
  int64_t newly = gate.held;
  std::map<int64_t, std::string> by_month;
  std::string asof_tsv;  // the summary candidates of every row in by_month
  // Per month INSERT, the body each campaign last got in it (starting from the committed ones).
  std::map<int64_t, std::map<int64_t, Impl::LastBody>> month_bodies;
  std::string conflicts_tsv;
  const size_t visible_count = gate.visible.size();
  for (size_t i = 0; i < candidates.size(); ++i) {
    const HistoryRecord& r = *candidates[i];
    auto [it, inserted] = stored.emplace(Key{r.campaign_id, r.version}, r);
    if (!inserted) {
      if (!SameVersionContent(it->second, r)) {
        conflicts_tsv +=
            fmt::format("{}\t{}\t{}\t{}\t", r.campaign_id, r.version, r.customer_id, now_us);
        AppendEscaped(conflicts_tsv, HistoryRecordToJson(it->second));
        conflicts_tsv += '\t';
        AppendEscaped(conflicts_tsv, HistoryRecordToJson(r));
        conflicts_tsv += '\n';
      }
      continue;
    }
    if (i < visible_count) ++newly;
    const int64_t month = MonthOf(ToUnixMicros(r.event_time));
    auto& bodies = month_bodies[month];
    auto b = bodies.find(r.campaign_id);
    if (b == bodies.end()) {
      auto known = m.last_body.find(r.campaign_id);
      b = bodies
              .emplace(r.campaign_id, known != m.last_body.end() ? known->second : Impl::LastBody{})
              .first;
    }
    const int64_t body_ref = Impl::AppendHistoryRow(r, now_us, &b->second, by_month[month]);
    if (m.schema >= 2) Impl::AppendAsofRows(m.schema, r, body_ref, asof_tsv);
  }
  std::string campaigns_tsv;
  for (int64_t id : new_campaigns) campaigns_tsv += fmt::format("{}\t{}\n", id, owner[id]);

  // Held records first (they count only once the ledger row below exists), then the facts that
  // are idempotent to repeat, then the history (one INSERT per month partition: atomic), then
  // the ledger. On any failure, reload the ledger: this call's changes are not adopted.
  auto write = [&]() -> Status {
    RETURN_IF_ERROR(ledger.WriteHeld());
    RETURN_IF_ERROR(m.Insert("campaigns (campaign_id, customer_id)", campaigns_tsv));
    RETURN_IF_ERROR(
        m.Insert("conflicts (campaign_id, version, customer_id, detected_us, stored, received)",
                 conflicts_tsv));
    // The summary before the rows it names: a row is never visible without its candidates
    // (a candidate without its row makes as-of scan instead; see SummaryAsOfRows).
    RETURN_IF_ERROR(m.Insert(
        m.schema >= 3
            ? "asof_one (customer_id, campaign_id, event_us, version, holder)"
            : "asof_in (customer_id, level, bucket, campaign_id, event_us, version, holder)",
        asof_tsv));
    for (const auto& [month, tsv] : by_month) {
      RETURN_IF_ERROR(m.Insert(
          "history (customer_id, campaign_id, version, event_us, kind, priority, actor,"
          " transaction_id, missed_versions, ingested_us, txn_seq, txn_changes, body, body_ref,"
          " extras)",
          tsv));
    }
    return ledger.Commit();
  };
  Status s = write();
  if (!s.ok()) {
    m.LoadLedger().IgnoreError();
    m.ForgetBounds(candidates);    // some of the rows may be stored now,
    m.LoadOwners().IgnoreError();  // and some campaigns
    return s;
  }
  m.Remember(candidates, owner);
  // Everything is committed: the bodies written may be referred to from now on.
  if (m.last_body.size() > Impl::kLastBodyLimit) m.last_body.clear();
  for (auto& [month, bodies] : month_bodies) {
    for (auto& [campaign, body] : bodies) {
      if (body.version != 0) m.last_body[campaign] = std::move(body);
    }
  }
  if (!conflicts_tsv.empty()) {
    spdlog::warn(
        "history clickhouse '{}': versions arrived again with other content: version numbers "
        "were reused; kept as evidence in table conflicts (docs/operations.md, \"Conflicting "
        "versions\")",
        m.url.database);
  }
  return newly;
}

Status ClickHouseHistoryStore::RecordHeartbeat(const CaptureHeartbeat& h) {
  std::lock_guard<std::mutex> lock(mu_);
  ChLedger ledger(*impl_, impl_->NextCommit());
  RETURN_IF_ERROR(GateHeartbeat(h, ledger));
  Status s = ledger.Commit();
  if (!s.ok()) impl_->LoadLedger().IgnoreError();
  return s;
}

Result<Completeness> ClickHouseHistoryStore::GetCompleteness() {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.LoadLedger());  // another process may be the writer
  Completeness c;
  c.through_seq = m.watermark.seq;
  c.complete_through = m.watermark.time;
  for (const auto& [seq, p] : m.progress) {
    if (p.complete) {
      ++c.waiting_transactions;
    } else {
      ++c.partial_transactions;
    }
  }
  ASSIGN_OR_RETURN(c.held_records, m.CountHeld(0));
  ASSIGN_OR_RETURN(auto rows,
                   m.Select("SELECT uniqExact(campaign_id, version, received) FROM conflicts"
                            " WHERE customer_id NOT IN (SELECT customer_id FROM retention"
                            " WHERE kind = 2)"));
  c.conflicts = rows.empty() ? 0 : ToInt(rows[0][0]);
  return c;
}

// ---- reads --------------------------------------------------------------------------------------

Result<std::vector<HistoryRecord>> ClickHouseHistoryStore::AsOf(int64_t customer_id, Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  const int64_t at_us = ToUnixMicros(at);
  if (m.schema >= 2 && AsofInRange(at_us)) {
    ASSIGN_OR_RETURN(auto rows, m.SummaryAsOfRows(customer_id, at_us));
    if (rows) return m.AssembleAsOf(*rows, at_us);
  }
  ASSIGN_OR_RETURN(auto rows, m.ScanAsOfRows(customer_id, at_us));
  return m.AssembleAsOf(rows, at_us);
}
Result<std::vector<HistoryRecord>> ClickHouseHistoryStore::CampaignLog(int64_t campaign_id,
                                                                       const TimeRange& range) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string where = Impl::CampaignWhere(campaign_id);
  if (range.from) where += fmt::format(" AND event_us >= {}", ToUnixMicros(*range.from));
  if (range.to) where += fmt::format(" AND event_us <= {}", ToUnixMicros(*range.to));
  return impl_->Records(fmt::format(
      "SELECT {} FROM history WHERE {}{} ORDER BY version, ingested_us LIMIT 1 BY version", kCols,
      where, kVisible));
}

Result<std::optional<HistoryRecord>> ClickHouseHistoryStore::GetVersion(int64_t campaign_id,
                                                                        int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto out, impl_->Records(fmt::format(
                                 "SELECT {} FROM history WHERE {} AND version = {}{}"
                                 " ORDER BY ingested_us LIMIT 1",
                                 kCols, Impl::CampaignWhere(campaign_id), version, kVisible)));
  if (out.empty()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(std::move(out.front()));
}

Result<std::optional<HistoryRecord>> ClickHouseHistoryStore::LatestAt(int64_t campaign_id,
                                                                      Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto out,
                   impl_->Records(fmt::format("SELECT {} FROM history WHERE {} AND event_us <= {}{}"
                                              " ORDER BY event_us DESC, version DESC LIMIT 1",
                                              kCols, Impl::CampaignWhere(campaign_id),
                                              ToUnixMicros(at), kVisible)));
  if (out.empty()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(std::move(out.front()));
}

Result<std::optional<int64_t>> ClickHouseHistoryStore::LatestVersion(int64_t campaign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto rows,
                   impl_->Select(fmt::format("SELECT count(), max(version) FROM history"
                                             " WHERE {}{}",
                                             Impl::CampaignWhere(campaign_id), kVisible)));
  if (rows.empty() || ToInt(rows[0][0]) == 0) return std::optional<int64_t>();
  return std::optional<int64_t>(ToInt(rows[0][1]));
}

Result<int64_t> ClickHouseHistoryStore::CountVersions(int64_t campaign_id, int64_t from,
                                                      int64_t to) {
  std::lock_guard<std::mutex> lock(mu_);
  if (from > to) return int64_t{0};
  ASSIGN_OR_RETURN(auto rows, impl_->Select(fmt::format(
                                  "SELECT uniqExact(version) FROM history WHERE {}"
                                  " AND version >= {} AND version <= {}{}",
                                  Impl::CampaignWhere(campaign_id), std::max<int64_t>(from, 0),
                                  std::max<int64_t>(to, 0), kVisible)));
  return rows.empty() ? int64_t{0} : ToInt(rows[0][0]);
}

Result<std::vector<HistoryRecord>> ClickHouseHistoryStore::CustomerChanges(int64_t customer_id,
                                                                           const TimeRange& range,
                                                                           int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  if (limit <= 0) return std::vector<HistoryRecord>();
  std::string where = fmt::format("customer_id = {}", customer_id);
  if (range.from) where += fmt::format(" AND event_us >= {}", ToUnixMicros(*range.from));
  if (range.to) where += fmt::format(" AND event_us <= {}", ToUnixMicros(*range.to));
  return impl_->Records(fmt::format(
      "SELECT {} FROM history WHERE {}{} ORDER BY event_us, transaction_id, campaign_id, version,"
      " ingested_us LIMIT 1 BY campaign_id, version LIMIT {}",
      kCols, where, kVisible, limit));
}

Result<std::vector<HistoryRecord>> ClickHouseHistoryStore::TransactionChanges(
    int64_t customer_id, Timestamp at, std::string_view transaction_id, bool with_snapshots) {
  std::lock_guard<std::mutex> lock(mu_);
  if (transaction_id.empty()) return std::vector<HistoryRecord>();
  return impl_->Records(fmt::format(
      "SELECT {} FROM history WHERE customer_id = {} AND event_us = {} AND transaction_id = {}{}"
      " ORDER BY campaign_id, version, ingested_us LIMIT 1 BY campaign_id, version",
      with_snapshots ? kCols : kColsNoBody, customer_id, ToUnixMicros(at),
      SqlString(transaction_id), kVisible));
}

Result<std::vector<HistoryRecord>> ClickHouseHistoryStore::CustomerCampaigns(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return impl_->Records(
      fmt::format("SELECT {} FROM history WHERE customer_id = {}{}"
                  " ORDER BY campaign_id, event_us DESC, version DESC"
                  " LIMIT 1 BY campaign_id",
                  kCols, customer_id, kVisible));
}

Result<std::vector<int64_t>> ClickHouseHistoryStore::ListCustomers() {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(auto rows, impl_->Select("SELECT DISTINCT customer_id FROM history WHERE"
                                            " customer_id NOT IN (SELECT customer_id FROM"
                                            " retention WHERE kind = 2) ORDER BY customer_id"));
  std::vector<int64_t> out;
  for (const Row& r : rows) out.push_back(ToInt(r[0]));
  return out;
}

Result<HistoryStats> ClickHouseHistoryStore::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  HistoryStats st;
  ASSIGN_OR_RETURN(auto rows,
                   m.Select(fmt::format("SELECT count(), uniqExact(campaign_id),"
                                        " uniqExact(customer_id), min(event_us), max(event_us)"
                                        " FROM (SELECT customer_id, campaign_id, version, event_us"
                                        " FROM history WHERE 1{} LIMIT 1 BY campaign_id, version)",
                                        kVisible)));
  if (!rows.empty() && ToInt(rows[0][0]) > 0) {
    st.records = ToInt(rows[0][0]);
    st.campaigns = ToInt(rows[0][1]);
    st.customers = ToInt(rows[0][2]);
    st.first_event = FromUnixMicros(ToInt(rows[0][3]));
    st.last_event = FromUnixMicros(ToInt(rows[0][4]));
  }
  ASSIGN_OR_RETURN(st.held_records, m.CountHeld(0));
  ASSIGN_OR_RETURN(auto c, m.Select("SELECT uniqExact(campaign_id, version, received) FROM"
                                    " conflicts WHERE customer_id NOT IN (SELECT customer_id"
                                    " FROM retention WHERE kind = 2)"));
  st.conflicts = c.empty() ? 0 : ToInt(c[0][0]);
  ASSIGN_OR_RETURN(auto b, m.Select(fmt::format("SELECT sum(bytes_on_disk) FROM system.parts"
                                                " WHERE database = {} AND active",
                                                SqlString(m.url.database))));
  st.bytes = b.empty() ? 0 : ToInt(b[0][0]);
  return st;
}

// ---- retention and erasure ----------------------------------------------------------------------

Result<int64_t> ClickHouseHistoryStore::PurgeCustomer(int64_t customer_id, Timestamp before,
                                                      std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  const int64_t before_us = ToUnixMicros(before);
  // Every visible record before the horizon except each campaign's last one at or before it.
  ASSIGN_OR_RETURN(
      auto keys,
      m.Select(fmt::format(
          "SELECT campaign_id, version FROM (SELECT campaign_id, version, event_us FROM history"
          " WHERE customer_id = {0} AND event_us < {1}{2} LIMIT 1 BY campaign_id, version)"
          " WHERE (campaign_id, version) NOT IN (SELECT campaign_id, argMax(version,"
          " (event_us, version)) FROM history WHERE customer_id = {0} AND event_us <= {1}{2}"
          " GROUP BY campaign_id)",
          customer_id, before_us, kVisible)));
  ASSIGN_OR_RETURN(auto old, m.Select(fmt::format("SELECT count(), max(before_us) FROM retention"
                                                  " WHERE kind = 1 AND customer_id = {}",
                                                  customer_id)));
  int64_t horizon = before_us;
  if (!old.empty() && ToInt(old[0][0]) > 0) horizon = std::max(horizon, ToInt(old[0][1]));
  const uint64_t seq = m.NextCommit();
  const int64_t now_us = ToUnixMicros(m.clock->Now());
  // One INSERT into the unpartitioned retention table: the removed keys, the horizon and the
  // audit entry become visible together.
  std::string tsv;
  for (const Row& k : keys) {
    tsv += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t0\t0\t\t\t0\n", kRetRemoved, customer_id, k[0],
                       k[1], seq, now_us);
  }
  tsv += fmt::format("{}\t{}\t0\t0\t{}\t{}\t{}\t1\t\t\t0\n", kRetHorizon, customer_id, seq, now_us,
                     horizon);
  tsv +=
      fmt::format("{}\t{}\t0\t0\t{}\t{}\t{}\t1\t", kRetAudit, customer_id, seq, now_us, before_us);
  AppendEscaped(tsv, actor);
  tsv += fmt::format("\tpurge\t{}\n", keys.size());
  RETURN_IF_ERROR(m.Insert(
      "retention (kind, customer_id, campaign_id, version, seq, at_us, before_us, has_before,"
      " actor, action, records)",
      tsv));
  return static_cast<int64_t>(keys.size());
}

Result<int64_t> ClickHouseHistoryStore::EraseCustomer(int64_t customer_id, std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  Impl& m = *impl_;
  ASSIGN_OR_RETURN(auto rows, m.Select(fmt::format("SELECT count() FROM (SELECT campaign_id,"
                                                   " version FROM history WHERE customer_id = {}"
                                                   "{} LIMIT 1 BY campaign_id, version)",
                                                   customer_id, kVisible)));
  int64_t removed = rows.empty() ? 0 : ToInt(rows[0][0]);
  ASSIGN_OR_RETURN(int64_t held, m.CountHeld(customer_id));
  removed += held;
  const uint64_t seq = m.NextCommit();
  const int64_t now_us = ToUnixMicros(m.clock->Now());
  std::string tsv =
      fmt::format("{}\t{}\t0\t0\t{}\t{}\t0\t0\t\t\t0\n", kRetErased, customer_id, seq, now_us);
  tsv += fmt::format("{}\t{}\t0\t0\t{}\t{}\t0\t0\t", kRetAudit, customer_id, seq, now_us);
  AppendEscaped(tsv, actor);
  tsv += fmt::format("\terase\t{}\n", removed);
  RETURN_IF_ERROR(m.Insert(
      "retention (kind, customer_id, campaign_id, version, seq, at_us, before_us, has_before,"
      " actor, action, records)",
      tsv));
  // The erasure is in force (every read filters by it); now remove the data physically. These
  // mutations run in the background; failing to start one only delays the physical removal.
  for (const char* table : {"history", "held", "conflicts", "asof_summary"}) {
    Status s =
        m.Run(fmt::format("ALTER TABLE {} DELETE WHERE customer_id = {}", table, customer_id))
            .status();
    if (!s.ok()) {
      spdlog::warn("history clickhouse: erase of customer {}: {} not removed physically yet: {}",
                   customer_id, table, s.ToString());
    }
  }
  return removed;
}

Result<std::optional<Timestamp>> ClickHouseHistoryStore::PurgedBefore(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(
      auto rows,
      impl_->Select(fmt::format("SELECT count(), max(before_us) FROM retention WHERE kind = 1 AND"
                                " customer_id = {0} AND customer_id NOT IN (SELECT customer_id FROM"
                                " retention WHERE kind = 2)",
                                customer_id)));
  if (rows.empty() || ToInt(rows[0][0]) == 0) return std::optional<Timestamp>();
  return std::optional<Timestamp>(FromUnixMicros(ToInt(rows[0][1])));
}

Result<bool> ClickHouseHistoryStore::Erased(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  ASSIGN_OR_RETURN(
      auto rows,
      impl_->Select(fmt::format("SELECT count() FROM retention WHERE kind = 2 AND customer_id = {}",
                                customer_id)));
  return !rows.empty() && ToInt(rows[0][0]) > 0;
}

Result<std::vector<AuditEntry>> ClickHouseHistoryStore::AuditLog(int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql =
      "SELECT at_us, actor, action, customer_id, has_before, before_us, records FROM retention"
      " WHERE kind = 0 ORDER BY seq DESC";
  if (limit >= 0) sql += fmt::format(" LIMIT {}", limit);
  ASSIGN_OR_RETURN(auto rows, impl_->Select(sql));
  std::vector<AuditEntry> out;
  for (const Row& r : rows) {
    AuditEntry e{.at = FromUnixMicros(ToInt(r[0])),
                 .actor = r[1],
                 .action = r[2],
                 .customer_id = ToInt(r[3]),
                 .before = std::nullopt,
                 .records = ToInt(r[6])};
    if (r[4] == "1") e.before = FromUnixMicros(ToInt(r[5]));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace ch
