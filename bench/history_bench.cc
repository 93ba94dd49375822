// history_bench: the SQLite (default) or PostgreSQL (--pg URL) history store under the shape of
// the `large` workload.
//
// Builds a history directly through the HistoryStore API -- one customer with 2,000 campaigns
// plus 200 customers with 10, about 1.46 M versions of which most are the priority shifts that
// creates, deletes and reorders cause, ~700-byte content that changes now and then -- and reports:
//   * Append throughput (records/s) at the chosen batch size and synchronous mode;
//   * bytes per stored version (file size after a checkpoint, indexes included), next to the
//     raw snapshot bytes per version a naive "one row per snapshot" table would hold;
//   * as-of latency for the big customer at random moments (median / p95), and the same answer
//     computed by the obvious window-function query over the same file, as a ratio;
//   * one campaign's full history (median / hottest campaign).
// Every as-of answer is checked: the priorities of the campaigns must be exactly 1..n.
//
// Usage: history_bench [--records N] [--batch N] [--synchronous FULL|NORMAL] [--moments N]
//                      [--baseline-moments N] [--path FILE] [--keep] [--seed N]
//                      [--merge-rows N] [--merge-chunk-rows N] [--autocheckpoint PAGES]
//                      [--clickhouse clickhouse://HOST:PORT/DB]
// With --clickhouse the same history goes into a ClickHouse store (the database is dropped first
// unless --reuse); bytes per version are then system.parts bytes_on_disk (docs/clickhouse.md),
// and the SQLite-only parts (checkpoint, space by object, window-function baseline) are skipped.
//                      [--pg URL] [--pg-schema NAME]  (PostgreSQL: a fresh schema, by default
//                                    pghistory_bench_<pid>, dropped
//                                    at the end unless --keep; no SQLite baseline)
// Numbers only; nothing here asserts a timing.
#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "campaign/pg_client.h"
#include "common/sqlite.h"
#include "common/time_util.h"
#include "history/clickhouse_history_store.h"
#include "history/pg_history_store.h"
#include "history/sqlite_history_store.h"

namespace ch {
namespace {

using Clock = std::chrono::steady_clock;

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Bytes this process has caused to be written to storage so far (/proc/self/io), or -1.
int64_t WrittenBytes() {
  FILE* f = std::fopen("/proc/self/io", "r");
  if (f == nullptr) return -1;
  char line[128];
  int64_t v = -1;
  while (std::fgets(line, sizeof line, f)) {
    if (std::sscanf(line, "write_bytes: %ld", &v) == 1) break;
  }
  std::fclose(f);
  return v;
}

// CPU time of the calling thread in milliseconds: robust against other processes competing for
// the cores (wall-clock numbers on a shared machine include their time slices).
double ThreadCpuMs() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

const char* const kWords[] = {
    "summer",       "sale",     "free",        "shipping",    "today",       "only",     "new",
    "arrivals",     "limited",  "offer",       "members",     "exclusive",   "discount", "unlock",
    "premium",      "upgrade",  "your",        "plan",        "save",        "now",      "don't",
    "miss",         "out",      "get",         "started",     "welcome",     "back",     "we",
    "missed",       "you",      "check",       "latest",      "features",    "try",      "pro",
    "trial",        "days",     "left",        "complete",    "profile",     "earn",     "rewards",
    "points",       "invite",   "friends",     "bonus",       "flash",       "deal",     "ends",
    "midnight",     "bundle",   "collection",  "favorites",   "restocked",   "popular",  "near",
    "personalized", "picks",    "recommended", "based",       "on",          "activity", "update",
    "app",          "version",  "improved",    "performance", "tips",        "tricks",   "learn",
    "how",          "tutorial", "guide",       "level",       "achievement", "streak",   "keep",
    "going",        "daily",    "goal",        "reached",     "congrats"};
const char* const kTriggers[] = {"app_open",           "session_start",     "cart_abandoned",
                                 "purchase_completed", "page_view:pricing", "signup_completed",
                                 "level_up",           "push_opened",       "idle_30s",
                                 "trial_day_7"};
const char* const kSegments[] = {"all_users", "new_users",   "returning", "vip", "churn_risk",
                                 "high_ltv",  "trial_users", "locale:de", "ios", "web"};
const char* const kButtons[] = {"Shop now", "Learn more", "Claim offer", "Upgrade",
                                "Try it",   "Continue",   "Get started", "View deals"};
const char* const kStatuses[] = {"draft", "active", "paused", "ended"};

struct Campaign {
  int64_t id = 0;
  int64_t customer = 0;
  int64_t version = 0;
  std::string name;
  int status = 0;
  int trigger = 0;
  int segment = 0;
  int64_t cap = 0;
  std::string title, body, button, image;
  Timestamp created_at{};
  Timestamp updated_at{};
  std::string updated_by;
};

// Generates the workload's shape as history records, op by op (one transaction each).
class Generator {
 public:
  explicit Generator(uint64_t seed) : rng_(seed), now_(*ParseTimestamp("2026-01-05T00:00:00Z")) {}

