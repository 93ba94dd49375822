// pipeline_bench: the embedded pipeline end to end, measured (docs/benchmarks.md).
//
//   1. replay throughput with capture off vs on (log capture + live publisher), as a ratio in
//      the same run (runs alternate when --repeat > 1; medians reported);
//   2. commit-to-queryable lag (ingested_at - event_time) p50/p99 over every record of the
//      capture-on run;
//   3. peak RSS of the process during each replay;
//   4. as-of latency for the biggest customer at 100 random moments (median/p95), and bytes per
//      stored version.
//
// Usage: pipeline_bench [--preset large|small] [--ops N] [--repeat N] [--dir DIR] [--keep]
//                       [--lag-report]
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "app/runtime.h"
#include "common/process_stats.h"
#include "common/time_util.h"
#include "history/sqlite_history_store.h"
#include "workload/generator.h"
#include "workload/replayer.h"

namespace ch {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

struct RunResult {
  double replay_s = 0;     // until the last op committed
  double caught_up_s = 0;  // until the history held everything
  int64_t ops = 0;
  int64_t versions = 0;
  int64_t peak_rss = 0;
};

// `publish_live`: run the publisher during the replay (the embedded pipeline as users run it);
// otherwise replay with capture only (the write path alone) and drain afterwards.
Result<RunResult> ReplayOnce(const std::string& workload, const fs::path& dir,
                             CaptureSetting capture, bool publish_live = true) {
  fs::remove_all(dir);
  RuntimeOptions options;
  options.config.data_dir = dir.string();
  options.config.capture = capture;
  ASSIGN_OR_RETURN(auto runtime, Runtime::Create(options));
  ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
  ResetPeakRss();
  auto t0 = Clock::now();
  if (capture == CaptureSetting::kLog && publish_live) {
    RETURN_IF_ERROR(runtime->StartPublisher().status());
  }
  Replayer replayer(*service);
  ASSIGN_OR_RETURN(ReplaySummary summary, replayer.ReplayFile(workload));
  RunResult r;
  r.replay_s = Seconds(Clock::now() - t0);
  if (capture == CaptureSetting::kLog && !publish_live) {
    RETURN_IF_ERROR(runtime->StartPublisher().status());
  }
  RETURN_IF_ERROR(runtime->WaitCaughtUp(std::chrono::minutes(30)));
  r.caught_up_s = Seconds(Clock::now() - t0);
  runtime->StopPublisher();
  r.peak_rss = PeakRssBytes();
  r.ops = summary.ops;
  r.versions = summary.versions;
  return r;
}

int Main(int argc, char** argv) {
  CLI::App app{"campaign-history pipeline benchmark"};
  std::string preset = "large";
  std::optional<int64_t> ops;
  int repeat = 1;
  std::string dir_flag;
  bool keep = false;
  bool lag_report = false;
  app.add_option("--preset", preset, "Workload preset (small | large)")->capture_default_str();
  app.add_option("--ops", ops, "Override the preset's number of ops");
  app.add_option("--repeat", repeat, "Alternating off/on runs (medians reported)")
      ->capture_default_str();
  app.add_option("--dir", dir_flag, "Work directory [default: a new temp dir]");
  app.add_flag("--keep", keep, "Keep the work directory");
  app.add_flag("--lag-report", lag_report,
               "Also print where the lag comes from: the publisher's longest pauses between two "
               "history commits, and the deepest backlogs");
  CLI11_PARSE(app, argc, argv);

  fs::path dir = dir_flag.empty()
                     ? fs::temp_directory_path() / fmt::format("ch-pipeline-bench-{}", getpid())
                     : fs::path(dir_flag);
  fs::create_directories(dir);
  auto fail = [&](const Status& s) {
    std::cerr << "pipeline_bench: " << s.ToString() << "\n";
    return 1;
  };

  auto gen = GeneratorPreset(preset);
  if (!gen.ok()) return fail(gen.status());
  if (ops) gen->ops = *ops;
  std::string workload = (dir / "workload.jsonl").string();
  auto stats = GenerateWorkloadFile(*gen, workload);
  if (!stats.ok()) return fail(stats.status());
  std::cout << fmt::format("workload: preset {} seed {}: {} ops, {} versions expected\n", preset,
                           gen->seed, stats->ops, stats->expected_versions);
  std::cout << fmt::format("machine: {} cores, load average at start: ",
                           std::thread::hardware_concurrency());
  {
    std::ifstream la("/proc/loadavg");
    std::string l;
    std::getline(la, l);
    std::cout << l << "\n";
  }

  std::vector<double> off_s, on_s, on_caught_s, off_rss, on_rss, wp_s, drain_s;
  for (int i = 0; i < repeat; ++i) {
    auto off = ReplayOnce(workload, dir / "off", CaptureSetting::kNone);
    if (!off.ok()) return fail(off.status());
    auto wp = ReplayOnce(workload, dir / "write-path", CaptureSetting::kLog, false);
    if (!wp.ok()) return fail(wp.status());
    auto on = ReplayOnce(workload, dir / "on", CaptureSetting::kLog);
    if (!on.ok()) return fail(on.status());
    wp_s.push_back(wp->replay_s);
    drain_s.push_back(wp->caught_up_s - wp->replay_s);
    if (on->versions != stats->expected_versions) {
      return fail(DataLossError(fmt::format("replayed {} versions, expected {}", on->versions,
                                            stats->expected_versions)));
    }
    off_s.push_back(off->replay_s);
    on_s.push_back(on->replay_s);
    on_caught_s.push_back(on->caught_up_s);
    off_rss.push_back(static_cast<double>(off->peak_rss));
    on_rss.push_back(static_cast<double>(on->peak_rss));
    std::cout << fmt::format(
        "run {}: capture off {:.1f} s ({:.0f} ops/s); capture on, publisher later {:.1f} s (then "
        "drained in {:.1f} s); capture on + live publisher {:.1f} s ({:.0f} ops/s), history "
        "caught up at {:.1f} s\n",
        i + 1, off->replay_s, off->ops / off->replay_s, wp->replay_s,
        wp->caught_up_s - wp->replay_s, on->replay_s, on->ops / on->replay_s, on->caught_up_s);
  }

  // Everything below reads the last capture-on run's history.
  SqliteHistoryOptions ho;
  ho.path = (dir / "on" / "history.db").string();
  auto history = SqliteHistoryStore::Open(ho);
  if (!history.ok()) return fail(history.status());
  auto hstats = (*history)->Stats();
  if (!hstats.ok()) return fail(hstats.status());
  if (hstats->records != stats->expected_versions) {
    return fail(DataLossError(fmt::format("history holds {} records, expected {}", hstats->records,
                                          stats->expected_versions)));
  }

  // Lag over every record: campaigns are 1..campaigns_ever.
  std::vector<double> lag_ms;
  lag_ms.reserve(static_cast<size_t>(hstats->records));
  // ingested_at (one per history commit) -> records, oldest event_time.
  std::map<Timestamp, std::pair<int64_t, Timestamp>> commits;
  auto customers = (*history)->ListCustomers();
  if (!customers.ok()) return fail(customers.status());
  for (int64_t c : *customers) {
    auto changes = (*history)->CustomerChanges(c, {}, int64_t{1} << 40);
    if (!changes.ok()) return fail(changes.status());
    for (const HistoryRecord& r : *changes) {
      lag_ms.push_back(static_cast<double>((r.ingested_at - r.event_time).count()) / 1000.0);
      if (lag_report) {
        auto [it, added] = commits.try_emplace(r.ingested_at, 0, r.event_time);
        ++it->second.first;
        it->second.second = std::min(it->second.second, r.event_time);
      }
    }
  }

  if (lag_report && !commits.empty()) {
    // A pause: the time from one history commit to the next (what one Append, a merge chunk or a
    // checkpoint took, plus the poll). A backlog: how old the oldest record of a commit was.
    struct Commit {
      double at_s, pause_ms, oldest_ms;
      int64_t records;
    };
    std::vector<Commit> list;
    const Timestamp first = commits.begin()->first;
    Timestamp prev = first;
    for (const auto& [at, v] : commits) {
      list.push_back({static_cast<double>((at - first).count()) / 1e6,
                      static_cast<double>((at - prev).count()) / 1e3,
                      static_cast<double>((at - v.second).count()) / 1e3, v.first});
      prev = at;
    }
    std::vector<double> pauses;
    for (const Commit& c : list) pauses.push_back(c.pause_ms);
    std::cout << fmt::format(
        "lag report: {} history commits; pause between commits p50 {:.1f} ms, p99 {:.1f} ms, "
        "max {:.1f} ms\n",
        list.size(), Percentile(pauses, 0.5), Percentile(pauses, 0.99), Percentile(pauses, 1.0));
    auto top = [&](const char* what, auto key) {
      std::vector<Commit> sorted = list;
      std::sort(sorted.begin(), sorted.end(),
                [&](const Commit& a, const Commit& b) { return key(a) > key(b); });
      std::cout << "  " << what << ":\n";
      for (size_t i = 0; i < std::min<size_t>(8, sorted.size()); ++i) {
        std::cout << fmt::format(
            "    at {:7.2f} s: pause {:6.1f} ms, oldest record {:6.1f} ms, {} records\n",
            sorted[i].at_s, sorted[i].pause_ms, sorted[i].oldest_ms, sorted[i].records);
      }
    };
    top("longest pauses", [](const Commit& c) { return c.pause_ms; });
    top("oldest records", [](const Commit& c) { return c.oldest_ms; });
  }

  // as-of for the biggest customer (customer 1 in the presets) at 100 random moments.
  int64_t big = 1;
  std::mt19937_64 rng(42);
  int64_t lo = ToUnixMicros(*hstats->first_event), hi = ToUnixMicros(*hstats->last_event);
  std::vector<double> asof_ms;
  size_t campaigns_at_end = 0;
  for (int i = 0; i < 100; ++i) {
    Timestamp t =
        FromUnixMicros(lo + static_cast<int64_t>(rng() % static_cast<uint64_t>(hi - lo + 1)));
    auto t0 = Clock::now();
    auto r = (*history)->AsOf(big, t);
    double ms = Seconds(Clock::now() - t0) * 1000;
    if (!r.ok()) return fail(r.status());
    asof_ms.push_back(ms);
    campaigns_at_end = std::max(campaigns_at_end, r->size());
  }
  if (auto s = (*history)->Checkpoint(); !s.ok()) return fail(s);
  auto bytes = (*history)->Stats();

  double off_med = Median(off_s), on_med = Median(on_s);
  std::cout << "\n";
  std::cout << fmt::format("{:<52} {:>14} {:>14}\n", "metric", "measured", "target");
  auto row = [](const std::string& m, const std::string& v, const std::string& t) {
    std::cout << fmt::format("{:<52} {:>14} {:>14}\n", m, v, t);
  };
  row("replay, capture off (ops/s, median)", fmt::format("{:.0f}", stats->ops / off_med), "");
  double wp_med = Median(wp_s);
  row("replay, capture on, publisher not running (ops/s)",
      fmt::format("{:.0f}", stats->ops / wp_med), "");
  row("write-path cost of capture: 1 - on/off throughput",
      fmt::format("{:.1f} %", (1 - off_med / wp_med) * 100), "<= 20 %");
  row("publisher alone, draining that backlog (versions/s)",
      fmt::format("{:.0f}", stats->expected_versions / Median(drain_s)), "");
  row("replay, capture on + live publisher (ops/s, median)",
      fmt::format("{:.0f}", stats->ops / on_med), "");
  row("whole-pipeline cost: 1 - (on + publisher)/off throughput",
      fmt::format("{:.1f} %", (1 - off_med / on_med) * 100), "");
  row("versions/s captured (capture on)", fmt::format("{:.0f}", stats->expected_versions / on_med),
      "");
  row("history caught up after the last commit (s)",
      fmt::format("{:.2f}", Median(on_caught_s) - on_med), "");
  row("commit-to-queryable lag p50 (ms)", fmt::format("{:.1f}", Percentile(lag_ms, 0.5)), "");
  row("commit-to-queryable lag p99 (ms)", fmt::format("{:.1f}", Percentile(lag_ms, 0.99)),
      "<= 250");
  row("peak RSS, replay with capture on (MiB)", fmt::format("{:.0f}", Median(on_rss) / 1048576),
      "<= 256");
  row("peak RSS, replay with capture off (MiB)", fmt::format("{:.0f}", Median(off_rss) / 1048576),
      "");
  row(fmt::format("as-of customer {} ({} campaigns max), median (ms)", big, campaigns_at_end),
      fmt::format("{:.2f}", Median(asof_ms)), "<= 5");
  row("as-of p95 (ms)", fmt::format("{:.2f}", Percentile(asof_ms, 0.95)), "");
  if (bytes.ok() && bytes->records > 0) {
    row("history bytes per stored version",
        fmt::format("{:.0f}", static_cast<double>(bytes->bytes) / bytes->records), "<= 120");
  }
  if (!keep) fs::remove_all(dir);
  return 0;
}

}  // namespace
}  // namespace ch

int main(int argc, char** argv) { return ch::Main(argc, argv); }
