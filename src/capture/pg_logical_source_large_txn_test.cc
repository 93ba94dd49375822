// PgLogicalSource on a transaction far larger than it may hold in memory: one UPDATE of
// 1,000,000 campaigns, captured by a relay process that is SIGKILLed in the middle of the
// transaction and started again. The relay's peak RSS (VmHWM) stays bounded, and every change
// arrives exactly once: the parts confirmed before the kill are not delivered again.
//
// On a private cluster (testing/pg_private_cluster.h): the transaction writes ~1 GB of WAL.
// Skipped when the PostgreSQL 15 server binaries are not installed.
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"
#include "capture/pg_logical_source.h"
#include "testing/pg_private_cluster.h"
#include "testing/test_util.h"

namespace ch {
namespace {

constexpr int64_t kRows = 1'000'000;
constexpr int64_t kPerCustomer = 1000;
// The first relay kills itself once it has confirmed this many changes.
constexpr int64_t kKillAfter = 500'000;
// Peak RSS allowed to a relay process. Holding the transaction would take ~1.6 GB.
constexpr int64_t kMaxRelayKib = 128 * 1024;

// What the relay writes per change ("durable downstream"): fixed-size records.
struct Delivered {
  int64_t campaign_id;
  int64_t version;
  int64_t txn_seq;
  int64_t txn_changes;
};

// Return a field of /proc/self/status in KiB (VmHWM, VmRSS).
int64_t ProcStatusKib(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  }
  return -1;
}

PgLogicalSourceOptions SourceOptions(const std::string& url) {
  PgLogicalSourceOptions o;
  o.url = url;
  o.slot = "large_slot";
  o.publication = "large_pub";
  o.connect_timeout_s = 5;
  return o;
}

// The relay: poll, append to `out_path`, confirm; until the transaction's last change has been
// confirmed (exit 0), or, with kill_after > 0, SIGKILL itself once that many are confirmed. Its
// memory figures go to `mem_path` ("<start VmRSS> <VmHWM>" in KiB). Runs in a forked child:
// reports by exit code only.
[[noreturn]] void RunRelay(const std::string& url, const std::string& out_path,
                           const std::string& mem_path, int64_t kill_after) {
  const int64_t start_rss = ProcStatusKib("VmRSS");
  auto write_memory = [&] {
    std::ofstream(mem_path) << start_rss << " " << ProcStatusKib("VmHWM") << "\n";
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  // The killed relay's walsender may hold the slot for a moment.
  std::unique_ptr<PgLogicalSource> source;
  while (source == nullptr) {
    auto opened = PgLogicalSource::Open(SourceOptions(url));
    if (opened.ok()) {
      source = std::move(opened).value();
    } else if (opened.status().code() != StatusCode::kUnavailable ||
               std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "relay: %s\n", opened.status().ToString().c_str());
      _exit(2);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  const int fd = open(out_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  if (fd < 0) _exit(3);
  int64_t confirmed = 0;
  std::vector<Delivered> records;
  while (std::chrono::steady_clock::now() < deadline) {
    auto batch = source->Poll(1000, std::chrono::seconds(1));
    if (!batch.ok()) {
      std::fprintf(stderr, "relay: %s\n", batch.status().ToString().c_str());
      if (batch.status().code() != StatusCode::kUnavailable) _exit(4);
      continue;
    }
    if (batch->events.empty()) continue;
    records.clear();
    bool last = false;
    for (const ChangeEvent& e : batch->events) {
      records.push_back({e.campaign_id, e.version, e.txn_seq, e.txn_changes});
      last = last || e.txn_changes != 0;
    }
    const size_t bytes = records.size() * sizeof(Delivered);
    if (write(fd, records.data(), bytes) != static_cast<ssize_t>(bytes)) _exit(5);
    if (Status s = source->Confirm(batch->end_position); !s.ok()) {
      std::fprintf(stderr, "relay: %s\n", s.ToString().c_str());
      _exit(6);
    }
    confirmed += static_cast<int64_t>(batch->events.size());
    if (last) {
      write_memory();
      _exit(0);
    }
    if (kill_after > 0 && confirmed >= kill_after) {
      write_memory();
      kill(getpid(), SIGKILL);
    }
  }
  _exit(7);
}

struct RelayRun {
  int status = 0;
  int64_t start_rss_kib = 0;
  int64_t hwm_kib = 0;
  double seconds = 0;
};

RelayRun ForkRelay(const std::string& url, const std::string& out_path, const std::string& mem_path,
                   int64_t kill_after) {
  const auto start = std::chrono::steady_clock::now();
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) RunRelay(url, out_path, mem_path, kill_after);
  RelayRun run;
  waitpid(pid, &run.status, 0);
  run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::ifstream(mem_path) >> run.start_rss_kib >> run.hwm_kib;
  return run;
}

Status Exec(PgConn& conn, const std::string& sql) { return conn.Exec(sql).status(); }

TEST(PgLogicalSourceLargeTransactionTest, AMillionRowUpdateIsCapturedInBoundedMemoryAcrossAKill) {
  if (!testing::PgPrivateCluster::Available()) {
    GTEST_SKIP() << testing::PgPrivateCluster::SkipMessage();
  }
  testing::PgPrivateCluster cluster;
  ASSERT_OK(cluster.Start("max_wal_size = '4GB'\nwal_sender_timeout = '10s'"));
  const std::string url = cluster.url();
  {
    PgCampaignStoreOptions so;
    so.url = url;
    ASSERT_OK(PgCampaignStore::Open(so).status());  // the schema
  }
  PgConnectOptions co;
  co.url = url;
  ASSERT_OK_AND_ASSIGN(auto conn, PgConn::Connect(co));
  // The rows exist before capture starts: only the UPDATE is captured.
  ASSERT_OK(
      Exec(*conn, fmt::format("INSERT INTO campaigns (id, customer_id, name, status, priority, "
                              "trigger_event, audience_segment, frequency_cap, content, version, "
                              "created_at, updated_at, updated_by) SELECT i, (i - 1) / {1} + 1, "
                              "'c' || i, 'active', (i - 1) % {1} + 1, 'app_open', 'all', 1, "
                              "'{{\"title\":\"Hi\"}}', 1, now(), now(), 'user:seed' "
                              "FROM generate_series(1, {0}) i",
                              kRows, kPerCustomer)));
  ASSERT_OK(PgLogicalSource::CreateCapture(url, "large_slot", "large_pub"));
  // One transaction, stamped as PgCampaignStore stamps its own.
  ASSERT_OK(Exec(*conn,
                 "BEGIN; INSERT INTO ch_customer_txn AS t VALUES (1, txid_current(), "
                 "(extract(epoch FROM clock_timestamp()) * 1e6)::bigint) ON CONFLICT "
                 "(customer_id) DO UPDATE SET txn_id = EXCLUDED.txn_id, commit_us = "
                 "GREATEST(t.commit_us + 1, EXCLUDED.commit_us); UPDATE campaigns SET version = "
                 "version + 1, frequency_cap = "
                 "frequency_cap + 1, updated_at = now(), updated_by = 'worker:bulk'; COMMIT"));

  testing::TempDir dir;
  const std::string out = dir.File("delivered.bin");
  RelayRun first = ForkRelay(url, out, dir.File("mem1"), kKillAfter);
  std::printf(
      "relay 1 (killed after %lld confirmed changes): %.1f s, VmRSS at start %lld KiB, "
      "VmHWM %lld KiB\n",
      static_cast<long long>(kKillAfter), first.seconds,
      static_cast<long long>(first.start_rss_kib), static_cast<long long>(first.hwm_kib));
  ASSERT_TRUE(WIFSIGNALED(first.status) && WTERMSIG(first.status) == SIGKILL)
      << "the first relay was to kill itself mid-transaction; status " << first.status;
  RelayRun second = ForkRelay(url, out, dir.File("mem2"), 0);
  std::printf("relay 2 (the rest): %.1f s, VmRSS at start %lld KiB, VmHWM %lld KiB\n",
              second.seconds, static_cast<long long>(second.start_rss_kib),
              static_cast<long long>(second.hwm_kib));
  ASSERT_TRUE(WIFEXITED(second.status) && WEXITSTATUS(second.status) == 0)
      << "status " << second.status;
  EXPECT_GT(first.hwm_kib, 0);
  EXPECT_LE(first.hwm_kib, kMaxRelayKib);
  EXPECT_LE(second.hwm_kib, kMaxRelayKib);

  // Every change exactly once: version 2 of each campaign, transaction 1; the count of changes
  // only on the last part.
  std::ifstream in(out, std::ios::binary);
  std::vector<uint8_t> seen(kRows + 1, 0);
  int64_t records = 0, duplicates = 0, bad = 0, with_count = 0;
  Delivered d{};
  while (in.read(reinterpret_cast<char*>(&d), sizeof(d))) {
    ++records;
    if (d.campaign_id < 1 || d.campaign_id > kRows || d.version != 2 || d.txn_seq != 1 ||
        (d.txn_changes != 0 && d.txn_changes != kRows)) {
      if (++bad <= 5)
        ADD_FAILURE() << "c" << d.campaign_id << "@v" << d.version << " txn " << d.txn_seq << " of "
                      << d.txn_changes;
      continue;
    }
    if (seen[d.campaign_id]++ != 0) ++duplicates;
    if (d.txn_changes == kRows) ++with_count;
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(records, kRows);
  EXPECT_EQ(std::count(seen.begin() + 1, seen.end(), 0), 0);
  EXPECT_GE(with_count, 1);
  EXPECT_LT(with_count, kRows);  // handed out in parts
  ASSERT_OK_AND_ASSIGN(
      PgResult progress,
      conn->Exec("SELECT confirmed_txns, partial_lsn IS NULL FROM ch_capture_progress"));
  EXPECT_EQ(progress.Get(0, 0), "1");
  EXPECT_EQ(progress.Get(0, 1), "t");
}

}  // namespace
}  // namespace ch