  std::string Words(int lo, int hi) {
    int n = lo + static_cast<int>(rng_() % static_cast<uint64_t>(hi - lo + 1));
    std::string s;
    for (int i = 0; i < n; ++i) {
      if (i) s += ' ';
      s += kWords[rng_() % std::size(kWords)];
    }
    return s;
  }
  std::string Body() {
    size_t target = 200 + rng_() % 601;
    std::string s;
    while (s.size() < target) {
      if (!s.empty()) s += ' ';
      s += kWords[rng_() % std::size(kWords)];
    }
    s.resize(target);
    return s;
  }
  void EditBody(std::string& body) {
    // Replace or insert a word or two, like a person typing.
    for (int k = 0, n = 1 + static_cast<int>(rng_() % 3); k < n; ++k) {
      size_t pos = rng_() % body.size();
      size_t space = body.find(' ', pos);
      if (space == std::string::npos) space = body.size();
      std::string w = kWords[rng_() % std::size(kWords)];
      if (rng_() % 2) {
        size_t start = body.rfind(' ', pos);
        start = start == std::string::npos ? 0 : start + 1;
        body.replace(start, space - start, w);
      } else {
        body.insert(space, " " + w);
      }
    }
    if (body.size() > 800) body.resize(800);
  }

  static std::string Quote(const std::string& s) { return "\"" + s + "\""; }

  static std::string Snapshot(const Campaign& c, int64_t priority) {
    std::string content =
        fmt::format(R"({{"body":{},"button_text":{},"image_url":{},"title":{}}})", Quote(c.body),
                    Quote(c.button), Quote(c.image), Quote(c.title));
    return fmt::format(
        R"({{"id":{},"customer_id":{},"name":{},"status":"{}","priority":{},"trigger_event":"{}",)"
        R"("audience_segment":"{}","start_at":null,"end_at":null,"frequency_cap":{},"version":{},)"
        R"("created_at":"{}","updated_at":"{}","updated_by":{},"content":{}}})",
        c.id, c.customer, Quote(c.name), kStatuses[c.status], priority, kTriggers[c.trigger],
        kSegments[c.segment], c.cap, c.version, FormatTimestamp(c.created_at),
        FormatTimestamp(c.updated_at), Quote(c.updated_by), content);
  }

  Campaign NewCampaign(int64_t customer) {
    Campaign c;
    c.id = next_id_++;
    c.customer = customer;
    c.name = fmt::format("Banner: {} #{}", Words(1, 4), c.id);
    c.status = rng_() % 10 < 7 ? 0 : 1;
    c.trigger = static_cast<int>(rng_() % std::size(kTriggers));
    c.segment = static_cast<int>(rng_() % std::size(kSegments));
    c.cap = static_cast<int64_t>(rng_() % 11);
    c.title = Words(2, 6);
    c.body = Body();
    c.button = kButtons[rng_() % std::size(kButtons)];
    c.image = fmt::format("https://cdn.example.com/img/{:08x}.png", rng_() & 0xffffffffu);
    c.created_at = now_;
    return c;
  }

  // Stamp a new version of `c` at priority `p` into `out`.
  void Emit(Campaign& c, int64_t p, ChangeOp op, const std::string& actor,
            std::vector<HistoryRecord>& out) {
    HistoryRecord r;
    r.customer_id = c.customer;
    r.campaign_id = c.id;
    r.event_time = now_;
    r.event_type = op;
    r.actor = actor;
    r.transaction_id = std::to_string(tx_);
    r.priority = p;
    if (op == ChangeOp::kDeleted) {
      r.version = c.version + 1;
      r.snapshot = Snapshot(c, p);  // the last content, as the design says
    } else {
      c.version += 1;
      c.updated_at = now_;
      c.updated_by = actor;
      r.version = c.version;
      r.snapshot = Snapshot(c, p);
    }
    raw_bytes_ += static_cast<int64_t>(r.snapshot.size());
    out.push_back(std::move(r));
  }

