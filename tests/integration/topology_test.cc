// The production topology end to end, through the real binary: PostgreSQL campaign database,
// Google Pub/Sub (the emulator) between the roles, each role a `campaign-history serve` child
// process, the workload applied by `campaign-history replay` (another child process), and the
// history checked against the independent workload model (e2e_util.h).
//
//   log capture      capture setup; serve --roles capture,publisher; replay --wait
//                    -> every committed version exactly once, as-of right at every op boundary
//   sink             serve --roles capture,publisher --publish-to topic + serve --roles sink
//   notify capture   --capture notify; serve --roles publisher -> the share of versions recorded,
//                    every version not recorded accounted for by missed_versions, the final
//                    state of every customer right
//   faults           capture and publisher as separate processes, SIGKILLed again and again
//                    (also at the CH_TEST_CRASH_AT points between "written downstream" and
//                    "confirmed upstream") -> still exactly once
//   emulator restart the emulator killed and restarted mid-run (RUN_SERIAL: it is shared)
//   poison           malformed / inconsistent change messages, forged notifications -> the
//                    dead-letter topic with the reason, while the workload flows on; a forged
//                    notification masks no real version
//   dead letters     `dead-letters` lists them; `--redrive` republishes them once fixed
//   outages          the history store's disk full for 30 s mid-replay (a tmpfs), the campaign
//                    database unreachable for 30 s (notify) -> the publisher holds and backs off,
//                    says so (log, /healthz, metrics, status), then every version is recorded
//                    and nothing is dead-lettered
//   bad input        wrong backend URLs, unreachable servers, wrong roles -> exit codes
//
// Each test has its own database (ch_topo_*, dropped with its replication slot in TearDown) and
// its own Pub/Sub project id (the emulator keeps projects apart), so the tests can run in
// parallel with others -- except the emulator restart, which ctest runs alone (topology.cmake).
// Skipped unless CH_TEST_PG_URL and PUBSUB_EMULATOR_HOST are set (scripts/services.sh start;
// source /tmp/ch-services/env.sh).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "app/consumer_health.h"
#include "app/crash_point.h"
#include "app/runtime.h"
#include "bus/pubsub_change_bus.h"
#include "capture/change_event.h"
#include "common/metrics_server.h"
#include "common/time_util.h"
#include "history/sqlite_history_store.h"
#include "query/query_engine.h"
#include "testing/pg_private_cluster.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"
#include "tests/integration/topology_util.h"
#include "workload/generator.h"

namespace ch {
namespace {

using ::ch::testing::Child;
using ::ch::testing::ModelVersion;
using ::ch::testing::TcpProxy;
using ::ch::testing::TempDir;
using ::ch::testing::TmpfsMount;
using ::ch::testing::TopoDatabase;
using ::ch::testing::WorkloadModel;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Count the lines of a file (the ops a running replay has printed so far).
size_t LineCount(const std::string& path) {
  std::string text = ::ch::testing::ReadFileText(path);
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

struct Outcome {
  int code = -1;
  std::string output;  // stderr, then stdout
  double seconds = 0;
};

class TopologyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* pg = std::getenv("CH_TEST_PG_URL");
    const char* emulator = std::getenv("PUBSUB_EMULATOR_HOST");
    if (pg == nullptr || *pg == '\0') {
      GTEST_SKIP() << "CH_TEST_PG_URL is not set: start the servers with `scripts/services.sh "
                      "start` and `source /tmp/ch-services/env.sh`";
    }
    if (emulator == nullptr || *emulator == '\0') {
      GTEST_SKIP() << "PUBSUB_EMULATOR_HOST is not set: start the servers with "
                      "`scripts/services.sh start` and `source /tmp/ch-services/env.sh`";
    }
    if (::ch::testing::BinaryDir().empty()) {
      GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    }
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    ASSERT_OK_AND_ASSIGN(db_, TopoDatabase::Create(pg));
    project_ = fmt::format("ch-topo-{}-{:08x}", getpid(), std::random_device{}());
    workload_ = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(workload_);
    ASSERT_OK_AND_ASSIGN(lines_, ReadWorkloadFile(workload_));
    ASSERT_FALSE(lines_.empty());
    ASSERT_EQ(lines_.back().op, WorkloadOp::kFooter);
    history_ = dir_.File("history.db");
  }

  // Children first (a relay holds the slot), then the slot and the database, then the project's
  // Pub/Sub resources -- whatever happened in the test.
  void TearDown() override {
    const bool failed = HasFailure();
    for (auto& c : children_) c->Kill();
    if (failed) {
      size_t first = children_.size() > 6 ? children_.size() - 6 : 0;
      for (size_t i = first; i < children_.size(); ++i) {
        std::cerr << fmt::format("---- {} (pid {}, exit {}) stderr:\n{}\n", children_[i]->name(),
                                 children_[i]->pid(), children_[i]->exit_code(),
                                 children_[i]->ErrTail(3000));
      }
    }
    children_.clear();
    tmpfs_.reset();  // its files are closed now
    proxy_.reset();
    if (db_) {
      EXPECT_OK(db_->Drop());
      db_.reset();
    }
    if (!project_.empty()) DeletePubSubResources();
  }

  void DeletePubSubResources() {
    auto bus = PubSubChangeBus::Open({.project = project_,
                                      .connect_timeout = seconds(1),
                                      .io_timeout = seconds(5),
                                      .max_attempts = 1});
    if (!bus.ok()) return;
    TopologyOptions t;
    for (const std::string& s : {t.publisher_subscription, t.sink_subscription, dead_reader_,
                                 t.dead_letter_subscription, t.history_dead_letter_subscription}) {
      (*bus)->DeleteSubscription(s).IgnoreError();
    }
    for (const std::string& topic :
         {t.changes_topic, t.dead_letter_topic, t.history_topic, t.history_dead_letter_topic}) {
      (*bus)->DeleteTopic(topic).IgnoreError();
    }
  }

  // The backend flags of this test's topology.
  std::vector<std::string> Cli(bool notify, const std::string& campaign_db = "") const {
    std::vector<std::string> a = {bin_,
                                  "--campaign-db",
                                  campaign_db.empty() ? db_->url() : campaign_db,
                                  "--bus",
                                  "pubsub://" + project_,
                                  "--history",
                                  "sqlite:" + history_};
    if (notify) {
      a.push_back("--capture");
      a.push_back("notify");
    }
    return a;
  }

  Child* Spawn(const std::string& name, const std::vector<std::string>& args,
               const std::vector<std::string>& env = {}) {
    int n = ++spawned_;
    auto child = Child::Start(name, args, dir_.File(fmt::format("{}-{}.out", name, n)),
                              dir_.File(fmt::format("{}-{}.err", name, n)), env);
    if (!child.ok()) {
      ADD_FAILURE() << "cannot start " << name << ": " << child.status().ToString();
      return nullptr;
    }
    children_.push_back(std::move(child).value());
    return children_.back().get();
  }

  // `serve --roles <roles>` plus `extra` flags.
  Child* Serve(const std::string& roles, bool notify, const std::vector<std::string>& extra = {},
               const std::vector<std::string>& env = {}) {
    std::vector<std::string> args = Cli(notify, serve_campaign_db_);
    args.insert(args.end(), {"--log-level", "info", "serve", "--roles", roles, "--slot", slot(),
                             "--publication", slot()});
    args.insert(args.end(), extra.begin(), extra.end());
    std::string name = "serve-" + roles;
    std::replace(name.begin(), name.end(), ',', '+');
    return Spawn(name, args, env);
  }

  // `replay --ops <file> --wait`: returns once every version it committed is in the history.
  Child* StartReplay(const std::string& ops_file, bool notify) {
    std::vector<std::string> args = Cli(notify);
    args.insert(args.end(), {"replay", "--ops", ops_file, "--wait", "--wait-timeout", "150s"});
    return Spawn("replay", args);
  }

  // Wait for a replay to exit 0 and return the ops it printed.
  Result<std::vector<ReplayedOp>> FinishReplay(Child* replay, Micros timeout) {
    if (replay == nullptr) return InternalError("no replay");
    Result<int> code = replay->Wait(timeout);
    if (!code.ok()) {
      replay->Kill();
      return code.status().WithContext(replay->ErrTail());
    }
    if (*code != 0) {
      return InternalError(fmt::format("replay exited with {}: {}", *code, replay->ErrTail()));
    }
    return ::ch::testing::ParseReplayOutput(::ch::testing::ReadFileText(replay->out_file()));
  }

  // Run a command to completion (at most `timeout`).
  Outcome Run(const std::vector<std::string>& args, const std::vector<std::string>& env = {},
              Micros timeout = seconds(60)) {
    Outcome o;
    auto start = Clock::now();
    Child* c = Spawn("cmd", args, env);
    if (c == nullptr) return o;
    Result<int> code = c->Wait(timeout);
    if (!code.ok()) c->Kill();
    o.code = code.ok() ? *code : -1;
    o.seconds = SecondsSince(start);
    o.output =
        ::ch::testing::ReadFileText(c->err_file()) + ::ch::testing::ReadFileText(c->out_file());
    return o;
  }

  void CaptureSetup() {
    Outcome o = Run({bin_, "--campaign-db", db_->url(), "capture", "setup", "--slot", slot(),
                     "--publication", slot()});
    ASSERT_EQ(o.code, 0) << o.output;
  }

  // Replication slot names are per server, not per database: each test uses its own (the
  // database's name), so that tests can run in parallel.
  const std::string& slot() const { return db_->name(); }

