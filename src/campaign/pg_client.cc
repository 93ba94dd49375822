#include "campaign/pg_client.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <charconv>
#include <utility>

namespace ch {

namespace {

std::string Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == '\n' || s.front() == ' ')) s.remove_prefix(1);
  return std::string(s);
}

// The password of a URL's user-info part ("postgresql://user:pw@host"), if any, so that it can
// be scrubbed from libpq's parse errors.
std::string UrlPassword(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    size_t p = url.find("password=");
    if (p == std::string_view::npos) return "";
    std::string_view rest = url.substr(p + 9);
    size_t end = rest.find(' ');
    return std::string(rest.substr(0, end));
  }
  std::string_view rest = url.substr(scheme + 3);
  size_t at = rest.find('@');
  if (at == std::string_view::npos) return "";
  std::string_view userinfo = rest.substr(0, at);
  size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos) return "";
  return std::string(userinfo.substr(colon + 1));
}

std::string Scrub(std::string message, const std::string& secret) {
  if (secret.empty()) return message;
  size_t p = 0;
  while ((p = message.find(secret, p)) != std::string::npos) {
    message.replace(p, secret.size(), "***");
    p += 3;
  }
  return message;
}

std::string QuoteConninfoValue(std::string_view v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace

// ---- URLs, quoting, LSNs -----------------------------------------------------------------------

std::string PgConnInfo::Describe() const {
  auto get = [&](const char* k) -> std::string {
    auto it = params.find(k);
    return it == params.end() ? std::string() : it->second;
  };
  std::string host = get("host");
  if (host.empty()) host = get("hostaddr");
  if (host.empty()) host = "localhost";
  std::string port = get("port");
  if (port.empty()) port = "5432";
  std::string db = get("dbname");
  if (db.empty()) db = get("user");
  return fmt::format("{}:{}/{}", host, port, db);
}

std::string PgConnInfo::ToConninfo() const {
  std::string out;
  for (const auto& [k, v] : params) {
    if (!out.empty()) out.push_back(' ');
    out += k + "=" + QuoteConninfoValue(v);
  }
  return out;
}

Result<PgConnInfo> ParsePgUrl(std::string_view url) {
  if (url.empty()) return InvalidArgumentError("url: must not be empty");
  std::string text(url);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(text.c_str(), &err);
  if (opts == nullptr) {
    std::string why = err != nullptr ? Trim(err) : std::string("out of memory");
    if (err != nullptr) PQfreemem(err);
    return InvalidArgumentError(
        fmt::format("url: not a valid PostgreSQL URL (postgresql://user@host:port/db) or "
                    "conninfo: {}",
                    Scrub(why, UrlPassword(url))));
  }
  PgConnInfo info;
  for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && o->val[0] != '\0') info.params[o->keyword] = o->val;
  }
  PQconninfoFree(opts);
  // libpq checks the port only when connecting; a typo should fail as the bad input it is.
  if (auto it = info.params.find("port"); it != info.params.end()) {
    std::string_view ports = it->second;
    while (true) {
      size_t comma = ports.find(',');
      std::string_view p = ports.substr(0, comma);
      int n = 0;
      auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
      if (!p.empty() && (ec != std::errc() || end != p.data() + p.size() || n < 1 || n > 65535)) {
        return InvalidArgumentError(fmt::format("url: port '{}' is not a number in 1..65535",
                                                Scrub(std::string(p), UrlPassword(url))));
      }
      if (comma == std::string_view::npos) break;
      ports.remove_prefix(comma + 1);
    }
  }
  return info;
}

Result<std::string> PgUrlWithDatabase(std::string_view url, std::string_view dbname) {
  ASSIGN_OR_RETURN(PgConnInfo info, ParsePgUrl(url));
  info.params["dbname"] = std::string(dbname);
  return info.ToConninfo();
}

