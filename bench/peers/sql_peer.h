// The SQL peers: what a user would pick instead of campaign-history, each on its own table (or
// schema / database) of one server:
//   kPgPlain       PostgreSQL, a plain `campaigns` table (the baseline without versioning);
//   kPgPeriods     PostgreSQL + the `periods` extension: system versioning, a `campaigns_history`
//                  table written by its triggers, as-of through `campaigns__as_of(T)`;
//   kPgAudit       PostgreSQL + an audit trigger writing every row change to `campaigns_audit`,
//                  as-of through `DISTINCT ON (id)`;
//   kMariaPlain    MariaDB, a plain InnoDB table (the baseline);
//   kMariaVersioned MariaDB `WITH SYSTEM VERSIONING`, as-of through `FOR SYSTEM_TIME AS OF`.
// Every peer applies a workload line as one transaction of plain SQL statements sent in one
// round trip, and checks the rows each statement touched against the line.
//
// Thread-safety: a peer and its connection are used by one thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bench/peers/peer.h"

namespace ch::peers {

using SqlRow = std::vector<std::optional<std::string>>;

// One connection to one server (libpq or libmariadb).
class SqlConn {
 public:
  SqlConn() = default;
  SqlConn(const SqlConn&) = delete;
  SqlConn& operator=(const SqlConn&) = delete;
  virtual ~SqlConn() = default;
  // Run `sql` (several statements separated by ';') in one round trip; append each statement's
  // affected row count to `affected` when given. Fails naming the server's error.
  virtual Status Exec(const std::string& sql, std::vector<int64_t>* affected = nullptr) = 0;
  // Run one query and return its rows as text (NULL = nullopt).
  virtual Result<std::vector<SqlRow>> Query(const std::string& sql) = 0;
};

// Connect to PostgreSQL at `url` (libpq conninfo or URL) and set the session's search_path to
// `schema`.
Result<std::unique_ptr<SqlConn>> ConnectPostgres(const std::string& url, const std::string& schema);
// Return true when this build has the MariaDB client (libmariadb-dev).
bool HaveMariaDbClient();
// Connect to MariaDB through the unix socket `socket` as root, database `database`.
// Fails with Unimplemented when the build has no MariaDB client.
Result<std::unique_ptr<SqlConn>> ConnectMariaDb(const std::string& socket,
                                                const std::string& database);

enum class SqlFlavor { kPgPlain, kPgPeriods, kPgAudit, kMariaPlain, kMariaVersioned };

// Create the flavor's tables (and triggers) on `conn`, in an empty schema or database, and
// return the peer. REQUIRES: for kPgPeriods, the `periods` extension is created in the database.
Result<std::unique_ptr<Peer>> MakeSqlPeer(SqlFlavor flavor, std::unique_ptr<SqlConn> conn);

}  // namespace ch::peers