  std::unique_ptr<SqliteHistoryStore> OpenHistory() {
    SqliteHistoryOptions o;
    o.path = history_;
    o.read_only = true;
    auto history = SqliteHistoryStore::Open(o);
    EXPECT_OK(history.status());
    return history.ok() ? std::move(history).value() : nullptr;
  }

  // The model of the whole workload, stamped with the replay's commit times.
  void BuildModel(const std::vector<ReplayedOp>& ops, WorkloadModel& model) {
    ASSERT_OK(::ch::testing::ApplyToModel(lines_, ops, model));
    EXPECT_EQ(model.TotalVersions(), lines_.back().footer().expected_versions);
  }

  // Log capture: every version exactly once, as-of equal to the model at every op boundary.
  void ExpectHistoryMatchesModel(const std::vector<ReplayedOp>& ops) {
    WorkloadModel model;
    BuildModel(ops, model);
    auto history = OpenHistory();
    ASSERT_NE(history, nullptr);
    ASSERT_OK_AND_ASSIGN(HistoryStats stats, history->Stats());
    EXPECT_EQ(stats.records, lines_.back().footer().expected_versions);
    EXPECT_EQ(::ch::testing::CompareHistoryWithModel(*history, model, lines_, ops), "");
  }

  // Notify capture: what the reference design promises, checked against the model. Return the
  // share of versions recorded.
  double ExpectNotifyHistoryAccountsForEveryVersion(const std::vector<ReplayedOp>& ops) {
    WorkloadModel model;
    BuildModel(ops, model);
    auto history = OpenHistory();
    EXPECT_NE(history, nullptr);
    if (history == nullptr) return 0;
    // Every campaign's last version (a tombstone for deleted ones).
    std::map<int64_t, ModelVersion> last;
    for (const ::ch::testing::ModelOpResult& r : model.History()) {
      for (const ModelVersion& v : r.versions) last[v.campaign_id] = v;
    }
    int64_t records = 0, missed = 0;
    for (const auto& [id, v] : last) {
      auto log = history->CampaignLog(id, {});
      EXPECT_OK(log.status());
      if (!log.ok()) continue;
      if (log->empty()) {
        ADD_FAILURE() << "campaign " << id << " has no record (last version " << v.version << ")";
        continue;
      }
      int64_t accounted = 0, previous = 0;
      for (const HistoryRecord& r : *log) {
        EXPECT_GT(r.version, previous) << "campaign " << id << ": versions must increase";
        EXPECT_EQ(r.capture, CaptureMode::kNotify);
        EXPECT_EQ(r.missed_versions, r.version - 1 - previous)
            << "campaign " << id << " version " << r.version;
        accounted += 1 + r.missed_versions;
        missed += r.missed_versions;
        previous = r.version;
      }
      EXPECT_EQ(accounted, v.version)
          << "campaign " << id << ": records + missed_versions must add up to its last version";
      EXPECT_EQ(log->back().version, v.version) << "campaign " << id;
      if (v.op == ChangeOp::kDeleted) {
        EXPECT_EQ(log->back().event_type, ChangeOp::kDeleted)
            << "campaign " << id << " was deleted: its tombstone must be recorded";
      }
      records += static_cast<int64_t>(log->size());
    }
    auto stats = history->Stats();
    EXPECT_OK(stats.status());
    if (stats.ok()) {
      EXPECT_EQ(stats->records, records) << "records of campaigns the workload never had";
    }
    // The last state of every customer is the model's final state.
    Timestamp end = *ParseTimestamp("2100-01-01T00:00:00Z");
    for (int64_t customer : model.Customers()) {
      auto at = history->AsOf(customer, end);
      EXPECT_OK(at.status());
      if (!at.ok()) continue;
      EXPECT_EQ(::ch::testing::RenderAsOf(*at), model.RenderState(customer, {.all_fields = true}))
          << "customer " << customer << " at the end";
    }
    const int64_t total = model.TotalVersions();
    double share = total > 0 ? static_cast<double>(records) / static_cast<double>(total) : 0;
    std::cerr << fmt::format(
        "notify capture: {} of {} versions recorded ({:.1f}%), {} accounted for by "
        "missed_versions\n",
        records, total, 100 * share, missed);
    EXPECT_EQ(records + missed, total);
    return share;
  }

  // Wait until `replay` has printed `n` ops (its commits are done) or has exited.
  bool WaitForOps(Child* replay, size_t n, Micros timeout) {
    auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      if (LineCount(replay->out_file()) >= n) return true;
      if (!replay->running()) return false;
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  }

  // Wait until the sink's subscription on the history topic exists (the sink creates it).
  void WaitForSinkSubscription(Child* sink) {
    auto bus = TestBus(/*create_missing=*/false);
    ASSERT_NE(bus, nullptr);
    TopologyOptions t;
    auto deadline = Clock::now() + seconds(30);
    while (
        !bus->EnsureSubscription(t.sink_subscription, t.history_topic, {.ordered = false}).ok()) {
      ASSERT_TRUE(sink->running()) << sink->ErrTail();
      ASSERT_LT(Clock::now(), deadline) << "the sink did not create its subscription";
      std::this_thread::sleep_for(milliseconds(50));
    }
  }

  size_t AppliedLines() const {
    return static_cast<size_t>(std::count_if(lines_.begin(), lines_.end(),
                                             [](const WorkloadLine& l) { return l.applied(); }));
  }

  std::unique_ptr<PubSubChangeBus> TestBus(bool create_missing = true) {
    auto bus = PubSubChangeBus::Open({.project = project_, .create_missing = create_missing});
    EXPECT_OK(bus.status());
    return bus.ok() ? std::move(bus).value() : nullptr;
  }

  // The http://HOST:PORT of a `serve --metrics-listen 127.0.0.1:0` (from its log).
  std::string MetricsUrl(Child* serve) {
    const std::string mark = "serve: metrics on http://";
    auto deadline = Clock::now() + seconds(60);
    while (Clock::now() < deadline) {
      std::string err = ::ch::testing::ReadFileText(serve->err_file());
      size_t at = err.find(mark);
      if (at != std::string::npos) {
        size_t end = err.find("/metrics", at);
        const size_t from = at + std::string("serve: metrics on ").size();
        if (end != std::string::npos) return err.substr(from, end - from);
      }
      if (!serve->running()) break;
      std::this_thread::sleep_for(milliseconds(50));
    }
    ADD_FAILURE() << "serve did not report its metrics address\n" << serve->ErrTail();
    return "";
  }

  // The publisher's consumer as GET /healthz reports it (nullopt when it does not answer).
  std::optional<ConsumerHealthEntry> PublisherHealth(const std::string& metrics, int* http) {
    Result<HttpReply> r = HttpGet(metrics + "/healthz", seconds(5));
    if (!r.ok()) return std::nullopt;
    if (http) *http = r->status;
    auto entries = ParseConsumerHealth(r->body);
    if (!entries.ok()) return std::nullopt;
    for (const ConsumerHealthEntry& e : *entries) {
      if (e.role == "publisher") return e;
    }
    return std::nullopt;
  }

  // What an outage looked like from outside the publisher.
  struct OutageSeen {
    bool blocked = false;   // /healthz said blocked (with 503)
    std::string error;      // its error
    int64_t most_held = 0;  // messages held at most
    int64_t retries = 0;    // failed tries at the end
    double blocked_seconds = 0;
    std::string status_text;   // `status --serve` while blocked
    std::string metrics_text;  // GET /metrics while blocked
  };

  // Watch /healthz (and once `status --serve` and /metrics) until `until`.
  OutageSeen WatchOutage(const std::string& metrics, Clock::time_point until) {
    OutageSeen seen;
    while (Clock::now() < until) {
      int http = 0;
      std::optional<ConsumerHealthEntry> h = PublisherHealth(metrics, &http);
      if (h && h->blocked) {
        EXPECT_EQ(http, 503);
        seen.blocked = true;
        seen.error = h->error;
        seen.most_held = std::max(seen.most_held, h->held);
        seen.retries = h->retries;
        seen.blocked_seconds = h->blocked_seconds;
        if (seen.status_text.empty()) {
          Outcome o = Run({bin_, "--history", "sqlite:" + history_, "--campaign-db", db_->url(),
                           "--capture", "none", "status", "--serve", metrics});
          seen.status_text = o.output;
          auto m = HttpGet(metrics + "/metrics", seconds(5));
          if (m.ok()) seen.metrics_text = m->body;
        }
      }
      std::this_thread::sleep_for(milliseconds(200));
    }
    return seen;
  }

  // The serve log tells the outage once when it begins and once when it ends, not per retry.
  void ExpectTheLogToldTheOutageOnce(Child* serve, const std::string& says) {
    std::string err = ::ch::testing::ReadFileText(serve->err_file());
    TopologyOptions t;
    const std::string who = fmt::format("bus consumer '{}': ", t.publisher_subscription);
    std::vector<std::string> began, changed, ended;
    std::istringstream in(err);
    for (std::string line; std::getline(in, line);) {
      if (line.find(who + "blocked: ") != std::string::npos) began.push_back(line);
      if (line.find(who + "still blocked") != std::string::npos) changed.push_back(line);
      if (line.find(who + "unblocked") != std::string::npos) ended.push_back(line);
    }
    ASSERT_EQ(began.size(), 1u) << err.substr(err.size() > 6000 ? err.size() - 6000 : 0);
    EXPECT_NE(began[0].find(says), std::string::npos) << began[0];
    EXPECT_LE(changed.size(), 3u) << "logged per retry?";
    ASSERT_EQ(ended.size(), 1u);
    std::cerr << "outage in the log:\n  " << began[0] << "\n  " << ended[0] << "\n";
  }