std::string PgQuoteIdent(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string PgQuoteLiteral(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

Result<uint64_t> ParseLsn(std::string_view text) {
  size_t slash = text.find('/');
  auto bad = [&] {
    return InvalidArgumentError(
        fmt::format("position: '{}' is not a PostgreSQL LSN (like 0/16B3748)", text));
  };
  if (slash == std::string_view::npos || slash == 0 || slash + 1 >= text.size()) return bad();
  uint32_t hi = 0;
  uint32_t lo = 0;
  const char* first = text.data();
  auto [p1, e1] = std::from_chars(first, first + slash, hi, 16);
  if (e1 != std::errc() || p1 != first + slash) return bad();
  auto [p2, e2] = std::from_chars(first + slash + 1, first + text.size(), lo, 16);
  if (e2 != std::errc() || p2 != first + text.size()) return bad();
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

std::string FormatLsn(uint64_t lsn) {
  return fmt::format("{:X}/{:X}", static_cast<uint32_t>(lsn >> 32), static_cast<uint32_t>(lsn));
}

// ---- errors ------------------------------------------------------------------------------------

Status PgErrorToStatus(std::string_view sqlstate, std::string_view message,
                       std::string_view where) {
  std::string msg = fmt::format("PostgreSQL {}: {}", where, Trim(message));
  if (sqlstate.size() != 5) return UnavailableError(std::move(msg));  // no server answer
  std::string_view cls = sqlstate.substr(0, 2);
  if (cls == "08" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
      cls == "53" || sqlstate == "55P03" || sqlstate == "55006") {
    return UnavailableError(std::move(msg));
  }
  if (sqlstate == "57014") return DeadlineExceededError(std::move(msg));
  if (sqlstate == "23505") return AlreadyExistsError(std::move(msg));
  if (cls == "23") return FailedPreconditionError(std::move(msg));
  if (sqlstate == "40001" || sqlstate == "40P01") return AbortedError(std::move(msg));
  if (cls == "22") return InvalidArgumentError(std::move(msg));
  if (sqlstate == "42P01" || sqlstate == "42704" || sqlstate == "42703") {
    return FailedPreconditionError(std::move(msg));
  }
  return InternalError(fmt::format("{} (SQLSTATE {})", msg, sqlstate));
}

// ---- results -----------------------------------------------------------------------------------

PgResult::PgResult() = default;
PgResult::PgResult(pg_result* res) : res_(res) {}
PgResult::PgResult(PgResult&& o) noexcept : res_(std::exchange(o.res_, nullptr)) {}
PgResult& PgResult::operator=(PgResult&& o) noexcept {
  if (this != &o) {
    if (res_ != nullptr) PQclear(res_);
    res_ = std::exchange(o.res_, nullptr);
  }
  return *this;
}
PgResult::~PgResult() {
  if (res_ != nullptr) PQclear(res_);
}

int PgResult::rows() const { return res_ == nullptr ? 0 : PQntuples(res_); }
int PgResult::columns() const { return res_ == nullptr ? 0 : PQnfields(res_); }
bool PgResult::IsNull(int row, int col) const { return PQgetisnull(res_, row, col) != 0; }
std::string_view PgResult::Get(int row, int col) const {
  return std::string_view(PQgetvalue(res_, row, col),
                          static_cast<size_t>(PQgetlength(res_, row, col)));
}
std::optional<std::string_view> PgResult::GetOpt(int row, int col) const {
  if (IsNull(row, col)) return std::nullopt;
  return Get(row, col);
}
Result<int64_t> PgResult::GetInt(int row, int col) const {
  std::string_view v = Get(row, col);
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (IsNull(row, col) || ec != std::errc() || p != v.data() + v.size()) {
    return DataLossError(fmt::format("column {}: '{}' is not an integer", ColumnName(col), v));
  }
  return out;
}
std::string_view PgResult::CommandTag() const {
  const char* tag = res_ == nullptr ? nullptr : PQcmdStatus(res_);
  return tag == nullptr ? std::string_view() : std::string_view(tag);
}
std::string_view PgResult::ColumnName(int col) const { return PQfname(res_, col); }
int64_t PgResult::AffectedRows() const {
  const char* n = PQcmdTuples(res_);
  if (n == nullptr || *n == '\0') return 0;
  return std::strtoll(n, nullptr, 10);
}

// ---- connections -------------------------------------------------------------------------------

Result<std::unique_ptr<PgConn>> PgConn::Connect(const PgConnectOptions& options) {
  ASSIGN_OR_RETURN(PgConnInfo info, ParsePgUrl(options.url));
  const std::string where = info.Describe();
  std::map<std::string, std::string> params = info.params;
  if (!params.contains("connect_timeout")) {
    params["connect_timeout"] = std::to_string(std::max(options.connect_timeout_s, 1));
  }
  if (!params.contains("application_name") && !options.application_name.empty()) {
    params["application_name"] = options.application_name;
  }
  params["client_encoding"] = "UTF8";
  std::string server_options = params.count("options") ? params["options"] + " " : "";
  server_options += "-c TimeZone=UTC -c DateStyle=ISO";
  for (const auto& [k, v] : options.settings) {
    server_options += fmt::format(" -c {}={}", k, v);
  }
  params["options"] = server_options;
  if (options.replication) params["replication"] = "database";

  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/0);
  if (conn == nullptr) return UnavailableError(fmt::format("PostgreSQL {}: out of memory", where));
  std::unique_ptr<PgConn> out(new PgConn(conn, where));
  // Notices ("relation already exists, skipping") are not errors; keep them off stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  if (PQstatus(conn) != CONNECTION_OK) {
    return UnavailableError(
        fmt::format("cannot connect to PostgreSQL at {}: {}", where, Trim(PQerrorMessage(conn))));
  }
  const char* encoding = PQparameterStatus(conn, "server_encoding");
  if (encoding != nullptr && std::string_view(encoding) != "UTF8") {
    return FailedPreconditionError(fmt::format(
        "PostgreSQL {}: the database's encoding is {}, campaign-history needs UTF8 (strings are "
        "stored byte for byte): create the database with ENCODING 'UTF8'",
        where, encoding));
  }
  return out;
}

PgConn::~PgConn() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool PgConn::ok() const { return PQstatus(conn_) == CONNECTION_OK; }
int PgConn::backend_pid() const { return PQbackendPID(conn_); }
bool PgConn::InTransaction() const {
  PGTransactionStatusType s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

Status PgConn::ErrorStatus(const pg_result* res, std::string_view what) const {
  std::string sqlstate;
  std::string message;
  if (res != nullptr) {
    if (const char* s = PQresultErrorField(res, PG_DIAG_SQLSTATE)) sqlstate = s;
    if (const char* m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)) message = m;
    if (const char* d = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL)) {
      message += fmt::format(" ({})", d);
    }
  }
  if (message.empty()) message = Trim(PQerrorMessage(conn_));
  if (message.empty()) message = "unknown error";
  // A broken connection is unavailability whatever the last result said.
  if (PQstatus(conn_) != CONNECTION_OK) sqlstate.clear();
  Status s = PgErrorToStatus(sqlstate, message, where_);
  return what.empty() ? s : s.WithContext(what);
}

Result<PgResult> PgConn::Exec(std::string_view sql) {
  std::string text(sql);
  PGresult* raw = PQexec(conn_, text.c_str());
  PgResult owned(raw);
  ExecStatusType st = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_BOTH) return owned;
  return ErrorStatus(raw, "");
}

Result<PgResult> PgConn::ExecParams(std::string_view sql,
                                    const std::vector<std::optional<std::string>>& params) {
  std::string text(sql);
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PGresult* raw = PQexecParams(conn_, text.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
  PgResult owned(raw);
  ExecStatusType st = raw == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(raw);
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return owned;
  return ErrorStatus(raw, "");
}

}  // namespace ch
