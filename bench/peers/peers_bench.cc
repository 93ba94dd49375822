// peers_bench: campaign-history next to what a user would pick instead, on one generated
// workload, in one run (docs/benchmarks.md, "Peers"):
//   - campaign-history embedded (SQLite campaign DB + outbox capture + live publisher -> SQLite
//     history), and the same service with capture off (its baseline);
//   - PostgreSQL 15 + `periods` (system versioning), a PostgreSQL audit trigger (as-of through
//     DISTINCT ON), and a plain PostgreSQL table (their baseline), in a new database `peers_<pid>`;
//   - MariaDB system-versioned and plain InnoDB tables (--mariadb-socket).
// Every line of the workload is applied to every system in turn (the order rotates per line),
// so load on the machine hits all of them alike; the per-op latency gives "with versioning ÷
// without". After chosen ops each system names a moment; afterwards the as-of of the biggest
// customer at each moment is timed and compared with the workload model's state right after that
// op, and so is each chosen campaign's log. A mismatch is printed and the bench fails.
//
// Usage: peers_bench [--preset large] [--ops N] [--pg URL] [--mariadb-socket PATH]
//                    [--moments N] [--logs N] [--dir DIR] [--keep]
// bench/peers/run.sh starts MariaDB and finds PostgreSQL for it.
#include <fmt/format.h>
#include <libpq-fe.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "app/runtime.h"
#include "bench/peers/peer.h"
#include "bench/peers/sql_peer.h"
#include "history/sqlite_history_store.h"
#include "workload/generator.h"
#include "workload/replayer.h"

namespace ch::peers {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using testing::ModelCampaign;

double Ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Return "×12" or "×1.4".
std::string Times(double x) {
  return x >= 10 ? fmt::format("×{:.0f}", x) : fmt::format("×{:.2f}", x);
}

void IgnoreNotice(void*, const char*) {}

// campaign-history itself, through the campaign service as `replay` drives it.
class ChPeer final : public Peer {
 public:
  static Result<std::unique_ptr<ChPeer>> Open(const fs::path& dir, bool capture) {
    fs::remove_all(dir);
    RuntimeOptions options;
    options.config.data_dir = dir.string();
    options.config.capture = capture ? CaptureSetting::kLog : CaptureSetting::kNone;
    ASSIGN_OR_RETURN(auto runtime, Runtime::Create(options));
    ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
    if (capture) RETURN_IF_ERROR(runtime->StartPublisher().status());
    return std::unique_ptr<ChPeer>(new ChPeer(std::move(runtime), *service, capture));
  }

  std::string Name() const override {
    return capture_ ? "campaign-history (embedded)" : "campaign-history, capture off";
  }
  bool Versioned() const override { return capture_; }

  Status Apply(const WorkloadLine& line) override {
    ASSIGN_OR_RETURN(auto op, replayer_.Apply(line));
    if (op) last_commit_ = op->committed_at;
    return Status::OK();
  }
  Timestamp last_commit() const { return last_commit_; }

  Result<std::string> Moment() override { return std::to_string(ToUnixMicros(last_commit_)); }

  Result<std::vector<ModelCampaign>> AsOf(int64_t customer_id, const std::string& moment) override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    ASSIGN_OR_RETURN(auto records, history->AsOf(customer_id, FromUnixMicros(std::stoll(moment))));
    return Models(records);
  }

