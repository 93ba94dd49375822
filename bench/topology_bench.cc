// topology_bench: the production topology (PostgreSQL + Pub/Sub) measured (docs/benchmarks.md,
// "Production topology"). Prints numbers; it is not a test.
//
//   1. write-path cost per campaign change on PostgreSQL: writer latency (median, p99) of
//      CampaignService updates of one campaign and of a generated workload mix, with capture none
//      vs notify (NotifyPublisher to Pub/Sub; the request path only enqueues) vs log (slot drained
//      by a running `serve --roles capture` process). One database per mode, fed the same ops, so
//      the three stay the same size; modes alternate within each round; medians over rounds.
//   2. end-to-end throughput (versions/s) with log capture: a workload replayed into PostgreSQL
//      while `serve --roles capture` and 1 or 2 `serve --roles publisher` processes (sharing the
//      subscription) run, from the first commit until every campaign's newest version is in the
//      history store; beside it the replay's own write throughput (how fast changes are made).
//      Optionally also publisher -> history topic -> `serve --roles sink`.
//   3. commit-to-queryable lag (ingested_at - event_time) p50/p99 over every record of those runs;
//   4. peak RSS (VmHWM) of each role process, read just before it is stopped;
//   5. share of versions captured, notify vs log, on the same (bursty) workload, and notify's sum
//      of missed_versions.
//
// Needs a PostgreSQL server with wal_level=logical (--pg, default $CH_TEST_PG_URL), the Pub/Sub
// emulator ($PUBSUB_EMULATOR_HOST) and the campaign-history binary (--binary). Creates and drops
// its own databases, slots, publications, Pub/Sub projects' topics and processes.
//
// Usage: topology_bench [--parts 1,2,5] [--rounds N] [--updates N] [--mix-ops N]
//                       [--preset large] [--ops N] [--repeat N] [--no-sink] [--dir DIR] [--keep]
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "api/api_keys.h"
#include "app/committed_versions.h"
#include "app/runtime.h"
#include "bus/pubsub_change_bus.h"
#include "campaign/campaign_service.h"
#include "campaign/pg_client.h"
#include "capture/pg_logical_source.h"
#include "common/sqlite.h"
#include "history/sqlite_history_store.h"
#include "workload/generator.h"
#include "workload/replayer.h"
#include "workload/workload.h"

#ifndef CH_BINARY_DEFAULT
#define CH_BINARY_DEFAULT "campaign-history"
#endif

namespace ch {
namespace {

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }
double Micro(SteadyClock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}
double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string l;
  std::getline(in, l);
  return l;
}

double LoadAverage1() {
  std::istringstream in(ReadFirstLine("/proc/loadavg"));
  double v = 0;
  in >> v;
  return v;
}

// Return the value of `key` ("VmHWM:") in /proc/<pid>/status, in bytes (0 when unknown).
int64_t ProcStatusBytes(pid_t pid, const std::string& key) {
  std::ifstream in(fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(key.size())) * 1024;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// What else runs on the machine: the 1-minute load average and the CPU time of every process,
// sampled every 2 s while the benchmark runs.

class MachineMonitor {
 public:
  MachineMonitor() {
    Sample();
    for (auto& [pid, p] : procs_) p.first_ticks = p.last_ticks;  // count from now on
    thread_ = std::thread([this] {
      std::unique_lock<std::mutex> lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::seconds(2), [this] { return stop_; })) {
        lock.unlock();
        Sample();
        lock.lock();
      }
    });
  }
  ~MachineMonitor() { Stop(); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Load average samples taken since `from` (index into the sample list).
  size_t mark() {
    std::lock_guard<std::mutex> lock(mu_);
    return load_.size();
  }
  std::vector<double> LoadSince(size_t from) {
    std::lock_guard<std::mutex> lock(mu_);
    return std::vector<double>(load_.begin() + static_cast<ptrdiff_t>(std::min(from, load_.size())),
                               load_.end());
  }

  // CPU seconds per command name during the benchmark, largest first.
  std::vector<std::pair<std::string, double>> CpuByCommand() {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, double> by;
    const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
    for (const auto& [pid, p] : procs_) {
      by[p.comm] += static_cast<double>(p.last_ticks - p.first_ticks) / hz;
    }
    std::vector<std::pair<std::string, double>> out(by.begin(), by.end());
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.second > b.second; });
    return out;
  }

 private:
  struct Proc {
    std::string comm;
    int64_t first_ticks = 0;
    int64_t last_ticks = 0;
  };

  void Sample() {
    double la = LoadAverage1();
    std::map<int, std::pair<std::string, int64_t>> now;
    DIR* d = opendir("/proc");
    if (d != nullptr) {
      while (dirent* e = readdir(d)) {
        int pid = std::atoi(e->d_name);
        if (pid <= 0) continue;
        std::string stat = ReadFirstLine(fmt::format("/proc/{}/stat", pid));
        auto open = stat.find('('), close = stat.rfind(')');
        if (open == std::string::npos || close == std::string::npos) continue;
        std::string comm = stat.substr(open + 1, close - open - 1);
        std::istringstream rest(stat.substr(close + 2));
        std::vector<std::string> f;
        std::string tok;
        while (rest >> tok && f.size() < 14) f.push_back(tok);
        if (f.size() < 13) continue;
        // After the command: state(0) ... utime(11) stime(12).
        now[pid] = {comm, std::stoll(f[11]) + std::stoll(f[12])};
      }
      closedir(d);
    }
    std::lock_guard<std::mutex> lock(mu_);
    load_.push_back(la);
    for (auto& [pid, v] : now) {
      auto it = procs_.find(pid);
      if (it == procs_.end() || it->second.comm != v.first) {
        // A process that started after the previous sample: its whole CPU time counts.
        procs_[pid] = Proc{v.first, 0, v.second};
      } else {
        it->second.last_ticks = v.second;
      }
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::vector<double> load_;
  std::map<int, Proc> procs_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// A role process: `campaign-history ... serve --roles X`, output to a log file.

class Child {
 public:
  static Result<std::unique_ptr<Child>> Spawn(std::string name, std::vector<std::string> argv,
                                              const fs::path& log) {
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    pid_t pid = fork();
    if (pid < 0) return UnavailableError("fork failed");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the benchmark
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execv(args[0], args.data());
      _exit(127);
    }
    return std::unique_ptr<Child>(new Child(std::move(name), pid, log));
  }

  ~Child() {
    if (running_) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  bool Alive() {
    if (!running_) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      running_ = false;
      exit_status_ = status;
    }
    return running_;
  }
  int64_t PeakRss() const { return ProcStatusBytes(pid_, "VmHWM:"); }
  std::string Log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // The "serve: stopped; ..." line, once stopped.
  std::string StoppedLine() const {
    std::string log = Log();
    auto at = log.rfind("serve: stopped;");
    if (at == std::string::npos) return "";
    return log.substr(at, log.find('\n', at) - at);
  }

  // SIGTERM; SIGKILL after `timeout`. Return OK when it exited with status 0.
  Status Stop(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    if (Alive()) {
      ::kill(pid_, SIGTERM);
      auto deadline = SteadyClock::now() + timeout;
      while (Alive() && SteadyClock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (Alive()) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, &exit_status_, 0);
        running_ = false;
        return DeadlineExceededError(
            fmt::format("{} did not stop within {} s (killed)", name_, timeout.count()));
      }
    }
    if (WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) == 0) return Status::OK();
    return InternalError(
        fmt::format("{} exited with status {}; log {}", name_, exit_status_, log_.string()));
  }

 private:
  Child(std::string name, pid_t pid, fs::path log)
      : name_(std::move(name)), pid_(pid), log_(std::move(log)) {}
  std::string name_;
  pid_t pid_;
  fs::path log_;
  bool running_ = true;
  int exit_status_ = 0;
};

