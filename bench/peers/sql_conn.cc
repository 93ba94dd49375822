// libpq and libmariadb connections for the SQL peers (sql_peer.h). The MariaDB client is
// optional: without libmariadb-dev (CH_PEERS_WITH_MARIADB unset) ConnectMariaDb says so.
#include <fmt/format.h>
#include <libpq-fe.h>

#include <memory>

#include "bench/peers/sql_peer.h"

#ifdef CH_PEERS_WITH_MARIADB
#include <mysql.h>
#endif

namespace ch::peers {
namespace {

class PgConn final : public SqlConn {
 public:
  explicit PgConn(PGconn* conn) : conn_(conn) {}
  ~PgConn() override { PQfinish(conn_); }

  Status Exec(const std::string& sql, std::vector<int64_t>* affected) override {
    if (PQsendQuery(conn_, sql.c_str()) != 1) return Error("send");
    Status status = Status::OK();
    while (PGresult* r = PQgetResult(conn_)) {
      ExecStatusType st = PQresultStatus(r);
      if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && status.ok()) {
        status = UnavailableError(fmt::format("PostgreSQL: {}", PQresultErrorMessage(r)));
      } else if (affected != nullptr && status.ok()) {
        const char* n = PQcmdTuples(r);
        affected->push_back(n[0] == '\0' ? 0 : std::stoll(n));
      }
      PQclear(r);
    }
    return status;
  }

  Result<std::vector<SqlRow>> Query(const std::string& sql) override {
    PGresult* r = PQexec(conn_, sql.c_str());
    std::unique_ptr<PGresult, decltype(&PQclear)> guard(r, &PQclear);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      return UnavailableError(fmt::format("PostgreSQL: {}: {}", PQresultErrorMessage(r), sql));
    }
    std::vector<SqlRow> rows(static_cast<size_t>(PQntuples(r)));
    int cols = PQnfields(r);
    for (int i = 0; i < PQntuples(r); ++i) {
      SqlRow& row = rows[static_cast<size_t>(i)];
      row.reserve(static_cast<size_t>(cols));
      for (int j = 0; j < cols; ++j) {
        if (PQgetisnull(r, i, j)) {
          row.emplace_back(std::nullopt);
        } else {
          row.emplace_back(
              std::string(PQgetvalue(r, i, j), static_cast<size_t>(PQgetlength(r, i, j))));
        }
      }
    }
    return rows;
  }

 private:
  Status Error(std::string_view what) {
    return UnavailableError(fmt::format("PostgreSQL {}: {}", what, PQerrorMessage(conn_)));
  }
  PGconn* conn_;
};

#ifdef CH_PEERS_WITH_MARIADB
class MariaConn final : public SqlConn {
 public:
  explicit MariaConn(MYSQL* conn) : conn_(conn) {}
  ~MariaConn() override { mysql_close(conn_); }

  Status Exec(const std::string& sql, std::vector<int64_t>* affected) override {
    if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return Error(sql);
    for (;;) {
      MYSQL_RES* res = mysql_store_result(conn_);
      if (res != nullptr) {
        mysql_free_result(res);
      } else if (mysql_field_count(conn_) != 0) {
        return Error(sql);
      }
      if (affected != nullptr) {
        affected->push_back(static_cast<int64_t>(mysql_affected_rows(conn_)));
      }
      int next = mysql_next_result(conn_);
      if (next > 0) return Error(sql);
      if (next < 0) return Status::OK();
    }
  }

  Result<std::vector<SqlRow>> Query(const std::string& sql) override {
    if (mysql_real_query(conn_, sql.data(), sql.size()) != 0) return Error(sql);
    MYSQL_RES* res = mysql_store_result(conn_);
    if (res == nullptr) return Error(sql);
    std::unique_ptr<MYSQL_RES, decltype(&mysql_free_result)> guard(res, &mysql_free_result);
    std::vector<SqlRow> rows;
    unsigned cols = mysql_num_fields(res);
    while (MYSQL_ROW row = mysql_fetch_row(res)) {
      unsigned long* lengths = mysql_fetch_lengths(res);
      SqlRow out;
      out.reserve(cols);
      for (unsigned j = 0; j < cols; ++j) {
        if (row[j] == nullptr) {
          out.emplace_back(std::nullopt);
        } else {
          out.emplace_back(std::string(row[j], lengths[j]));
        }
      }
      rows.push_back(std::move(out));
    }
    // Statements like ANALYZE TABLE may leave more results.
    while (mysql_next_result(conn_) == 0) {
      if (MYSQL_RES* more = mysql_store_result(conn_)) mysql_free_result(more);
    }
    return rows;
  }

 private:
  Status Error(std::string_view sql) {
    return UnavailableError(fmt::format("MariaDB: {}: {}", mysql_error(conn_), sql.substr(0, 200)));
  }
  MYSQL* conn_;
};
#endif

}  // namespace

Result<std::unique_ptr<SqlConn>> ConnectPostgres(const std::string& url,
                                                 const std::string& schema) {
  PGconn* conn = PQconnectdb(url.c_str());
  auto out = std::make_unique<PgConn>(conn);
  // "schema already exists, skipping" and the like are not news.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  if (PQstatus(conn) != CONNECTION_OK) {
    return UnavailableError(fmt::format("PostgreSQL at {}: {}", url, PQerrorMessage(conn)));
  }
  RETURN_IF_ERROR(out->Exec(fmt::format("CREATE SCHEMA IF NOT EXISTS {0}; SET search_path TO "
                                        "{0}, public; SET client_min_messages TO warning",
                                        schema),
                            nullptr));
  return std::unique_ptr<SqlConn>(std::move(out));
}

bool HaveMariaDbClient() {
#ifdef CH_PEERS_WITH_MARIADB
  return true;
#else
  return false;
#endif
}

Result<std::unique_ptr<SqlConn>> ConnectMariaDb(const std::string& socket,
                                                const std::string& database) {
#ifdef CH_PEERS_WITH_MARIADB
  MYSQL* conn = mysql_init(nullptr);
  auto out = std::make_unique<MariaConn>(conn);
  mysql_options(conn, MYSQL_SET_CHARSET_NAME, "utf8mb4");
  if (mysql_real_connect(conn, nullptr, "root", nullptr, nullptr, 0, socket.c_str(),
                         CLIENT_MULTI_STATEMENTS) == nullptr) {
    return UnavailableError(fmt::format("MariaDB at {}: {}", socket, mysql_error(conn)));
  }
  RETURN_IF_ERROR(out->Exec(fmt::format("CREATE DATABASE IF NOT EXISTS {0}; USE {0}; SET "
                                        "time_zone = '+00:00'",
                                        database),
                            nullptr));
  return std::unique_ptr<SqlConn>(std::move(out));
#else
  (void)socket;
  (void)database;
  return UnimplementedError(
      "this build has no MariaDB client: install libmariadb-dev (Debian) and re-run cmake");
#endif
}

}  // namespace ch::peers
