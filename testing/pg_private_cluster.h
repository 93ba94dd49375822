// PgPrivateCluster: a throwaway PostgreSQL 15 cluster of a test's own (initdb in a temp
// directory, ~2 s), for tests that restart the server, fill its WAL or need settings the shared
// test server (CH_TEST_PG_URL) must not get. Run as the postgres user when the test runs as root.
// Skip the test when Available() is false (the server binaries are not installed).
//
// Thread-safety: used by one thread (the test's).
#pragma once

#include <filesystem>
#include <string>

#include "common/status.h"

namespace ch::testing {

// Return a TCP port on 127.0.0.1 that nobody listens on right now (0 when none is found).
int FreePort();

class PgPrivateCluster {
 public:
  PgPrivateCluster() = default;
  // Stop the server (immediately) and remove its directory.
  ~PgPrivateCluster();
  PgPrivateCluster(const PgPrivateCluster&) = delete;
  PgPrivateCluster& operator=(const PgPrivateCluster&) = delete;

  // Return the directory of the PostgreSQL 15 server binaries: CH_PG_BIN, else
  // /usr/lib/postgresql/15/bin.
  static std::string BinDir();
  // Return true when BinDir() holds initdb.
  static bool Available();
  // The message a test skips with when !Available().
  static std::string SkipMessage();

  // initdb and start a cluster on a free port with wal_level = logical, fsync off and
  // `extra_conf` (postgresql.conf lines) appended. Fails with Internal naming the command.
  Status Start(const std::string& extra_conf = "");
  // pg_ctl restart -m fast.
  Status Restart();

  // The superuser's URL of database `postgres`.
  std::string url() const;
  // The cluster's directory (data/, server.log).
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::string As(const std::string& cmd) const;
  std::string Ctl(const std::string& args) const;

  std::filesystem::path dir_;
  int port_ = 0;
};

}  // namespace ch::testing
