// PgLogicalSource across a real PostgreSQL restart (`pg_ctl restart -m fast`), on a private
// throwaway cluster (initdb in a temp directory, ~2 s), because restarting the shared test server
// would disturb other tests. PostgreSQL 15 may forget the slot's confirmed position at such a
// restart and resend confirmed transactions; the source must deliver exactly the unconfirmed ones.
// Skipped when the PostgreSQL 15 server binaries are not installed (CH_PG_BIN overrides
// /usr/lib/postgresql/15/bin).
#include <fmt/format.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"
#include "capture/pg_logical_source.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

std::string PgBin() {
  const char* bin = std::getenv("CH_PG_BIN");
  return bin != nullptr ? bin : "/usr/lib/postgresql/15/bin";
}

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

// A private cluster in a temp directory, run as the postgres user when we are root.
class PrivateCluster {
 public:
  ~PrivateCluster() {
    if (!dir_.empty()) {
      Run(Ctl("-m immediate -w stop")).IgnoreError();
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  Status Start() {
    std::random_device rd;
    dir_ = std::filesystem::temp_directory_path() / fmt::format("ch-pgrestart-{:08x}", rd());
    std::filesystem::create_directories(dir_);
    if (getuid() == 0) RETURN_IF_ERROR(Run("chown postgres:postgres " + dir_.string()));
    port_ = FreePort();
    RETURN_IF_ERROR(
        Run(As(fmt::format("{}/initdb -D {}/data -U postgres --auth=trust -E UTF8 "
                           "--locale=C.UTF-8 >{}/initdb.log 2>&1",
                           PgBin(), dir_.string(), dir_.string()))));
    std::ofstream conf(dir_ / "data" / "postgresql.conf", std::ios::app);
    conf << "port = " << port_ << "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '"
         << dir_.string() << "'\nwal_level = logical\nmax_replication_slots = 4\n"
         << "max_wal_senders = 4\nfsync = off\nfull_page_writes = off\n"
         // A shutdown waits for each logical walsender's client to confirm everything sent, up
         // to wal_sender_timeout; this test holds unconfirmed events on purpose.
         << "wal_sender_timeout = '3s'\n";
    conf.close();
    return Run(Ctl("-w -t 60 start"));
  }

  Status Restart() { return Run(Ctl("-m fast -w -t 60 restart")); }

  std::string url() const {
    return fmt::format("postgresql://postgres@127.0.0.1:{}/postgres", port_);
  }

 private:
  std::string As(const std::string& cmd) const {
    return getuid() == 0 ? "runuser -u postgres -- sh -c '" + cmd + "'" : cmd;
  }
  std::string Ctl(const std::string& args) const {
    return As(fmt::format("{}/pg_ctl -D {}/data -l {}/server.log {} >>{}/ctl.log 2>&1", PgBin(),
                          dir_.string(), dir_.string(), args, dir_.string()));
  }
  static Status Run(const std::string& cmd) {
    int rc = std::system(cmd.c_str());
    if (rc != 0) return InternalError(fmt::format("'{}' failed ({})", cmd, rc));
    return Status::OK();
  }

  std::filesystem::path dir_;
  int port_ = 0;
};

WriteContext As(std::string actor) {
  WriteContext ctx;
  ctx.actor = std::move(actor);
  return ctx;
}

Campaign Draft(std::string name) {
  Campaign c;
  c.customer_id = 1;
  c.name = std::move(name);
  c.content = R"({"title":"Hi"})";
  return c;
}

TEST(PgLogicalSourceRestartTest, DeliversExactlyTheUnconfirmedTransactionsAcrossAServerRestart) {
  if (!std::filesystem::exists(PgBin() + "/initdb")) {
    GTEST_SKIP() << "PostgreSQL 15 server binaries not found in " << PgBin() << " (set CH_PG_BIN)";
  }
  PrivateCluster cluster;
  ASSERT_OK(cluster.Start());
  const std::string url = cluster.url();
  PgCampaignStoreOptions so;
  so.url = url;
  ASSERT_OK_AND_ASSIGN(auto store, PgCampaignStore::Open(so));
  CampaignService service(*store);
  ASSERT_OK(PgLogicalSource::CreateCapture(url, "restart_slot", "restart_pub"));
  PgLogicalSourceOptions o;
  o.url = url;
  o.slot = "restart_slot";
  o.publication = "restart_pub";
  o.connect_timeout_s = 2;
  ASSERT_OK_AND_ASSIGN(auto source, PgLogicalSource::Open(o));

  auto poll_txns = [&](size_t n) {
    std::vector<std::string> txns;
    std::string end;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (txns.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto batch = source->Poll(1, std::chrono::milliseconds(200));
      if (!batch.ok()) {
        EXPECT_THAT(batch, StatusIs(StatusCode::kUnavailable));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      for (const ChangeEvent& e : batch->events) {
        if (txns.empty() || txns.back() != e.transaction_id) txns.push_back(e.transaction_id);
      }
      if (!batch->events.empty()) end = batch->end_position;
    }
    return std::make_pair(txns, end);
  };

  std::vector<std::string> committed;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto c, service.Create(Draft("c" + std::to_string(i)), As("user:1")));
    committed.push_back(c.transaction_id);
  }
  auto [first, first_end] = poll_txns(3);
  ASSERT_EQ(first, committed);
  ASSERT_OK(source->Confirm(first_end));
  // Let the server apply the status update, so that the restart is what loses it (if it does).
  for (int i = 0; i < 5; ++i) ASSERT_OK(source->Poll(10, std::chrono::milliseconds(100)));

  std::vector<std::string> pending;
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto c, service.Create(Draft("p" + std::to_string(i)), As("user:2")));
    pending.push_back(c.transaction_id);
  }
  auto [unconfirmed, unconfirmed_end] = poll_txns(2);
  ASSERT_EQ(unconfirmed, pending);  // delivered, never confirmed

  ASSERT_OK(cluster.Restart());
  ASSERT_OK_AND_ASSIGN(auto after_restart, PgLogicalSource::SlotStatus(url, "restart_slot"));
  std::printf("slot position after the restart: %s (confirmed before: %s)\n",
              after_restart.confirmed_flush_lsn.c_str(), first_end.c_str());

  // The same source reconnects by itself and continues after what it handed out (the consumer
  // still holds those events): only the new transaction arrives.
  ASSERT_OK_AND_ASSIGN(auto late, service.Create(Draft("late"), As("user:3")));
  auto [after, after_end] = poll_txns(1);
  EXPECT_EQ(after, std::vector<std::string>{late.transaction_id});
  auto nothing = source->Poll(100, std::chrono::milliseconds(500));
  ASSERT_OK(nothing);
  EXPECT_TRUE(nothing->events.empty());

  // A restarted relay gets exactly what was never confirmed, although the server's slot went
  // back before the confirmed transactions (it resends them; the source skips them).
  source.reset();
  ASSERT_OK_AND_ASSIGN(source, PgLogicalSource::Open(o));
  pending.push_back(late.transaction_id);
  auto [relay, relay_end] = poll_txns(3);
  EXPECT_EQ(relay, pending);
  nothing = source->Poll(100, std::chrono::milliseconds(500));
  ASSERT_OK(nothing);
  EXPECT_TRUE(nothing->events.empty());
  ASSERT_OK(source->Confirm(relay_end));
  source.reset();
  ASSERT_OK(PgLogicalSource::DropCapture(url, "restart_slot", "restart_pub"));
}

}  // namespace
}  // namespace ch
