// Test-only helpers for the PostgreSQL adapters: a throwaway database per test on the server
// named by the CH_TEST_PG_URL environment variable (scripts/services.sh starts one), so tests can
// run in parallel and leave nothing behind. Header-only; include it from tests only.
//
// Thread-safety: a PgTestDatabase is used by one thread (the test's).
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>

#include "campaign/pg_client.h"
#include "common/status.h"

namespace ch::testing {

// Return CH_TEST_PG_URL, or "" when it is unset (tests then GTEST_SKIP).
inline std::string PgTestUrl() {
  const char* url = std::getenv("CH_TEST_PG_URL");
  return url == nullptr ? std::string() : std::string(url);
}

inline constexpr char kPgTestSkipMessage[] =
    "CH_TEST_PG_URL is not set: start PostgreSQL with `scripts/services.sh start pg` and "
    "`source /tmp/ch-services/env.sh`";

class PgTestDatabase {
 public:
  // Create `ch_test_<pid>_<n>_<random>` on the CH_TEST_PG_URL server. Return nullptr when
  // CH_TEST_PG_URL is unset, or the server's error.
  static Result<std::unique_ptr<PgTestDatabase>> Create() {
    std::string admin = PgTestUrl();
    if (admin.empty()) return std::unique_ptr<PgTestDatabase>();
    static std::atomic<int> counter{0};
    std::random_device rd;
    std::string name = fmt::format("ch_test_{}_{}_{:08x}", getpid(), counter.fetch_add(1), rd());
    PgConnectOptions o;
    o.url = admin;
    ASSIGN_OR_RETURN(auto conn, PgConn::Connect(o));
    RETURN_IF_ERROR(conn->Exec(fmt::format(
        "CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
        name)));
    ASSIGN_OR_RETURN(std::string url, PgUrlWithDatabase(admin, name));
    return std::unique_ptr<PgTestDatabase>(new PgTestDatabase(admin, name, url));
  }

  // Drop every replication slot of the database (terminating its consumers), then the database.
  ~PgTestDatabase() {
    PgConnectOptions o;
    o.url = admin_url_;
    auto conn = PgConn::Connect(o);
    if (!conn.ok()) return;
    for (int attempt = 0; attempt < 50; ++attempt) {
      auto r = (*conn)->Exec(
          fmt::format("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                      "WHERE database = '{0}' AND active_pid IS NOT NULL; "
                      "SELECT count(pg_drop_replication_slot(slot_name)) FROM pg_replication_slots "
                      "WHERE database = '{0}' AND NOT active",
                      name_));
      auto left = (*conn)->Exec(
          fmt::format("SELECT count(*) FROM pg_replication_slots WHERE database = '{}'", name_));
      if (left.ok() && left->Get(0, 0) == "0") break;
      usleep(20000);
    }
    (*conn)
        ->Exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_))
        .status()
        .IgnoreError();
  }

  PgTestDatabase(const PgTestDatabase&) = delete;
  PgTestDatabase& operator=(const PgTestDatabase&) = delete;

  // The test database (a key=value conninfo).
  const std::string& url() const { return url_; }
  // The server's own URL (CH_TEST_PG_URL).
  const std::string& admin_url() const { return admin_url_; }
  const std::string& name() const { return name_; }

  // Connect to the test database.
  Result<std::unique_ptr<PgConn>> Connect() const {
    PgConnectOptions o;
    o.url = url_;
    return PgConn::Connect(o);
  }

 private:
  PgTestDatabase(std::string admin, std::string name, std::string url)
      : admin_url_(std::move(admin)), name_(std::move(name)), url_(std::move(url)) {}
  std::string admin_url_;
  std::string name_;
  std::string url_;
};

}  // namespace ch::testing
