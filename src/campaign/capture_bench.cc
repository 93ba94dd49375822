// Capture overhead: the same write mix on a SQLite campaign store with capture off (kNone) and
// on (kLog, outbox triggers), through the CampaignService. Prints throughput and the overhead.
//
//   campaign_capture_bench [--rows 2000] [--shifts 200] [--updates 5000] [--dir /tmp]
//   campaign_capture_bench --workload small.jsonl   (replay a generated workload, both modes)
//   --synchronous FULL                              (fsync every commit; default NORMAL)
//   --row-per-shift                                 (capture shifts row by row, as outbox
//                                                    format 2 did; default: one row per shift)
//   campaign_capture_bench --durability             (log capture with an outbox relay draining
//                                                    it: the cost of each way to keep the
//                                                    history within what survives power loss)
//
// Scenarios: "shift" moves the last campaign of a 2,000-campaign customer to the top (one
// transaction rewriting every row of the customer); "update" changes one field of a random
// campaign (one row per transaction). Content is ~600 bytes, as in the workload generator.
//
// --durability runs log capture three ways, interleaved, --repeat times, with a relay thread
// (SqliteOutboxSource polling and confirming batches of 1,000, as the capture role does)
// draining the outbox during the measurement: NORMAL writers and a relay that does not fsync
// (the baseline: the old behaviour), NORMAL writers and a relay that fsyncs the WAL once per
// batch (the default now), FULL writers (an fsync per commit). It prints each run's throughput
// and its ratio to the baseline of the same run, then the medians.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "campaign/campaign_service.h"
#include "campaign/sqlite_campaign_store.h"
#include "capture/sqlite_outbox_source.h"

namespace ch {
namespace {

struct Args {
  int rows = 2000;
  int shifts = 200;
  int updates = 5000;
  int repeat = 3;
  std::string dir = std::filesystem::temp_directory_path().string();
  std::string workload;
  std::string synchronous = "NORMAL";
  int page_size = 0;
  bool durability = false;
  bool row_per_shift = false;
};

// How one measured run is set up.
enum class Relay { kNone, kWithoutSync, kWithSync };
struct Mode {
  StoreCapture capture = StoreCapture::kLog;
  std::string synchronous = "NORMAL";
  Relay relay = Relay::kNone;
};

std::string Body(std::mt19937& rng) {
  static const char* kWords[] = {"sale",  "new",   "offer", "summer", "cart",   "free",  "join",
                                 "today", "picks", "deal",  "win",    "stream", "secure"};
  std::string s;
  while (s.size() < 560) {
    s += kWords[rng() % 13];
    s += ' ';
  }
  return s;
}

Campaign Row(int64_t customer, int64_t id, int64_t priority, std::mt19937& rng) {
  Campaign c;
  c.id = id;
  c.customer_id = customer;
  c.name = fmt::format("Banner: Summer Picks #{}", id);
  c.status = CampaignStatus::kActive;
  c.priority = priority;
  c.trigger_event = "app_open";
  c.audience_segment = "ios";
  c.frequency_cap = 3;
  c.content = fmt::format(
      R"({{"body":"{}","button_text":"Open","image_url":"https://cdn.example.com/img/{:08x}.png","title":"Live Arrivals"}})",
      Body(rng), rng());
  c.updated_by = "user:1";
  return c;
}

struct Result2 {
  double shift_tps = 0;
  double update_tps = 0;
  double shift_cpu_tps = 0;   // per CPU second
  double update_cpu_tps = 0;  // per CPU second
  int64_t outbox_rows = 0;
  uintmax_t db_bytes = 0;
  int64_t relay_batches = 0;  // each one fsync when the relay syncs
};

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

// CPU seconds (user + system) used by this process so far: less sensitive than wall time to the
// other work on a shared machine.
double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return tv(u.ru_utime) + tv(u.ru_stime);
}

// An outbox relay without a bus: polls and confirms batches on its own thread, as the capture
// role's relay does, until stopped.
class BenchRelay {
 public:
  BenchRelay(const std::string& path, bool sync_wal) {
    auto source = SqliteOutboxSource::Open({.path = path, .sync_wal = sync_wal});
    if (!source.ok()) Fail("relay", source.status());
    source_ = std::move(*source);
    while (Step() > 0) {
    }  // the seed rows, before the measurement
    batches_ = 0;
    thread_ = std::thread([this] {
      while (!stop_) Step();
    });
  }
  // Stop and return the batches relayed since construction (the seed excluded).
  int64_t Stop() {
    stop_ = true;
    thread_.join();
    return batches_;
  }

