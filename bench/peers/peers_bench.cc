// peers_bench: campaign-history next to what a user would pick instead, on one generated
// workload, in one run (docs/benchmarks.md, "Peers"):
//   - campaign-history embedded (SQLite campaign DB + outbox capture + live publisher -> SQLite
//     history), and on PostgreSQL + Pub/Sub (log capture through a replication slot, relayed
//     through the emulator to the publisher -> PostgreSQL history; with --pg and
//     PUBSUB_EMULATOR_HOST), each next to the same setup with capture off (its baseline);
//   - PostgreSQL 15 + `periods` (system versioning), a PostgreSQL audit trigger (as-of through
//     DISTINCT ON), and a plain PostgreSQL table (their baseline), in a new database `peers_<pid>`;
//   - MariaDB system-versioned and plain InnoDB tables (--mariadb-socket; skipped when built
//     without libmariadb).
// Every line of the workload is applied to every system in turn (the order rotates per line),
// so load on the machine hits all of them alike; the per-op latency gives "with versioning ÷
// without". After chosen ops each versioned system names a moment in its own clock. Once every
// write is applied and campaign-history's histories hold every version, each query is run on
// every versioned system in turn (rotating order again): the as-of of the biggest customer at
// each moment, then the log of chosen campaigns. A query is timed from the call until its rows
// are in this process (as the client library or the history store returns them); converting
// them for the check is not timed. Every answer is compared with the workload model (the state
// right after that op; the campaign's versions), so a fast wrong answer cannot win: a mismatch
// is printed and the bench fails. docs/benchmarks.md ("Peers") says what each column measures.
//
// Usage: peers_bench [--preset large] [--ops N] [--pg URL] [--mariadb-socket PATH]
//                    [--moments N] [--logs N] [--dir DIR] [--keep]
// bench/peers/run.sh starts MariaDB and finds PostgreSQL and the Pub/Sub emulator for it.
#include <fmt/format.h>
#include <libpq-fe.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "bench/peers/ch_peer.h"
#include "bench/peers/peer.h"
#include "bench/peers/sql_peer.h"
#include "common/clock.h"
#include "workload/generator.h"

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
  // Converting each as-of answer to the model's form for the check (not part of the query).
  std::vector<double> convert_ms;
  double hottest_log_ms = 0;
  size_t asof_campaigns = 0;
  int64_t bytes = 0;
  int64_t versions = 0;
  int mismatches = 0;
};