  std::string User(int64_t customer) {
    if (rng_() % 100 < 12) return "worker:scheduler";
    return fmt::format("user:{}", customer * 100 + static_cast<int64_t>(rng_() % 10));
  }

  void Seed(int64_t customer, int n, std::vector<HistoryRecord>& out) {
    auto& order = order_[customer];
    target_[customer] = n;
    ++tx_;
    for (int p = 1; p <= n; ++p) {
      order.push_back(NewCampaign(customer));
      Emit(order.back(), p, ChangeOp::kCreated, User(customer), out);
    }
  }

  // Apply one op of `customer` (one transaction) and append its records to `out`.
  void Op(int64_t customer, std::vector<HistoryRecord>& out) {
    auto& order = order_[customer];
    const double n = static_cast<double>(order.size());
    const double tgt = static_cast<double>(target_[customer]);
    double w_update = 0.60, w_burst = 0.02, w_reorder = n < 2 ? 0 : 0.12;
    double w_create = 0.07 * tgt / std::max(n, 1.0), w_delete = n < 2 ? 0 : 0.07 * n / tgt;
    double x = std::uniform_real_distribution<double>(
        0, w_update + w_burst + w_reorder + w_create + w_delete)(rng_);
    now_ +=
        Micros(static_cast<int64_t>(std::exponential_distribution<double>(1 / 20.0)(rng_) * 1e6));
    ++tx_;
    std::string actor = User(customer);
    if (order.empty() || (x -= w_update + w_burst + w_reorder) >= 0) {
      if (order.empty() || x < w_create) {  // create at priority 1; everybody shifts down
        for (size_t i = 0; i < order.size(); ++i) {
          Emit(order[i], static_cast<int64_t>(i) + 2, ChangeOp::kUpdated, actor, out);
        }
        order.insert(order.begin(), NewCampaign(customer));
        Emit(order.front(), 1, ChangeOp::kCreated, actor, out);
      } else {  // delete; the ones below move up
        size_t i = rng_() % order.size();
        Emit(order[i], static_cast<int64_t>(i) + 1, ChangeOp::kDeleted, actor, out);
        order.erase(order.begin() + static_cast<long>(i));
        for (size_t k = i; k < order.size(); ++k) {
          Emit(order[k], static_cast<int64_t>(k) + 1, ChangeOp::kUpdated, actor, out);
        }
      }
      return;
    }
    x += w_update + w_burst + w_reorder;
    if (x < w_update) {
      size_t i = rng_() % order.size();
      Campaign& c = order[i];
      int fields = 1 + static_cast<int>(rng_() % 3);
      for (int f = 0; f < fields; ++f) {
        switch (rng_() % 8) {
          case 0:
            c.name = fmt::format("Modal: {} #{}", Words(1, 4), c.id);
            break;
          case 1:
            c.status = static_cast<int>(rng_() % 4);
            break;
          case 2:
            c.trigger = static_cast<int>(rng_() % std::size(kTriggers));
            break;
          case 3:
            c.segment = static_cast<int>(rng_() % std::size(kSegments));
            break;
          case 4:
            c.cap = (c.cap + 1) % 11;
            break;
          default:
            if (rng_() % 10 < 6) {
              EditBody(c.body);
            } else {
              c.title = Words(2, 6);
            }
        }
      }
      Emit(c, static_cast<int64_t>(i) + 1, ChangeOp::kUpdated, actor, out);
    } else if (x < w_update + w_burst) {
      size_t i = rng_() % order.size();
      int saves = 5 + static_cast<int>(rng_() % 16);
      for (int s = 0; s < saves; ++s) {
        if (s) {
          now_ += Micros(300'000 + static_cast<int64_t>(rng_() % 3'700'000));
          ++tx_;
        }
        EditBody(order[i].body);
        Emit(order[i], static_cast<int64_t>(i) + 1, ChangeOp::kUpdated, actor, out);
      }
    } else {  // reorder: move a -> b, the ones in between shift by one
      size_t a = rng_() % order.size();
      size_t b = a;
      const int64_t n = static_cast<int64_t>(order.size());
      while (b == a) {
        // As the workload generator: drag by a few places, pin near the top, or anywhere.
        uint64_t x = rng_() % 10;
        int64_t to;
        if (x < 5) {
          int64_t d = 1 + static_cast<int64_t>(rng_() % 10);
          to = static_cast<int64_t>(a) + (rng_() % 2 ? d : -d);
        } else if (x < 8) {
          to = static_cast<int64_t>(rng_() % static_cast<uint64_t>(std::min<int64_t>(3, n)));
        } else {
          to = static_cast<int64_t>(rng_() % static_cast<uint64_t>(n));
        }
        b = static_cast<size_t>(std::clamp<int64_t>(to, 0, n - 1));
      }
      Campaign moved = order[a];
      order.erase(order.begin() + static_cast<long>(a));
      order.insert(order.begin() + static_cast<long>(b), moved);
      for (size_t k = std::min(a, b); k <= std::max(a, b); ++k) {
        Emit(order[k], static_cast<int64_t>(k) + 1, ChangeOp::kUpdated, actor, out);
      }
    }
  }

  Timestamp now() const { return now_; }
  int64_t raw_bytes() const { return raw_bytes_; }
  const std::vector<Campaign>& order(int64_t customer) { return order_[customer]; }

 private:
  std::mt19937_64 rng_;
  Timestamp now_;
  int64_t next_id_ = 1;
  int64_t tx_ = 0;
  int64_t raw_bytes_ = 0;
  std::map<int64_t, std::vector<Campaign>> order_;
  std::map<int64_t, int> target_;
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// Return "" when the as-of answer has priorities exactly 1..n, else a description.
std::string CheckDense(const std::vector<HistoryRecord>& rs) {
  for (size_t i = 0; i < rs.size(); ++i) {
    if (rs[i].priority != static_cast<int64_t>(i) + 1) {
      return fmt::format("position {} has priority {} (campaign {})", i + 1, rs[i].priority,
                         rs[i].campaign_id);
    }
  }
  return {};
}

// Time the as-of of `customer` at `moments` random moments through two read-only stores on
// `base`'s file, alternating per moment: one opened with the previous read options (no mmap),
// one with `base`'s. Prints the median / p95 wall and thread-CPU time of each and the ratio; fails
// when the two answers differ.
template <typename MomentFn>
Status CompareAsOfConfigs(const SqliteHistoryOptions& base, int64_t customer, int moments,
                          MomentFn random_moment) {
  SqliteHistoryOptions before = base;
  before.read_only = true;
  before.mmap_kib = 0;
  SqliteHistoryOptions now = base;
  now.read_only = true;
  ASSIGN_OR_RETURN(auto old_store, SqliteHistoryStore::Open(before));
  ASSIGN_OR_RETURN(auto new_store, SqliteHistoryStore::Open(now));
  std::vector<double> ms[2], cpu[2];
  for (int i = -3; i < moments; ++i) {  // three warm-up moments each
    Timestamp at = random_moment();
    std::vector<HistoryRecord> answers[2];
    for (int k = 0; k < 2; ++k) {
      SqliteHistoryStore& store = k == 0 ? *old_store : *new_store;
      auto start = Clock::now();
      double cpu_start = ThreadCpuMs();
      ASSIGN_OR_RETURN(answers[k], store.AsOf(customer, at));
      if (i < 0) continue;
      ms[k].push_back(MsSince(start));
      cpu[k].push_back(ThreadCpuMs() - cpu_start);
    }
    if (answers[0] != answers[1]) {
      return InternalError(
          fmt::format("as-of at {} differs between the configurations", FormatTimestamp(at)));
    }
  }
  const char* names[2] = {"mmap off (before)", "mmap on (now)"};
  for (int k = 0; k < 2; ++k) {
    fmt::print(
        "as-of A/B, {:<18}: median {:.2f} ms, p95 {:.2f} ms; thread CPU median {:.2f} ms, p95 "
        "{:.2f} ms ({} moments, alternated)\n",
        names[k], Percentile(ms[k], 0.5), Percentile(ms[k], 0.95), Percentile(cpu[k], 0.5),
        Percentile(cpu[k], 0.95), moments);
  }
  fmt::print("as-of A/B: now / before = {:.2f} (wall median), {:.2f} (CPU median)\n",
             Percentile(ms[1], 0.5) / Percentile(ms[0], 0.5),
             Percentile(cpu[1], 0.5) / Percentile(cpu[0], 0.5));
  return Status::OK();
}

int Run(int argc, char** argv) {
  int64_t max_records = 1'470'000;
  int batch = 1000;
  int moments = 100;
  int baseline_moments = 10;
  std::string synchronous = "FULL";
  std::string path;
  bool keep = false;
  int page_size = 4096;
  int autocheckpoint = SqliteHistoryOptions().wal_autocheckpoint_pages;
  int64_t merge_rows = SqliteHistoryOptions().merge_threshold_rows;
  int64_t merge_chunk_rows = SqliteHistoryOptions().merge_chunk_rows;
  int cache_mib = SqliteHistoryOptions().cache_kib / 1024;
  int64_t mmap_mib = SqliteHistoryOptions().mmap_kib / 1024;
  bool reuse = false;  // query an existing file (from --keep) instead of loading a new one
  uint64_t seed = 1;
  std::string clickhouse;
  std::string pg_url;
  std::string pg_schema_arg;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        fmt::print(stderr, "missing value after {}\n", a);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--records") {
      max_records = std::atoll(next().c_str());
    } else if (a == "--batch") {
      batch = std::atoi(next().c_str());
    } else if (a == "--moments") {
      moments = std::atoi(next().c_str());
    } else if (a == "--baseline-moments") {
      baseline_moments = std::atoi(next().c_str());
    } else if (a == "--synchronous") {
      synchronous = next();
    } else if (a == "--path") {
      path = next();
    } else if (a == "--page-size") {
      page_size = std::atoi(next().c_str());
    } else if (a == "--cache-mib") {
      cache_mib = std::atoi(next().c_str());
    } else if (a == "--mmap-mib") {
      mmap_mib = std::atoll(next().c_str());
    } else if (a == "--merge-rows") {
      merge_rows = std::atoll(next().c_str());
    } else if (a == "--merge-chunk-rows") {
      merge_chunk_rows = std::atoll(next().c_str());
    } else if (a == "--autocheckpoint") {
      autocheckpoint = std::atoi(next().c_str());
    } else if (a == "--keep") {
      keep = true;
    } else if (a == "--reuse") {
      reuse = true;
      keep = true;
    } else if (a == "--pg") {
      pg_url = next();
    } else if (a == "--pg-schema") {
      pg_schema_arg = next();
    } else if (a == "--seed") {
      seed = std::strtoull(next().c_str(), nullptr, 10);
    } else if (a == "--clickhouse") {
      clickhouse = next();
    } else {
      fmt::print(stderr,
                 "usage: history_bench [--records N] [--batch N] [--synchronous FULL|NORMAL] "
                 "[--moments N] [--baseline-moments N] [--path FILE] [--keep] [--reuse] "
                 "[--seed N]\n");
      return 2;
    }
  }
  const bool pg = !pg_url.empty();
  const std::string pg_schema =
      pg_schema_arg.empty() ? fmt::format("pghistory_bench_{}", getpid()) : pg_schema_arg;
  if (pg) {
    path = pg_schema;
    baseline_moments = 0;
  }
  if (path.empty()) {
    path = (std::filesystem::temp_directory_path() / fmt::format("history_bench-{}.db", getpid()))
               .string();
  }
  if (!reuse && clickhouse.empty() && !pg) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }

