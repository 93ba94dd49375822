#include "campaign/pg_schema.h"

#include <fmt/format.h>

#include <charconv>

#include "campaign/pg_client.h"

namespace ch {

namespace {

constexpr int64_t kMicrosPerSecond = 1'000'000;
constexpr int64_t kMicrosPerDay = 86'400 * kMicrosPerSecond;

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian, astronomical years).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  y = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y += m <= 2;
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// A cursor over timestamp text.
struct Scanner {
  std::string_view s;
  size_t i = 0;
  bool Eat(char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  // Read 1..max_digits decimal digits (exactly `exact` when exact > 0).
  bool Digits(int64_t& out, size_t exact, size_t max_digits = 18) {
    size_t start = i;
    out = 0;
    while (i < s.size() && i - start < max_digits && s[i] >= '0' && s[i] <= '9') {
      out = out * 10 + (s[i] - '0');
      ++i;
    }
    size_t n = i - start;
    return n > 0 && (exact == 0 || n == exact);
  }
};

Status BadColumn(std::string_view column, std::string_view value, std::string_view why) {
  return DataLossError(fmt::format("campaigns.{}: cannot decode '{}' ({})", column, value, why));
}

Result<int64_t> IntValue(std::string_view column, const std::optional<std::string_view>& v) {
  if (!v) return BadColumn(column, "NULL", "must not be NULL");
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size()) {
    return BadColumn(column, *v, "not an integer");
  }
  return out;
}

Result<std::string> TextValue(std::string_view column, const std::optional<std::string_view>& v) {
  if (!v) return BadColumn(column, "NULL", "must not be NULL");
  return std::string(*v);
}

Result<std::optional<Timestamp>> OptTimeValue(std::string_view column,
                                              const std::optional<std::string_view>& v) {
  if (!v) return std::optional<Timestamp>();
  auto t = ParsePgTimestamp(*v);
  if (!t.ok()) return BadColumn(column, *v, t.status().message());
  return std::optional<Timestamp>(*t);
}

Result<Timestamp> TimeValue(std::string_view column, const std::optional<std::string_view>& v) {
  ASSIGN_OR_RETURN(auto t, OptTimeValue(column, v));
  if (!t) return BadColumn(column, "NULL", "must not be NULL");
  return *t;
}

// Schema DDL, run under the advisory lock when anything is missing.
constexpr char kCreateTables[] = R"sql(
CREATE TABLE IF NOT EXISTS campaigns (
  id               bigint PRIMARY KEY,
  customer_id      bigint NOT NULL,
  name             text NOT NULL,
  status           text NOT NULL,
  priority         bigint NOT NULL,
  trigger_event    text NOT NULL,
  audience_segment text NOT NULL,
  start_at         timestamptz,
  end_at           timestamptz,
  frequency_cap    bigint NOT NULL,
  content          text NOT NULL,
  version          bigint NOT NULL,
  created_at       timestamptz NOT NULL,
  updated_at       timestamptz NOT NULL,
  updated_by       text NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_by_customer_priority ON campaigns (customer_id, priority);
CREATE INDEX IF NOT EXISTS campaigns_active_by_end ON campaigns (end_at)
  WHERE status = 'active' AND end_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS ch_deleted_campaigns (id bigint PRIMARY KEY);
CREATE TABLE IF NOT EXISTS ch_txn (
  id        integer PRIMARY KEY CHECK (id = 1),
  txn_id    bigint NOT NULL,
  commit_us bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS ch_customer_txn (
  customer_id bigint PRIMARY KEY,
  txn_id      bigint NOT NULL,
  commit_us   bigint NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS ch_campaign_ids;
CREATE TABLE IF NOT EXISTS ch_replay_positions (
  workload    text PRIMARY KEY,
  seq         bigint NOT NULL,
  digest      text NOT NULL,
  source      text NOT NULL,
  recorded_at timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS ch_capture_progress (
  slot           text PRIMARY KEY,
  confirmed_lsn  pg_lsn NOT NULL,
  updated_at     timestamptz NOT NULL,
  confirmed_txns bigint NOT NULL DEFAULT 0,
  partial_lsn    pg_lsn,
  partial_changes bigint NOT NULL DEFAULT 0,
  confirmed_event_us bigint
);
)sql";

// Schema version 1 -> 2 (see EnsurePgSchema), after kCreateTables: keep the newest stamp as the
// floor of the new ones, retire the database-wide stamp row (a version-1 writer still running then
// fails instead of writing without the customer lock), and start the id sequence after every id.
constexpr char kUpgrade1To2[] = R"sql(
INSERT INTO ch_meta (key, value)
  SELECT 'v1_commit_us', COALESCE(max(commit_us), 0)::text FROM ch_txn ON CONFLICT DO NOTHING;
DELETE FROM ch_txn;
SELECT setval('ch_campaign_ids', GREATEST(1, (SELECT COALESCE(max(id), 0) FROM campaigns),
                                          (SELECT COALESCE(max(id), 0) FROM ch_deleted_campaigns)));
UPDATE ch_meta SET value = '2' WHERE key = 'schema_version';
)sql";

// Any constant: the advisory lock that serializes schema creation within a database.
constexpr char kSchemaLockKey[] = "7346912270113";

}  // namespace

// ---- timestamps --------------------------------------------------------------------------------

std::string FormatPgTimestamp(Timestamp t) {
  const int64_t us = ToUnixMicros(t);
  const int64_t days = FloorDiv(us, kMicrosPerDay);
  int64_t rem = us - days * kMicrosPerDay;
  int64_t y = 0;
  unsigned m = 0;
  unsigned d = 0;
  CivilFromDays(days, y, m, d);
  const int64_t hh = rem / (3600 * kMicrosPerSecond);
  rem %= 3600 * kMicrosPerSecond;
  const int64_t mm = rem / (60 * kMicrosPerSecond);
  rem %= 60 * kMicrosPerSecond;
  const int64_t ss = rem / kMicrosPerSecond;
  const int64_t frac = rem % kMicrosPerSecond;
  const bool bc = y <= 0;
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}+00{}", bc ? 1 - y : y, m, d, hh, mm,
                     ss, frac, bc ? " BC" : "");
}

