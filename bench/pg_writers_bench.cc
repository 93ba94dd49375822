// pg_writers_bench: do writes on PostgreSQL scale across customers? (docs/benchmarks.md,
// "Concurrent writers on PostgreSQL"). Prints numbers; it is not a test.
//
// One generated workload (no big customer, 16 customers by default) is split by customer over N
// writer threads (N = 1, 2, 4, 8), each applying its customers' lines in order through one shared
// CampaignService over one PgCampaignStore (a connection per writer from its pool). Seeds are
// applied first; the clock runs from the first op to the last commit. Each run uses a fresh
// database with log capture set up (slot present while writing), in two modes that alternate:
//   global        PgCampaignStoreOptions::serialize_all_writers: one lock for the database (what
//                 schema version 1 did with its ch_txn row and process-wide writer mutex)
//   per-customer  the default: only writers of one customer wait for each other
// After the writes, the slot is drained through PgLogicalSource and the Publisher into an
// in-memory history, which is checked against the independent workload model: every version
// captured once, and for every op the customer's as-of at the op's captured event time equals
// the model right after the op, and 1 us before it the model right before it. It also counts the
// transactions whose event time was moved past their stamp (they committed out of stamp order).
//
// Usage: pg_writers_bench [--pg URL] [--writers 1,2,4,8] [--rounds 3] [--ops 3000]
//                         [--customers 16] [--no-verify]
// Needs PostgreSQL with wal_level=logical ($CH_TEST_PG_URL by default); creates and drops
// databases named pglocks_bench_<pid>_<n>.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "campaign/campaign_service.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"
#include "capture/pg_logical_source.h"
#include "history/in_memory_history_store.h"
#include "publisher/publisher.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"
#include "workload/generator.h"
#include "workload/replayer.h"
#include "workload/workload.h"