  // Run `serve --roles <roles>` and the workload's replay, with an outage of one of the
  // publisher's dependencies for 30 s from a third into the replay (`begin` starts it, `end`
  // ends it). Check that the publisher was blocked meanwhile, naming `says` (/healthz with 503,
  // /metrics, `status --serve`), that it recovered, dead-lettered nothing and logged the outage
  // once. Return the replay's ops (empty after a fatal failure).
  std::vector<ReplayedOp> ReplayThroughAnOutage(const std::string& roles, bool notify,
                                                const std::string& what, const std::string& says,
                                                const std::function<void()>& begin,
                                                const std::function<void()>& end) {
    Child* serve = Serve(roles, notify, {"--metrics-listen", "127.0.0.1:0"});
    if (serve == nullptr) return {};
    const std::string metrics = MetricsUrl(serve);
    if (metrics.empty()) return {};
    Child* replay = StartReplay(workload_, notify);
    if (replay == nullptr) return {};
    if (!WaitForOps(replay, AppliedLines() / 3, seconds(90))) {
      ADD_FAILURE() << replay->ErrTail();
      return {};
    }
    begin();
    const auto began = Clock::now();
    std::cerr << fmt::format("outage: {} at op {}\n", what, LineCount(replay->out_file()));
    OutageSeen seen = WatchOutage(metrics, began + seconds(30));
    end();
    const auto ended = Clock::now();
    std::cerr << fmt::format(
        "outage: {} for {:.1f} s; the publisher was blocked {:.1f} s ({} failed tries, at most "
        "{} messages held): {}\n",
        what, std::chrono::duration<double>(ended - began).count(), seen.blocked_seconds,
        seen.retries, seen.most_held, seen.error);
    EXPECT_TRUE(seen.blocked) << "the publisher never reported the outage";
    EXPECT_NE(seen.error.find(says), std::string::npos) << seen.error;
    EXPECT_GT(seen.most_held, 0);
    EXPECT_NE(seen.status_text.find("publisher 'campaign-changes-publisher' BLOCKED for"),
              std::string::npos)
        << seen.status_text;
    EXPECT_NE(seen.metrics_text.find(
                  "campaign_history_consumer_blocked{role=\"publisher\",subscription=\"campaign-"
                  "changes-publisher\"} 1"),
              std::string::npos)
        << seen.metrics_text;

    Result<std::vector<ReplayedOp>> ops = FinishReplay(replay, seconds(170));
    if (!ops.ok()) {
      ADD_FAILURE() << ops.status().ToString();
      return {};
    }
    std::cerr << fmt::format("outage: all {} ops in the history {:.1f} s after it ended\n",
                             ops->size(), SecondsSince(ended));
    int http = 0;
    std::optional<ConsumerHealthEntry> after = PublisherHealth(metrics, &http);
    EXPECT_TRUE(after.has_value());
    if (after) {
      EXPECT_FALSE(after->blocked) << after->error;
      EXPECT_EQ(http, 200);
      EXPECT_EQ(after->dead_lettered, 0);
    }
    EXPECT_EQ(serve->Stop(seconds(30)), 0) << serve->ErrTail();
    ExpectTheLogToldTheOutageOnce(serve, says);
    TopologyOptions t;
    EXPECT_EQ(DeadLetterCounts()[t.dead_letter_topic], 0u) << last_dead_letters_;
    return std::move(ops).value();
  }

  // `dead-letters --json`: the number of messages each dead-letter topic keeps (0 when it has
  // no keeping subscription).
  std::map<std::string, size_t> DeadLetterCounts(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {bin_, "--bus", "pubsub://" + project_, "dead-letters",
                                     "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    Outcome o = Run(args);
    EXPECT_EQ(o.code, 0) << o.output;
    std::map<std::string, size_t> counts;
    size_t brace = o.output.find("{\"dead_letter_topics\"");
    if (brace == std::string::npos) {
      ADD_FAILURE() << "no JSON from dead-letters:\n" << o.output;
      return counts;
    }
    auto j = nlohmann::json::parse(o.output.substr(brace), nullptr, false);
    TopologyOptions t;
    for (const auto& topic : j["dead_letter_topics"]) {
      // The history's dead-letter topic exists only where a sink runs.
      if (topic["topic"] == t.dead_letter_topic) {
        EXPECT_TRUE(topic["exists"].get<bool>()) << topic.dump();
      }
      counts[topic["topic"].get<std::string>()] = topic["messages"].size();
    }
    last_dead_letters_ = o.output.substr(brace);
    return counts;
  }

  // Servers of a test's own (the crash soak restarts them); destroyed after TearDown.
  ::ch::testing::PgPrivateCluster private_pg_;
  std::unique_ptr<::ch::testing::EmulatorControl> emulator_;
  TempDir dir_;
  std::unique_ptr<TmpfsMount> tmpfs_;
  std::unique_ptr<TcpProxy> proxy_;
  std::string serve_campaign_db_;  // the publisher's --campaign-db when not db_->url()
  std::string last_dead_letters_;
  std::string bin_, project_, workload_, history_;
  std::string dead_reader_ = "topo-dead-letter-reader";
  std::unique_ptr<TopoDatabase> db_;
  std::vector<WorkloadLine> lines_;
  std::vector<std::unique_ptr<Child>> children_;
  int spawned_ = 0;
};

// 1. Log capture from the replication slot through Pub/Sub into the history.
TEST_F(TopologyTest, LogCaptureThroughPubSubRecordsEveryVersionOnce) {
  CaptureSetup();
  Child* serve = Serve("capture,publisher", false);
  ASSERT_NE(serve, nullptr);
  auto start = Clock::now();
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(StartReplay(workload_, false), seconds(170)));
  std::cerr << fmt::format("log capture: {} ops replayed and all in the history in {:.1f} s\n",
                           ops.size(), SecondsSince(start));
  EXPECT_EQ(serve->Stop(seconds(30)), 0) << "serve must stop cleanly on SIGTERM\n"
                                         << serve->ErrTail();
  ExpectHistoryMatchesModel(ops);
}

// The sink role: the publisher writes records to the history topic (what a BigQuery subscription
// would load) and `serve --roles sink` loads them into the history store.
TEST_F(TopologyTest, SinkLoadsTheHistoryTopicIntoTheHistoryStore) {
  CaptureSetup();
  Child* sink = Serve("sink", false);
  ASSERT_NE(sink, nullptr);
  // Pub/Sub delivers only to subscriptions that exist when a message is published, and the
  // publisher does not create the sink's (with BigQuery there is no sink): wait for the sink to
  // have created it before anything is published. (On the emulator the runtime's subscriptions
  // are unordered: Runtime::Subscriptions.)
  auto bus = TestBus(/*create_missing=*/false);
  ASSERT_NE(bus, nullptr);
  TopologyOptions t;
  auto deadline = Clock::now() + seconds(30);
  while (!bus->EnsureSubscription(t.sink_subscription, t.history_topic, {.ordered = false}).ok()) {
    ASSERT_TRUE(sink->running()) << sink->ErrTail();
    ASSERT_LT(Clock::now(), deadline) << "the sink did not create its subscription";
    std::this_thread::sleep_for(milliseconds(50));
  }
  Child* publisher = Serve("capture,publisher", false, {"--publish-to", "topic"});
  ASSERT_NE(publisher, nullptr);
  auto start = Clock::now();
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(StartReplay(workload_, false), seconds(170)));
  std::cerr << fmt::format("sink: {} ops replayed and all in the history in {:.1f} s\n", ops.size(),
                           SecondsSince(start));
  EXPECT_EQ(publisher->Stop(seconds(30)), 0) << publisher->ErrTail();
  EXPECT_EQ(sink->Stop(seconds(30)), 0) << sink->ErrTail();
  EXPECT_NE(::ch::testing::ReadFileText(sink->err_file()).find("sink: 7719 records"),
            std::string::npos)
      << sink->ErrTail();
  ExpectHistoryMatchesModel(ops);
}

// 2. Notify capture (the reference design): ids after commit, rows re-read by the publisher.
// The replay (which publishes the notifications) starts BEFORE the publisher, as an API server
// may in production: its notifications must wait on the subscription, not vanish.
TEST_F(TopologyTest, NotifyCaptureAccountsForEveryVersionAndEndsInTheFinalState) {
  auto start = Clock::now();
  Child* replay = StartReplay(workload_, true);
  ASSERT_NE(replay, nullptr);
  ASSERT_TRUE(WaitForOps(replay, 50, seconds(60))) << replay->ErrTail();
  Child* serve = Serve("publisher", true);
  ASSERT_NE(serve, nullptr);
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(replay, seconds(170)));
  std::cerr << fmt::format("notify: {} ops replayed, history caught up in {:.1f} s\n", ops.size(),
                           SecondsSince(start));
  EXPECT_EQ(serve->Stop(seconds(30)), 0) << serve->ErrTail();
  double share = ExpectNotifyHistoryAccountsForEveryVersion(ops);
  EXPECT_GT(share, 0);
  EXPECT_LE(share, 1);
}