 private:
  static void Fail(const char* what, const Status& s) {
    fmt::print(stderr, "{}: {}\n", what, s.ToString());
    std::exit(1);
  }
  size_t Step() {
    auto b = source_->Poll(1000, std::chrono::milliseconds(5));
    if (!b.ok()) Fail("relay poll", b.status());
    if (b->events.empty()) return 0;
    if (Status c = source_->Confirm(b->end_position); !c.ok()) Fail("relay confirm", c);
    ++batches_;
    return b->events.size();
  }
  std::unique_ptr<SqliteOutboxSource> source_;
  std::atomic<bool> stop_{false};
  int64_t batches_ = 0;  // written by the relay thread; read after join
  std::thread thread_;
};

Result2 RunOnce(const Args& a, const Mode& mode, int run) {
  const StoreCapture capture = mode.capture;
  std::string path = fmt::format("{}/capture_bench_{}_{}_{}.db", a.dir, getpid(),
                                 capture == StoreCapture::kLog ? "log" : "none", run);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  SqliteCampaignStoreOptions o;
  o.path = path;
  o.capture = capture == StoreCapture::kLog ? CaptureSetting::kLog : CaptureSetting::kNone;
  o.synchronous = mode.synchronous;
  o.page_size = a.page_size;
  o.one_row_per_shift = !a.row_per_shift;
  auto store = SqliteCampaignStore::Open(o);
  if (!store.ok()) {
    fmt::print(stderr, "{}\n", store.status().ToString());
    std::exit(1);
  }
  CampaignService service(**store);
  std::mt19937 rng(42);
  // The big customer (1) and 20 small ones (2..21) with 100 campaigns each.
  int64_t id = 0;
  for (int64_t customer = 1; customer <= 21; ++customer) {
    int n = customer == 1 ? a.rows : 100;
    for (int start = 0; start < n; start += 500) {
      std::vector<Campaign> rows;
      for (int p = start + 1; p <= std::min(n, start + 500); ++p) {
        rows.push_back(Row(customer, ++id, p, rng));
      }
      auto r = service.Import(customer, rows);
      if (!r.ok()) {
        fmt::print(stderr, "import: {}\n", r.status().ToString());
        std::exit(1);
      }
    }
  }
  WriteContext ctx;
  ctx.actor = "user:7";
  Result2 out;
  // The big customer's ids by priority; moving the last to the top rotates it.
  std::deque<int64_t> order;
  auto listed = (*store)->List(1);
  if (!listed.ok()) std::exit(1);
  for (const Campaign& c : listed.value()) order.push_back(c.id);
  std::optional<BenchRelay> relay;
  if (mode.relay != Relay::kNone) relay.emplace(path, mode.relay == Relay::kWithSync);
  auto t0 = std::chrono::steady_clock::now();
  double c0 = CpuSeconds();
  for (int i = 0; i < a.shifts; ++i) {
    int64_t last = order.back();
    order.pop_back();
    order.push_front(last);
    auto r = service.Move(last, 1, ctx);  // shifts every other campaign
    if (!r.ok() || r->shifted != a.rows - 1) {
      fmt::print(stderr, "move: {}\n", r.status().ToString());
      std::exit(1);
    }
  }
  out.shift_tps = a.shifts / Seconds(std::chrono::steady_clock::now() - t0);
  out.shift_cpu_tps = a.shifts / (CpuSeconds() - c0);
  t0 = std::chrono::steady_clock::now();
  c0 = CpuSeconds();
  for (int i = 0; i < a.updates; ++i) {
    CampaignPatch p;
    if (i % 2 == 0) {
      p.name = fmt::format("Renamed {}", i);
    } else {
      p.frequency_cap = i % 10;
    }
    auto r = service.Update(1 + static_cast<int64_t>(rng() % id), p, ctx);
    if (!r.ok()) {
      fmt::print(stderr, "update: {}\n", r.status().ToString());
      std::exit(1);
    }
  }
  out.update_tps = a.updates / Seconds(std::chrono::steady_clock::now() - t0);
  out.update_cpu_tps = a.updates / (CpuSeconds() - c0);
  if (relay) out.relay_batches = relay->Stop();
  relay.reset();
  store->reset();
  out.db_bytes = std::filesystem::file_size(path);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return out;
}

// Replay a workload file (shared/workloads/FORMAT.md) through the service; return the seconds
// (wall and CPU) spent on the ops after the seed lines, and the number of ops.
struct ReplayResult {
  double seconds = 0;
  double cpu_seconds = 0;
  int64_t ops = 0;
};

ReplayResult Replay(const Args& a, const std::string& workload, StoreCapture capture, int run) {
  std::string path = fmt::format("{}/capture_bench_replay_{}_{}_{}.db", a.dir, getpid(),
                                 capture == StoreCapture::kLog ? "log" : "none", run);
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  SqliteCampaignStoreOptions o;
  o.path = path;
  o.capture = capture == StoreCapture::kLog ? CaptureSetting::kLog : CaptureSetting::kNone;
  o.synchronous = a.synchronous;
  o.page_size = a.page_size;
  o.one_row_per_shift = !a.row_per_shift;
  auto store = SqliteCampaignStore::Open(o);
  if (!store.ok()) {
    fmt::print(stderr, "{}\n", store.status().ToString());
    std::exit(1);
  }
  CampaignService service(**store);
  std::ifstream in(workload);
  std::string line;
  int64_t ops = 0;
  std::chrono::steady_clock::duration spent{};
  double cpu = 0;
  auto fail = [&](const Status& st, const std::string& l) {
    fmt::print(stderr, "replay failed: {} at {}\n", st.ToString(), l.substr(0, 200));
    std::exit(1);
  };
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    std::string op = j["op"];
    if (op == "header" || op == "footer") continue;
    if (op == "seed") {
      std::vector<Campaign> rows;
      for (const auto& r : j["rows"]) {
        auto c = ParseCampaignRow(r.dump());
        if (!c.ok()) fail(c.status(), line);
        rows.push_back(*c);
      }
      auto r = service.Import(j["customer_id"], rows);
      if (!r.ok()) fail(r.status(), line);
      continue;
    }
    WriteContext ctx;
    ctx.actor = j["actor"];
    ctx.expect_customer = j["customer_id"].get<int64_t>();
    Status st;
    auto t0 = std::chrono::steady_clock::now();
    double c0 = CpuSeconds();
    if (op == "create") {
      auto c = ParseCampaignRow(j["row"].dump());
      if (!c.ok()) fail(c.status(), line);
      ctx.expect_shifted = j["shift"]["n"].get<int64_t>();
      st = service.Create(*c, ctx).status();
    } else if (op == "update" || op == "burst") {
      auto p = ParseCampaignPatch(j["set"].dump());
      if (!p.ok()) fail(p.status(), line);
      st = service.Update(j["id"], *p, ctx).status();
    } else if (op == "reorder") {
      ctx.expect_priority = j["from"].get<int64_t>();
      ctx.expect_shifted = j["shift"]["n"].get<int64_t>();
      st = service.Move(j["id"], j["to"], ctx).status();
    } else if (op == "delete") {
      ctx.expect_priority = j["priority"].get<int64_t>();
      ctx.expect_shifted = j["shift"]["n"].get<int64_t>();
      st = service.Delete(j["id"], ctx).status();
    }
    spent += std::chrono::steady_clock::now() - t0;
    cpu += CpuSeconds() - c0;
    if (!st.ok()) fail(st, line);
    ++ops;
  }
  store->reset();
  for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  return {Seconds(spent), cpu, ops};
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// --durability: see the file comment.
int RunDurability(const Args& a) {
  struct Way {
    const char* name;
    Mode mode;
    std::vector<double> shift, update, shift_ratio, update_ratio;
  };
  std::vector<Way> ways = {
      {"NORMAL, relay without fsync (baseline)", {.relay = Relay::kWithoutSync}},
      {"NORMAL, relay fsyncs once per batch", {.relay = Relay::kWithSync}},
      {"FULL (fsync per commit), relay without",
       {.synchronous = "FULL", .relay = Relay::kWithoutSync}},
  };
  for (int run = 0; run < a.repeat; ++run) {
    for (Way& w : ways) {
      Result2 r = RunOnce(a, w.mode, run);
      w.shift.push_back(r.shift_tps);
      w.update.push_back(r.update_tps);
      w.shift_ratio.push_back(r.shift_tps / ways[0].shift.back());
      w.update_ratio.push_back(r.update_tps / ways[0].update.back());
      fmt::print(
          "run {} {:40}: shift {:7.1f} tx/s ({:.3f})  update {:8.1f} tx/s ({:.3f})  "
          "{} relay batches\n",
          run, w.name, r.shift_tps, w.shift_ratio.back(), r.update_tps, w.update_ratio.back(),
          r.relay_batches);
    }
  }
  for (const Way& w : ways) {
    fmt::print(
        "median {:40}: shift {:7.1f} tx/s ({:.3f} of baseline)  update {:8.1f} tx/s "
        "({:.3f} of baseline)\n",
        w.name, Median(w.shift), Median(w.shift_ratio), Median(w.update), Median(w.update_ratio));
  }
  return 0;
}

}  // namespace
}  // namespace ch