  std::unique_ptr<HistoryStore> store;
  SqliteHistoryStore* sqlite = nullptr;
  if (!clickhouse.empty()) {
    ClickHouseHistoryOptions co;
    co.url = clickhouse;
    auto ch = ClickHouseHistoryStore::Open(co);
    if (ch.ok() && !reuse) {
      if (!(*ch)->DropDatabaseForTesting().ok()) return 1;
      ch = ClickHouseHistoryStore::Open(co);
    }
    if (!ch.ok()) {
      fmt::print(stderr, "{}\n", ch.status().ToString());
      return 1;
    }
    store = std::move(ch).value();
    path = clickhouse;
    synchronous = "-";
  }
  SqliteHistoryOptions options;
  options.path = path;
  options.synchronous = synchronous;
  options.page_size = page_size;
  options.wal_autocheckpoint_pages = autocheckpoint;
  options.merge_threshold_rows = merge_rows;
  options.merge_chunk_rows = merge_chunk_rows;
  options.cache_kib = cache_mib * 1024;
  options.mmap_kib = mmap_mib * 1024;
  PgHistoryStore* pgs = nullptr;
  if (pg) {
    PgHistoryOptions po;
    po.url = pg_url;
    po.schema = pg_schema;
    auto opened = PgHistoryStore::Open(po);
    if (!opened.ok()) {
      fmt::print(stderr, "{}\n", opened.status().ToString());
      return 1;
    }
    pgs = opened->get();
    store = std::move(opened).value();
  }
  if (!store) {
    auto opened = SqliteHistoryStore::Open(options);
    if (!opened.ok()) {
      fmt::print(stderr, "{}\n", opened.status().ToString());
      return 1;
    }
    sqlite = opened->get();
    store = std::move(opened).value();
  }