// 2b. A consistent as-of near the frontier. Two publisher processes consume one unordered
// subscription, and the capture relay splits each transaction of the 2,000-campaign customer
// into change batches of <= 100 changes, so the history receives transactions in pieces and out
// of order. While the replay runs, as-of for that customer is asked again and again: every
// answer must be a state that existed -- priorities exactly 1..N, each once -- and every answer
// at the moment the history says it is complete through must equal the independent model there.
TEST_F(TopologyTest, AsOfNearTheFrontierIsAlwaysAStateThatExisted) {
  GeneratorOptions g;
  g.seed = 7;
  g.customers = 4;
  g.campaigns_per_customer = 5;
  g.big_customers = 1;
  g.big_campaigns = 2000;
  g.big_op_share = 0.5;
  g.ops = 160;
  workload_ = dir_.File("big.jsonl");
  ASSERT_OK(GenerateWorkloadFile(g, workload_).status());
  ASSERT_OK_AND_ASSIGN(lines_, ReadWorkloadFile(workload_));
  CaptureSetup();
  Child* capture = Serve("capture", false);
  Child* publisher_a = Serve("publisher", false);
  Child* publisher_b = Serve("publisher", false);
  ASSERT_TRUE(capture && publisher_a && publisher_b);
  Child* replay = StartReplay(workload_, false);
  ASSERT_NE(replay, nullptr);

  struct Sample {
    Timestamp complete_through;
    std::string answer;
  };
  std::vector<Sample> samples;
  int64_t polls = 0, clamped = 0, broken = 0;
  std::string first_broken;
  std::unique_ptr<SqliteHistoryStore> history;
  auto start = Clock::now();
  while (replay->running()) {
    ASSERT_LT(SecondsSince(start), 280) << "the replay did not finish";
    std::this_thread::sleep_for(milliseconds(30));
    if (history == nullptr) {
      SqliteHistoryOptions o;
      o.path = history_;
      o.read_only = true;
      auto opened = SqliteHistoryStore::Open(o);
      if (!opened.ok()) continue;  // not created yet
      history = std::move(opened).value();
    }
    QueryEngine engine(*history);
    auto r = engine.AsOf(1, SystemClock::Default().Now());
    ASSERT_OK(r.status());
    ++polls;
    if (r->clamped()) ++clamped;
    for (size_t i = 0; i < r->campaigns.size(); ++i) {
      if (r->campaigns[i].priority != static_cast<int64_t>(i + 1)) {
        if (broken++ == 0) {
          first_broken =
              fmt::format("answer for {}: position {} holds priority {}",
                          FormatTimestamp(r->answered_at), i + 1, r->campaigns[i].priority);
        }
        break;
      }
    }
    if (r->completeness.complete_through && r->answered_at == *r->completeness.complete_through &&
        (samples.empty() || samples.back().complete_through != r->answered_at)) {
      samples.push_back({r->answered_at, ::ch::testing::RenderAsOf(r->campaigns)});
    }
  }
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(replay, seconds(1)));
  std::cerr << fmt::format(
      "frontier: {} as-of answers during the replay ({} for an earlier moment than asked, the "
      "history being complete only through it), {} compared with the model\n",
      polls, clamped, samples.size());
  EXPECT_EQ(broken, 0) << "answers that are not a state that existed, first: " << first_broken;
  EXPECT_GT(polls, 20);
  EXPECT_GT(samples.size(), 5u);
  WorkloadModel model;
  BuildModel(ops, model);
  for (const Sample& sample : samples) {
    // The last op committed at or before complete_through.
    std::optional<int64_t> seq;
    for (const ReplayedOp& op : ops) {
      if (op.committed_at <= sample.complete_through) seq = op.seq;
    }
    std::string want = seq ? ::ch::testing::RenderModelCampaigns(model.StateAfterSeq(1, *seq),
                                                                 {.all_fields = true})
                           : std::string();
    EXPECT_EQ(sample.answer, want)
        << "as-of at complete_through " << FormatTimestamp(sample.complete_through);
  }
  for (Child* c : {capture, publisher_a, publisher_b}) {
    EXPECT_EQ(c->Stop(seconds(30)), 0) << c->ErrTail();
  }
  ExpectHistoryMatchesModel(ops);
}

// 3. Capture and publisher as separate processes, SIGKILLed at random moments while the replay
// runs, and at the crash points between "written downstream" and "confirmed upstream"
// (CH_TEST_CRASH_AT: the relay's after_publish, the publisher's after_append), then restarted.
// Every version must still be in the history exactly once.
TEST_F(TopologyTest, KilledCaptureAndPublisherProcessesLoseNothingAndDuplicateNothing) {
  CaptureSetup();
  unsigned seed = static_cast<unsigned>(std::random_device{}());
  if (const char* s = std::getenv("CH_TEST_SEED")) seed = static_cast<unsigned>(std::atoll(s));
  std::cerr << "faults: random seed " << seed << " (set CH_TEST_SEED to repeat)\n";
  SCOPED_TRACE(fmt::format("random seed {} (CH_TEST_SEED)", seed));
  std::mt19937 rng(seed);

  struct Role {
    std::string roles;
    std::string crash_point;
    Child* child = nullptr;
    Clock::time_point started{};
    bool armed = false;  // started with a crash point
    int kills = 0, crash_points = 0, crash_exits = 0, self_exits = 0;
  };
  Role roles[2] = {{.roles = "capture", .crash_point = "after_publish"},
                   {.roles = "publisher", .crash_point = "after_append"}};
  auto start_role = [&](Role& r, bool crash) {
    std::vector<std::string> env;
    if (crash) {
      env.push_back(fmt::format("CH_TEST_CRASH_AT={}:{}", r.crash_point, 1 + rng() % 3));
      ++r.crash_points;
    }
    r.child = Serve(r.roles, false, {}, env);
    r.started = Clock::now();
    r.armed = crash;
    return r.child != nullptr;
  };
  // A role that ended at its crash point says so with its exit code (app/crash_point.h).
  auto note_exit = [&](Role& r) {
    if (r.child->exit_code() == kCrashPointExitCode) ++r.crash_exits;
  };
  // Restart a role that died on its own: at its crash point, or at start-up (e.g. the slot still
  // held by the walsender of the relay just killed: Unavailable, exit 5) -- what a supervisor
  // (systemd, Kubernetes) does.
  auto revive = [&](Role& r) {
    if (r.child->running()) return true;
    note_exit(r);
    ++r.self_exits;
    std::this_thread::sleep_for(milliseconds(100));
    return start_role(r, false);
  };
  for (Role& r : roles) ASSERT_TRUE(start_role(r, false));

  auto start = Clock::now();
  Child* replay = StartReplay(workload_, false);
  ASSERT_NE(replay, nullptr);
  const size_t all_ops = AppliedLines();
  int kills = 0;
  // Kill while the replay is still committing (and at least 6 times); then only revive, so that
  // the pipeline can drain.
  while (replay->running()) {
    ASSERT_LT(SecondsSince(start), 170) << "the replay did not finish";
    const bool committing = LineCount(replay->out_file()) < all_ops;
    std::this_thread::sleep_for(milliseconds(150 + rng() % 1000));
    for (Role& r : roles) ASSERT_TRUE(revive(r));
    if (!committing && kills >= 6) continue;
    Role& r = roles[rng() % 2];
    if (r.armed) continue;  // left to reach its crash point
    r.child->Kill();
    note_exit(r);
    ++r.kills;
    ++kills;
    // Each role's first restart has a crash point, so that both points are tested every run.
    ASSERT_TRUE(start_role(r, /*crash=*/r.crash_points == 0 || rng() % 3 == 0));
  }
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(replay, seconds(1)));
  const double seconds_taken = SecondsSince(start);
  for (Role& r : roles) {
    // A role restarted in the last round may not have reached `serve` yet: SIGTERM before it
    // blocks the stop signals ends it with 143, as any process killed during exec. Give it time
    // to start, so that the stop below checks the clean drain.
    std::this_thread::sleep_until(r.started + seconds(2));
    if (r.child->running()) {
      EXPECT_EQ(r.child->Stop(seconds(30)), 0) << r.roles << ": " << r.child->ErrTail();
    }
  }
  std::cerr << fmt::format(
      "faults: replay + drain {:.1f} s; capture killed {} times ({} of {} crash points fired, {} "
      "exits on its own), publisher killed {} times ({} of {} crash points fired, {} exits on its "
      "own)\n",
      seconds_taken, roles[0].kills, roles[0].crash_exits, roles[0].crash_points,
      roles[0].self_exits, roles[1].kills, roles[1].crash_exits, roles[1].crash_points,
      roles[1].self_exits);
  EXPECT_GE(kills, 6);
  for (const Role& r : roles) {
    EXPECT_GT(r.crash_exits, 0) << r.roles << ": no process reached its crash point "
                                << r.crash_point << " (" << r.crash_points << " were set)";
  }
  ExpectHistoryMatchesModel(ops);
}

