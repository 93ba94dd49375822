// PgClient: a thin RAII layer over libpq shared by every PostgreSQL adapter of campaign-history
// (PgCampaignStore here, PgLogicalSource in capture/), and the one place where libpq errors
// become a Status (PgErrorToStatus in pg_client.cc).
//
// libpq-fe.h stays out of this header: PGconn and PGresult are forward-declared (they are the
// typedefs of `struct pg_conn` and `struct pg_result`). A .cc that needs the raw libpq API (the
// replication protocol) includes libpq-fe.h itself and uses PgConn::raw().
//
// Error translation (PgErrorToStatus), the only one of the PostgreSQL adapters:
//   cannot connect, connection lost, server shutting down (08***, 57P0*)  -> Unavailable naming
//                                                                            host:port/db
//   too many connections, out of resources (53***)                       -> Unavailable
//   lock_timeout expired (55P03), object in use (55006)                   -> Unavailable
//   statement_timeout expired (57014)                                     -> DeadlineExceeded
//   unique violation (23505)                                              -> AlreadyExists
//   other integrity violations (23***)                                    -> FailedPrecondition
//   serialization failure (40001), deadlock (40P01)                       -> Aborted
//   data exceptions (22***: bad encoding, value out of range, ...)        -> InvalidArgument
//   undefined table/object/column (42P01, 42704, 42703)                   -> FailedPrecondition
//   bad URL / conninfo                                                    -> InvalidArgument
//   anything else                                                         -> Internal
// Messages name the server as host:port/dbname and never contain the password.
//
// Thread-safety: a PgConn is used by one thread at a time (callers serialize). Free functions
// are pure.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct pg_conn;
struct pg_result;

namespace ch {

// What a connection URL (postgresql://user:pw@host:port/db?opts) or a key=value conninfo string
// says, as libpq parses it. The password is kept only to reconnect; Describe() never shows it.
struct PgConnInfo {
  // Every keyword the URL set (libpq names: host, port, dbname, user, password, options, ...).
  std::map<std::string, std::string> params;

  // Return "host:port/dbname" (defaults filled in as libpq would: host "localhost" or the socket
  // directory, port 5432, dbname = user): how errors name the server. No password.
  std::string Describe() const;
  // Return a key=value conninfo string with every parameter (values quoted as libpq requires).
  // Contains the password when the URL had one: do not log it.
  std::string ToConninfo() const;
};

// Parse `url` (postgresql:// or postgres:// URL, or key=value conninfo). Fails with
// InvalidArgument naming what is wrong (never echoing a password).
Result<PgConnInfo> ParsePgUrl(std::string_view url);

// Return `url` with its database replaced by `dbname` (as a key=value conninfo string).
Result<std::string> PgUrlWithDatabase(std::string_view url, std::string_view dbname);

// Quote `name` as an SQL identifier ("..." with inner quotes doubled).
std::string PgQuoteIdent(std::string_view name);
// Quote `text` as an SQL string literal ('...' with inner quotes doubled; standard strings).
std::string PgQuoteLiteral(std::string_view text);

// LSNs ("16/B374D848" on the wire and in SQL) as numbers.
// Parse "X/Y" (hex). Fails with InvalidArgument naming the text.
Result<uint64_t> ParseLsn(std::string_view text);
// Return "X/Y" with upper-case hex digits, as PostgreSQL prints it.
std::string FormatLsn(uint64_t lsn);

// A query result: rows of nullable text values.
class PgResult {
 public:
  PgResult();
  explicit PgResult(pg_result* res);  // takes ownership
  PgResult(PgResult&&) noexcept;
  PgResult& operator=(PgResult&&) noexcept;
  ~PgResult();

  int rows() const;
  int columns() const;
  // REQUIRES: row < rows(), col < columns().
  bool IsNull(int row, int col) const;
  // The text of a value ("" for NULL). Valid as long as this result lives.
  std::string_view Get(int row, int col) const;
  std::optional<std::string_view> GetOpt(int row, int col) const;
  // Parse a value as a decimal integer. Fails with DataLoss naming the column when it is not.
  Result<int64_t> GetInt(int row, int col) const;
  // Return the name of column `col`.
  std::string_view ColumnName(int col) const;
  // Return the number of rows an INSERT/UPDATE/DELETE affected.
  int64_t AffectedRows() const;
  // Return the command tag, e.g. "COMMIT" (or "ROLLBACK" when COMMIT found a failed transaction).
  std::string_view CommandTag() const;

 private:
  pg_result* res_ = nullptr;
};

struct PgConnectOptions {
  // REQUIRES: a URL or conninfo that ParsePgUrl accepts.
  std::string url;
  // Seconds libpq waits for the server when connecting (libpq treats 1 as 2). Default: 5.
  int connect_timeout_s = 5;
  // Reported in pg_stat_activity. Default: "campaign-history".
  std::string application_name = "campaign-history";
  // Extra server settings (SET name = value at connect, through the `options` parameter), e.g.
  // {"lock_timeout", "10000"}. TimeZone=UTC and DateStyle=ISO are always set: the adapters parse
  // timestamptz text in that form.
  std::map<std::string, std::string> settings;
  // Open a logical replication connection (replication=database). Default: false.
  bool replication = false;
};

// One libpq connection. Client encoding UTF8, TimeZone UTC, DateStyle ISO.
class PgConn {
 public:
  // Connect. Fails with InvalidArgument on a bad URL, Unavailable naming host:port/db when the
  // server cannot be reached or refuses the connection, FailedPrecondition when the database's
  // encoding is not UTF8.
  static Result<std::unique_ptr<PgConn>> Connect(const PgConnectOptions& options);
  ~PgConn();
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;

  // Run `sql` (one or more statements, no parameters) and return the last statement's result.
  Result<PgResult> Exec(std::string_view sql);
  // Run one statement with text parameters ($1, $2, ...; nullopt = NULL). Not available on a
  // replication connection.
  Result<PgResult> ExecParams(std::string_view sql,
                              const std::vector<std::optional<std::string>>& params);

  // Return true while the connection is usable (not broken).
  bool ok() const;
  // Return "host:port/dbname" for messages.
  const std::string& where() const { return where_; }
  // Return the backend's process id.
  int backend_pid() const;
  // Return true when the connection is inside a transaction block (idle or failed in it).
  bool InTransaction() const;

  // The underlying libpq connection, for adapters that use the raw API (the replication
  // protocol). Owned by this object.
  pg_conn* raw() { return conn_; }

  // Translate the error of `res` (nullptr: the connection's last error) into a Status that names
  // this server. `what` (e.g. "BEGIN") becomes the message's context when not empty.
  Status ErrorStatus(const pg_result* res, std::string_view what) const;

 private:
  PgConn(pg_conn* conn, std::string where) : conn_(conn), where_(std::move(where)) {}
  pg_conn* conn_;  // owned
  std::string where_;
};

// Translate a server error: `sqlstate` (5 characters, or empty when there is none: the
// connection failed) and `message`, on the server named `where`. See the file comment.
Status PgErrorToStatus(std::string_view sqlstate, std::string_view message, std::string_view where);

}  // namespace ch
