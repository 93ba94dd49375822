// Write latency of PgCampaignStore with and without log capture (numbers, not a test).
//
// One campaign updated N times through CampaignService (one transaction each), under:
//   none           capture kNone, no publication, no slot
//   log            capture kLog (REPLICA IDENTITY FULL, actor messages), no slot
//   log+slot       a capture slot exists but nobody reads it (WAL piles up)
//   log+slot+relay a PgLogicalSource drains and confirms on another thread (production shape)
// Prints median, p99 and mean per scenario. Needs a server with wal_level=logical:
//   pg_logical_source_bench [URL] [N]      (URL defaults to $CH_TEST_PG_URL, N to 2000)
// Creates and drops its own database.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "campaign/campaign_service.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"
#include "capture/pg_logical_source.h"

namespace ch {
namespace {

struct Stats {
  double median_us = 0;
  double p99_us = 0;
  double mean_us = 0;
};

Stats Summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  Stats s;
  s.median_us = us[us.size() / 2];
  s.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  double sum = 0;
  for (double v : us) sum += v;
  s.mean_us = sum / static_cast<double>(us.size());
  return s;
}

Result<Stats> Measure(const std::string& url, StoreCapture capture, int n) {
  PgCampaignStoreOptions o;
  o.url = url;
  o.capture = capture;
  o.ignore_existing_capture = true;
  ASSIGN_OR_RETURN(auto store, PgCampaignStore::Open(o));
  CampaignService service(*store);
  WriteContext ctx;
  ctx.actor = "user:bench";
  ASSIGN_OR_RETURN(auto ids, store->List(1));
  int64_t id = 0;
  if (ids.empty()) {
    for (int i = 0; i < 20; ++i) {
      Campaign c;
      c.customer_id = 1;
      c.name = "bench " + std::to_string(i);
      c.content = R"({"title":"Hello","body":"A typical in-app message body of some length."})";
      ASSIGN_OR_RETURN(auto info, service.Create(c, ctx));
      id = info.row->id;
    }
  } else {
    id = ids.front().id;
  }
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = -200; i < n; ++i) {  // 200 warm-up updates
    CampaignPatch p;
    p.frequency_cap = (i + 1000) % 1000;
    auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(service.Update(id, p, ctx).status());
    auto d = std::chrono::steady_clock::now() - start;
    if (i >= 0) us.push_back(std::chrono::duration<double, std::micro>(d).count());
  }
  return Summarize(us);
}

int Run(const std::string& admin_url, int n) {
  PgConnectOptions co;
  co.url = admin_url;
  auto admin = PgConn::Connect(co);
  if (!admin.ok()) {
    fmt::print(stderr, "{}\n", admin.status().ToString());
    return 1;
  }
  std::random_device rd;
  const std::string db = fmt::format("ch_bench_{:08x}", rd());
  const std::string slot = db + "_slot";
  const std::string pub = "ch_bench_pub";
  if (auto r = (*admin)->Exec("CREATE DATABASE " + db); !r.ok()) {
    fmt::print(stderr, "{}\n", r.status().ToString());
    return 1;
  }
  auto url = PgUrlWithDatabase(admin_url, db);
  int rc = 0;
  auto report = [&](const char* name, const Result<Stats>& s) {
    if (!s.ok()) {
      fmt::print(stderr, "{}: {}\n", name, s.status().ToString());
      rc = 1;
      return;
    }
    fmt::print("{:<16} median {:7.0f} us   p99 {:7.0f} us   mean {:7.0f} us\n", name, s->median_us,
               s->p99_us, s->mean_us);
  };
  fmt::print("PgCampaignStore single-campaign update through CampaignService, {} updates each\n",
             n);
  report("none", Measure(*url, StoreCapture::kNone, n));
  report("log", Measure(*url, StoreCapture::kLog, n));
  if (Status s = PgLogicalSource::CreateCapture(*url, slot, pub); !s.ok()) {
    fmt::print(stderr, "{}\n", s.ToString());
    rc = 1;
  } else {
    report("log+slot", Measure(*url, StoreCapture::kLog, n));
    {
      PgLogicalSourceOptions so;
      so.url = *url;
      so.slot = slot;
      so.publication = pub;
      auto source = PgLogicalSource::Open(so);
      if (!source.ok()) {
        fmt::print(stderr, "{}\n", source.status().ToString());
        rc = 1;
      } else {
        std::atomic<bool> stop{false};
        std::atomic<int64_t> relayed{0};
        std::thread relay([&] {
          while (!stop.load()) {
            auto b = (*source)->Poll(2000, std::chrono::milliseconds(50));
            if (!b.ok() || b->events.empty()) continue;
            relayed += static_cast<int64_t>(b->events.size());
            (*source)->Confirm(b->end_position).IgnoreError();
          }
        });
        report("log+slot+relay", Measure(*url, StoreCapture::kLog, n));
        stop = true;
        relay.join();
        fmt::print("(relay received {} events while measuring, incl. the backlog of log+slot)\n",
                   relayed.load());
      }
    }
    PgLogicalSource::DropCapture(*url, slot, pub).IgnoreError();
  }
  (*admin)->Exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)").status().IgnoreError();
  return rc;
}

}  // namespace
}  // namespace ch

int main(int argc, char** argv) {
  const char* env = std::getenv("CH_TEST_PG_URL");
  std::string url = argc > 1 ? argv[1] : (env != nullptr ? env : "");
  int n = argc > 2 ? std::atoi(argv[2]) : 2000;
  if (url.empty() || n <= 0) {
    fmt::print(stderr,
               "usage: pg_logical_source_bench [URL] [N]  (URL defaults to CH_TEST_PG_URL)\n");
    return 2;
  }
  return ch::Run(url, n);
}