  // ---- load ------------------------------------------------------------------------------------
  Generator gen(seed);
  constexpr int64_t kBig = 1;
  std::vector<int64_t> small;
  for (int64_t c = 2; c <= 201; ++c) small.push_back(c);
  std::vector<HistoryRecord> pending;
  int64_t records = 0;
  int64_t batches = 0;
  double append_ms = 0;
  double append_cpu_ms = 0;  // process CPU time spent in Append (user + system)
  std::vector<double> batch_ms;
  Timestamp first_time = gen.now();
  auto flush = [&](bool force) {
    if (pending.empty() || (!force && static_cast<int>(pending.size()) < batch)) return true;
    auto start = Clock::now();
    std::clock_t cpu_start = std::clock();
    auto r = store->Append(pending);
    double ms = MsSince(start);
    append_cpu_ms += 1000.0 * static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    if (!r.ok() || *r != static_cast<int64_t>(pending.size())) {
      fmt::print(stderr, "append failed: {}\n", r.status().ToString());
      return false;
    }
    append_ms += ms;
    batch_ms.push_back(ms);
    records += *r;
    ++batches;
    pending.clear();
    return true;
  };
  Timestamp last_time = first_time;
  const int64_t written_before = WrittenBytes();
  if (!reuse) {
    std::mt19937_64 pick(seed + 1);
    gen.Seed(kBig, 2000, pending);
    for (int64_t c : small) gen.Seed(c, 10, pending);
    if (!flush(true)) return 1;
    while (records + static_cast<int64_t>(pending.size()) < max_records) {
      int64_t customer = pick() % 100 < 2 ? kBig : small[pick() % small.size()];
      gen.Op(customer, pending);
      if (!flush(false)) return 1;
    }
    if (!flush(true)) return 1;
    last_time = gen.now();
  }
  auto stats = store->Stats();
  if (!stats.ok() || (!reuse && stats->records != records)) {
    fmt::print(stderr, "stats disagree: {}\n", stats.status().ToString());
    return 1;
  }
  if (reuse) {
    records = stats->records;
    first_time = stats->first_event.value_or(first_time);
    last_time = stats->last_event.value_or(first_time);
  } else if (sqlite != nullptr && !sqlite->Checkpoint().ok()) {
    return 1;
  } else if (pgs) {
    // What a running server does on its own: VACUUM ANALYZE keeps the visibility map and the
    // statistics current (as-of plans rely on both).
    PgConnectOptions co;
    co.url = pg_url;
    auto conn = PgConn::Connect(co);
    if (!conn.ok() || !(*conn)
                           ->Exec(fmt::format("VACUUM ANALYZE {0}.history, {0}.campaigns, "
                                              "{0}.bodies",
                                              pg_schema))
                           .ok())
      return 1;
  }
  stats = store->Stats();