  Result<std::vector<ModelCampaign>> Log(int64_t campaign_id) override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    ASSIGN_OR_RETURN(auto records, history->CampaignLog(campaign_id, {}));
    std::erase_if(records,
                  [](const HistoryRecord& r) { return r.event_type == ChangeOp::kDeleted; });
    return Models(records);
  }

  Result<int64_t> Bytes() override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    if (auto* sqlite = dynamic_cast<SqliteHistoryStore*>(history)) {
      RETURN_IF_ERROR(sqlite->Checkpoint());
    }
    ASSIGN_OR_RETURN(HistoryStats stats, history->Stats());
    return stats.bytes;
  }

  Result<int64_t> VersionsCaptured() override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    ASSIGN_OR_RETURN(HistoryStats stats, history->Stats());
    return stats.records;
  }

  // Wait until the history holds every committed version, then stop the publisher.
  Status Finish() {
    if (!capture_) return Status::OK();
    RETURN_IF_ERROR(runtime_->WaitCaughtUp(std::chrono::minutes(30)));
    runtime_->StopPublisher();
    return Status::OK();
  }

 private:
  ChPeer(std::unique_ptr<Runtime> runtime, CampaignService& service, bool capture)
      : runtime_(std::move(runtime)), replayer_(service), capture_(capture) {}

  static Result<std::vector<ModelCampaign>> Models(const std::vector<HistoryRecord>& records) {
    std::vector<ModelCampaign> out;
    out.reserve(records.size());
    for (const HistoryRecord& r : records) {
      ASSIGN_OR_RETURN(Campaign c, CampaignFromJson(r.snapshot));
      out.push_back(testing::ToModelCampaign(c));
    }
    return out;
  }

  std::unique_ptr<Runtime> runtime_;
  Replayer replayer_;
  bool capture_;
  Timestamp last_commit_{};
};

struct Options {
  std::string preset = "large";
  std::optional<int64_t> ops = 10000;
  uint64_t seed = 1;
  std::string pg_url;
  std::string mariadb_socket;
  int moments = 20;
  int logs = 20;
  std::string dir;
  bool keep = false;
};

// What one peer measured.
struct Measured {
  std::vector<double> write_ms;
  std::vector<double> asof_ms;
  std::vector<double> log_ms;
  double hottest_log_ms = 0;
  size_t asof_campaigns = 0;
  int64_t bytes = 0;
  int64_t versions = 0;
  int mismatches = 0;
};

// The first differing line of two renderings (one campaign per line).
std::string FirstDifference(const std::string& got, const std::string& want) {
  std::istringstream g(got), w(want);
  std::string gl, wl;
  for (int i = 0;; ++i) {
    bool hg = static_cast<bool>(std::getline(g, gl));
    bool hw = static_cast<bool>(std::getline(w, wl));
    if (!hg && !hw) return "(none)";
    if (!hg) gl = "(missing)";
    if (!hw) wl = "(extra)";
    if (gl != wl || !hg || !hw) {
      return fmt::format("entry {}:\n      peer:  {}\n      model: {}", i, gl.substr(0, 240),
                         wl.substr(0, 240));
    }
  }
}

bool Same(const std::string& peer, const std::string& what, const std::vector<ModelCampaign>& got,
          const std::vector<ModelCampaign>& want) {
  std::string g = testing::RenderModelCampaigns(got, {.all_fields = true});
  std::string w = testing::RenderModelCampaigns(want, {.all_fields = true});
  if (g == w) return true;
  std::cerr << fmt::format("MISMATCH {}: {} ({} campaigns, model {}): {}\n", peer, what, got.size(),
                           want.size(), FirstDifference(g, w));
  return false;
}

Status CreatePgDatabase(const std::string& url, const std::string& name) {
  PGconn* c = PQconnectdb(url.c_str());
  std::unique_ptr<PGconn, decltype(&PQfinish)> guard(c, &PQfinish);
  PQsetNoticeProcessor(c, IgnoreNotice, nullptr);
  if (PQstatus(c) != CONNECTION_OK) {
    return UnavailableError(fmt::format("PostgreSQL at {}: {}", url, PQerrorMessage(c)));
  }
  for (std::string sql :
       {fmt::format("DROP DATABASE IF EXISTS {}", name), fmt::format("CREATE DATABASE {}", name)}) {
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c, sql.c_str()), &PQclear);
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
      return UnavailableError(fmt::format("{}: {}", sql, PQresultErrorMessage(r.get())));
    }
  }
  return Status::OK();
}