namespace ch {
namespace {

struct RunResult {
  double ops_per_s = 0;
  int64_t ops = 0;
  std::string verify;  // "" = not verified; "ok" or the first mismatch
  int64_t moved = 0;   // transactions whose event time is after their stamp
};

struct Bench {
  std::string admin_url;
  std::vector<WorkloadLine> lines;
  bool verify = true;
  int counter = 0;
};

// Apply `mine` (one writer's lines, in seq order): seeds, then wait for the others, then ops.
void Writer(CampaignService& service, const std::vector<const WorkloadLine*>& mine,
            std::barrier<>& start, std::vector<ReplayedOp>& out, Status& status) {
  Replayer replayer(service);
  size_t i = 0;
  for (; i < mine.size() && mine[i]->op == WorkloadOp::kSeed; ++i) {
    auto r = replayer.Apply(*mine[i]);
    if (!r.ok() && status.ok()) status = r.status();
    if (r.ok() && *r) out.push_back(**r);
  }
  start.arrive_and_wait();
  for (; i < mine.size(); ++i) {
    auto r = replayer.Apply(*mine[i]);
    if (!r.ok()) {
      if (status.ok()) status = r.status();
      continue;
    }
    if (*r) out.push_back(**r);
  }
}

// Drain the slot into `history` until it holds `versions` records (or 60 s pass).
Status Drain(const std::string& url, HistoryStore& history, int64_t versions) {
  PgLogicalSourceOptions so;
  so.url = url;
  so.slot = "pglocks_bench_slot";
  so.publication = "pglocks_bench_pub";
  ASSIGN_OR_RETURN(auto source, PgLogicalSource::Open(so));
  PublisherOptions po;
  po.history = &history;
  Publisher publisher(po);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    ASSIGN_OR_RETURN(auto stats, history.Stats());
    if (stats.records >= versions) return Status::OK();
    ASSIGN_OR_RETURN(SourceBatch batch, source->Poll(1000, std::chrono::milliseconds(200)));
    if (batch.events.empty()) continue;
    RETURN_IF_ERROR(publisher.Process(batch.events).status());
    RETURN_IF_ERROR(source->Confirm(batch.end_position));
  }
  return DeadlineExceededError("the slot did not deliver every version within 60 s");
}

// Check the history against the model at each op's captured event time (see the file comment).
std::string Verify(InMemoryHistoryStore& history, const std::vector<WorkloadLine>& lines,
                   const std::vector<ReplayedOp>& ops, int64_t& moved) {
  std::map<int64_t, ReplayedOp> by_seq;
  for (const ReplayedOp& op : ops) by_seq[op.seq] = op;
  testing::WorkloadModel model;
  std::map<int64_t, std::vector<int64_t>> seqs;  // per customer, in order
  for (const WorkloadLine& l : lines) {
    std::optional<Timestamp> t;
    if (l.applied()) {
      auto it = by_seq.find(l.seq);
      if (it == by_seq.end()) return fmt::format("seq {} was not applied", l.seq);
      t = it->second.committed_at;
      seqs[l.customer_id()].push_back(l.seq);
    }
    auto r = model.Apply(l, t);
    if (!r.ok()) return r.status().ToString();
  }
  // Per customer: its transactions in event-time order (one per op) and their stamp.
  std::map<int64_t, std::map<std::string, std::pair<Timestamp, Timestamp>>> txns;
  std::vector<HistoryRecord> all = history.AllRecords();
  for (const HistoryRecord& r : all) {
    auto c = CampaignFromJson(r.snapshot);
    if (!c.ok()) return c.status().ToString();
    // A delete's snapshot is the last content (an earlier updated_at): the stamp comes from the
    // transaction's other records.
    auto& t = txns[r.customer_id][r.transaction_id];
    t.first = r.event_time;
    if (r.event_type != ChangeOp::kDeleted) t.second = c->updated_at;
    if (t.second == Timestamp{}) t.second = r.event_time;
  }
  if (static_cast<int64_t>(all.size()) != model.TotalVersions()) {
    return fmt::format("history holds {} records, the model {} versions", all.size(),
                       model.TotalVersions());
  }
  for (const auto& [customer, order] : seqs) {
    std::vector<std::pair<Timestamp, Timestamp>> times;
    for (const auto& [id, t] : txns[customer]) times.push_back(t);
    std::sort(times.begin(), times.end());
    if (times.size() != order.size()) {
      return fmt::format("customer {}: {} transactions captured, {} ops", customer, times.size(),
                         order.size());
    }
    for (size_t k = 0; k < order.size(); ++k) {
      if (times[k].first != times[k].second) ++moved;
      auto at = history.AsOf(customer, times[k].first);
      auto before = history.AsOf(customer, times[k].first - Micros(1));
      if (!at.ok() || !before.ok()) return "as-of failed";
      std::string want = testing::RenderModelCampaigns(model.StateAfterSeq(customer, order[k]),
                                                       {.all_fields = true});
      std::string want_before =
          k == 0 ? testing::RenderModelCampaigns({}, {.all_fields = true})
                 : testing::RenderModelCampaigns(model.StateAfterSeq(customer, order[k - 1]),
                                                 {.all_fields = true});
      if (testing::RenderAsOf(*at) != want) {
        return fmt::format("customer {} after seq {} differs from the model", customer, order[k]);
      }
      if (testing::RenderAsOf(*before) != want_before) {
        return fmt::format("customer {} 1 us before seq {} differs from the model", customer,
                           order[k]);
      }
    }
  }
  return "ok";
}

Result<RunResult> Run(Bench& b, int writers, bool global) {
  PgConnectOptions ao;
  ao.url = b.admin_url;
  ASSIGN_OR_RETURN(auto admin, PgConn::Connect(ao));
  const std::string name = fmt::format("pglocks_bench_{}_{}", getpid(), b.counter++);
  RETURN_IF_ERROR(admin->Exec("CREATE DATABASE " + name + " ENCODING 'UTF8' TEMPLATE template0"));
  ASSIGN_OR_RETURN(std::string url, PgUrlWithDatabase(b.admin_url, name));
  auto cleanup = [&] {
    admin->Exec("SELECT pg_drop_replication_slot('pglocks_bench_slot')").status().IgnoreError();
    admin->Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").status().IgnoreError();
  };
  Result<RunResult> result = [&]() -> Result<RunResult> {
    RETURN_IF_ERROR(PgLogicalSource::CreateCapture(url, "pglocks_bench_slot", "pglocks_bench_pub"));
    PgCampaignStoreOptions o;
    o.url = url;
    o.serialize_all_writers = global;
    o.max_idle_connections = writers + 2;
    o.lock_timeout_ms = 60000;
    ASSIGN_OR_RETURN(auto store, PgCampaignStore::Open(o));
    CampaignService service(*store);
    std::vector<std::vector<const WorkloadLine*>> parts(static_cast<size_t>(writers));
    for (const WorkloadLine& l : b.lines) {
      if (l.applied()) parts[static_cast<size_t>(l.customer_id() % writers)].push_back(&l);
    }
    std::barrier start(writers + 1);
    std::vector<std::vector<ReplayedOp>> ops(parts.size());
    std::vector<Status> statuses(parts.size());
    std::vector<std::thread> threads;
    for (size_t w = 0; w < parts.size(); ++w) {
      threads.emplace_back(Writer, std::ref(service), std::cref(parts[w]), std::ref(start),
                           std::ref(ops[w]), std::ref(statuses[w]));
    }
    start.arrive_and_wait();
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& t : threads) t.join();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (const Status& s : statuses) RETURN_IF_ERROR(s);
    RunResult r;
    std::vector<ReplayedOp> all;
    for (const auto& part : ops) all.insert(all.end(), part.begin(), part.end());
    for (const WorkloadLine& l : b.lines) r.ops += l.applied() && l.op != WorkloadOp::kSeed;
    r.ops_per_s = static_cast<double>(r.ops) / secs;
    if (b.verify) {
      InMemoryHistoryStore history;
      int64_t versions = 0;
      for (const ReplayedOp& op : all) versions += op.versions;
      RETURN_IF_ERROR(Drain(url, history, versions));
      r.verify = Verify(history, b.lines, all, r.moved);
    }
    return r;
  }();
  cleanup();
  return result;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Main(int argc, char** argv) {
  CLI::App app{"pg_writers_bench: concurrent writers on disjoint customers, PostgreSQL"};
  std::string pg = std::getenv("CH_TEST_PG_URL") ? std::getenv("CH_TEST_PG_URL") : "";
  std::vector<int> writer_counts = {1, 2, 4, 8};
  int rounds = 3;
  int64_t ops = 3000;
  int64_t customers = 16;
  bool no_verify = false;
  app.add_option("--pg", pg, "PostgreSQL server URL [$CH_TEST_PG_URL]");
  app.add_option("--writers", writer_counts, "Writer counts")->delimiter(',');
  app.add_option("--rounds", rounds, "Runs of each configuration (medians)");
  app.add_option("--ops", ops, "Workload ops");
  app.add_option("--customers", customers, "Customers (split over the writers)");
  app.add_flag("--no-verify", no_verify, "Skip draining the slot and the model check");
  CLI11_PARSE(app, argc, argv);
  if (pg.empty()) {
    std::cerr << "no PostgreSQL: pass --pg or set CH_TEST_PG_URL\n";
    return 2;
  }
  auto options = GeneratorPreset("small");
  if (!options.ok()) return 1;
  options->big_customers = 0;
  options->customers = customers;
  options->campaigns_per_customer = 10;
  options->ops = ops;
  std::ostringstream text;
  if (auto s = GenerateWorkload(*options, text); !s.ok()) {
    std::cerr << s.status().ToString() << "\n";
    return 1;
  }
  auto lines = ParseWorkloadText(text.str(), "bench");
  if (!lines.ok()) {
    std::cerr << lines.status().ToString() << "\n";
    return 1;
  }
  Bench b{pg, std::move(*lines), !no_verify};
  std::map<std::pair<bool, int>, std::vector<double>> tput;
  bool all_ok = true;
  for (int round = 0; round < rounds; ++round) {
    for (int n : writer_counts) {
      for (bool global : {true, false}) {
        auto r = Run(b, n, global);
        if (!r.ok()) {
          std::cerr << r.status().ToString() << "\n";
          return 1;
        }
        tput[{global, n}].push_back(r->ops_per_s);
        if (!r->verify.empty() && r->verify != "ok") all_ok = false;
        std::cout << fmt::format(
                         "round {} {:12} N={} {:7.0f} ops/s ({} ops){}", round + 1,
                         global ? "global" : "per-customer", n, r->ops_per_s, r->ops,
                         r->verify.empty()
                             ? std::string()
                             : fmt::format(", model check: {}, {} txns moved past their stamp",
                                           r->verify, r->moved))
                  << std::endl;
      }
    }
  }
  std::cout << "\nmedian ops/s (ratio vs N=1 of the same mode)\n";
  std::cout << fmt::format("{:>3} {:>12} {:>8} {:>14} {:>8} {:>16}\n", "N", "global", "x",
                           "per-customer", "x", "per-cust/global");
  const double g1 = Median(tput[{true, writer_counts.front()}]);
  const double p1 = Median(tput[{false, writer_counts.front()}]);
  for (int n : writer_counts) {
    const double g = Median(tput[{true, n}]);
    const double p = Median(tput[{false, n}]);
    std::cout << fmt::format("{:>3} {:>12.0f} {:>8.2f} {:>14.0f} {:>8.2f} {:>16.2f}\n", n, g,
                             g / g1, p, p / p1, p / g);
  }
  return all_ok ? 0 : 3;
}

}  // namespace
}  // namespace ch

int main(int argc, char** argv) { return ch::Main(argc, argv); }
