#include "testing/pg_private_cluster.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>

namespace ch::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

namespace {

Status Run(const std::string& cmd) {
  int rc = std::system(cmd.c_str());
  if (rc != 0) return InternalError(fmt::format("'{}' failed ({})", cmd, rc));
  return Status::OK();
}

}  // namespace

std::string PgPrivateCluster::BinDir() {
  const char* bin = std::getenv("CH_PG_BIN");
  return bin != nullptr ? bin : "/usr/lib/postgresql/15/bin";
}

bool PgPrivateCluster::Available() { return std::filesystem::exists(BinDir() + "/initdb"); }

std::string PgPrivateCluster::SkipMessage() {
  return "PostgreSQL 15 server binaries not found in " + BinDir() + " (set CH_PG_BIN)";
}

PgPrivateCluster::~PgPrivateCluster() {
  if (dir_.empty()) return;
  Run(Ctl("-m immediate -w stop")).IgnoreError();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

Status PgPrivateCluster::Start(const std::string& extra_conf) {
  std::random_device rd;
  dir_ = std::filesystem::temp_directory_path() / fmt::format("ch-pgcluster-{:08x}", rd());
  std::filesystem::create_directories(dir_);
  if (getuid() == 0) RETURN_IF_ERROR(Run("chown postgres:postgres " + dir_.string()));
  port_ = FreePort();
  RETURN_IF_ERROR(
      Run(As(fmt::format("{}/initdb -D {}/data -U postgres --auth=trust -E UTF8 "
                         "--locale=C.UTF-8 >{}/initdb.log 2>&1",
                         BinDir(), dir_.string(), dir_.string()))));
  std::ofstream conf(dir_ / "data" / "postgresql.conf", std::ios::app);
  conf << "port = " << port_ << "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '"
       << dir_.string() << "'\nwal_level = logical\nmax_replication_slots = 4\n"
       << "max_wal_senders = 4\nfsync = off\nfull_page_writes = off\n"
       << extra_conf << "\n";
  conf.close();
  return Run(Ctl("-w -t 60 start"));
}

Status PgPrivateCluster::Restart() { return Run(Ctl("-m fast -w -t 60 restart")); }

std::string PgPrivateCluster::url() const {
  return fmt::format("postgresql://postgres@127.0.0.1:{}/postgres", port_);
}

std::string PgPrivateCluster::As(const std::string& cmd) const {
  return getuid() == 0 ? "runuser -u postgres -- sh -c '" + cmd + "'" : cmd;
}

std::string PgPrivateCluster::Ctl(const std::string& args) const {
  return As(fmt::format("{}/pg_ctl -D {}/data -l {}/server.log {} >>{}/ctl.log 2>&1", BinDir(),
                        dir_.string(), dir_.string(), args, dir_.string()));
}

}  // namespace ch::testing