void DropPgDatabase(const std::string& url, const std::string& name) {
  PGconn* c = PQconnectdb(url.c_str());
  std::unique_ptr<PGconn, decltype(&PQfinish)> guard(c, &PQfinish);
  PQsetNoticeProcessor(c, IgnoreNotice, nullptr);
  std::string sql = fmt::format("DROP DATABASE IF EXISTS {}", name);
  PQclear(PQexec(c, sql.c_str()));
}

// Return `url` pointing at database `name` (a URL with a path, or a conninfo string).
std::string WithDatabase(const std::string& url, const std::string& name) {
  if (url.rfind("postgres", 0) == 0) {
    size_t scheme = url.find("://");
    size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    size_t query = url.find('?');
    std::string base = url.substr(0, slash == std::string::npos ? query : slash);
    std::string rest = query == std::string::npos ? "" : url.substr(query);
    return base + "/" + name + rest;
  }
  return url + " dbname=" + name;
}

Status AddPgPeers(const Options& o, const std::string& db,
                  std::vector<std::unique_ptr<Peer>>& peers) {
  RETURN_IF_ERROR(CreatePgDatabase(o.pg_url, db));
  std::string url = WithDatabase(o.pg_url, db);
  {
    ASSIGN_OR_RETURN(auto conn, ConnectPostgres(url, "public"));
    Status s = conn->Exec("CREATE EXTENSION periods CASCADE");
    if (!s.ok()) {
      return FailedPreconditionError(
          fmt::format("{}\n  the `periods` extension is missing: apt-get install -y "
                      "postgresql-15-periods (on the machine of the server)",
                      s.ToString()));
    }
  }
  for (auto [flavor, schema] : {std::pair{SqlFlavor::kPgPlain, "peer_plain"},
                                {SqlFlavor::kPgPeriods, "peer_periods"},
                                {SqlFlavor::kPgAudit, "peer_audit"}}) {
    ASSIGN_OR_RETURN(auto conn, ConnectPostgres(url, schema));
    ASSIGN_OR_RETURN(auto peer, MakeSqlPeer(flavor, std::move(conn)));
    peers.push_back(std::move(peer));
  }
  return Status::OK();
}

Status AddMariaPeers(const Options& o, const std::string& db,
                     std::vector<std::unique_ptr<Peer>>& peers) {
  for (auto [flavor, suffix] :
       {std::pair{SqlFlavor::kMariaPlain, "_plain"}, {SqlFlavor::kMariaVersioned, "_versioned"}}) {
    ASSIGN_OR_RETURN(auto conn, ConnectMariaDb(o.mariadb_socket, db + suffix));
    RETURN_IF_ERROR(conn->Exec("DROP TABLE IF EXISTS campaigns"));
    ASSIGN_OR_RETURN(auto peer, MakeSqlPeer(flavor, std::move(conn)));
    peers.push_back(std::move(peer));
  }
  return Status::OK();
}

void PrintLoad(std::string_view when) {
  std::ifstream la("/proc/loadavg");
  std::string l;
  std::getline(la, l);
  std::cout << fmt::format("load average {}: {}\n", when, l);
}

// The baseline of a versioned peer: the plain peer of the same server.
size_t BaselineOf(const std::vector<std::unique_ptr<Peer>>& peers, size_t i) {
  std::string name = peers[i]->Name();
  std::string server = name.substr(0, name.find_first_of(" ,("));
  for (size_t j = 0; j < peers.size(); ++j) {
    std::string other = peers[j]->Name();
    if (!peers[j]->Versioned() && other.rfind(server, 0) == 0) return j;
  }
  return i;
}

