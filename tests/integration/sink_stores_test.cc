// The sink role into each warehouse store (issue 8 item 3): the production topology (PostgreSQL
// campaign database, log capture, the Pub/Sub emulator) with the publisher writing the history
// topic (`serve --roles capture,publisher --publish-to topic`) and `serve --roles sink` loading
// it into a PostgreSQL history (`--history postgresql://...?schema=...`) or a ClickHouse history
// (`--history clickhouse://HOST:PORT/DB`), then as-of checked against the independent workload
// model at every op boundary (e2e_util.h), and every version exactly once.
//
// The same as topology_test's SinkLoadsTheHistoryTopicIntoTheHistoryStore (SQLite history), with
// the store of the other servers. Each test has its own campaign database (ch_topo_*), Pub/Sub
// project, history schema (pgwh_sink_*) or ClickHouse database (pgwh_sink_*), dropped at the end.
// Skipped unless CH_TEST_PG_URL and PUBSUB_EMULATOR_HOST are set, and for ClickHouse
// CH_TEST_CLICKHOUSE_URL (CH_TEST_NO_SKIP=1 turns the skips into failures).
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "app/runtime.h"
#include "bus/pubsub_change_bus.h"
#include "campaign/pg_client.h"
#include "history/clickhouse_history_store.h"
#include "history/pg_history_store.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"
#include "tests/integration/topology_util.h"

namespace ch {
namespace {

using ::ch::testing::Child;
using ::ch::testing::TempDir;
using ::ch::testing::TopoDatabase;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

class SinkStoresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (Env("CH_TEST_PG_URL").empty()) {
      GTEST_SKIP() << "CH_TEST_PG_URL is not set: start the servers with `scripts/services.sh "
                      "start` and `source /tmp/ch-services/env.sh`";
    }
    if (Env("PUBSUB_EMULATOR_HOST").empty()) {
      GTEST_SKIP() << "PUBSUB_EMULATOR_HOST is not set: start the servers with "
                      "`scripts/services.sh start` and `source /tmp/ch-services/env.sh`";
    }
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    ASSERT_OK_AND_ASSIGN(db_, TopoDatabase::Create(Env("CH_TEST_PG_URL")));
    suffix_ = fmt::format("{}_{:08x}", getpid(), std::random_device{}());
    project_ = "ch-sink-" + suffix_;
    std::replace(project_.begin(), project_.end(), '_', '-');
    workload_ = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(workload_);
    ASSERT_OK_AND_ASSIGN(lines_, ReadWorkloadFile(workload_));
    ASSERT_FALSE(lines_.empty());
    ASSERT_EQ(lines_.back().op, WorkloadOp::kFooter);
  }

  void TearDown() override {
    const bool failed = HasFailure();
    for (auto& c : children_) c->Kill();
    if (failed) {
      for (auto& c : children_) {
        std::cerr << fmt::format("---- {} (pid {}, exit {}) stderr:\n{}\n", c->name(), c->pid(),
                                 c->exit_code(), c->ErrTail(3000));
      }
    }
    children_.clear();
    if (drop_history_) drop_history_();
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
    for (const std::string& s : {t.publisher_subscription, t.sink_subscription,
                                 t.dead_letter_subscription, t.history_dead_letter_subscription}) {
      (*bus)->DeleteSubscription(s).IgnoreError();
    }
    for (const std::string& topic :
         {t.changes_topic, t.dead_letter_topic, t.history_topic, t.history_dead_letter_topic}) {
      (*bus)->DeleteTopic(topic).IgnoreError();
    }
  }

  std::vector<std::string> Cli() const {
    return {bin_,        "--campaign-db", db_->url(), "--bus", "pubsub://" + project_,
            "--history", history_url_};
  }

  Child* Spawn(const std::string& name, const std::vector<std::string>& args) {
    int n = ++spawned_;
    auto child = Child::Start(name, args, dir_.File(fmt::format("{}-{}.out", name, n)),
                              dir_.File(fmt::format("{}-{}.err", name, n)));
    if (!child.ok()) {
      ADD_FAILURE() << "cannot start " << name << ": " << child.status().ToString();
      return nullptr;
    }
    children_.push_back(std::move(child).value());
    return children_.back().get();
  }

  Child* Serve(const std::string& roles, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = Cli();
    args.insert(args.end(), {"--log-level", "info", "serve", "--roles", roles, "--slot",
                             db_->name(), "--publication", db_->name()});
    args.insert(args.end(), extra.begin(), extra.end());
    std::string name = "serve-" + roles;
    std::replace(name.begin(), name.end(), ',', '+');
    return Spawn(name, args);
  }