Result<Timestamp> ParsePgTimestamp(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(fmt::format("'{}' is not a timestamp: {}", text, why));
  };
  std::string_view body = text;
  bool bc = false;
  if (body.size() > 3 && body.substr(body.size() - 3) == " BC") {
    bc = true;
    body.remove_suffix(3);
  }
  Scanner sc{body};
  int64_t year = 0, month = 0, day = 0, hh = 0, mm = 0, ss = 0;
  if (!sc.Digits(year, 0, 7) || !sc.Eat('-') || !sc.Digits(month, 2) || !sc.Eat('-') ||
      !sc.Digits(day, 2)) {
    return bad("expected YYYY-MM-DD");
  }
  if (!(sc.Eat(' ') || sc.Eat('T')) || !sc.Digits(hh, 2) || !sc.Eat(':') || !sc.Digits(mm, 2) ||
      !sc.Eat(':') || !sc.Digits(ss, 2)) {
    return bad("expected hh:mm:ss after the date");
  }
  int64_t frac = 0;
  if (sc.Eat('.')) {
    size_t start = sc.i;
    int64_t digits = 0;
    if (!sc.Digits(digits, 0, 9)) return bad("expected digits after '.'");
    size_t n = sc.i - start;
    frac = digits;
    for (size_t k = n; k < 6; ++k) frac *= 10;
    for (size_t k = 6; k < n; ++k) frac /= 10;
  }
  int64_t offset_s = 0;
  if (sc.Eat('Z')) {
    offset_s = 0;
  } else if (sc.i < body.size() && (body[sc.i] == '+' || body[sc.i] == '-')) {
    const int sign = body[sc.i] == '-' ? -1 : 1;
    ++sc.i;
    int64_t oh = 0, om = 0, os = 0;
    if (!sc.Digits(oh, 2)) return bad("bad UTC offset");
    if (sc.Eat(':') && !sc.Digits(om, 2)) return bad("bad UTC offset");
    if (sc.Eat(':') && !sc.Digits(os, 2)) return bad("bad UTC offset");
    offset_s = sign * (oh * 3600 + om * 60 + os);
  } else {
    return bad("expected a UTC offset");
  }
  if (sc.i != body.size()) return bad("unexpected text at the end");
  if (month < 1 || month > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60) {
    return bad("field out of range");
  }
  if (bc) {
    if (year < 1) return bad("year 0 BC does not exist");
    year = 1 - year;
  }
  const int64_t days =
      DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const int64_t secs = days * 86'400 + hh * 3600 + mm * 60 + ss - offset_s;
  return FromUnixMicros(secs * kMicrosPerSecond + frac);
}