// ---------------------------------------------------------------------------------------------

struct Env {
  std::string pg_admin;  // a URL to an existing database (postgres) for CREATE/DROP DATABASE
  std::string binary;
  fs::path dir;
  std::string tag;  // unique per benchmark run: database, slot and project names
  std::unique_ptr<PgConn> admin;
  MachineMonitor* monitor = nullptr;
};

// The versions committed (what `replay --wait` waits for), and when the first and last commit
// happened.
class VersionTracker final : public CommittedVersions {
 public:
  void OnCommit(const CommitInfo& info) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!first_) first_ = SteadyClock::now();
      last_ = SteadyClock::now();
    }
    CommittedVersions::OnCommit(info);
  }
  // campaign id -> its newest committed version.
  std::map<int64_t, int64_t> versions() const {
    std::map<int64_t, int64_t> out;
    for (const auto& [id, range] : ranges()) out.emplace(id, range.last);
    return out;
  }
  SteadyClock::time_point first() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_.value_or(SteadyClock::now());
  }
  SteadyClock::time_point last() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<SteadyClock::time_point> first_;
  SteadyClock::time_point last_;
};

// Return the postgresql:// URL `url` with its database replaced by `db` (the role processes take
// URLs, not conninfo strings).
Result<std::string> UrlWithDatabase(const std::string& url, const std::string& db) {
  auto scheme = url.find("://");
  if (url.rfind("postgres", 0) != 0 || scheme == std::string::npos) {
    return InvalidArgumentError("--pg: '" + url + "' must be a postgresql:// URL");
  }
  auto query = url.find('?', scheme + 3);
  std::string head = url.substr(0, query);
  std::string tail = query == std::string::npos ? "" : url.substr(query);
  auto slash = head.find('/', scheme + 3);
  if (slash != std::string::npos) head.resize(slash);
  return head + "/" + db + tail;
}

Result<std::string> CreateDatabase(Env& env, const std::string& name) {
  RETURN_IF_ERROR(env.admin->Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)").status());
  RETURN_IF_ERROR(env.admin->Exec("CREATE DATABASE " + name).status());
  return UrlWithDatabase(env.pg_admin, name);
}

void DropDatabase(Env& env, const std::string& name, const std::string& slot = "",
                  const std::string& publication = "") {
  if (name.empty()) return;
  if (!slot.empty()) {
    auto url = UrlWithDatabase(env.pg_admin, name);
    if (url.ok()) {
      Status s = PgLogicalSource::DropCapture(*url, slot, publication);
      if (!s.ok()) std::cerr << "topology_bench: drop capture: " << s.ToString() << "\n";
    }
  }
  auto r = env.admin->Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  if (!r.ok()) std::cerr << "topology_bench: drop database: " << r.status().ToString() << "\n";
}

// Delete every topic and subscription the topology creates in `project` on the emulator.
void DeletePubSubProject(const std::string& project) {
  if (project.empty()) return;
  PubSubOptions o;
  o.project = project;
  auto bus = PubSubChangeBus::Open(o);
  if (!bus.ok()) return;
  TopologyOptions t;
  for (const std::string& s : {t.publisher_subscription, t.sink_subscription}) {
    (*bus)->DeleteSubscription(s).IgnoreError();
  }
  for (const std::string& topic :
       {t.changes_topic, t.dead_letter_topic, t.history_topic, t.history_dead_letter_topic}) {
    (*bus)->DeleteTopic(topic).IgnoreError();
  }
}

std::vector<std::string> CommonFlags(const Env& env, const std::string& url,
                                     const std::string& project, const fs::path& history,
                                     CaptureSetting capture) {
  return {env.binary,
          "--campaign-db",
          url,
          "--bus",
          "pubsub://" + project,
          "--history",
          "sqlite:" + history.string(),
          "--capture",
          capture == CaptureSetting::kNotify ? "notify"
                                             : (capture == CaptureSetting::kLog ? "log" : "none")};
}

Result<std::unique_ptr<Child>> SpawnRole(const Env& env, const std::string& name,
                                         std::vector<std::string> argv,
                                         const std::vector<std::string>& serve_args) {
  argv.push_back("serve");
  argv.insert(argv.end(), serve_args.begin(), serve_args.end());
  return Child::Spawn(name, std::move(argv), env.dir / (name + ".log"));
}