int main(int argc, char** argv) {
  ch::Args a;
  for (int i = 1; i < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--durability") {
      a.durability = true;
      --i;  // takes no value
      continue;
    }
    if (k == "--row-per-shift") {
      a.row_per_shift = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) break;
    if (k == "--rows") a.rows = std::atoi(argv[i + 1]);
    if (k == "--shifts") a.shifts = std::atoi(argv[i + 1]);
    if (k == "--updates") a.updates = std::atoi(argv[i + 1]);
    if (k == "--repeat") a.repeat = std::atoi(argv[i + 1]);
    if (k == "--dir") a.dir = argv[i + 1];
    if (k == "--workload") a.workload = argv[i + 1];
    if (k == "--synchronous") a.synchronous = argv[i + 1];
    if (k == "--page-size") a.page_size = std::atoi(argv[i + 1]);
  }
  if (a.durability) return ch::RunDurability(a);
  if (!a.workload.empty()) {
    double best[2] = {1e9, 1e9};
    double best_cpu[2] = {1e9, 1e9};
    for (int run = 0; run < a.repeat; ++run) {
      for (int m = 0; m < 2; ++m) {
        auto r = ch::Replay(a, a.workload,
                            m == 0 ? ch::StoreCapture::kNone : ch::StoreCapture::kLog, run);
        fmt::print(
            "run {} capture {:4}: workload {} ops in {:.2f} s = {:.0f} ops/s ({:.2f} CPU s)\n", run,
            m == 0 ? "none" : "log", r.ops, r.seconds, r.ops / r.seconds, r.cpu_seconds);
        best[m] = std::min(best[m], r.seconds);
        best_cpu[m] = std::min(best_cpu[m], r.cpu_seconds);
      }
    }
    fmt::print(
        "best: workload none {:.2f} s, log {:.2f} s -> capture costs {:.1f}% of throughput\n",
        best[0], best[1], 100.0 * (1.0 - best[0] / best[1]));
    fmt::print("per CPU second: workload capture costs {:.1f}%\n",
               100.0 * (1.0 - best_cpu[0] / best_cpu[1]));
    return 0;
  }
  // Interleave the runs so that machine noise hits both modes alike; keep the best of each.
  ch::Result2 best[2];
  for (int run = 0; run < a.repeat; ++run) {
    for (int m = 0; m < 2; ++m) {
      ch::Mode mode{.capture = m == 0 ? ch::StoreCapture::kNone : ch::StoreCapture::kLog,
                    .synchronous = a.synchronous};
      auto r = ch::RunOnce(a, mode, run);
      fmt::print(
          "run {} capture {:4}: shift {:7.1f} tx/s ({:7.1f} per CPU s; {} rows each)  update "
          "{:8.1f} tx/s ({:8.1f} per CPU s)\n",
          run, m == 0 ? "none" : "log", r.shift_tps, r.shift_cpu_tps, a.rows, r.update_tps,
          r.update_cpu_tps);
      best[m].shift_tps = std::max(best[m].shift_tps, r.shift_tps);
      best[m].update_tps = std::max(best[m].update_tps, r.update_tps);
      best[m].shift_cpu_tps = std::max(best[m].shift_cpu_tps, r.shift_cpu_tps);
      best[m].update_cpu_tps = std::max(best[m].update_cpu_tps, r.update_cpu_tps);
    }
  }
  auto overhead = [](double off, double on) { return 100.0 * (1.0 - on / off); };
  fmt::print(
      "best: shift none {:.1f} tx/s, log {:.1f} tx/s -> capture costs {:.1f}% of throughput\n",
      best[0].shift_tps, best[1].shift_tps, overhead(best[0].shift_tps, best[1].shift_tps));
  fmt::print(
      "best: update none {:.1f} tx/s, log {:.1f} tx/s -> capture costs {:.1f}% of throughput\n",
      best[0].update_tps, best[1].update_tps, overhead(best[0].update_tps, best[1].update_tps));
  fmt::print("per CPU second: shift capture costs {:.1f}%, update capture costs {:.1f}%\n",
             overhead(best[0].shift_cpu_tps, best[1].shift_cpu_tps),
             overhead(best[0].update_cpu_tps, best[1].update_cpu_tps));
  return 0;
}