// ---- rows --------------------------------------------------------------------------------------

Result<Campaign> CampaignFromPgValues(std::span<const std::optional<std::string_view>> v) {
  if (v.size() != kPgCampaignColumns.size()) {
    return DataLossError(
        fmt::format("campaigns: expected {} columns, got {}", kPgCampaignColumns.size(), v.size()));
  }
  const auto& n = kPgCampaignColumns;
  Campaign c;
  ASSIGN_OR_RETURN(c.id, IntValue(n[0], v[0]));
  ASSIGN_OR_RETURN(c.customer_id, IntValue(n[1], v[1]));
  ASSIGN_OR_RETURN(c.name, TextValue(n[2], v[2]));
  ASSIGN_OR_RETURN(std::string status, TextValue(n[3], v[3]));
  auto parsed = ParseCampaignStatus(status);
  if (!parsed.ok()) return BadColumn(n[3], status, "unknown status");
  c.status = *parsed;
  ASSIGN_OR_RETURN(c.priority, IntValue(n[4], v[4]));
  ASSIGN_OR_RETURN(c.trigger_event, TextValue(n[5], v[5]));
  ASSIGN_OR_RETURN(c.audience_segment, TextValue(n[6], v[6]));
  ASSIGN_OR_RETURN(c.start_at, OptTimeValue(n[7], v[7]));
  ASSIGN_OR_RETURN(c.end_at, OptTimeValue(n[8], v[8]));
  ASSIGN_OR_RETURN(c.frequency_cap, IntValue(n[9], v[9]));
  ASSIGN_OR_RETURN(c.content, TextValue(n[10], v[10]));
  ASSIGN_OR_RETURN(c.version, IntValue(n[11], v[11]));
  ASSIGN_OR_RETURN(c.created_at, TimeValue(n[12], v[12]));
  ASSIGN_OR_RETURN(c.updated_at, TimeValue(n[13], v[13]));
  ASSIGN_OR_RETURN(c.updated_by, TextValue(n[14], v[14]));
  return c;
}

Status CheckPgText(std::string_view field, std::string_view value) {
  if (value.find('\0') == std::string_view::npos) return Status::OK();
  return InvalidArgumentError(fmt::format(
      "{}: contains a NUL character (U+0000), which PostgreSQL text cannot store", field));
}

Status CheckPgText(const Campaign& c) {
  RETURN_IF_ERROR(CheckPgText("name", c.name));
  RETURN_IF_ERROR(CheckPgText("trigger_event", c.trigger_event));
  RETURN_IF_ERROR(CheckPgText("audience_segment", c.audience_segment));
  RETURN_IF_ERROR(CheckPgText("content", c.content));
  return CheckPgText("updated_by", c.updated_by);
}

std::vector<std::optional<std::string>> CampaignToPgValues(const Campaign& c) {
  auto time = [](const std::optional<Timestamp>& t) -> std::optional<std::string> {
    if (!t) return std::nullopt;
    return FormatPgTimestamp(*t);
  };
  return {std::to_string(c.id),
          std::to_string(c.customer_id),
          c.name,
          std::string(CampaignStatusName(c.status)),
          std::to_string(c.priority),
          c.trigger_event,
          c.audience_segment,
          time(c.start_at),
          time(c.end_at),
          std::to_string(c.frequency_cap),
          c.content,
          std::to_string(c.version),
          FormatPgTimestamp(c.created_at),
          FormatPgTimestamp(c.updated_at),
          c.updated_by};
}

// ---- schema ------------------------------------------------------------------------------------