// Wait until the slot has a consumer (the capture process streams from it).
Status WaitSlotActive(const std::string& url, const std::string& slot, Child& capture) {
  auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  while (SteadyClock::now() < deadline) {
    if (!capture.Alive()) {
      return InternalError("capture process exited early:\n" + capture.Log());
    }
    ASSIGN_OR_RETURN(PgSlotStatus s, PgLogicalSource::SlotStatus(url, slot));
    if (s.active) return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return DeadlineExceededError("the capture process did not connect to slot " + slot);
}

// Wait until the slot confirmed everything written before `lsn` (the relay is caught up).
Status WaitSlotConfirmed(PgConn& conn, const std::string& slot, const std::string& lsn) {
  auto deadline = SteadyClock::now() + std::chrono::seconds(120);
  while (SteadyClock::now() < deadline) {
    ASSIGN_OR_RETURN(PgResult r,
                     conn.Exec(fmt::format("SELECT confirmed_flush_lsn >= '{}'::pg_lsn FROM "
                                           "pg_replication_slots WHERE slot_name = '{}'",
                                           lsn, slot)));
    if (r.rows() == 1 && r.Get(0, 0) == "t") return Status::OK();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return DeadlineExceededError("the relay did not confirm " + lsn);
}

// ---------------------------------------------------------------------------------------------
// Part 1: write-path cost.

struct LatencyStats {
  double median_us = 0;
  double p99_us = 0;
};

LatencyStats Summarize(const std::vector<double>& us) {
  return {Percentile(us, 0.5), Percentile(us, 0.99)};
}

std::string BodyText(int64_t i) {
  std::string body = fmt::format(
      "Save {} now: our spring collection is here. Pick two items and the third one is on us; "
      "free returns for 60 days, express delivery in most cities, gift wrapping on request. ",
      i);
  while (body.size() < 480) body += "Members earn double points on every order this week. ";
  return body;
}

struct ModeDb {
  std::string mode;  // none | notify | log
  std::string db;
  std::string url;
  std::string project;
  std::string slot;  // log only
  std::unique_ptr<Runtime> runtime;
  CampaignService* service = nullptr;
  std::unique_ptr<Replayer> replayer;
  std::unique_ptr<PgConn> conn;  // log only: reads the slot position
  int64_t bench_campaign = 0;
  std::vector<LatencyStats> single, mix;
  // WAL written per save / per workload op while this mode ran (the cluster is otherwise idle).
  std::vector<double> wal_single, wal_mix;
};

constexpr int64_t kBenchCustomer = 9'000'000;
constexpr int64_t kBenchFirstId = 900'000'001;

Status SetUpModeDb(Env& env, ModeDb& m, const std::vector<WorkloadLine>& seeds) {
  m.db = fmt::format("tb_{}_w_{}", env.tag, m.mode);
  m.project = fmt::format("tb-{}-w-{}", env.tag, m.mode);
  ASSIGN_OR_RETURN(m.url, CreateDatabase(env, m.db));
  CaptureSetting capture = CaptureSetting::kNone;
  if (m.mode == "notify") capture = CaptureSetting::kNotify;
  if (m.mode == "log") {
    capture = CaptureSetting::kLog;
    m.slot = m.db;
    RETURN_IF_ERROR(PgLogicalSource::CreateCapture(m.url, m.slot, m.slot));
    PgConnectOptions co;
    co.url = m.url;
    ASSIGN_OR_RETURN(m.conn, PgConn::Connect(co));
  }
  RuntimeOptions o;
  o.config.campaign_db = m.url;
  o.config.bus = "pubsub://" + m.project;
  o.config.history = "sqlite:" + (env.dir / (m.mode + "-history.db")).string();
  o.config.capture = capture;
  ASSIGN_OR_RETURN(m.runtime, Runtime::Create(o));
  ASSIGN_OR_RETURN(m.service, m.runtime->Service());
  // With notify capture, Service() has created the publisher's subscription (without one Pub/Sub
  // would drop the notifications).
  ReplayerOptions ro;
  ro.verify_footer = false;
  m.replayer = std::make_unique<Replayer>(*m.service, ro);
  for (const WorkloadLine& l : seeds) RETURN_IF_ERROR(m.replayer->Apply(l).status());
  // The campaign updated again and again: one of 20 of a customer of its own.
  std::vector<Campaign> rows;
  for (int i = 0; i < 20; ++i) {
    Campaign c;
    c.id = kBenchFirstId + i;
    c.customer_id = kBenchCustomer;
    c.name = fmt::format("Spring sale {}", i);
    c.status = CampaignStatus::kActive;
    c.priority = i + 1;
    c.trigger_event = "app_open";
    c.audience_segment = "returning_buyers";
    c.frequency_cap = 3;
    c.content = fmt::format(R"({{"title":"Spring sale","body":"{}","button_text":"Shop now"}})",
                            BodyText(i));
    c.updated_by = "user:bench";
    rows.push_back(std::move(c));
  }
  RETURN_IF_ERROR(m.service->Import(kBenchCustomer, rows).status());
  m.bench_campaign = kBenchFirstId + 7;
  return Status::OK();
}

// One save of the bench campaign, as the UI makes it: the body edited, the cap changed.
Status UpdateOnce(ModeDb& m, int64_t i) {
  CampaignPatch p;
  p.content =
      fmt::format(R"({{"body":"{}","button_text":"Shop now","title":"Spring sale"}})", BodyText(i));
  p.frequency_cap = i % 10;
  WriteContext ctx;
  ctx.actor = "user:bench";
  return m.service->Update(m.bench_campaign, p, ctx).status();
}

Status RunModeRound(Env& env, ModeDb& m, int64_t updates, std::span<const WorkloadLine> mix,
                    int64_t& counter) {
  std::unique_ptr<Child> relay;
  if (m.mode == "log") {
    ASSIGN_OR_RETURN(relay,
                     SpawnRole(env, "w-log-capture",
                               CommonFlags(env, m.url, m.project, env.dir / "log-history.db",
                                           CaptureSetting::kLog),
                               {"--roles", "capture", "--slot", m.slot, "--publication", m.slot}));
    RETURN_IF_ERROR(WaitSlotActive(m.url, m.slot, *relay));
  }
  for (int i = 0; i < 200; ++i) RETURN_IF_ERROR(UpdateOnce(m, counter++));  // warm-up
  // WAL bytes since `lsn` (the request path's cost that does not depend on CPU scheduling).
  auto wal_lsn = [&]() -> Result<std::string> {
    ASSIGN_OR_RETURN(PgResult r, env.admin->Exec("SELECT pg_current_wal_lsn()::text"));
    return std::string(r.Get(0, 0));
  };
  auto wal_since = [&](const std::string& lsn) -> Result<double> {
    ASSIGN_OR_RETURN(PgResult r,
                     env.admin->Exec(fmt::format(
                         "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{}')::bigint", lsn)));
    ASSIGN_OR_RETURN(int64_t bytes, r.GetInt(0, 0));
    return static_cast<double>(bytes);
  };
  std::vector<double> single;
  single.reserve(static_cast<size_t>(updates));
  ASSIGN_OR_RETURN(std::string lsn0, wal_lsn());
  for (int64_t i = 0; i < updates; ++i) {
    auto t0 = SteadyClock::now();
    RETURN_IF_ERROR(UpdateOnce(m, counter++));
    single.push_back(Micro(SteadyClock::now() - t0));
  }
  ASSIGN_OR_RETURN(double wal, wal_since(lsn0));
  m.wal_single.push_back(wal / static_cast<double>(std::max<int64_t>(1, updates)));
  std::vector<double> ops;
  ops.reserve(mix.size());
  ASSIGN_OR_RETURN(lsn0, wal_lsn());
  for (const WorkloadLine& l : mix) {
    auto t0 = SteadyClock::now();
    RETURN_IF_ERROR(m.replayer->Apply(l).status());
    ops.push_back(Micro(SteadyClock::now() - t0));
  }
  ASSIGN_OR_RETURN(wal, wal_since(lsn0));
  m.wal_mix.push_back(wal / static_cast<double>(std::max<size_t>(1, mix.size())));
  m.single.push_back(Summarize(single));
  m.mix.push_back(Summarize(ops));
  // Let the capture side finish this round's work before the next mode is measured.
  if (m.mode == "notify") RETURN_IF_ERROR(m.runtime->WaitForVersions({}, std::chrono::minutes(5)));
  // One more save in every mode (the databases stay the same size); with log, wait until the
  // relay confirmed it, i.e. everything before it.
  std::string lsn;
  if (relay) {
    ASSIGN_OR_RETURN(PgResult r, m.conn->Exec("SELECT pg_current_wal_lsn()::text"));
    lsn = std::string(r.Get(0, 0));
  }
  RETURN_IF_ERROR(UpdateOnce(m, counter++));
  if (relay) {
    RETURN_IF_ERROR(WaitSlotConfirmed(*m.conn, m.slot, lsn));
    RETURN_IF_ERROR(relay->Stop());
  }
  return Status::OK();
}

Status RunInterleaved(Env& env, std::vector<ModeDb>& modes, int64_t updates,
                      std::span<const WorkloadLine> mix, int64_t& counter,
                      std::vector<LatencyStats>& single_out, std::vector<LatencyStats>& mix_out) {
  ModeDb& log = modes[2];
  ASSIGN_OR_RETURN(
      std::unique_ptr<Child> relay,
      SpawnRole(
          env, "w-log-capture-interleaved",
          CommonFlags(env, log.url, log.project, env.dir / "log-history.db", CaptureSetting::kLog),
          {"--roles", "capture", "--slot", log.slot, "--publication", log.slot}));
  RETURN_IF_ERROR(WaitSlotActive(log.url, log.slot, *relay));
  for (int i = 0; i < 200; ++i) {
    for (ModeDb& m : modes) RETURN_IF_ERROR(UpdateOnce(m, counter));
    ++counter;
  }
  std::vector<std::vector<double>> single(3), ops(3);
  for (int64_t i = 0; i < updates; ++i, ++counter) {
    for (size_t k = 0; k < 3; ++k) {
      size_t m = (static_cast<size_t>(i) + k) % 3;
      auto t0 = SteadyClock::now();
      RETURN_IF_ERROR(UpdateOnce(modes[m], counter));
      single[m].push_back(Micro(SteadyClock::now() - t0));
    }
  }
  for (size_t i = 0; i < mix.size(); ++i) {
    for (size_t k = 0; k < 3; ++k) {
      size_t m = (i + k) % 3;
      auto t0 = SteadyClock::now();
      RETURN_IF_ERROR(modes[m].replayer->Apply(mix[i]).status());
      ops[m].push_back(Micro(SteadyClock::now() - t0));
    }
  }
  for (size_t m = 0; m < 3; ++m) {
    single_out[m] = Summarize(single[m]);
    mix_out[m] = Summarize(ops[m]);
  }
  RETURN_IF_ERROR(modes[1].runtime->WaitForVersions({}, std::chrono::minutes(5)));
  return relay->Stop();
}

void Row(const std::string& m, const std::string& v, const std::string& t) {
  std::cout << fmt::format("{:<62} {:>16} {:>12}\n", m, v, t);
}
void Header() {
  std::cout << "\n";
  Row("metric", "measured", "target");
}

Status PartWriteLatency(Env& env, int rounds, int64_t updates, int64_t mix_ops) {
  std::cout << fmt::format(
      "\n== 1. write-path cost per change on PostgreSQL: capture none vs notify vs log ==\n"
      "{} rounds; each round, per mode (order rotates): 200 warm-up saves, {} saves of one "
      "campaign, then the next {} ops of a generated workload (preset large) -- the same ops in "
      "each mode's database\n",
      rounds, updates, mix_ops);
  // The mix: the large preset's seed (4,000 campaigns) and rounds x mix_ops ops.
  ASSIGN_OR_RETURN(GeneratorOptions g, GeneratorPreset("large"));
  g.seed = 7;
  g.ops = (rounds + 1) * mix_ops;  // the last chunk for the interleaved pass
  std::string path = (env.dir / "mix.jsonl").string();
  RETURN_IF_ERROR(GenerateWorkloadFile(g, path).status());
  ASSIGN_OR_RETURN(std::vector<WorkloadLine> lines, ReadWorkloadFile(path));
  std::vector<WorkloadLine> seeds, ops;
  for (WorkloadLine& l : lines) {
    if (l.op == WorkloadOp::kSeed) {
      seeds.push_back(std::move(l));
    } else if (l.applied()) {
      ops.push_back(std::move(l));
    }
  }

  std::vector<ModeDb> modes(3);
  modes[0].mode = "none";
  modes[1].mode = "notify";
  modes[2].mode = "log";
  Status status;
  for (ModeDb& m : modes) {
    status = SetUpModeDb(env, m, seeds);
    if (!status.ok()) break;
  }
  int64_t counter = 0;
  size_t load_mark = env.monitor->mark();
  for (int r = 0; r < rounds && status.ok(); ++r) {
    std::span<const WorkloadLine> mix(
        ops.data() + r * mix_ops, static_cast<size_t>(std::min<int64_t>(
                                      mix_ops, static_cast<int64_t>(ops.size()) - r * mix_ops)));
    std::string line = fmt::format("round {}:", r + 1);
    for (int k = 0; k < 3 && status.ok(); ++k) {
      ModeDb& m = modes[(r + k) % 3];
      int64_t c = counter;
      status = RunModeRound(env, m, updates, mix, c);
      if (!status.ok()) break;
      line += fmt::format("  {} single {:.0f}/{:.0f} us, mix {:.0f}/{:.0f} us;", m.mode,
                          m.single.back().median_us, m.single.back().p99_us, m.mix.back().median_us,
                          m.mix.back().p99_us);
    }
    counter += updates + 201;
    if (status.ok()) std::cout << line << "  (median/p99)\n";
  }
  std::vector<double> load = env.monitor->LoadSince(load_mark);
  // The interleaved pass: the same saves and ops, one mode after the other for EACH save (order
  // rotating), with the log relay and the notify publisher running throughout, so that every
  // mode sees the same machine state (CPU idle states, background work).
  std::vector<LatencyStats> inter_single(3), inter_mix(3);
  if (status.ok()) {
    std::span<const WorkloadLine> mix(
        ops.data() + std::min<size_t>(ops.size(), static_cast<size_t>(rounds * mix_ops)),
        static_cast<size_t>(std::max<int64_t>(
            0, std::min<int64_t>(mix_ops, static_cast<int64_t>(ops.size()) - rounds * mix_ops))));
    status = RunInterleaved(env, modes, updates, mix, counter, inter_single, inter_mix);
  }
  for (ModeDb& m : modes) {
    if (m.runtime) m.runtime->StopAll();
    m.runtime.reset();
    m.conn.reset();
    DropDatabase(env, m.db, m.slot, m.slot);
    DeletePubSubProject(m.project);
  }
  RETURN_IF_ERROR(status);

  auto med = [](const std::vector<LatencyStats>& v, bool p99) {
    std::vector<double> x;
    for (const LatencyStats& s : v) x.push_back(p99 ? s.p99_us : s.median_us);
    return Median(x);
  };
  Header();
  for (const char* kind : {"single", "mix"}) {
    bool single = std::string(kind) == "single";
    const char* what = single ? "save of one campaign" : "workload op (mix)";
    double none_m = med(single ? modes[0].single : modes[0].mix, false);
    double none_p = med(single ? modes[0].single : modes[0].mix, true);
    for (ModeDb& m : modes) {
      auto& v = single ? m.single : m.mix;
      Row(fmt::format("{}, capture {}: median / p99 (us)", what, m.mode),
          fmt::format("{:.0f} / {:.0f}", med(v, false), med(v, true)), "");
    }
    for (size_t i : {size_t{1}, size_t{2}}) {
      auto& v = single ? modes[i].single : modes[i].mix;
      Row(fmt::format("{}: {}/none, median (p99)", what, modes[i].mode),
          fmt::format("x{:.3f} (x{:.3f})", med(v, false) / none_m, med(v, true) / none_p),
          i == 2 ? "<= x1.05" : "");
    }
    const double none_wal = Median(single ? modes[0].wal_single : modes[0].wal_mix);
    for (ModeDb& m : modes) {
      const double wal = Median(single ? m.wal_single : m.wal_mix);
      Row(fmt::format("{}, capture {}: WAL bytes (x none)", what, m.mode),
          fmt::format("{:.0f} (x{:.3f})", wal, none_wal > 0 ? wal / none_wal : 0), "");
    }
  }
  std::cout << fmt::format(
      "interleaved pass ({} saves, {} ops; each one in the three databases in turn, relay and "
      "notify publisher running throughout):\n",
      updates, mix_ops);
  for (bool single : {true, false}) {
    const char* what = single ? "save of one campaign" : "workload op (mix)";
    auto& v = single ? inter_single : inter_mix;
    for (size_t i = 0; i < 3; ++i) {
      Row(fmt::format("interleaved {}, capture {}: median / p99 (us)", what, modes[i].mode),
          fmt::format("{:.0f} / {:.0f}", v[i].median_us, v[i].p99_us), "");
    }
    for (size_t i : {size_t{1}, size_t{2}}) {
      Row(fmt::format("interleaved {}: {}/none, median (p99)", what, modes[i].mode),
          fmt::format("x{:.3f} (x{:.3f})", v[i].median_us / v[0].median_us,
                      v[i].p99_us / v[0].p99_us),
          i == 2 ? "<= x1.05" : "");
    }
  }
  std::cout << fmt::format(
      "load average (1 min) during part 1: min {:.2f}, median {:.2f}, max {:.2f}\n",
      load.empty() ? 0 : *std::min_element(load.begin(), load.end()), Median(load),
      load.empty() ? 0 : *std::max_element(load.begin(), load.end()));
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Parts 2-5: end-to-end runs.

struct E2eConfig {
  std::string name;
  CaptureSetting capture = CaptureSetting::kLog;
  int publishers = 1;
  bool sink = false;  // publisher -> history topic -> sink
  bool api = false;   // also run an api process and send it requests (for its RSS)
};

struct E2eResult {
  int64_t versions = 0;
  double replay_s = 0;     // first commit -> last commit
  double caught_up_s = 0;  // first commit -> everything queryable
  double newest_s = 0;     // first commit -> every campaign's newest version queryable
  int64_t records = 0;
  int64_t missed = 0;
  double lag_p50_ms = 0, lag_p99_ms = 0;
  std::vector<std::pair<std::string, int64_t>> rss;  // role process -> VmHWM
  std::vector<std::string> stopped;                  // their "serve: stopped" lines
  std::vector<double> load;
};

// When the history was caught up, by two criteria.
struct CaughtUp {
  // Every campaign's newest committed version is queryable (what `replay --wait` waits for).
  SteadyClock::time_point newest;
  // Also at least `min_records` records are stored (with log capture: every version).
  SteadyClock::time_point all;
};

// Wait until the history holds at least the tracked version of every campaign and at least
// `min_records` records, reading the history's per-campaign summary (one query per poll, so the
// wait costs the pipeline little CPU).
Result<CaughtUp> WaitHistoryCaughtUp(const fs::path& history,
                                     const std::map<int64_t, int64_t>& want, int64_t min_records,
                                     std::vector<std::unique_ptr<Child>>& roles, Micros timeout) {
  auto deadline = SteadyClock::now() + timeout;
  std::unique_ptr<SqliteDb> db;
  size_t behind = want.size();
  int64_t records = 0;
  std::optional<SteadyClock::time_point> newest;
  while (SteadyClock::now() < deadline) {
    for (auto& c : roles) {
      if (!c->Alive()) return InternalError(c->name() + " exited early:\n" + c->Log());
    }
    if (!db && fs::exists(history)) {
      SqliteOptions o;
      o.read_only = true;
      auto d = SqliteDb::Open(history.string(), o);
      if (d.ok()) db = std::move(*d);
    }
    if (db) {
      auto s = db->Prepare("SELECT campaign_id, max_version, records FROM campaigns");
      if (s.ok()) {
        std::map<int64_t, int64_t> have;
        int64_t sum = 0;
        bool ok = true;
        while (true) {
          Result<bool> row = (*s)->Step();
          if (!row.ok()) {
            ok = false;
            break;
          }
          if (!*row) break;
          have[(*s)->ColumnInt64(0)] = (*s)->ColumnInt64(1);
          sum += (*s)->ColumnInt64(2);
        }
        (*s)->Reset();
        if (ok) {
          auto now = SteadyClock::now();
          records = sum;
          if (!newest) {
            behind = 0;
            for (const auto& [id, v] : want) {
              auto it = have.find(id);
              if (it == have.end() || it->second < v) ++behind;
            }
            if (behind == 0) newest = now;
          }
          if (newest && records >= min_records) return CaughtUp{*newest, now};
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return DeadlineExceededError(
      fmt::format("history not caught up: {} campaigns behind, {} of {} records", behind, records,
                  min_records));
}

// Send `n` PATCH requests to the api process (its RSS under use); return the count that succeeded.
int64_t DriveApi(Child& api, const std::string& secret, int64_t campaign_id, int n) {
  std::string log;
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    log = api.Log();
    auto at = log.find("listening on http://127.0.0.1:");
    if (at != std::string::npos) {
      port = std::atoi(log.c_str() + at + std::string("listening on http://127.0.0.1:").size());
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  if (port == 0) return 0;
  httplib::Client cli("127.0.0.1", port);
  cli.set_keep_alive(true);
  cli.set_tcp_nodelay(true);
  // A service key, as the customer UI's backend sends it.
  httplib::Headers headers = {{"Authorization", "Bearer " + secret}, {"X-Actor", "user:bench-api"}};
  int64_t ok = 0;
  for (int i = 0; i < n; ++i) {
    std::string body = fmt::format(R"({{"frequency_cap":{}}})", i % 50);
    auto res =
        cli.Patch(fmt::format("/v1/campaigns/{}", campaign_id), headers, body, "application/json");
    if (res && res->status == 200) ++ok;
  }
  return ok;
}

Result<E2eResult> RunE2e(Env& env, const E2eConfig& cfg, const std::string& workload,
                         int64_t expected_versions, int run) {
  E2eResult out;
  const std::string db = fmt::format("tb_{}_e{}", env.tag, run);
  const std::string project = fmt::format("tb-{}-e{}", env.tag, run);
  const bool log = cfg.capture == CaptureSetting::kLog;
  const std::string slot = log ? db : "";
  fs::path history = env.dir / fmt::format("e{}-history.db", run);
  fs::remove(history);
  ASSIGN_OR_RETURN(std::string url, CreateDatabase(env, db));
  std::vector<std::unique_ptr<Child>> roles;
  std::unique_ptr<Runtime> runtime;
  auto body = [&]() -> Status {
    if (log) RETURN_IF_ERROR(PgLogicalSource::CreateCapture(url, slot, slot));
    auto flags = CommonFlags(env, url, project, history, cfg.capture);
    std::vector<std::string> publish_to = {"--publish-to", cfg.sink ? "topic" : "history"};
    if (log) {
      ASSIGN_OR_RETURN(auto c,
                       SpawnRole(env, fmt::format("e{}-capture", run), flags,
                                 {"--roles", "capture", "--slot", slot, "--publication", slot}));
      roles.push_back(std::move(c));
      RETURN_IF_ERROR(WaitSlotActive(url, slot, *roles.back()));
    }
    for (int p = 0; p < cfg.publishers; ++p) {
      std::vector<std::string> a = {"--roles", "publisher"};
      a.insert(a.end(), publish_to.begin(), publish_to.end());
      ASSIGN_OR_RETURN(auto c,
                       SpawnRole(env, fmt::format("e{}-publisher{}", run, p + 1), flags, a));
      roles.push_back(std::move(c));
    }
    if (cfg.sink) {
      ASSIGN_OR_RETURN(auto c,
                       SpawnRole(env, fmt::format("e{}-sink", run), flags, {"--roles", "sink"}));
      roles.push_back(std::move(c));
    }
    Child* api = nullptr;
    std::string api_secret;
    if (cfg.api) {
      const std::string keys = (env.dir / fmt::format("e{}-api-keys.jsonl", run)).string();
      fs::remove(keys);
      ASSIGN_OR_RETURN(NewApiKey key,
                       CreateApiKey(keys, std::nullopt, SystemClock::Default().Now()));
      api_secret = key.secret;
      ASSIGN_OR_RETURN(
          auto c, SpawnRole(env, fmt::format("e{}-api", run), flags,
                            {"--roles", "api", "--listen", "127.0.0.1:0", "--api-keys", keys}));
      roles.push_back(std::move(c));
      api = roles.back().get();
    }
    // Let the consumers create their subscriptions and start pulling.
    std::this_thread::sleep_for(std::chrono::seconds(2));
    for (auto& c : roles) {
      if (!c->Alive()) return InternalError(c->name() + " exited early:\n" + c->Log());
    }

    // The writer: this process, through the service, as `replay` does.
    RuntimeOptions o;
    o.config.campaign_db = url;
    o.config.bus = "pubsub://" + project;
    o.config.history = "sqlite:" + history.string();
    o.config.capture = cfg.capture;
    ASSIGN_OR_RETURN(runtime, Runtime::Create(o));
    ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
    VersionTracker tracker;
    service->AddObserver(&tracker);
    Replayer replayer(*service);
    size_t load_mark = env.monitor->mark();
    auto t0 = SteadyClock::now();
    ASSIGN_OR_RETURN(ReplaySummary summary, replayer.ReplayFile(workload));
    // notify: what the writer queued must reach the bus (as `replay --wait` flushes it).
    if (!log) RETURN_IF_ERROR(runtime->WaitForVersions({}, std::chrono::minutes(10)));
    auto versions = tracker.versions();
    // With log capture every version must arrive; notify records what it finds.
    ASSIGN_OR_RETURN(CaughtUp caught,
                     WaitHistoryCaughtUp(history, versions, log ? expected_versions : 0, roles,
                                         std::chrono::minutes(30)));
    auto t_done = caught.all;
    out.newest_s = Seconds(caught.newest - t0);
    out.load = env.monitor->LoadSince(load_mark);
    // The official check (what `replay --wait` does), now that everything is there.
    RETURN_IF_ERROR(runtime->WaitForVersions(tracker.ranges(), std::chrono::minutes(1)));
    out.versions = summary.versions;
    if (out.versions != expected_versions) {
      return DataLossError(
          fmt::format("replayed {} versions, expected {}", out.versions, expected_versions));
    }
    // first commit: t0 + the first op's own latency is negligible; measure from t0 anyway
    // (the first op starts the clock, as in `replay`).
    out.replay_s = Seconds(tracker.last() - t0);
    out.caught_up_s = Seconds(t_done - t0);

    // What the history holds: every record's lag, the missed versions (notify).
    SqliteHistoryOptions ho;
    ho.path = history.string();
    ho.read_only = true;
    ASSIGN_OR_RETURN(auto h, SqliteHistoryStore::Open(ho));
    ASSIGN_OR_RETURN(std::vector<int64_t> customers, h->ListCustomers());
    std::vector<double> lag_ms;
    for (int64_t c : customers) {
      ASSIGN_OR_RETURN(std::vector<HistoryRecord> recs,
                       h->CustomerChanges(c, {}, int64_t{1} << 40));
      for (const HistoryRecord& r : recs) {
        lag_ms.push_back(static_cast<double>((r.ingested_at - r.event_time).count()) / 1000.0);
        out.missed += r.missed_versions;
      }
    }
    out.records = static_cast<int64_t>(lag_ms.size());
    out.lag_p50_ms = Percentile(lag_ms, 0.5);
    out.lag_p99_ms = Percentile(lag_ms, 0.99);

    if (api) {
      // A campaign that still exists at the end of the workload.
      for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
        ASSIGN_OR_RETURN(std::optional<Campaign> row, service->Get(it->first));
        if (!row) continue;
        int64_t ok = DriveApi(*api, api_secret, it->first, 2000);
        if (ok != 2000) std::cerr << fmt::format("api: only {} of 2000 requests succeeded\n", ok);
        break;
      }
    }
    for (auto& c : roles) out.rss.emplace_back(c->name(), c->PeakRss());
    return Status::OK();
  };
  Status status = body();
  if (runtime) runtime->StopAll();
  runtime.reset();
  for (auto& c : roles) {
    Status s = c->Stop();
    if (status.ok() && !s.ok()) status = s;
    out.stopped.push_back(c->name() + ": " + c->StoppedLine());
  }
  roles.clear();
  DropDatabase(env, db, slot, slot);
  DeletePubSubProject(project);
  RETURN_IF_ERROR(status);
  return out;
}

std::string RoleOf(const std::string& child) {
  auto dash = child.find('-');
  std::string r = child.substr(dash + 1);
  while (!r.empty() && std::isdigit(static_cast<unsigned char>(r.back()))) r.pop_back();
  return r;
}

Status PartsEndToEnd(Env& env, const std::string& preset, std::optional<int64_t> ops, int repeat,
                     bool sink, bool notify_share) {
  ASSIGN_OR_RETURN(GeneratorOptions g, GeneratorPreset(preset));
  if (ops) g.ops = *ops;
  std::string workload = (env.dir / "e2e.jsonl").string();
  ASSIGN_OR_RETURN(GeneratorStats ws, GenerateWorkloadFile(g, workload));
  int64_t bursts = ws.counts.contains("burst") ? ws.counts.at("burst") : 0;
  std::cout << fmt::format(
      "\n== 2.-5. end to end through the Pub/Sub emulator ==\n"
      "workload: preset {} seed {}, {} ops ({} burst saves), {} versions incl. {} seed rows\n",
      preset, g.seed, ws.ops, bursts, ws.expected_versions, ws.seed_rows);

  std::vector<E2eConfig> configs;
  configs.push_back({"log, 1 publisher", CaptureSetting::kLog, 1, false, true});
  configs.push_back({"log, 2 publishers", CaptureSetting::kLog, 2, false, false});
  if (sink) configs.push_back({"log, 1 publisher -> topic -> sink", CaptureSetting::kLog, 1, true});
  std::map<std::string, std::vector<E2eResult>> results;
  int run = 0;
  for (int r = 0; r < repeat; ++r) {
    for (size_t k = 0; k < configs.size(); ++k) {
      // Alternate the order between repeats.
      const E2eConfig& cfg = configs[r % 2 == 0 ? k : configs.size() - 1 - k];
      E2eConfig c = cfg;
      c.api = cfg.api && r == 0;
      ASSIGN_OR_RETURN(E2eResult e, RunE2e(env, c, workload, ws.expected_versions, ++run));
      std::cout << fmt::format(
          "run {} ({}): replay {:.1f} s ({:.0f} versions/s); newest versions queryable at "
          "{:.1f} s, every version at {:.1f} s ({:.0f} versions/s); records {}; lag p50 {:.0f} "
          "ms p99 {:.0f} ms; load {:.2f}\n",
          run, cfg.name, e.replay_s, e.versions / e.replay_s, e.newest_s, e.caught_up_s,
          e.versions / e.caught_up_s, e.records, e.lag_p50_ms, e.lag_p99_ms, Median(e.load));
      for (const std::string& s : e.stopped) std::cout << "    " << s << "\n";
      results[cfg.name].push_back(std::move(e));
    }
  }
  std::optional<E2eResult> notify;
  if (notify_share) {
    E2eConfig c{"notify, 1 publisher", CaptureSetting::kNotify, 1, false, false};
    ASSIGN_OR_RETURN(E2eResult e, RunE2e(env, c, workload, ws.expected_versions, ++run));
    std::cout << fmt::format(
        "run {} ({}): replay {:.1f} s; all queryable at {:.1f} s; records {}, missed_versions "
        "{}; lag p50 {:.0f} ms p99 {:.0f} ms; load {:.2f}\n",
        run, c.name, e.replay_s, e.caught_up_s, e.records, e.missed, e.lag_p50_ms, e.lag_p99_ms,
        Median(e.load));
    for (const std::string& s : e.stopped) std::cout << "    " << s << "\n";
    notify = std::move(e);
  }

  // 2. throughput
  Header();
  auto med = [](const std::vector<E2eResult>& v, auto f) {
    std::vector<double> x;
    for (const E2eResult& e : v) x.push_back(f(e));
    return Median(x);
  };
  for (const E2eConfig& cfg : configs) {
    const auto& v = results[cfg.name];
    Row(fmt::format("replay's own write rate ({}) (versions/s)", cfg.name),
        fmt::format("{:.0f}", med(v, [](const E2eResult& e) { return e.versions / e.replay_s; })),
        "");
    Row(fmt::format("end to end, {} (versions/s)", cfg.name),
        fmt::format("{:.0f}",
                    med(v, [](const E2eResult& e) { return e.versions / e.caught_up_s; })),
        cfg.sink ? "" : ">= 5000");
    Row(fmt::format("  newest version of every campaign queryable -> every version (s)"),
        fmt::format("{:.2f}",
                    med(v, [](const E2eResult& e) { return e.caught_up_s - e.newest_s; })),
        "");
  }
  // 3. lag
  for (const E2eConfig& cfg : configs) {
    const auto& v = results[cfg.name];
    Row(fmt::format("commit-to-queryable lag p50 / p99, {} (ms)", cfg.name),
        fmt::format("{:.0f} / {:.0f}", med(v, [](const E2eResult& e) { return e.lag_p50_ms; }),
                    med(v, [](const E2eResult& e) { return e.lag_p99_ms; })),
        "");
  }
  // 4. RSS: the largest VmHWM per role over all runs of a configuration.
  std::map<std::string, std::vector<double>> rss;
  for (auto& [name, v] : results) {
    for (const E2eResult& e : v) {
      for (const auto& [child, bytes] : e.rss) {
        rss[RoleOf(child) + (name.find("2 pub") != std::string::npos ? " (of 2)" : "")].push_back(
            static_cast<double>(bytes));
      }
    }
  }
  if (notify) {
    for (const auto& [child, bytes] : notify->rss) {
      rss[RoleOf(child) + " (notify)"].push_back(static_cast<double>(bytes));
    }
  }
  for (auto& [role, v] : rss) {
    Row(fmt::format("peak RSS (VmHWM), {} process, median (max) (MiB)", role),
        fmt::format("{:.0f} ({:.0f})", Median(v) / 1048576,
                    *std::max_element(v.begin(), v.end()) / 1048576),
        "");
  }
  // 5. completeness
  for (const E2eConfig& cfg : configs) {
    const auto& v = results[cfg.name];
    double share = med(v, [&](const E2eResult& e) {
      return 100.0 * static_cast<double>(e.records) / static_cast<double>(ws.expected_versions);
    });
    Row(fmt::format("versions captured, {} (%)", cfg.name), fmt::format("{:.2f}", share), "100");
  }
  if (notify) {
    Row("versions captured, notify (%)",
        fmt::format("{:.2f}", 100.0 * static_cast<double>(notify->records) /
                                  static_cast<double>(ws.expected_versions)),
        "");
    Row("notify: records + sum(missed_versions) vs versions committed",
        fmt::format("{} + {} = {} of {}", notify->records, notify->missed,
                    notify->records + notify->missed, ws.expected_versions),
        "= all");
    Row("end to end, notify, 1 publisher (versions committed/s)",
        fmt::format("{:.0f}", notify->versions / notify->caught_up_s), "");
  }
  return Status::OK();
}

int Main(int argc, char** argv) {
  CLI::App app{"campaign-history production topology benchmark (PostgreSQL + Pub/Sub)"};
  const char* pg_env = std::getenv("CH_TEST_PG_URL");
  std::string pg = pg_env != nullptr ? pg_env : "";
  std::string binary = CH_BINARY_DEFAULT;
  std::string parts = "1,2,5";
  int rounds = 5;
  int64_t updates = 1000;
  int64_t mix_ops = 1000;
  std::string preset = "large";
  std::optional<int64_t> ops = 20000;
  int repeat = 2;
  bool no_sink = false;
  std::string dir_flag;
  bool keep = false;
  app.add_option("--pg", pg, "PostgreSQL URL of an existing database [$CH_TEST_PG_URL]");
  app.add_option("--binary", binary, "The campaign-history binary")->capture_default_str();
  app.add_option("--parts", parts,
                 "Which parts: 1 (write latency), 2 (end-to-end runs: throughput, lag, RSS, log "
                 "share), 5 (notify share on the same workload)")
      ->capture_default_str();
  app.add_option("--rounds", rounds, "Part 1: rounds (modes alternate in each)")
      ->capture_default_str();
  app.add_option("--updates", updates, "Part 1: saves of one campaign per mode and round")
      ->capture_default_str();
  app.add_option("--mix-ops", mix_ops, "Part 1: workload ops per mode and round")
      ->capture_default_str();
  app.add_option("--preset", preset, "Parts 2-5: workload preset")->capture_default_str();
  app.add_option("--ops", ops, "Parts 2-5: ops of the workload")->capture_default_str();
  app.add_option("--repeat", repeat, "Parts 2-4: runs of each configuration")
      ->capture_default_str();
  app.add_flag("--no-sink", no_sink, "Parts 2-4: skip the publisher -> topic -> sink runs");
  app.add_option("--dir", dir_flag, "Work directory [default: a new temp dir]");
  app.add_flag("--keep", keep, "Keep the work directory (logs, history files)");
  CLI11_PARSE(app, argc, argv);
  std::cout << std::unitbuf;  // progress lines appear as they happen (long runs, redirected)
  if (pg.empty()) {
    std::cerr << "topology_bench: no PostgreSQL: pass --pg or set CH_TEST_PG_URL\n";
    return 2;
  }
  if (std::getenv("PUBSUB_EMULATOR_HOST") == nullptr) {
    std::cerr << "topology_bench: PUBSUB_EMULATOR_HOST is not set (scripts/services.sh start)\n";
    return 2;
  }
  if (access(binary.c_str(), X_OK) != 0) {
    std::cerr << "topology_bench: no executable at --binary " << binary << "\n";
    return 2;
  }

  Env env;
  env.pg_admin = pg;
  env.binary = fs::absolute(binary).string();
  env.tag = std::to_string(getpid());
  env.dir = dir_flag.empty()
                ? fs::temp_directory_path() / fmt::format("ch-topology-bench-{}", getpid())
                : fs::path(dir_flag);
  fs::create_directories(env.dir);
  auto fail = [&](const Status& s) {
    std::cerr << "topology_bench: " << s.ToString() << "\n";
    return 1;
  };
  PgConnectOptions co;
  co.url = pg;
  auto admin = PgConn::Connect(co);
  if (!admin.ok()) return fail(admin.status());
  env.admin = std::move(*admin);
  MachineMonitor monitor;
  env.monitor = &monitor;

  std::cout << fmt::format("machine: {} cores, {:.1f} GiB RAM, load average at start: {}\n",
                           std::thread::hardware_concurrency(),
                           static_cast<double>(sysconf(_SC_PHYS_PAGES)) *
                               static_cast<double>(sysconf(_SC_PAGE_SIZE)) / (1 << 30),
                           ReadFirstLine("/proc/loadavg"));
  std::cout << "binary: " << env.binary << "; PostgreSQL: " << pg
            << "; Pub/Sub emulator: " << std::getenv("PUBSUB_EMULATOR_HOST") << "\n";
  auto t0 = SteadyClock::now();
  std::set<std::string> want;
  {
    std::stringstream ss(parts);
    std::string p;
    while (std::getline(ss, p, ',')) want.insert(p);
  }
  Status status;
  if (want.contains("1")) status = PartWriteLatency(env, rounds, updates, mix_ops);
  if (status.ok() && (want.contains("2") || want.contains("5"))) {
    status = PartsEndToEnd(env, preset, ops, want.contains("2") ? repeat : 0, !no_sink,
                           want.contains("5"));
  }
  monitor.Stop();
  std::vector<double> load = monitor.LoadSince(0);
  std::cout << fmt::format(
      "\nwall time {:.0f} s; load average (1 min) over the run: min {:.2f}, median {:.2f}, max "
      "{:.2f}\nCPU seconds by command while it ran (all processes on the machine):",
      Seconds(SteadyClock::now() - t0),
      load.empty() ? 0 : *std::min_element(load.begin(), load.end()), Median(load),
      load.empty() ? 0 : *std::max_element(load.begin(), load.end()));
  int shown = 0;
  for (const auto& [comm, s] : monitor.CpuByCommand()) {
    if (shown++ == 10 || s < 0.5) break;
    std::cout << fmt::format(" {} {:.0f};", comm, s);
  }
  std::cout << "\n";
  if (!keep) fs::remove_all(env.dir);
  if (!status.ok()) return fail(status);
  return 0;
}

}  // namespace
}  // namespace ch

int main(int argc, char** argv) { return ch::Main(argc, argv); }