  if (pg) {
    fmt::print("history_bench: {} records ({} batches of ~{}), PostgreSQL schema {}\n", records,
               batches, batch, pg_schema);
  } else {
    fmt::print(
        "history_bench: {} records ({} batches of ~{}), synchronous={}, page size {}, "
        "autocheckpoint {}, merge every {} rows, file {}\n",
        records, batches, batch, synchronous, page_size, autocheckpoint, merge_rows, path);
  }
  if (!reuse) {
    fmt::print(
        "append: {:.0f} records/s (batch median {:.1f} ms, p95 {:.1f} ms, p99 {:.1f} ms, max "
        "{:.1f} ms; CPU {:.0f}% of the time = {:.0f} records per CPU-second; {:.0f} bytes "
        "written to storage per record, WAL and checkpoints included)\n",
        static_cast<double>(records) / (append_ms / 1000.0), Percentile(batch_ms, 0.5),
        Percentile(batch_ms, 0.95), Percentile(batch_ms, 0.99), Percentile(batch_ms, 1.0),
        100.0 * append_cpu_ms / append_ms, static_cast<double>(records) / (append_cpu_ms / 1000.0),
        static_cast<double>(written_before >= 0 ? WrittenBytes() - written_before : 0) /
            static_cast<double>(records));
  }
  fmt::print("storage: {:.1f} bytes/version on disk ({:.1f} MB), indexes included",
             static_cast<double>(stats->bytes) / static_cast<double>(records),
             static_cast<double>(stats->bytes) / 1e6);
  if (!reuse) {
    fmt::print("; raw snapshots {:.0f} bytes/version ({:.1f}x smaller)",
               static_cast<double>(gen.raw_bytes()) / static_cast<double>(records),
               static_cast<double>(gen.raw_bytes()) / static_cast<double>(stats->bytes));
  }
  fmt::print("\n");
  if (auto space = sqlite ? sqlite->SpaceByObject()
                   : pgs  ? pgs->SpaceByObject()
                          : Result<std::vector<std::pair<std::string, int64_t>>>(
                               UnimplementedError("not SQLite or PostgreSQL"));
      space.ok()) {
    std::string parts;
    for (const auto& [name, bytes] : *space) {
      parts += fmt::format(" {} {:.1f}", name,
                           static_cast<double>(bytes) / static_cast<double>(records));
    }
    fmt::print("  bytes/version by object:{}\n", parts);
  }