  // capture setup; the sink (waiting until it created its subscription: Pub/Sub delivers only to
  // subscriptions that exist when a message is published); the publisher to the topic; the replay
  // with --wait (it reads the history through --history). Then the store `open` returns must
  // match the model.
  void RunSinkAndCheck(const std::function<Result<std::unique_ptr<HistoryStore>>()>& open) {
    {
      std::vector<std::string> setup = {bin_,        "--campaign-db", db_->url(),
                                        "capture",   "setup",         "--slot",
                                        db_->name(), "--publication", db_->name()};
      Child* c = Spawn("capture-setup", setup);
      ASSERT_NE(c, nullptr);
      ASSERT_OK_AND_ASSIGN(int code, c->Wait(seconds(60)));
      ASSERT_EQ(code, 0) << c->ErrTail();
    }
    Child* sink = Serve("sink");
    ASSERT_NE(sink, nullptr);
    auto bus = PubSubChangeBus::Open({.project = project_, .create_missing = false});
    ASSERT_OK(bus.status());
    TopologyOptions t;
    auto deadline = Clock::now() + seconds(30);
    while (!(*bus)
                ->EnsureSubscription(t.sink_subscription, t.history_topic, {.ordered = false})
                .ok()) {
      ASSERT_TRUE(sink->running()) << sink->ErrTail();
      ASSERT_LT(Clock::now(), deadline) << "the sink did not create its subscription";
      std::this_thread::sleep_for(milliseconds(50));
    }
    Child* publisher = Serve("capture,publisher", {"--publish-to", "topic"});
    ASSERT_NE(publisher, nullptr);
    auto start = Clock::now();
    std::vector<std::string> replay_args = Cli();
    replay_args.insert(replay_args.end(),
                       {"replay", "--ops", workload_, "--wait", "--wait-timeout", "200s"});
    Child* replay = Spawn("replay", replay_args);
    ASSERT_NE(replay, nullptr);
    ASSERT_OK_AND_ASSIGN(int code, replay->Wait(seconds(240)));
    ASSERT_EQ(code, 0) << replay->ErrTail();
    ASSERT_OK_AND_ASSIGN(auto ops, ::ch::testing::ParseReplayOutput(
                                       ::ch::testing::ReadFileText(replay->out_file())));
    std::cerr << fmt::format("sink into {}: {} ops replayed and all in the history in {:.1f} s\n",
                             history_url_, ops.size(),
                             std::chrono::duration<double>(Clock::now() - start).count());
    EXPECT_EQ(publisher->Stop(seconds(30)), 0) << publisher->ErrTail();
    EXPECT_EQ(sink->Stop(seconds(30)), 0) << sink->ErrTail();
    EXPECT_NE(::ch::testing::ReadFileText(sink->err_file()).find("sink: 7719 records"),
              std::string::npos)
        << sink->ErrTail();

    ASSERT_OK_AND_ASSIGN(std::unique_ptr<HistoryStore> opened, open());
    HistoryStore& history = *opened;
    ::ch::testing::WorkloadModel model;
    ASSERT_OK(::ch::testing::ApplyToModel(lines_, ops, model));
    ASSERT_EQ(model.TotalVersions(), lines_.back().footer().expected_versions);
    ASSERT_OK_AND_ASSIGN(HistoryStats stats, history.Stats());
    EXPECT_EQ(stats.records, lines_.back().footer().expected_versions);
    EXPECT_EQ(::ch::testing::CompareHistoryWithModel(history, model, lines_, ops), "");
  }

  TempDir dir_;
  std::string bin_, project_, suffix_, workload_, history_url_;
  std::unique_ptr<TopoDatabase> db_;
  std::vector<WorkloadLine> lines_;
  std::vector<std::unique_ptr<Child>> children_;
  std::function<void()> drop_history_;
  int spawned_ = 0;
};

TEST_F(SinkStoresTest, SinkLoadsTheHistoryTopicIntoPostgreSQL) {
  const std::string schema = "pgwh_sink_" + suffix_;
  const std::string pg = Env("CH_TEST_PG_URL");
  history_url_ = pg + (pg.find('?') == std::string::npos ? "?" : "&") + "schema=" + schema;
  drop_history_ = [pg, schema] {
    PgConnectOptions o;
    o.url = pg;
    if (auto conn = PgConn::Connect(o); conn.ok()) {
      EXPECT_OK((*conn)->Exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE").status());
    }
  };
  ASSERT_NO_FATAL_FAILURE(RunSinkAndCheck([&]() -> Result<std::unique_ptr<HistoryStore>> {
    PgHistoryOptions o;
    o.url = history_url_;
    ASSIGN_OR_RETURN(auto store, PgHistoryStore::Open(o));
    return std::unique_ptr<HistoryStore>(std::move(store));
  }));
}

TEST_F(SinkStoresTest, SinkLoadsTheHistoryTopicIntoClickHouse) {
  const std::string ch = Env("CH_TEST_CLICKHOUSE_URL");
  if (ch.empty()) {
    GTEST_SKIP() << "CH_TEST_CLICKHOUSE_URL is not set: start ClickHouse with "
                    "`scripts/services.sh start clickhouse` and source its env.sh";
  }
  // The server of CH_TEST_CLICKHOUSE_URL, a database of this test's own.
  const size_t scheme = ch.find("://");
  const size_t slash = ch.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  history_url_ = (slash == std::string::npos ? ch : ch.substr(0, slash)) + "/pgwh_sink_" + suffix_;
  const std::string url = history_url_;
  drop_history_ = [url] {
    ClickHouseHistoryOptions o;
    o.url = url;
    if (auto store = ClickHouseHistoryStore::Open(o); store.ok()) {
      EXPECT_OK((*store)->DropDatabaseForTesting());
    }
  };
  ASSERT_NO_FATAL_FAILURE(RunSinkAndCheck([&]() -> Result<std::unique_ptr<HistoryStore>> {
    ClickHouseHistoryOptions o;
    o.url = history_url_;
    ASSIGN_OR_RETURN(auto store, ClickHouseHistoryStore::Open(o));
    return std::unique_ptr<HistoryStore>(std::move(store));
  }));
}

}  // namespace
}  // namespace ch