int Run(const Options& o) {
  auto fail = [](const Status& s) {
    std::cerr << "peers_bench: " << s.ToString() << "\n";
    return 1;
  };
  fs::path dir = o.dir.empty() ? fs::temp_directory_path() / fmt::format("ch-peers-{}", getpid())
                               : fs::path(o.dir);
  fs::create_directories(dir);

  auto gen = GeneratorPreset(o.preset);
  if (!gen.ok()) return fail(gen.status());
  gen->seed = o.seed;
  if (o.ops) gen->ops = *o.ops;
  std::string file = (dir / "workload.jsonl").string();
  auto stats = GenerateWorkloadFile(*gen, file);
  if (!stats.ok()) return fail(stats.status());
  auto lines = ReadWorkloadFile(file);
  if (!lines.ok()) return fail(lines.status());
  int64_t big = 1;
  for (const WorkloadLine& l : *lines) {
    if (l.op == WorkloadOp::kHeader && !l.header().big_customers.empty()) {
      big = l.header().big_customers.front();
    }
  }
  std::cout << fmt::format(
      "workload: preset {} seed {} ops {}: {} lines, {} versions expected; big customer {}\n",
      o.preset, gen->seed, stats->ops, stats->lines, stats->expected_versions, big);
  std::cout << fmt::format("machine: {} cores\n", std::thread::hardware_concurrency());
  PrintLoad("at start");

  // The systems. campaign-history first: the model takes its commit times.
  std::vector<std::unique_ptr<Peer>> peers;
  auto ch_off = ChPeer::Open(dir / "ch-off", false);
  if (!ch_off.ok()) return fail(ch_off.status());
  auto ch_on = ChPeer::Open(dir / "ch-on", true);
  if (!ch_on.ok()) return fail(ch_on.status());
  ChPeer* ch = ch_on->get();
  peers.push_back(std::move(*ch_on));
  peers.push_back(std::move(*ch_off));
  std::string db = fmt::format("peers_{}", getpid());
  std::vector<std::string> skipped;
  if (o.pg_url.empty()) {
    skipped.push_back("PostgreSQL peers: no --pg URL (e.g. --pg \"$CH_TEST_PG_URL\")");
  } else if (Status s = AddPgPeers(o, db, peers); !s.ok()) {
    return fail(s);
  }
  if (o.mariadb_socket.empty()) {
    skipped.push_back(
        "MariaDB peers: no --mariadb-socket (bench/peers/run.sh starts a server; apt-get install "
        "-y mariadb-server)");
  } else if (!HaveMariaDbClient()) {
    return fail(FailedPreconditionError(
        "--mariadb-socket given, but this build has no MariaDB client: apt-get install -y "
        "libmariadb-dev, re-run cmake and rebuild peers_bench"));
  } else if (Status s = AddMariaPeers(o, db, peers); !s.ok()) {
    return fail(s);
  }
  for (const std::string& s : skipped) std::cout << "SKIPPED " << s << "\n";

  // The moments: right after `moments` ops drawn at random among the ops (not the seeds).
  std::vector<int64_t> op_seqs;
  for (const WorkloadLine& l : *lines) {
    if (l.applied() && l.op != WorkloadOp::kSeed) op_seqs.push_back(l.seq);
  }
  std::mt19937_64 rng(42);
  std::set<int64_t> check_seqs;
  while (!op_seqs.empty() && check_seqs.size() < std::min<size_t>(o.moments, op_seqs.size())) {
    check_seqs.insert(op_seqs[rng() % op_seqs.size()]);
  }

  // Apply every line to every system, rotating who goes first.
  testing::WorkloadModel model;
  std::vector<Measured> m(peers.size());
  std::map<int64_t, std::vector<std::string>> moments;  // seq -> per peer
  auto t_apply = SteadyClock::now();
  size_t n = 0;
  for (const WorkloadLine& line : *lines) {
    if (!line.applied()) continue;
    for (size_t k = 0; k < peers.size(); ++k) {
      size_t i = (k + n) % peers.size();
      auto t0 = SteadyClock::now();
      if (Status s = peers[i]->Apply(line); !s.ok()) return fail(s);
      m[i].write_ms.push_back(Ms(SteadyClock::now() - t0));
    }
    ++n;
    if (auto r = model.Apply(line, ch->last_commit()); !r.ok()) return fail(r.status());
    if (check_seqs.count(line.seq)) {
      for (auto& p : peers) {
        auto moment = p->Versioned() ? p->Moment() : Result<std::string>(std::string());
        if (!moment.ok()) return fail(moment.status());
        moments[line.seq].push_back(*moment);
      }
      // The next op's transaction must start strictly after the moment on every clock.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (n % 2000 == 0) {
      std::cout << fmt::format("  applied {} lines ({:.0f} s)\n", n,
                               Ms(SteadyClock::now() - t_apply) / 1000);
    }
  }
  std::cout << fmt::format("applied {} lines to {} systems in {:.1f} s\n", n, peers.size(),
                           Ms(SteadyClock::now() - t_apply) / 1000);
  PrintLoad("after the writes");
  if (Status s = ch->Finish(); !s.ok()) return fail(s);

  // The campaigns whose log is read: `logs` at random among the big customer's, and its
  // hottest (most versions).
  std::map<int64_t, std::vector<ModelCampaign>> versions_of;
  for (const auto& op : model.History()) {
    for (const auto& v : op.versions) {
      if (v.customer_id == big && v.op != ChangeOp::kDeleted) {
        versions_of[v.campaign_id].push_back(v.snapshot);
      }
    }
  }
  std::vector<int64_t> ids;
  int64_t hottest = 0;
  size_t most = 0;
  for (const auto& [id, vs] : versions_of) {
    ids.push_back(id);
    if (vs.size() > most) most = vs.size(), hottest = id;
  }
  std::vector<int64_t> log_ids;
  for (int i = 0; i < o.logs && !ids.empty(); ++i) log_ids.push_back(ids[rng() % ids.size()]);

  int mismatches = 0;
  for (size_t i = 0; i < peers.size(); ++i) {
    Peer& p = *peers[i];
    if (!p.Versioned()) continue;
    for (const auto& [seq, per_peer] : moments) {
      auto t0 = SteadyClock::now();
      auto got = p.AsOf(big, per_peer[i]);
      m[i].asof_ms.push_back(Ms(SteadyClock::now() - t0));
      if (!got.ok()) return fail(got.status());
      m[i].asof_campaigns = std::max(m[i].asof_campaigns, got->size());
      if (!Same(p.Name(), fmt::format("as-of customer {} right after seq {}", big, seq), *got,
                model.StateAfterSeq(big, seq))) {
        ++m[i].mismatches;
      }
    }
    for (size_t k = 0; k <= log_ids.size(); ++k) {
      int64_t id = k < log_ids.size() ? log_ids[k] : hottest;
      auto t0 = SteadyClock::now();
      auto got = p.Log(id);
      double ms = Ms(SteadyClock::now() - t0);
      if (!got.ok()) return fail(got.status());
      if (k < log_ids.size()) {
        m[i].log_ms.push_back(ms);
      } else {
        m[i].hottest_log_ms = ms;
      }
      if (!Same(p.Name(), fmt::format("log of campaign {}", id), *got, versions_of[id])) {
        ++m[i].mismatches;
      }
    }
    auto versions = p.VersionsCaptured();
    if (!versions.ok()) return fail(versions.status());
    m[i].versions = *versions;
    if (*versions != stats->expected_versions) {
      std::cerr << fmt::format("MISMATCH {}: captured {} versions, the workload has {}\n", p.Name(),
                               *versions, stats->expected_versions);
      ++m[i].mismatches;
    }
    auto bytes = p.Bytes();
    if (!bytes.ok()) return fail(bytes.status());
    m[i].bytes = *bytes;
    mismatches += m[i].mismatches;
  }

  // The report.
  const Measured& ref = m[0];
  double ref_asof = Percentile(ref.asof_ms, 0.5);
  std::cout << fmt::format(
      "\nas-of: customer {} ({} campaigns at most) at {} moments; log: {} random campaigns of "
      "it + the hottest ({} versions)\n",
      big, ref.asof_campaigns, moments.size(), log_ids.size(), most);
  std::cout << fmt::format("{:<30} {:>16} {:>9} {:>14} {:>9} {:>18} {:>16} {:>9} {:>16} {}\n",
                           "system", "as-of med/p95 ms", "÷ ours", "log med/hot ms", "÷ ours",
                           "write med/p99 ms", "÷ w/o: med/p99", "thr ÷ w/o", "B/version",
                           "versions captured");
  for (size_t i = 0; i < peers.size(); ++i) {
    const Measured& x = m[i];
    double wmed = Percentile(x.write_ms, 0.5), wp99 = Percentile(x.write_ms, 0.99);
    std::string ratio = "", thr = "";
    if (peers[i]->Versioned()) {
      const Measured& b = m[BaselineOf(peers, i)];
      double sum = 0, bsum = 0;
      for (double v : x.write_ms) sum += v;
      for (double v : b.write_ms) bsum += v;
      ratio = fmt::format("×{:.2f}/×{:.2f}", wmed / Percentile(b.write_ms, 0.5),
                          wp99 / Percentile(b.write_ms, 0.99));
      thr = fmt::format("×{:.2f}", bsum / sum);
    }
    std::string asof = "", asof_ratio = "", log = "", log_ratio = "", bpv = "", captured = "";
    if (peers[i]->Versioned()) {
      double a = Percentile(x.asof_ms, 0.5), l = Percentile(x.log_ms, 0.5);
      asof = fmt::format("{:.1f}/{:.1f}", a, Percentile(x.asof_ms, 0.95));
      asof_ratio = Times(a / ref_asof);
      log = fmt::format("{:.2f}/{:.2f}", l, x.hottest_log_ms);
      log_ratio = Times(l / Percentile(ref.log_ms, 0.5));
      bpv = fmt::format("{:.0f}", static_cast<double>(x.bytes) / stats->expected_versions);
      captured = fmt::format("{} of {}{}", x.versions, stats->expected_versions,
                             x.mismatches ? fmt::format("  {} MISMATCHES", x.mismatches) : "");
    }
    std::cout << fmt::format("{:<30} {:>16} {:>9} {:>14} {:>9} {:>18} {:>16} {:>9} {:>16} {}\n",
                             peers[i]->Name(), asof, asof_ratio, log, log_ratio,
                             fmt::format("{:.3f}/{:.3f}", wmed, wp99), ratio, thr, bpv, captured);
  }
  std::cout << "(÷ ours: the peer's median over campaign-history's; ÷ w/o: versioned over the same "
               "server without versioning, per op; thr: ops/s without ÷ with)\n";
  for (const std::string& s : skipped) std::cout << "SKIPPED " << s << "\n";
  PrintLoad("at the end");
  peers.clear();
  if (!o.keep) {
    fs::remove_all(dir);
    if (!o.pg_url.empty()) DropPgDatabase(o.pg_url, db);
  }
  if (mismatches > 0) {
    std::cerr << fmt::format("peers_bench: FAILED: {} answers differ from the workload model\n",
                             mismatches);
    return 1;
  }
  std::cout << "every answer matched the workload model\n";
  return 0;
}

}  // namespace
}  // namespace ch::peers

int main(int argc, char** argv) {
  CLI::App app{"campaign-history next to its peers (docs/benchmarks.md, Peers)"};
  ch::peers::Options o;
  app.add_option("--preset", o.preset, "Workload preset (small | large)")->capture_default_str();
  app.add_option("--ops", o.ops, "Ops of the preset to generate")->capture_default_str();
  app.add_option("--seed", o.seed, "Workload seed")->capture_default_str();
  app.add_option("--pg", o.pg_url, "PostgreSQL server for the PostgreSQL peers (with periods)");
  app.add_option("--mariadb-socket", o.mariadb_socket, "MariaDB server's unix socket");
  app.add_option("--moments", o.moments, "as-of moments (each checked)")->capture_default_str();
  app.add_option("--logs", o.logs, "Campaign logs read (each checked)")->capture_default_str();
  app.add_option("--dir", o.dir, "Work directory [default: a new temp dir]");
  app.add_flag("--keep", o.keep, "Keep the work directory and the databases");
  CLI11_PARSE(app, argc, argv);
  return ch::peers::Run(o);
}