// 4. The emulator dies and comes back (empty: its state is in memory) while the pipeline runs.
//
// Messages in the emulator when it dies are lost with it. The test does not depend on them:
// the first part of the workload is completely in the history (replay --wait) before the kill,
// and the second part is committed while the emulator is down, so its changes are still in the
// replication slot (not confirmed: nothing could be published) and reach the new emulator once
// the relay's retries succeed. The processes must recover by themselves: the bus re-creates the
// topic with the publisher's subscription on the first 404 (pubsub_change_bus.h, "Recovery").
//
// The emulator is shared: ctest runs this test alone (RUN_SERIAL, topology.cmake), and a guard
// starts it again on the same port whenever the test ends with it down, failures included.
TEST_F(TopologyTest, PipelineRecoversFromAnEmulatorRestart) {
  const char* launcher = std::getenv("CH_PUBSUB_EMULATOR");
  if (launcher == nullptr || *launcher == '\0') {
    GTEST_SKIP() << "CH_PUBSUB_EMULATOR (the emulator launcher, to restart it) is not set";
  }
  std::string host_port = std::getenv("PUBSUB_EMULATOR_HOST");
  size_t colon = host_port.rfind(':');
  ASSERT_NE(colon, std::string::npos) << host_port;
  ::ch::testing::EmulatorControl emulator(host_port.substr(0, colon),
                                          std::stoi(host_port.substr(colon + 1)), launcher);
  ASSERT_TRUE(emulator.Answers()) << "the emulator at " << host_port << " does not answer";

  // The workload in two parts (the second without a header; the footer is not checked then).
  std::string text = ::ch::testing::ReadFileText(workload_);
  std::vector<std::string> raw;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) raw.push_back(l);
  ASSERT_EQ(raw.size(), lines_.size());
  const size_t split = raw.size() / 2;
  std::string part1 = dir_.File("part1.jsonl"), part2 = dir_.File("part2.jsonl");
  {
    std::ofstream a(part1), b(part2);
    for (size_t i = 0; i < raw.size(); ++i) (i < split ? a : b) << raw[i] << "\n";
  }
  size_t part2_ops = 0;
  for (size_t i = split; i < lines_.size(); ++i) part2_ops += lines_[i].applied() ? 1 : 0;

  CaptureSetup();
  Child* serve = Serve("capture,publisher", false);
  ASSERT_NE(serve, nullptr);
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(StartReplay(part1, false), seconds(120)));

  ASSERT_OK(emulator.Kill());
  auto down = Clock::now();
  Child* replay2 = StartReplay(part2, false);
  ASSERT_NE(replay2, nullptr);
  ASSERT_TRUE(WaitForOps(replay2, part2_ops, seconds(90)))
      << "commits must succeed while the bus is down\n"
      << replay2->ErrTail();
  std::this_thread::sleep_for(seconds(2));  // the relay keeps retrying meanwhile
  ASSERT_TRUE(serve->running()) << "serve must ride out a bus outage\n" << serve->ErrTail();
  EXPECT_TRUE(replay2->running()) << "the second part cannot be in the history yet";
  ASSERT_OK(emulator.Start());
  std::cerr << fmt::format("emulator restart: down for {:.1f} s\n", SecondsSince(down));
  auto back = Clock::now();
  ASSERT_OK_AND_ASSIGN(auto ops2, FinishReplay(replay2, seconds(150)));
  std::cerr << fmt::format(
      "emulator restart: the second part was in the history {:.1f} s after "
      "the emulator came back\n",
      SecondsSince(back));
  EXPECT_EQ(serve->Stop(seconds(30)), 0) << serve->ErrTail();
  ops.insert(ops.end(), ops2.begin(), ops2.end());
  ExpectHistoryMatchesModel(ops);
}

// A consistent log change of campaign `campaign_id` at `version`, with its row image.
ChangeEvent LogChange(int64_t campaign_id, int64_t customer_id, int64_t version, ChangeOp op,
                      const std::string& name) {
  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  e.op = op;
  e.campaign_id = campaign_id;
  e.customer_id = customer_id;
  e.version = version;
  e.event_time = *ParseTimestamp("2024-01-01T00:00:00Z");
  e.actor = "user:1";
  e.transaction_id = "1";
  Campaign row;
  row.id = campaign_id;
  row.customer_id = customer_id;
  row.name = name;
  row.priority = 1;
  row.version = op == ChangeOp::kDeleted ? version - 1 : version;
  row.updated_by = "user:1";
  row.created_at = row.updated_at = e.event_time;
  e.row = row;
  return e;
}

// A log change message whose row is not the campaign it names (row.id != campaign_id).
BusMessage InconsistentLogMessage(int64_t campaign_id, int64_t customer_id) {
  ChangeEvent e = LogChange(campaign_id, customer_id, 2, ChangeOp::kUpdated, "poison");
  e.row->id = campaign_id + 1000000;
  return {.data = EncodeChangeMessage(e),
          .ordering_key = std::to_string(campaign_id),
          .attributes = {{"kind", "inconsistent"}}};
}

// Pull the dead-letter reader until `n` messages arrived (or 30 s passed), then `linger` more to
// catch any unexpected one; key = attribute kind.
std::map<std::string, BusMessage> PullDeadLetters(PubSubChangeBus& bus, const std::string& sub,
                                                  size_t n, Micros linger = Micros(0)) {
  std::map<std::string, BusMessage> dead;
  auto until = Clock::now() + seconds(30);
  bool lingering = false;
  while (Clock::now() < until) {
    if (dead.size() >= n && !lingering) {
      lingering = true;
      until = Clock::now() + linger;
      continue;
    }
    auto got = bus.Pull(sub, 10, milliseconds(500));
    EXPECT_OK(got.status());
    if (!got.ok()) break;
    std::vector<std::string> ids;
    for (const Delivery& d : *got) {
      auto kind = d.message.attributes.find("kind");
      dead[kind == d.message.attributes.end() ? "?" : kind->second] = d.message;
      ids.push_back(d.ack_id);
    }
    if (!ids.empty()) {
      EXPECT_OK(bus.Ack(sub, ids));
    }
  }
  return dead;
}

// 5. Poison messages on the change topic (log capture): dead-lettered with the reason while the
// workload flows on.
TEST_F(TopologyTest, PoisonChangeMessagesGoToTheDeadLetterTopicWhileTheRestFlows) {
  CaptureSetup();
  TopologyOptions t;
  auto bus = TestBus();
  ASSERT_NE(bus, nullptr);
  // Pub/Sub delivers only to existing subscriptions: read the dead-letter topic from now on.
  ASSERT_OK(bus->EnsureTopic(t.dead_letter_topic));
  ASSERT_OK(bus->EnsureSubscription(dead_reader_, t.dead_letter_topic, {.ordered = false}));
  Child* serve = Serve("capture,publisher", false);
  ASSERT_NE(serve, nullptr);
  Child* replay = StartReplay(workload_, false);
  ASSERT_NE(replay, nullptr);
  ASSERT_TRUE(WaitForOps(replay, 300, seconds(60))) << replay->ErrTail();
  ASSERT_OK(bus->EnsureTopic(t.changes_topic));
  std::vector<BusMessage> poison = {
      {.data = "this is not a change message",
       .ordering_key = "poison",
       .attributes = {{"kind", "malformed"}}},
      InconsistentLogMessage(/*campaign_id=*/1, /*customer_id=*/1),
  };
  ASSERT_OK(bus->Publish(t.changes_topic, poison));
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(replay, seconds(170)));
  EXPECT_EQ(serve->Stop(seconds(30)), 0) << serve->ErrTail();

  auto dead = PullDeadLetters(*bus, dead_reader_, 2, seconds(3));
  ASSERT_EQ(dead.size(), 2u);
  ASSERT_TRUE(dead.contains("malformed"));
  EXPECT_EQ(dead["malformed"].data, "this is not a change message");
  EXPECT_TRUE(dead["malformed"].attributes["dead_letter_reason"].starts_with(
      "INVALID_ARGUMENT: change message"))
      << dead["malformed"].attributes["dead_letter_reason"];
  EXPECT_EQ(dead["malformed"].attributes["source_subscription"], t.publisher_subscription);
  ASSERT_TRUE(dead.contains("inconsistent"));
  EXPECT_NE(dead["inconsistent"].attributes["dead_letter_reason"].find("row.id"), std::string::npos)
      << dead["inconsistent"].attributes["dead_letter_reason"];
  EXPECT_EQ(dead["inconsistent"].ordering_key, "1");
  ExpectHistoryMatchesModel(ops);
}