  // ---- as-of -----------------------------------------------------------------------------------
  std::mt19937_64 when(seed + 2);
  const int64_t span = ToUnixMicros(last_time) - ToUnixMicros(first_time);
  auto random_moment = [&] {
    return first_time + Micros(static_cast<int64_t>(when() % static_cast<uint64_t>(span + 1)));
  };
  // Warm the page cache the way a running service would be warm.
  for (int i = 0; i < 3; ++i) {
    if (!store->AsOf(kBig, random_moment()).ok()) return 1;
  }
  std::vector<double> asof_ms;
  std::vector<double> asof_cpu_ms;
  size_t campaigns_seen = 0;
  for (int i = 0; i < moments; ++i) {
    Timestamp at = random_moment();
    auto start = Clock::now();
    double cpu_start = ThreadCpuMs();
    auto r = store->AsOf(kBig, at);
    asof_ms.push_back(MsSince(start));
    asof_cpu_ms.push_back(ThreadCpuMs() - cpu_start);
    if (!r.ok()) {
      fmt::print(stderr, "as-of failed: {}\n", r.status().ToString());
      return 1;
    }
    if (std::string bad = CheckDense(*r); !bad.empty()) {
      fmt::print(stderr, "as-of at {} is wrong: {}\n", FormatTimestamp(at), bad);
      return 1;
    }
    campaigns_seen += r->size();
  }
  auto final_answer = store->AsOf(kBig, last_time);
  if (!final_answer.ok() || (!reuse && final_answer->size() != gen.order(kBig).size())) {
    fmt::print(stderr, "as-of at the end does not match the model\n");
    return 1;
  }
  double median = Percentile(asof_ms, 0.5);
  fmt::print(
      "as-of big customer (~{} campaigns): median {:.2f} ms, p95 {:.2f} ms over {} moments "
      "(thread CPU time: median {:.2f} ms, p95 {:.2f} ms)\n",
      moments ? campaigns_seen / static_cast<size_t>(moments) : 0, median,
      Percentile(asof_ms, 0.95), moments, Percentile(asof_cpu_ms, 0.5),
      Percentile(asof_cpu_ms, 0.95));

  if (pgs) {
    auto plan = pgs->ExplainAsOf(kBig, random_moment(), /*analyze=*/true);
    if (plan.ok()) fmt::print("as-of plan (EXPLAIN ANALYZE, one moment):\n{}", *plan);
  }