namespace {

// Return the recorded schema version (0 when none is recorded yet); FailedPrecondition when it
// is newer than this binary's.
Result<int64_t> CheckVersion(PgConn& conn) {
  ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT value FROM ch_meta WHERE key = 'schema_version'"));
  if (r.rows() == 0) return int64_t{0};
  int64_t version = 0;
  std::string_view v = r.Get(0, 0);
  std::from_chars(v.data(), v.data() + v.size(), version);
  if (version > kPgSchemaVersion) {
    return FailedPreconditionError(fmt::format(
        "PostgreSQL {}: the campaign schema has version {}, newer than the supported {}: upgrade "
        "the binary",
        conn.where(), version, kPgSchemaVersion));
  }
  return version;
}

// Publish ch_customer_txn wherever campaigns is published: log capture reads the stamps from it.
Status PublishCustomerStamps(PgConn& conn) {
  ASSIGN_OR_RETURN(
      PgResult pubs,
      conn.Exec("SELECT p.pubname FROM pg_publication_tables p WHERE p.tablename = 'campaigns' "
                "AND p.schemaname = current_schema() AND NOT EXISTS (SELECT 1 FROM "
                "pg_publication_tables q WHERE q.pubname = p.pubname AND q.schemaname = "
                "p.schemaname AND q.tablename = 'ch_customer_txn')"));
  for (int i = 0; i < pubs.rows(); ++i) {
    RETURN_IF_ERROR(conn.Exec(fmt::format("ALTER PUBLICATION {} ADD TABLE {}",
                                          PgQuoteIdent(pubs.Get(i, 0)), kPgCustomerTxnTable)));
  }
  return Status::OK();
}

Status EnsureInTransaction(PgConn& conn, bool replica_identity_full) {
  RETURN_IF_ERROR(conn.Exec(fmt::format("SELECT pg_advisory_xact_lock({})", kSchemaLockKey)));
  RETURN_IF_ERROR(
      conn.Exec("CREATE TABLE IF NOT EXISTS ch_meta (key text PRIMARY KEY, value text NOT NULL)"));
  ASSIGN_OR_RETURN(int64_t version, CheckVersion(conn));
  RETURN_IF_ERROR(conn.Exec(kCreateTables));
  RETURN_IF_ERROR(conn.Exec(kPgUpgradeProgressTable));
  if (version == 1) {
    RETURN_IF_ERROR(conn.Exec(kUpgrade1To2));
    RETURN_IF_ERROR(PublishCustomerStamps(conn));
  }
  RETURN_IF_ERROR(
      conn.Exec(fmt::format("INSERT INTO ch_meta (key, value) VALUES "
                            "('schema_version', '{}') ON CONFLICT DO NOTHING",
                            kPgSchemaVersion)));
  if (replica_identity_full) {
    ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT relreplident FROM pg_class WHERE oid = "
                                           "'campaigns'::regclass"));
    if (r.rows() != 1 || r.Get(0, 0) != "f") {
      RETURN_IF_ERROR(conn.Exec("ALTER TABLE campaigns REPLICA IDENTITY FULL"));
    }
  }
  return Status::OK();
}

}  // namespace

Status EnsurePgSchema(PgConn& conn, bool replica_identity_full) {
  // Fast path: everything is there (no DDL, so no lock that would queue behind writers).
  ASSIGN_OR_RETURN(
      PgResult present,
      conn.Exec(
          "SELECT to_regclass('ch_meta') IS NOT NULL AND to_regclass('campaigns') IS NOT "
          "NULL AND to_regclass('ch_txn') IS NOT NULL AND to_regclass('ch_deleted_campaigns') "
          "IS NOT NULL AND to_regclass('ch_capture_progress') IS NOT NULL AND "
          "to_regclass('campaigns_active_by_end') IS NOT NULL AND "
          "to_regclass('ch_replay_positions') IS NOT NULL AND "
          "to_regclass('ch_customer_txn') IS NOT NULL AND to_regclass('ch_campaign_ids') IS NOT "
          "NULL"));
  if (present.rows() == 1 && present.Get(0, 0) == "t") {
    RETURN_IF_ERROR(CheckVersion(conn).status());
    ASSIGN_OR_RETURN(
        PgResult v,
        conn.Exec(fmt::format("SELECT value = '{}' FROM ch_meta WHERE key = 'schema_version'",
                              kPgSchemaVersion)));
    bool current = v.rows() == 1 && v.Get(0, 0) == "t";
    if (current && !replica_identity_full) return Status::OK();
    if (current) {
      ASSIGN_OR_RETURN(PgResult r, conn.Exec("SELECT relreplident FROM pg_class WHERE oid = "
                                             "'campaigns'::regclass"));
      if (r.rows() == 1 && r.Get(0, 0) == "f") return Status::OK();
    }
  }
  RETURN_IF_ERROR(conn.Exec("BEGIN"));
  Status s = EnsureInTransaction(conn, replica_identity_full);
  if (s.ok()) {
    auto commit = conn.Exec("COMMIT");
    s = commit.status();
  }
  if (!s.ok() && conn.InTransaction()) conn.Exec("ROLLBACK").status().IgnoreError();
  return s.WithContext("cannot create the campaign schema");
}

}  // namespace ch