// 5b. Notify capture: a malformed notification, one naming the wrong customer for an existing
// campaign and a forged delete of a live campaign at a version far ahead of the database are
// dead-lettered; one naming a campaign that never existed is dropped (the publisher cannot tell
// it from a campaign deleted since, whose own delete notification records the tombstone) and
// leaves nothing in the history; a forged update far ahead is harmless (the publisher records
// the database's version). Neither forgery masks the victim's real versions that follow.
TEST_F(TopologyTest, PoisonNotificationsGoToTheDeadLetterTopicWhileTheRestFlows) {
  // A seed campaign that is never deleted: it exists whenever the poison is processed.
  WorkloadModel plain;
  for (const WorkloadLine& l : lines_) ASSERT_OK(plain.Apply(l).status());
  std::set<int64_t> seeded;
  for (const auto& r : plain.History()) {
    if (r.op != WorkloadOp::kSeed) continue;
    for (const ModelVersion& v : r.versions) seeded.insert(v.campaign_id);
  }
  // The op after which each campaign got its last version.
  std::map<int64_t, size_t> last_op;
  for (size_t i = 0; i < plain.History().size(); ++i) {
    for (const ModelVersion& v : plain.History()[i].versions) last_op[v.campaign_id] = i;
  }
  const size_t late = plain.History().size() * 4 / 5;
  int64_t victim = 0, victim_customer = 0;
  for (int64_t c : plain.Customers()) {
    for (const auto& m : plain.State(c)) {
      // Changed again near the end: real versions follow the poison.
      if (victim == 0 && seeded.contains(m.id) && last_op[m.id] >= late) {
        victim = m.id;
        victim_customer = m.customer_id;
      }
    }
  }
  ASSERT_NE(victim, 0);

  TopologyOptions t;
  auto bus = TestBus();
  ASSERT_NE(bus, nullptr);
  ASSERT_OK(bus->EnsureTopic(t.dead_letter_topic));
  ASSERT_OK(bus->EnsureSubscription(dead_reader_, t.dead_letter_topic, {.ordered = false}));
  Child* serve = Serve("publisher", true);
  ASSERT_NE(serve, nullptr);
  Child* replay = StartReplay(workload_, true);
  ASSERT_NE(replay, nullptr);
  ASSERT_TRUE(WaitForOps(replay, 300, seconds(60))) << replay->ErrTail();

  auto notification = [](int64_t campaign, int64_t customer, const std::string& kind) {
    ChangeEvent e;
    e.capture = CaptureMode::kNotify;
    e.op = ChangeOp::kUpdated;
    e.campaign_id = campaign;
    e.customer_id = customer;
    e.version = 2;
    e.event_time = *ParseTimestamp("2024-01-01T00:00:00Z");
    return BusMessage{.data = EncodeChangeMessage(e),
                      .ordering_key = std::to_string(campaign),
                      .attributes = {{"kind", kind}}};
  };
  constexpr int64_t kNeverExisted = 987654321;
  // Anyone who may publish to the change topic can claim a version far ahead of the database.
  // A delete carries the last content: recording it would hide the victim's real versions.
  BusMessage forged_delete = notification(victim, victim_customer, "forged-delete");
  {
    ChangeEvent e = LogChange(victim, victim_customer, 1000000, ChangeOp::kDeleted, "forged");
    e.capture = CaptureMode::kNotify;
    forged_delete.data = EncodeChangeMessage(e);
  }
  BusMessage forged_update = notification(victim, victim_customer, "forged-update");
  {
    ChangeEvent e = *DecodeChangeMessage(forged_update.data);
    e.version = 1000000;
    forged_update.data = EncodeChangeMessage(e);
  }
  std::vector<BusMessage> poison = {
      {.data = R"({"schema_version":1,"capture":"notify","op":"updated"})",
       .ordering_key = "poison",
       .attributes = {{"kind", "malformed"}}},
      notification(victim, victim_customer + 1000, "wrong-customer"),
      notification(kNeverExisted, 1, "unknown-campaign"),
      forged_delete,
      forged_update,
  };
  ASSERT_OK(bus->Publish(t.changes_topic, poison));
  ASSERT_OK_AND_ASSIGN(auto ops, FinishReplay(replay, seconds(170)));
  EXPECT_EQ(serve->Stop(seconds(30)), 0) << serve->ErrTail();

  // Every poison message was handled long before the replay's last version was recorded (and
  // serve finishes its batch in flight before it exits): after the two expected ones, a short
  // look for a third suffices.
  auto dead = PullDeadLetters(*bus, dead_reader_, 3, seconds(3));
  EXPECT_EQ(dead.size(), 3u);
  ASSERT_TRUE(dead.contains("malformed"));
  EXPECT_NE(dead["malformed"].attributes["dead_letter_reason"].find("INVALID_ARGUMENT"),
            std::string::npos)
      << dead["malformed"].attributes["dead_letter_reason"];
  ASSERT_TRUE(dead.contains("forged-delete"));
  EXPECT_NE(dead["forged-delete"].attributes["dead_letter_reason"].find(
                fmt::format("campaign {} was deleted (version 1000000), but the campaign "
                            "database has it at version",
                            victim)),
            std::string::npos)
      << dead["forged-delete"].attributes["dead_letter_reason"];
  EXPECT_FALSE(dead.contains("forged-update")) << "harmless: the database's version is recorded";
  ASSERT_TRUE(dead.contains("wrong-customer"));
  EXPECT_NE(dead["wrong-customer"].attributes["dead_letter_reason"].find(
                fmt::format("belongs to customer {}", victim_customer + 1000)),
            std::string::npos)
      << dead["wrong-customer"].attributes["dead_letter_reason"];
  EXPECT_FALSE(dead.contains("unknown-campaign"));
  auto history = OpenHistory();
  ASSERT_NE(history, nullptr);
  ASSERT_OK_AND_ASSIGN(auto none, history->CampaignLog(kNeverExisted, {}));
  EXPECT_TRUE(none.empty());
  history.reset();
  ExpectNotifyHistoryAccountsForEveryVersion(ops);
}

// 7. An outage is not a poison message: the history store's disk is full for 30 s in the middle
// of a replay (a 64 MiB tmpfs, filled with a file, then freed). The publisher holds what it
// cannot store and backs off -- blocked, in the log once, in /healthz, the metrics and `status`
// -- and once there is room again every version is in the history exactly once and nothing was
// dead-lettered. (Before: SQLITE_FULL was retried 5 times within seconds, then the valid changes
// went to the dead-letter topic and the history had holes.) Needs root to mount the tmpfs.
TEST_F(TopologyTest, OutageFullHistoryDiskHoldsEveryVersionUntilThereIsRoomAgain) {
  auto mounted = TmpfsMount::Mount(dir_.File("tmpfs"), 64);
  if (!mounted.ok()) {
    GTEST_SKIP() << "cannot mount a tmpfs to fill up: " << mounted.status().ToString();
  }
  tmpfs_ = std::move(mounted).value();
  history_ = tmpfs_->dir() + "/history.db";
  CaptureSetup();
  auto ops = ReplayThroughAnOutage(
      "capture,publisher", /*notify=*/false, "disk full", "database or disk is full",
      [&] {
        ASSERT_OK_AND_ASSIGN(int64_t filled, tmpfs_->Fill());
        std::cerr << fmt::format("outage: {:.1f} MiB of filler, {} bytes free\n",
                                 filled / 1048576.0, tmpfs_->FreeBytes());
      },
      [&] { ASSERT_OK(tmpfs_->Unfill()); });
  if (ops.empty()) return;
  ExpectHistoryMatchesModel(ops);
}

// 8. The campaign database does not answer the publisher for 30 s (notify capture re-reads every
// row there): a proxy between the publisher and PostgreSQL drops every connection and refuses
// new ones, while the replay goes on committing directly. The publisher holds and backs off; when
// the database answers again, every campaign's history accounts for every version and nothing
// was dead-lettered. (Before: "connection refused" was retried 5 times, then dead-lettered.)
TEST_F(TopologyTest, OutageCampaignDatabaseUnreachableForThePublisherLosesNothing) {
  ASSERT_OK_AND_ASSIGN(auto host_port, ::ch::testing::HostPort(db_->url()));
  ASSERT_OK_AND_ASSIGN(proxy_, TcpProxy::Start(host_port.first, host_port.second));
  ASSERT_OK_AND_ASSIGN(serve_campaign_db_, ::ch::testing::WithPort(db_->url(), proxy_->port()));
  auto ops = ReplayThroughAnOutage(
      "publisher", /*notify=*/true, "campaign database unreachable", "campaign database",
      [&] { proxy_->SetDown(true); }, [&] { proxy_->SetDown(false); });
  if (ops.empty()) return;
  ExpectNotifyHistoryAccountsForEveryVersion(ops);
}