bool Same(const std::string& peer, const std::string& what, const std::vector<ModelCampaign>& got,
          const std::vector<ModelCampaign>& want) {
  std::string g = testing::RenderModelCampaigns(got, {.all_fields = true});
  std::string w = testing::RenderModelCampaigns(want, {.all_fields = true});
  if (g == w) return true;
  std::cerr << fmt::format("MISMATCH {}: {} ({} campaigns, model {}): {}\n", peer, what, got.size(),
                           want.size(), testing::FirstRenderingDifference(g, w, "peer", 240));
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

// One system of the run: the peer, what it measured, and the system without versioning it is
// compared with (itself when it is not versioned).
struct System {
  std::unique_ptr<Peer> peer;
  size_t baseline = 0;
  Measured m;
};

struct Bench {
  Options o;
  fs::path dir;
  std::string db;  // PostgreSQL database and MariaDB prefix of this run
  std::vector<System> systems;
  std::vector<ChPeer*> ch;           // the campaign-history systems (closed first)
  std::vector<std::string> pg_dbs;   // dropped at the end
  std::vector<std::string> skipped;  // printed with the report
  std::vector<WorkloadLine> lines;
  GeneratorStats stats;
  int64_t big = 1;
  // The moments: seq of the op after which they were taken -> one per system.
  std::map<int64_t, std::vector<std::string>> moments;
  testing::WorkloadModel model;
};

// Add a baseline system and the versioned system compared with it.
void AddPair(Bench& b, std::unique_ptr<Peer> plain, std::unique_ptr<Peer> versioned) {
  size_t base = b.systems.size();
  b.systems.push_back({std::move(plain), base, {}});
  b.systems.push_back({std::move(versioned), base, {}});
}

Status AddChPair(Bench& b, ChPeerOptions on, ChPeerOptions off) {
  on.capture = true;
  off.capture = false;
  ASSIGN_OR_RETURN(auto off_peer, ChPeer::Open(off));
  b.ch.push_back(off_peer.get());
  ASSIGN_OR_RETURN(auto on_peer, ChPeer::Open(on));
  b.ch.push_back(on_peer.get());
  AddPair(b, std::move(off_peer), std::move(on_peer));
  return Status::OK();
}

// campaign-history embedded, and on PostgreSQL + Pub/Sub when both are there.
Status AddChPeers(Bench& b) {
  RETURN_IF_ERROR(AddChPair(b, {.name = "campaign-history (embedded)", .dir = b.dir / "ch-on"},
                            {.name = "campaign-history, capture off", .dir = b.dir / "ch-off"}));
  if (b.o.pg_url.empty()) return Status::OK();
  const char* emulator = std::getenv("PUBSUB_EMULATOR_HOST");
  if (emulator == nullptr || *emulator == '\0') {
    b.skipped.push_back(
        "campaign-history on PostgreSQL + Pub/Sub: PUBSUB_EMULATOR_HOST is not set (start the "
        "emulator: scripts/services.sh start)");
    return Status::OK();
  }
  std::string on_db = b.db + "_ch_on", off_db = b.db + "_ch_off";
  for (const std::string& name : {on_db, off_db}) {
    RETURN_IF_ERROR(CreatePgDatabase(b.o.pg_url, name));
    b.pg_dbs.push_back(name);
  }
  std::string project = fmt::format("peers-{}", getpid());
  return AddChPair(b,
                   {.name = "campaign-history (PG + Pub/Sub)",
                    .dir = b.dir / "ch-pg-on",
                    .pg_url = WithDatabase(b.o.pg_url, on_db),
                    .pubsub_project = project},
                   {.name = "campaign-history on PG, off",
                    .dir = b.dir / "ch-pg-off",
                    .pg_url = WithDatabase(b.o.pg_url, off_db),
                    .pubsub_project = project});
}

Status AddPgPeers(Bench& b) {
  RETURN_IF_ERROR(CreatePgDatabase(b.o.pg_url, b.db));
  b.pg_dbs.push_back(b.db);
  std::string url = WithDatabase(b.o.pg_url, b.db);
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
  auto open = [&](SqlFlavor flavor, const char* schema) -> Result<std::unique_ptr<Peer>> {
    ASSIGN_OR_RETURN(auto conn, ConnectPostgres(url, schema));
    return MakeSqlPeer(flavor, std::move(conn));
  };
  ASSIGN_OR_RETURN(auto plain, open(SqlFlavor::kPgPlain, "peer_plain"));
  ASSIGN_OR_RETURN(auto periods, open(SqlFlavor::kPgPeriods, "peer_periods"));
  ASSIGN_OR_RETURN(auto audit, open(SqlFlavor::kPgAudit, "peer_audit"));
  AddPair(b, std::move(plain), std::move(periods));
  b.systems.push_back({std::move(audit), b.systems.size() - 2, {}});
  return Status::OK();
}

Status AddMariaPeers(Bench& b) {
  auto open = [&](SqlFlavor flavor, const char* suffix) -> Result<std::unique_ptr<Peer>> {
    ASSIGN_OR_RETURN(auto conn, ConnectMariaDb(b.o.mariadb_socket, b.db + suffix));
    RETURN_IF_ERROR(conn->Exec("DROP TABLE IF EXISTS campaigns"));
    return MakeSqlPeer(flavor, std::move(conn));
  };
  ASSIGN_OR_RETURN(auto plain, open(SqlFlavor::kMariaPlain, "_plain"));
  ASSIGN_OR_RETURN(auto versioned, open(SqlFlavor::kMariaVersioned, "_versioned"));
  AddPair(b, std::move(plain), std::move(versioned));
  return Status::OK();
}

Status AddSystems(Bench& b) {
  RETURN_IF_ERROR(AddChPeers(b));
  if (b.o.pg_url.empty()) {
    b.skipped.push_back("PostgreSQL peers: no --pg URL (e.g. --pg \"$CH_TEST_PG_URL\")");
  } else {
    RETURN_IF_ERROR(AddPgPeers(b));
  }
  if (!HaveMariaDbClient()) {
    b.skipped.push_back(
        "MariaDB peers: skipped: built without libmariadb (apt-get install -y libmariadb-dev, "
        "re-run cmake, rebuild peers_bench)");
  } else if (b.o.mariadb_socket.empty()) {
    b.skipped.push_back(
        "MariaDB peers: no --mariadb-socket (bench/peers/run.sh starts a server; apt-get install "
        "-y mariadb-server)");
  } else {
    RETURN_IF_ERROR(AddMariaPeers(b));
  }
  for (const std::string& s : b.skipped) std::cout << "SKIPPED " << s << "\n";
  return Status::OK();
}

void PrintLoad(std::string_view when) {
  std::ifstream la("/proc/loadavg");
  std::string l;
  std::getline(la, l);
  std::cout << fmt::format("load average {}: {}\n", when, l);
}

Status Generate(Bench& b) {
  ASSIGN_OR_RETURN(GeneratorOptions gen, GeneratorPreset(b.o.preset));
  gen.seed = b.o.seed;
  if (b.o.ops) gen.ops = *b.o.ops;
  std::string file = (b.dir / "workload.jsonl").string();
  ASSIGN_OR_RETURN(b.stats, GenerateWorkloadFile(gen, file));
  ASSIGN_OR_RETURN(b.lines, ReadWorkloadFile(file));
  for (const WorkloadLine& l : b.lines) {
    if (l.op == WorkloadOp::kHeader && !l.header().big_customers.empty()) {
      b.big = l.header().big_customers.front();
    }
  }
  std::cout << fmt::format(
      "workload: preset {} seed {} ops {}: {} lines, {} versions expected; big customer {}\n",
      b.o.preset, gen.seed, b.stats.ops, b.stats.lines, b.stats.expected_versions, b.big);
  return Status::OK();
}

// The moments: right after `moments` ops drawn at random among the ops (not the seeds).
std::set<int64_t> ChooseMoments(const Bench& b, std::mt19937_64& rng) {
  std::vector<int64_t> op_seqs;
  for (const WorkloadLine& l : b.lines) {
    if (l.applied() && l.op != WorkloadOp::kSeed) op_seqs.push_back(l.seq);
  }
  std::set<int64_t> out;
  size_t want = std::min<size_t>(static_cast<size_t>(b.o.moments), op_seqs.size());
  while (out.size() < want) out.insert(op_seqs[rng() % op_seqs.size()]);
  return out;
}

// Apply every line to every system, rotating who goes first; after the chosen ops each
// versioned system names a moment.
Status ApplyAll(Bench& b, const std::set<int64_t>& check_seqs) {
  auto t_apply = SteadyClock::now();
  size_t n = 0;
  const size_t k_systems = b.systems.size();
  for (const WorkloadLine& line : b.lines) {
    if (!line.applied()) continue;
    for (size_t k = 0; k < k_systems; ++k) {
      System& s = b.systems[(k + n) % k_systems];
      auto t0 = SteadyClock::now();
      RETURN_IF_ERROR(s.peer->Apply(line));
      s.m.write_ms.push_back(Ms(SteadyClock::now() - t0));
    }
    ++n;
    RETURN_IF_ERROR(b.model.Apply(line, SystemClock::Default().Now()).status());
    if (check_seqs.count(line.seq)) {
      for (System& s : b.systems) {
        std::string moment;
        if (s.peer->Versioned()) {
          ASSIGN_OR_RETURN(moment, s.peer->Moment());
        }
        b.moments[line.seq].push_back(moment);
      }
      // The next op's transaction must start strictly after the moment on every clock.
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (n % 2000 == 0) {
      std::cout << fmt::format("  applied {} lines ({:.0f} s)\n", n,
                               Ms(SteadyClock::now() - t_apply) / 1000);
    }
  }
  std::cout << fmt::format("applied {} lines to {} systems in {:.1f} s\n", n, k_systems,
                           Ms(SteadyClock::now() - t_apply) / 1000);
  return Status::OK();
}

// The big customer's campaigns' versions, by campaign (not the tombstones).
std::map<int64_t, std::vector<ModelCampaign>> VersionsOfBig(const Bench& b) {
  std::map<int64_t, std::vector<ModelCampaign>> out;
  for (const auto& op : b.model.History()) {
    for (const auto& v : op.versions) {
      if (v.customer_id == b.big && v.op != ChangeOp::kDeleted) {
        out[v.campaign_id].push_back(v.snapshot);
      }
    }
  }
  return out;
}

std::vector<size_t> VersionedSystems(const Bench& b) {
  std::vector<size_t> out;
  for (size_t i = 0; i < b.systems.size(); ++i) {
    if (b.systems[i].peer->Versioned()) out.push_back(i);
  }
  return out;
}

// One timed query: its milliseconds, the milliseconds converting its answer for the check took
// (not part of the query), and the number of campaigns answered.
struct Timed {
  double ms = 0;
  double convert_ms = 0;
  size_t campaigns = 0;
};

// Time one query (`run`: AsOf or Log) of system `s`, then check its answer against `want`.
template <typename Query>
Result<Timed> TimedCheck(System& s, const std::string& what, const std::vector<ModelCampaign>& want,
                         Query run) {
  auto t0 = SteadyClock::now();
  RETURN_IF_ERROR(run(*s.peer));
  auto t1 = SteadyClock::now();
  ASSIGN_OR_RETURN(auto got, s.peer->Answer());
  Timed out{Ms(t1 - t0), Ms(SteadyClock::now() - t1), got.size()};
  if (!Same(s.peer->Name(), what, got, want)) ++s.m.mismatches;
  return out;
}

// The as-of of the big customer at every moment and the logs, each checked. For each query
// the systems take turns in rotating order, so load on the machine hits all of them alike.
Status MeasureQueries(Bench& b, std::mt19937_64& rng, int64_t& hottest, size_t& most) {
  std::vector<size_t> v = VersionedSystems(b);
  size_t turn = 0;
  for (const auto& [seq, per_system] : b.moments) {
    std::vector<ModelCampaign> want = b.model.StateAfterSeq(b.big, seq);
    std::string what = fmt::format("as-of customer {} right after seq {}", b.big, seq);
    for (size_t k = 0; k < v.size(); ++k) {
      size_t i = v[(k + turn) % v.size()];
      const std::string& moment = per_system[i];
      Measured& m = b.systems[i].m;
      ASSIGN_OR_RETURN(auto timed, TimedCheck(b.systems[i], what, want,
                                              [&](Peer& p) { return p.AsOf(b.big, moment); }));
      m.asof_ms.push_back(timed.ms);
      m.convert_ms.push_back(timed.convert_ms);
      m.asof_campaigns = std::max(m.asof_campaigns, timed.campaigns);
    }
    ++turn;
  }
  // The campaigns whose log is read: `logs` at random among the big customer's, then its
  // hottest (most versions).
  auto versions_of = VersionsOfBig(b);
  std::vector<int64_t> ids;
  for (const auto& [id, vs] : versions_of) {
    ids.push_back(id);
    if (vs.size() > most) most = vs.size(), hottest = id;
  }
  std::vector<int64_t> log_ids;
  for (int i = 0; i < b.o.logs && !ids.empty(); ++i) log_ids.push_back(ids[rng() % ids.size()]);
  log_ids.push_back(hottest);
  for (size_t n = 0; n < log_ids.size(); ++n) {
    int64_t id = log_ids[n];
    for (size_t k = 0; k < v.size(); ++k) {
      System& s = b.systems[v[(k + turn) % v.size()]];
      ASSIGN_OR_RETURN(auto timed, TimedCheck(s, fmt::format("log of campaign {}", id),
                                              versions_of[id], [&](Peer& p) { return p.Log(id); }));
      if (n + 1 < log_ids.size()) {
        s.m.log_ms.push_back(timed.ms);
      } else {
        s.m.hottest_log_ms = timed.ms;
      }
    }
    ++turn;
  }
  return Status::OK();
}

// Versions captured (checked against the workload) and bytes of every system.
Status MeasureStorage(Bench& b) {
  for (System& s : b.systems) {
    ASSIGN_OR_RETURN(s.m.bytes, s.peer->Bytes());
    if (!s.peer->Versioned()) continue;
    ASSIGN_OR_RETURN(s.m.versions, s.peer->VersionsCaptured());
    if (s.m.versions != b.stats.expected_versions) {
      std::cerr << fmt::format("MISMATCH {}: captured {} versions, the workload has {}\n",
                               s.peer->Name(), s.m.versions, b.stats.expected_versions);
      ++s.m.mismatches;
    }
  }
  return Status::OK();
}

double Sum(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return sum;
}

void PrintRow(const std::vector<std::string>& cells) {
  std::cout << fmt::format("{:<32} {:>16} {:>8} {:>14} {:>8} {:>16} {:>15} {:>9} {:>9} {}\n",
                           cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6],
                           cells[7], cells[8], cells[9]);
}

void Report(const Bench& b, int64_t hottest, size_t most) {
  const Measured& ref = b.systems[1].m;  // campaign-history (embedded)
  const double versions = static_cast<double>(b.stats.expected_versions);
  std::cout << fmt::format(
      "\nas-of: customer {} ({} campaigns at most) at {} moments; log: {} random campaigns of it "
      "+ the hottest (campaign {}, {} versions)\n",
      b.big, ref.asof_campaigns, b.moments.size(), ref.log_ms.size(), hottest, most);
  PrintRow({"system", "as-of med/p95 ms", "÷ ours", "log med/hot ms", "÷ ours", "write med/p99 ms",
            "÷ w/o: med/p99", "thr ÷ w/o", "B/version", "versions captured"});
  for (const System& s : b.systems) {
    const Measured& x = s.m;
    std::vector<std::string> c(10);
    c[0] = s.peer->Name();
    double wmed = Percentile(x.write_ms, 0.5), wp99 = Percentile(x.write_ms, 0.99);
    c[5] = fmt::format("{:.3f}/{:.3f}", wmed, wp99);
    if (s.peer->Versioned()) {
      const Measured& base = b.systems[s.baseline].m;
      double a = Percentile(x.asof_ms, 0.5), l = Percentile(x.log_ms, 0.5);
      c[1] = fmt::format("{:.1f}/{:.1f}", a, Percentile(x.asof_ms, 0.95));
      c[2] = Times(a / Percentile(ref.asof_ms, 0.5));
      c[3] = fmt::format("{:.2f}/{:.2f}", l, x.hottest_log_ms);
      c[4] = Times(l / Percentile(ref.log_ms, 0.5));
      c[6] = fmt::format("×{:.2f}/×{:.2f}", wmed / Percentile(base.write_ms, 0.5),
                         wp99 / Percentile(base.write_ms, 0.99));
      c[7] = fmt::format("×{:.2f}", Sum(base.write_ms) / Sum(x.write_ms));
      c[8] = fmt::format("{:.0f}", static_cast<double>(x.bytes - base.bytes) / versions);
      c[9] = fmt::format("{} of {}{}", x.versions, b.stats.expected_versions,
                         x.mismatches ? fmt::format("  {} MISMATCHES", x.mismatches) : "");
    }
    PrintRow(c);
  }
  std::cout << "(÷ ours: the median over campaign-history (embedded)'s; ÷ w/o: per-op latency "
               "over the same server without versioning; thr ÷ w/o: ops/s with ÷ without; "
               "B/version: bytes on disk that versioning adds, per version)\n";
  std::cout << "not in the as-of times: converting each answer to the model's form for the "
               "check, median ms:";
  for (const System& s : b.systems) {
    if (!s.peer->Versioned()) continue;
    std::cout << fmt::format(" {} {:.1f};", s.peer->Name(), Percentile(s.m.convert_ms, 0.5));
  }
  std::cout << "\n";
  for (const std::string& s : b.skipped) std::cout << "SKIPPED " << s << "\n";
}

Status RunBench(Bench& b) {
  RETURN_IF_ERROR(Generate(b));
  std::cout << fmt::format("machine: {} cores\n", std::thread::hardware_concurrency());
  PrintLoad("at start");
  RETURN_IF_ERROR(AddSystems(b));
  std::mt19937_64 rng(42);
  std::set<int64_t> check_seqs = ChooseMoments(b, rng);
  RETURN_IF_ERROR(ApplyAll(b, check_seqs));
  PrintLoad("after the writes");
  auto t_wait = SteadyClock::now();
  for (ChPeer* ch : b.ch) RETURN_IF_ERROR(ch->Finish(b.stats.expected_versions));
  std::cout << fmt::format("campaign-history histories caught up {:.1f} s after the last write\n",
                           Ms(SteadyClock::now() - t_wait) / 1000);
  int64_t hottest = 0;
  size_t most = 0;
  RETURN_IF_ERROR(MeasureQueries(b, rng, hottest, most));
  RETURN_IF_ERROR(MeasureStorage(b));
  Report(b, hottest, most);
  PrintLoad("at the end");
  return Status::OK();
}

int Run(const Options& o) {
  Bench b;
  b.o = o;
  b.dir = o.dir.empty() ? fs::temp_directory_path() / fmt::format("ch-peers-{}", getpid())
                        : fs::path(o.dir);
  b.db = fmt::format("peers_{}", getpid());
  fs::create_directories(b.dir);
  Status s = RunBench(b);
  int mismatches = 0;
  for (const System& x : b.systems) mismatches += x.m.mismatches;
  for (ChPeer* ch : b.ch) ch->Close();  // drops the slots, even with --keep
  b.systems.clear();
  if (!o.keep) {
    fs::remove_all(b.dir);
    for (const std::string& db : b.pg_dbs) DropPgDatabase(o.pg_url, db);
  }
  if (!s.ok()) {
    std::cerr << "peers_bench: " << s.ToString() << "\n";
    return 1;
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
  app.add_option("--pg", o.pg_url,
                 "PostgreSQL server (with periods) for the PostgreSQL peers and campaign-history "
                 "on PostgreSQL + Pub/Sub (which also needs PUBSUB_EMULATOR_HOST)");
  app.add_option("--mariadb-socket", o.mariadb_socket, "MariaDB server's unix socket");
  app.add_option("--moments", o.moments, "as-of moments (each checked)")->capture_default_str();
  app.add_option("--logs", o.logs, "Campaign logs read (each checked)")->capture_default_str();
  app.add_option("--dir", o.dir, "Work directory [default: a new temp dir]");
  app.add_flag("--keep", o.keep, "Keep the work directory and the databases");
  bool client = false;
  app.add_flag("--have-mariadb-client", client,
               "Exit 0 when this build has the MariaDB client, else 3 (for run.sh)");
  CLI11_PARSE(app, argc, argv);
  if (client) return ch::peers::HaveMariaDbClient() ? 0 : 3;
  return ch::peers::Run(o);
}