  // Same run, same moments, alternated: the store with its read options of before issue 10 item
  // 4 (no mmap) next to the current defaults, as a second read-only connection to the file.
  if (sqlite != nullptr && moments > 0) {
    if (Status s = CompareAsOfConfigs(options, kBig, moments, random_moment); !s.ok()) {
      fmt::print(stderr, "{}\n", s.ToString());
      return 1;
    }
  }

  // Baseline: the obvious query over the same file (window function over the customer's history
  // up to T, through the customer index), with the same decoding of the chosen rows.
  if (sqlite != nullptr) {
    SqliteOptions so;
    so.read_only = true;
    so.cache_kib = 64 * 1024;
    auto db = SqliteDb::Open(path, so);
    if (!db.ok()) return 1;
    // Everything of the chosen rows is in the packed `row` column; the store decodes it the same
    // way for both queries, so only the row selection differs.
    const std::string sql =
        "SELECT campaign_id, row FROM ("
        " SELECT campaign_id, row, row_number() OVER ("
        "   PARTITION BY campaign_id ORDER BY t DESC, version DESC) AS rn"
        " FROM history WHERE customer_id = ?1 AND t <= ?2)"
        " WHERE rn = 1";
    int64_t epoch_us = 0;
    if (auto m = (*db)->Prepare("SELECT value FROM meta WHERE key = 'time_epoch_us'"); m.ok()) {
      if (auto row = (*m)->Step(); row.ok() && *row) epoch_us = (*m)->ColumnInt64(0);
      (*m)->Reset();
    }
    auto stmt = (*db)->Prepare(sql);
    if (!stmt.ok()) {
      fmt::print(stderr, "{}\n", stmt.status().ToString());
      return 1;
    }
    std::vector<double> base_ms;
    for (int i = 0; i < baseline_moments; ++i) {
      Timestamp at = random_moment();
      auto start = Clock::now();
      (*stmt)->Bind(1, kBig).Bind(2, ToUnixMicros(at) - epoch_us);
      int64_t n = 0;
      while (true) {
        auto row = (*stmt)->Step();
        if (!row.ok() || !*row) break;
        ++n;
      }
      (*stmt)->Reset();
      base_ms.push_back(MsSince(start));
      auto ours = store->AsOf(kBig, at);
      // The baseline still includes campaigns whose latest record is a delete.
      if (!ours.ok() || static_cast<int64_t>(ours->size()) > n) {
        fmt::print(stderr, "baseline and store disagree at {}\n", FormatTimestamp(at));
        return 1;
      }
    }
    double base_median = Percentile(base_ms, 0.5);
    fmt::print(
        "baseline (window function over the customer's history, same file, rows not decoded): "
        "median {:.1f} ms over {} moments -> store is {:.0f}x faster\n",
        base_median, baseline_moments, median > 0 ? base_median / median : 0.0);
  }

  // ---- one campaign's history -------------------------------------------------------------------
  {
    std::vector<double> log_ms;
    double hottest_ms = 0;
    size_t hottest_len = 0;
    const auto& live = *final_answer;
    for (size_t i = 0; i < 100 && !live.empty(); ++i) {
      int64_t id = live[when() % live.size()].campaign_id;
      auto start = Clock::now();
      auto log = store->CampaignLog(id, {});
      double ms = MsSince(start);
      if (!log.ok()) return 1;
      log_ms.push_back(ms);
      if (log->size() > hottest_len) {
        hottest_len = log->size();
        hottest_ms = ms;
      }
    }
    fmt::print(
        "campaign log (big customer, 100 random campaigns): median {:.2f} ms; longest "
        "({} versions) {:.2f} ms\n",
        Percentile(log_ms, 0.5), hottest_len, hottest_ms);
  }

  store.reset();
  if (pg && !keep) {
    PgConnectOptions co;
    co.url = pg_url;
    if (auto conn = PgConn::Connect(co); conn.ok()) {
      (*conn)->Exec("DROP SCHEMA " + pg_schema + " CASCADE").status().IgnoreError();
    }
  } else if (!keep && clickhouse.empty()) {
    for (const char* suffix : {"", "-wal", "-shm"}) std::filesystem::remove(path + suffix);
  }
  return 0;
}

}  // namespace
}  // namespace ch

int main(int argc, char** argv) { return ch::Run(argc, argv); }