// 9. `dead-letters` lists what the dead-letter topics keep and `--redrive` republishes it. A
// valid change that an older publisher dead-lettered during an outage ("gave up after 5
// attempts") is recorded once redriven; a malformed one comes back to the dead-letter topic.
TEST_F(TopologyTest, DeadLettersAreListedAndRedrivenOnceTheCauseIsFixed) {
  CaptureSetup();
  TopologyOptions t;
  Child* serve = Serve("capture,publisher", false);
  ASSERT_NE(serve, nullptr);
  // The publisher creates the dead-letter topic with its keeping subscription at start.
  auto bus = TestBus(/*create_missing=*/false);
  ASSERT_NE(bus, nullptr);
  auto deadline = Clock::now() + seconds(30);
  while (
      !bus->EnsureSubscription(t.dead_letter_subscription, t.dead_letter_topic, {.ordered = false})
           .ok()) {
    ASSERT_TRUE(serve->running()) << serve->ErrTail();
    ASSERT_LT(Clock::now(), deadline) << "no keeping subscription on the dead-letter topic";
    std::this_thread::sleep_for(milliseconds(50));
  }
  EXPECT_EQ(DeadLetterCounts()[t.dead_letter_topic], 0u);

  // What an older publisher left behind after an outage: a valid change of campaign 424242.
  ChangeEvent e = LogChange(424242, 4242, 1, ChangeOp::kCreated, "lost in an outage");
  BusMessage valid{.data = EncodeChangeMessage(e),
                   .ordering_key = "4242",
                   .attributes = {{"kind", "valid"},
                                  {"dead_letter_reason",
                                   "RESOURCE_EXHAUSTED: gave up after 5 attempts: database or "
                                   "disk is full"},
                                  {"dead_letter_attempts", "5"},
                                  {"source_subscription", t.publisher_subscription},
                                  {"dead_letter_message_id", "old-1"}}};
  ASSERT_OK(bus->Publish(t.dead_letter_topic, std::vector<BusMessage>{valid}));
  // And a malformed one, dead-lettered by the running publisher.
  ASSERT_OK(bus->Publish(
      t.changes_topic,
      std::vector<BusMessage>{
          {.data = "not a change", .ordering_key = "x", .attributes = {{"kind", "malformed"}}}}));
  std::map<std::string, size_t> counts;
  deadline = Clock::now() + seconds(60);
  while ((counts = DeadLetterCounts())[t.dead_letter_topic] < 2) {
    ASSERT_LT(Clock::now(), deadline) << last_dead_letters_;
    std::this_thread::sleep_for(milliseconds(500));
  }
  EXPECT_EQ(counts[t.dead_letter_topic], 2u) << last_dead_letters_;
  EXPECT_EQ(counts[t.history_dead_letter_topic], 0u) << last_dead_letters_;
  auto listed = nlohmann::json::parse(last_dead_letters_);
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& m : listed["dead_letter_topics"][0]["messages"]) {
    by_id[m["message_id"].get<std::string>()] = m;
  }
  ASSERT_TRUE(by_id.contains("old-1")) << last_dead_letters_;
  EXPECT_EQ(by_id["old-1"]["attempts"], 5);
  EXPECT_EQ(by_id["old-1"]["first_change"]["campaign_id"], 424242);
  EXPECT_EQ(by_id["old-1"]["first_change"]["version"], 1);
  EXPECT_EQ(by_id["old-1"]["first_change"]["op"], "created");
  size_t malformed = 0;
  for (const auto& [id, m] : by_id) {
    if (id == "old-1") continue;
    ++malformed;
    EXPECT_TRUE(m["first_change"].is_null()) << m.dump();
    EXPECT_TRUE(m["reason"].get<std::string>().starts_with("INVALID_ARGUMENT: change message"))
        << m.dump();
    EXPECT_EQ(m["source_subscription"], t.publisher_subscription);
  }
  EXPECT_EQ(malformed, 1u);
  // The text form names the same.
  Outcome text = Run({bin_, "--bus", "pubsub://" + project_, "dead-letters"});
  EXPECT_EQ(text.code, 0) << text.output;
  EXPECT_NE(text.output.find("campaign-changes-dead-letter (kept in "
                             "campaign-changes-dead-letter-keep): 2 message(s)"),
            std::string::npos)
      << text.output;
  EXPECT_NE(text.output.find("campaign 424242 v1 created (customer 4242)"), std::string::npos)
      << text.output;

  counts = DeadLetterCounts({"--redrive"});
  EXPECT_EQ(nlohmann::json::parse(last_dead_letters_)["dead_letter_topics"][0]["redriven"], 2)
      << last_dead_letters_;
  // The valid change reaches the history; the malformed one is dead-lettered again.
  auto history_has_it = [&] {
    auto h = OpenHistory();
    if (h == nullptr) return false;
    auto v = h->GetVersion(424242, 1);
    return v.ok() && v->has_value();
  };
  deadline = Clock::now() + seconds(60);
  while (!history_has_it()) {
    ASSERT_LT(Clock::now(), deadline) << "the redriven change was not recorded";
    std::this_thread::sleep_for(milliseconds(200));
  }
  deadline = Clock::now() + seconds(60);
  while ((counts = DeadLetterCounts())[t.dead_letter_topic] != 1) {
    ASSERT_LT(Clock::now(), deadline) << last_dead_letters_;
    std::this_thread::sleep_for(milliseconds(500));
  }
  auto again = nlohmann::json::parse(last_dead_letters_)["dead_letter_topics"][0]["messages"][0];
  EXPECT_TRUE(again["reason"].get<std::string>().starts_with("INVALID_ARGUMENT")) << again.dump();
  EXPECT_EQ(serve->Stop(seconds(30)), 0) << serve->ErrTail();
}

// 6. Bad input on the topology's entry points: the right exit code, a message naming the
// problem, within seconds.
TEST_F(TopologyTest, BadBackendsAndRolesAreRejectedQuicklyWithTheRightExitCode) {
  const std::string pg = db_->url();
  const std::string bus = "pubsub://" + project_;
  const std::string history = "sqlite:" + history_;
  const std::string dead_pg = "postgresql://postgres@127.0.0.1:1/x";
  const std::string dead_emulator = "PUBSUB_EMULATOR_HOST=127.0.0.1:1";
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> env;
    int code;
    std::string says;
  };
  std::vector<Case> cases = {
      // Wrong backend URLs: InvalidArgument (2) naming the flag.
      {{"--campaign-db", "mysql://x", "status"}, {}, 2, "--campaign-db"},
      {{"--campaign-db", "mysql://x", "replay", "--ops", workload_}, {}, 2, "--campaign-db"},
      {{"--campaign-db", pg, "--bus", "pubsub://", "--history", history, "serve", "--roles",
        "publisher"},
       {},
       2,
       "--bus"},
      {{"--campaign-db", pg, "--bus", "kafka://x", "--history", history, "serve"}, {}, 2, "--bus"},
      {{"--history", "ftp://x", "status"}, {}, 2, "--history"},
      {{"--campaign-db", pg, "--bus", bus, "--history", "ftp://x", "serve", "--roles",
        "capture,publisher"},
       {},
       2,
       "--history"},
      // Unreachable servers: Unavailable (5) with the server named.
      {{"--campaign-db", dead_pg, "--bus", bus, "--history", history, "replay", "--ops", workload_},
       {},
       5,
       "127.0.0.1:1"},
      {{"--campaign-db", dead_pg, "--history", history, "status", "--slot", slot()},
       {},
       5,
       "127.0.0.1:1"},
      {{"--campaign-db", dead_pg, "capture", "setup"}, {}, 5, "127.0.0.1:1"},
      {{"--campaign-db", dead_pg, "capture", "status"}, {}, 5, "127.0.0.1:1"},
      {{"--campaign-db", dead_pg, "--bus", bus, "--history", history, "serve", "--roles",
        "capture,publisher"},
       {},
       5,
       "127.0.0.1:1"},
      {{"--campaign-db", pg, "--bus", bus, "--history", history, "serve", "--roles", "publisher"},
       {dead_emulator},
       5,
       "Pub/Sub"},
      // The database is captured in log mode (below): a notify writer is refused.
      {{"--campaign-db", pg, "--bus", bus, "--history", history, "--capture", "notify", "replay",
        "--ops", workload_},
       {},
       4,
       "capture drop"},
      // Wrong setup / roles / outputs.
      {{"--campaign-db", "sqlite:" + dir_.File("campaigns.db"), "capture", "setup", "--slot", "x"},
       {},
       2,
       "--slot"},
      {{"--campaign-db", pg, "--bus", bus, "--history", history, "serve", "--roles", "bogus"},
       {},
       2,
       "bogus"},
      {{"--campaign-db", pg, "--bus", bus, "--history", history, "serve", "--roles", "publisher",
        "--publish-to", "bogus"},
       {},
       2,
       "--publish-to"},
      {{"--campaign-db", pg, "--bus", bus, "--history", history, "serve", "--roles", "publisher",
        "--ack-deadline", "5s"},
       {},
       2,
       "--ack-deadline"},
      {{"--campaign-db", pg, "--bus", bus, "--history", history, "serve", "--roles", "publisher",
        "--ack-deadline", "soon"},
       {},
       2,
       "--ack-deadline"},
  };
  // `status` on PostgreSQL needs a history to report on: make one (empty).
  {
    SqliteHistoryOptions o;
    o.path = history_;
    ASSERT_OK(SqliteHistoryStore::Open(o).status());
  }
  // Notify capture on a database log capture does not own yet: the dead emulator is named.
  {
    Outcome o = Run({bin_, "--campaign-db", pg, "--bus", bus, "--history", history, "--capture",
                     "notify", "replay", "--ops", workload_},
                    {dead_emulator}, seconds(30));
    EXPECT_EQ(o.code, 5) << o.output;
    EXPECT_NE(o.output.find("Pub/Sub"), std::string::npos) << o.output;
    EXPECT_LT(o.seconds, 10) << "notify replay with a dead emulator took " << o.seconds << " s";
  }
  // The serve cases with reachable servers would capture: give them their slot.
  CaptureSetup();
  for (const Case& c : cases) {
    std::vector<std::string> args = {bin_};
    args.insert(args.end(), c.args.begin(), c.args.end());
    std::string shown = fmt::format("{} {}", fmt::join(c.env, " "), fmt::join(c.args, " "));
    Outcome o = Run(args, c.env, seconds(30));
    EXPECT_EQ(o.code, c.code) << shown << "\n" << o.output;
    EXPECT_NE(o.output.find("error: "), std::string::npos) << shown << "\n" << o.output;
    EXPECT_NE(o.output.find(c.says), std::string::npos)
        << shown << ": expected '" << c.says << "' in\n"
        << o.output;
    EXPECT_LT(o.seconds, 10) << shown << " took " << o.seconds << " s";
  }
}

// 5. Crash soak: capture, two publishers (writing to the history topic) and the sink are
// SIGKILLed again and again at random moments -- also at their crash points between "written
// downstream" and "confirmed upstream" -- while one long workload is replayed in four parts; the
// PostgreSQL server is restarted once while the pipeline streams, and the Pub/Sub emulator once
// between parts. Then: every version exactly once, as-of equal to the model at every op
// boundary, nothing dead-lettered.
//
// Both servers are private to the test (a cluster in a temp directory, an emulator on a free
// port), so restarting them disturbs no other test. The emulator keeps its state in memory and
// loses it on a restart (real Pub/Sub does not): it is restarted when nothing is in flight,
// between two parts, and the next part starts once the sink has created its subscription again
// (the publishers do not create it: with BigQuery there is no sink).
//
// CH_SOAK_OPS (default 2000) and CH_SOAK_KILLS (default 20: at least this many kills) size it;
// docs/benchmarks.md ("Crash soak") reports a long run. CH_TEST_SEED repeats a run.
TEST_F(TopologyTest, CrashSoakKillsEveryRoleAndRestartsBothServers) {
  const char* launcher = std::getenv("CH_PUBSUB_EMULATOR");
  if (launcher == nullptr || *launcher == '\0') {
    GTEST_SKIP() << "CH_PUBSUB_EMULATOR (the emulator launcher, to run one of the test's own) is "
                    "not set";
  }
  if (!::ch::testing::PgPrivateCluster::Available()) {
    GTEST_SKIP() << ::ch::testing::PgPrivateCluster::SkipMessage();
  }
  auto env_int = [](const char* name, int64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
  };
  const int64_t ops_wanted = env_int("CH_SOAK_OPS", 2000);
  const int64_t min_kills = env_int("CH_SOAK_KILLS", 20);
  unsigned seed = static_cast<unsigned>(std::random_device{}());
  if (const char* s = std::getenv("CH_TEST_SEED")) seed = static_cast<unsigned>(std::atoll(s));
  std::cerr << fmt::format("soak: {} ops, at least {} kills, random seed {} (CH_TEST_SEED)\n",
                           ops_wanted, min_kills, seed);
  SCOPED_TRACE(fmt::format("random seed {} (CH_TEST_SEED)", seed));
  std::mt19937 rng(seed);

  // The servers of the test's own.
  ASSERT_OK(private_pg_.Start("max_replication_slots = 8\nmax_wal_senders = 8\n"));
  ASSERT_OK(db_->Drop());
  ASSERT_OK_AND_ASSIGN(db_, TopoDatabase::Create(private_pg_.url()));
  const int emulator_port = ::ch::testing::FreePort();
  ASSERT_GT(emulator_port, 0);
  emulator_ =
      std::make_unique<::ch::testing::EmulatorControl>("127.0.0.1", emulator_port, launcher);
  emulator_->StopOnExit();
  ASSERT_OK(emulator_->Start());
  // Children and this process's own bus clients use it.
  ASSERT_EQ(setenv("PUBSUB_EMULATOR_HOST", fmt::format("127.0.0.1:{}", emulator_port).c_str(), 1),
            0);

  // The workload, in four parts (only the first has the header; the footer is in the last).
  {
    ASSERT_OK_AND_ASSIGN(GeneratorOptions options, GeneratorPreset("small"));
    options.ops = ops_wanted;
    ASSERT_OK(GenerateWorkloadFile(options, workload_).status());
    ASSERT_OK_AND_ASSIGN(lines_, ReadWorkloadFile(workload_));
  }
  std::vector<std::string> raw;
  {
    std::istringstream in(::ch::testing::ReadFileText(workload_));
    for (std::string l; std::getline(in, l);) raw.push_back(l);
  }
  ASSERT_EQ(raw.size(), lines_.size());
  constexpr int kParts = 4;
  std::vector<std::string> parts;
  std::vector<size_t> part_ops(kParts, 0);
  for (int p = 0; p < kParts; ++p) {
    parts.push_back(dir_.File(fmt::format("part{}.jsonl", p)));
    std::ofstream out(parts.back());
    size_t begin = raw.size() * p / kParts, end = raw.size() * (p + 1) / kParts;
    for (size_t i = begin; i < end; ++i) {
      out << raw[i] << "\n";
      part_ops[p] += lines_[i].applied() ? 1 : 0;
    }
  }

  struct Role {
    std::string roles;
    std::vector<std::string> flags;
    std::string crash_point;  // empty: killed only
    Child* child = nullptr;
    Clock::time_point started{};
    bool armed = false;
    int kills = 0, crash_points = 0, crash_exits = 0, self_exits = 0;
  };
  std::vector<Role> roles = {
      {.roles = "capture", .crash_point = "after_publish"},
      {.roles = "publisher", .flags = {"--publish-to", "topic"}, .crash_point = "after_append"},
      {.roles = "publisher", .flags = {"--publish-to", "topic"}, .crash_point = "after_append"},
      {.roles = "sink"},
  };
  auto start_role = [&](Role& r, bool crash) {
    std::vector<std::string> env;
    crash = crash && !r.crash_point.empty();
    if (crash) {
      env.push_back(fmt::format("CH_TEST_CRASH_AT={}:{}", r.crash_point, 1 + rng() % 3));
      ++r.crash_points;
    }
    r.child = Serve(r.roles, false, r.flags, env);
    r.started = Clock::now();
    r.armed = crash;
    return r.child != nullptr;
  };
  auto note_exit = [&](Role& r) {
    if (r.child->exit_code() == kCrashPointExitCode) ++r.crash_exits;
  };
  auto revive = [&](Role& r) {
    if (r.child->running()) return true;
    note_exit(r);
    ++r.self_exits;
    std::this_thread::sleep_for(milliseconds(100));
    return start_role(r, false);
  };

  CaptureSetup();
  Role& sink = roles.back();
  ASSERT_TRUE(start_role(sink, false));
  ASSERT_NO_FATAL_FAILURE(WaitForSinkSubscription(sink.child));
  for (size_t i = 0; i + 1 < roles.size(); ++i) ASSERT_TRUE(start_role(roles[i], false));

  auto start = Clock::now();
  int kills = 0;
  bool pg_restarted = false;
  std::vector<ReplayedOp> ops;
  for (int p = 0; p < kParts; ++p) {
    if (p == kParts - 1) {
      // Between parts: nothing in flight, the emulator goes down and comes back empty.
      ASSERT_OK(emulator_->Kill());
      std::this_thread::sleep_for(seconds(1));
      ASSERT_OK(emulator_->Start());
      for (Role& r : roles) ASSERT_TRUE(revive(r));
      ASSERT_NO_FATAL_FAILURE(WaitForSinkSubscription(sink.child));
      std::cerr << "soak: emulator restarted before part " << p + 1 << "\n";
    }
    Child* replay = StartReplay(parts[p], false);
    ASSERT_NE(replay, nullptr);
    while (replay->running()) {
      ASSERT_LT(SecondsSince(start), 60 + ops_wanted * 0.25) << "the replay did not finish";
      const bool committed = LineCount(replay->out_file()) >= part_ops[p];
      std::this_thread::sleep_for(milliseconds(100 + rng() % 700));
      for (Role& r : roles) ASSERT_TRUE(revive(r));
      if (committed && !pg_restarted && p >= 1) {
        // Every op of the part is committed and the pipeline is streaming it.
        ASSERT_OK(private_pg_.Restart());
        pg_restarted = true;
        std::cerr << "soak: PostgreSQL restarted in part " << p + 1 << "\n";
        continue;
      }
      Role& r = roles[rng() % roles.size()];
      if (r.armed) continue;  // left to reach its crash point
      r.child->Kill();
      note_exit(r);
      ++r.kills;
      ++kills;
      ASSERT_TRUE(start_role(r, /*crash=*/r.crash_points == 0 || rng() % 3 == 0));
    }
    ASSERT_OK_AND_ASSIGN(auto part, FinishReplay(replay, seconds(1)));
    ops.insert(ops.end(), part.begin(), part.end());
    // Enough kills yet? Keep the later parts killing as long as they run.
  }
  if (!pg_restarted) {
    // Every part's pipeline caught up before a restart could be slipped in: restart it now, with
    // the relays connected, and check that they recover (nothing new to deliver).
    ASSERT_OK(private_pg_.Restart());
    pg_restarted = true;
    std::cerr << "soak: PostgreSQL restarted after the last part\n";
    std::this_thread::sleep_for(seconds(3));
  }
  const double seconds_taken = SecondsSince(start);
  for (Role& r : roles) {
    std::this_thread::sleep_until(r.started + seconds(2));
    if (r.child->running()) {
      EXPECT_EQ(r.child->Stop(seconds(30)), 0) << r.roles << ": " << r.child->ErrTail();
    }
  }
  std::string summary;
  for (const Role& r : roles) {
    summary +=
        fmt::format("; {} killed {} times ({} of {} crash points fired, {} exits on its own)",
                    r.roles, r.kills, r.crash_exits, r.crash_points, r.self_exits);
  }
  std::cerr << fmt::format("soak: {} ops, {} versions in {:.1f} s, {} kills{}\n", ops.size(),
                           lines_.back().footer().expected_versions, seconds_taken, kills, summary);
  EXPECT_GE(kills, min_kills);
  for (const Role& r : roles) {
    if (r.crash_point.empty()) continue;
    EXPECT_GT(r.crash_exits, 0) << r.roles << ": no process reached its crash point "
                                << r.crash_point << " (" << r.crash_points << " were set)";
  }
  ExpectHistoryMatchesModel(ops);
  // Nothing was dead-lettered: every message was valid.
  Outcome dead = Run([&] {
    std::vector<std::string> a = Cli(false);
    a.insert(a.end(), {"dead-letters", "--json"});
    return a;
  }());
  ASSERT_EQ(dead.code, 0) << dead.output;
  size_t json_at = dead.output.find("{\"dead_letter_topics\"");
  ASSERT_NE(json_at, std::string::npos) << dead.output;
  auto topics = nlohmann::json::parse(dead.output.substr(json_at))["dead_letter_topics"];
  for (const auto& t : topics) {
    EXPECT_TRUE(t["messages"].empty()) << t.dump();
  }
}

}  // namespace
}  // namespace ch
