// The sink role into each warehouse store (issue 8 item 3): the production topology (PostgreSQL
// campaign database, log capture, the Pub/Sub emulator) with the publisher writing the history
// topic (`serve --roles capture,publisher --publish-to topic`) and `serve --roles sink` loading
// it into a PostgreSQL history (`--history postgresql://...?schema=...`) or a ClickHouse history
// (`--history clickhouse://HOST:PORT/DB`). Then:
//   * redelivery: records already loaded (one customer whole, the five largest transactions of
//     the biggest) published on the topic again, shuffled, and loaded by a second sink: nothing
//     changes (records, conflicts, completeness);
//   * every stored record, read with one query per customer, against every version of the
//     independent workload model: each campaign's versions exactly 1..n once each, nothing else,
//     and each record's customer, event time, kind, actor and snapshot (every field) as the
//     model has them;
//   * the store's own as-of query against the model, right after and 1 us before a sample of op
//     boundaries: every op of the customer with the fewest (a few campaigns), 30 random ops
//     (CH_TEST_SEED repeats a draw), and the end for every customer.
// The sample keeps each store's test under a minute (a ClickHouse 18.16 as-of costs 50-100 ms
// here; every boundary through the store took 8 minutes).
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
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "app/runtime.h"
#include "bus/pubsub_change_bus.h"
#include "campaign/pg_client.h"
#include "history/clickhouse_history_store.h"
#include "history/pg_history_store.h"
#include "publisher/history_topic_writer.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"
#include "tests/integration/topology_util.h"
#include "workload/generator.h"

namespace ch {
namespace {

using ::ch::testing::Child;
using ::ch::testing::ModelOpResult;
using ::ch::testing::ModelVersion;
using ::ch::testing::RenderModelCampaigns;
using ::ch::testing::TempDir;
using ::ch::testing::TopoDatabase;
using ::ch::testing::WorkloadModel;
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
    // The small preset's mix of ops, half as many (the replay is most of the test's time).
    ASSERT_OK_AND_ASSIGN(GeneratorOptions g, GeneratorPreset("small"));
    g.ops = 1000;
    ASSERT_OK(GenerateWorkloadFile(g, workload_).status());
    ASSERT_OK_AND_ASSIGN(lines_, ReadWorkloadFile(workload_));
    ASSERT_FALSE(lines_.empty());
    ASSERT_EQ(lines_.back().op, WorkloadOp::kFooter);
  }

  void TearDown() override {
    Mark("test body");
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
    Mark("teardown");
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
  // Print how long the step that ends now took (where a minute goes).
  void Mark(const char* step) {
    const auto now = Clock::now();
    std::cerr << fmt::format("  {}: {:.1f} s\n", step,
                             std::chrono::duration<double>(now - mark_).count());
    mark_ = now;
  }

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
    Mark("setup and capture setup");
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
    Mark("sink started");
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
    Mark("replay");
    EXPECT_EQ(publisher->Stop(seconds(30)), 0) << publisher->ErrTail();
    Mark("publisher stopped");
    EXPECT_EQ(sink->Stop(seconds(30)), 0) << sink->ErrTail();
    Mark("sink stopped");
    EXPECT_NE(::ch::testing::ReadFileText(sink->err_file())
                  .find(fmt::format("sink: {} records", lines_.back().footer().expected_versions)),
              std::string::npos)
        << sink->ErrTail();

    ASSERT_OK_AND_ASSIGN(std::unique_ptr<HistoryStore> opened, open());
    HistoryStore& history = *opened;
    ::ch::testing::WorkloadModel model;
    ASSERT_OK(::ch::testing::ApplyToModel(lines_, ops, model));
    ASSERT_EQ(model.TotalVersions(), lines_.back().footer().expected_versions);
    Mark("store opened, model built");
    ASSERT_NO_FATAL_FAILURE(RedeliverAndExpectNoChange(history));
    Mark("redelivery");
    ASSERT_NO_FATAL_FAILURE(ExpectStoredRecordsMatchModel(history, model, ops));
    Mark("stored records against the model");
    ASSERT_NO_FATAL_FAILURE(ExpectSampledAsOfMatchesModel(history, model, ops));
    Mark("the store's as-of against the model");
  }

  // Every customer's records, one read each (CustomerChanges: batched, not one read per campaign
  // or per moment).
  std::map<int64_t, std::vector<HistoryRecord>> ReadAllRecords(HistoryStore& history) {
    std::map<int64_t, std::vector<HistoryRecord>> out;
    for (const WorkloadLine& l : lines_) {
      if (!l.applied() || out.contains(l.customer_id())) continue;
      auto records = history.CustomerChanges(l.customer_id(), {}, int64_t{1} << 40);
      EXPECT_OK(records.status());
      if (records.ok()) out[l.customer_id()] = std::move(*records);
    }
    return out;
  }

  // Redelivery: records already loaded published again on the history topic (shuffled), as
  // Pub/Sub redelivers, and loaded by a sink process again: nothing may change (no record added,
  // no conflict, completeness the same).
  void RedeliverAndExpectNoChange(HistoryStore& history) {
    ASSERT_OK_AND_ASSIGN(HistoryStats before, history.Stats());
    ASSERT_OK_AND_ASSIGN(Completeness completeness_before, history.GetCompleteness());
    EXPECT_EQ(completeness_before.conflicts, 0);
    std::map<int64_t, std::vector<HistoryRecord>> all = ReadAllRecords(history);
    ASSERT_GE(all.size(), 2u);
    // The customer with the fewest records, whole; of the one with the most, its five largest
    // transactions (the ones the publisher splits over deliveries).
    auto [fewest, most] = std::minmax_element(
        all.begin(), all.end(),
        [](const auto& a, const auto& b) { return a.second.size() < b.second.size(); });
    std::vector<HistoryRecord> again = fewest->second;
    std::map<std::string, std::vector<const HistoryRecord*>> by_txn;
    for (const HistoryRecord& r : most->second) {
      if (!r.transaction_id.empty()) by_txn[r.transaction_id].push_back(&r);
    }
    std::vector<const std::vector<const HistoryRecord*>*> txns;
    for (const auto& [id, records] : by_txn) txns.push_back(&records);
    std::sort(txns.begin(), txns.end(), [](auto* a, auto* b) { return a->size() > b->size(); });
    for (size_t i = 0; i < std::min<size_t>(5, txns.size()); ++i) {
      for (const HistoryRecord* r : *txns[i]) again.push_back(*r);
    }
    std::shuffle(again.begin(), again.end(), std::mt19937_64(7));  // out of order, too
    auto bus = PubSubChangeBus::Open({.project = project_, .create_missing = false});
    ASSERT_OK(bus.status());
    TopologyOptions t;
    HistoryTopicWriter writer(**bus, t.history_topic, nullptr);
    ASSERT_OK(writer.Append(again).status());
    // A sink process loads them; it prints what it acked when it stops.
    int64_t acked = 0;
    const auto deadline = Clock::now() + seconds(40);
    while (acked < static_cast<int64_t>(again.size())) {
      ASSERT_LT(Clock::now(), deadline) << acked << " of " << again.size() << " redelivered";
      Child* sink = Serve("sink");
      ASSERT_NE(sink, nullptr);
      std::this_thread::sleep_for(seconds(2));
      ASSERT_EQ(sink->Stop(seconds(30)), 0) << sink->ErrTail();
      const std::string err = ::ch::testing::ReadFileText(sink->err_file());
      const size_t at = err.rfind("sink: ");
      ASSERT_NE(at, std::string::npos) << sink->ErrTail();
      long records = 0, dead_lettered = 0;
      ASSERT_EQ(std::sscanf(err.c_str() + at, "sink: %ld records, %ld dead-lettered", &records,
                            &dead_lettered),
                2)
          << sink->ErrTail();
      EXPECT_EQ(dead_lettered, 0) << sink->ErrTail();
      acked += records;
    }
    EXPECT_EQ(acked, static_cast<int64_t>(again.size()));
    ASSERT_OK_AND_ASSIGN(HistoryStats after, history.Stats());
    EXPECT_EQ(after.records, before.records);
    ASSERT_OK_AND_ASSIGN(Completeness completeness_after, history.GetCompleteness());
    EXPECT_EQ(completeness_after.conflicts, 0);
    EXPECT_EQ(completeness_after.held_records, completeness_before.held_records);
    EXPECT_EQ(completeness_after.through_seq, completeness_before.through_seq);
    std::cerr << fmt::format("redelivered {} records: nothing changed\n", again.size());
  }

  // Every stored record, read in one query per customer, against every version of the model:
  // each campaign's versions exactly 1..n once each, nothing else stored, and each record as the
  // model has it (customer, event time = the op's commit time, kind, actor, and the snapshot in
  // every field). With that, the as-of at every op boundary follows from the store's as-of rule,
  // which the contract suite and the sample below check on the store itself.
  void ExpectStoredRecordsMatchModel(HistoryStore& history, const WorkloadModel& model,
                                     const std::vector<ReplayedOp>& ops) {
    std::map<std::pair<int64_t, int64_t>, HistoryRecord> stored;
    for (auto& [customer, records] : ReadAllRecords(history)) {
      for (HistoryRecord& r : records) {
        const auto key = std::pair(r.campaign_id, r.version);
        ASSERT_EQ(r.customer_id, customer) << DebugString(r);
        ASSERT_TRUE(stored.emplace(key, std::move(r)).second)
            << "c" << key.first << "@v" << key.second << " is stored twice";
      }
    }
    std::map<int64_t, Timestamp> committed;
    for (const ReplayedOp& op : ops) committed[op.seq] = op.committed_at;
    size_t matched = 0;
    for (const ModelOpResult& op : model.History()) {
      for (const ModelVersion& v : op.versions) {
        auto it = stored.find(std::pair(v.campaign_id, v.version));
        ASSERT_NE(it, stored.end()) << "c" << v.campaign_id << "@v" << v.version << " is missing";
        const HistoryRecord& r = it->second;
        ASSERT_EQ(r.customer_id, v.customer_id) << DebugString(r);
        ASSERT_EQ(r.event_type, v.op) << DebugString(r);
        ASSERT_EQ(r.actor, v.actor) << DebugString(r);
        ASSERT_TRUE(committed.contains(op.seq)) << "seq " << op.seq;
        ASSERT_EQ(r.event_time, committed.at(op.seq)) << DebugString(r);
        if (v.op != ChangeOp::kDeleted) {
          ASSERT_EQ(::ch::testing::RenderAsOf({r}),
                    RenderModelCampaigns({v.snapshot}, {.all_fields = true}))
              << DebugString(r);
        }
        ++matched;
      }
    }
    EXPECT_EQ(matched, stored.size()) << "the store holds records the model does not";
    EXPECT_EQ(static_cast<int64_t>(matched), model.TotalVersions());
    ASSERT_OK_AND_ASSIGN(HistoryStats stats, history.Stats());
    EXPECT_EQ(stats.records, model.TotalVersions());
  }

  // The store's own as-of query against the model: right after and 1 us before every op of one
  // customer (every boundary of its few campaigns), of kSampledOps ops drawn at random (seed
  // printed; CH_TEST_SEED repeats one), and of the last op for every customer.
  void ExpectSampledAsOfMatchesModel(HistoryStore& history, const WorkloadModel& model,
                                     const std::vector<ReplayedOp>& ops) {
    constexpr size_t kSampledOps = 30;
    std::map<int64_t, const WorkloadLine*> by_seq;
    std::map<int64_t, int> ops_of;
    for (const WorkloadLine& l : lines_) {
      by_seq[l.seq] = &l;
      if (l.applied()) ++ops_of[l.customer_id()];
    }
    // The customer with the fewest ops (a few campaigns; every op of the big one would cost the
    // most).
    const int64_t every = std::min_element(ops_of.begin(), ops_of.end(), [](auto& a, auto& b) {
                            return a.second < b.second;
                          })->first;
    const uint64_t seed = Env("CH_TEST_SEED").empty()
                              ? std::random_device{}()
                              : std::strtoull(Env("CH_TEST_SEED").c_str(), nullptr, 10);
    std::mt19937_64 rng(seed);
    std::set<size_t> sampled;
    while (sampled.size() < std::min(kSampledOps, ops.size())) sampled.insert(rng() % ops.size());
    size_t checked = 0;
    auto expect = [&](int64_t customer, Timestamp at, std::optional<int64_t> seq,
                      const std::string& what) {
      auto got = history.AsOf(customer, at);
      ASSERT_OK(got.status());
      const std::string want =
          seq ? RenderModelCampaigns(model.StateAfterSeq(customer, *seq), {.all_fields = true})
              : RenderModelCampaigns({}, {.all_fields = true});
      ASSERT_EQ(::ch::testing::RenderAsOf(*got), want)
          << "as-of customer " << customer << " " << what << " (CH_TEST_SEED=" << seed << ")";
      ++checked;
    };
    for (size_t i = 0; i < ops.size(); ++i) {
      const int64_t customer = by_seq.at(ops[i].seq)->customer_id();
      if (customer != every && !sampled.contains(i)) continue;
      const std::string what = fmt::format("at seq {}", ops[i].seq);
      ASSERT_NO_FATAL_FAILURE(
          expect(customer, ops[i].committed_at, ops[i].seq, "right after " + what));
      ASSERT_NO_FATAL_FAILURE(expect(customer, ops[i].committed_at - Micros(1),
                                     i == 0 ? std::nullopt : std::optional<int64_t>(ops[i - 1].seq),
                                     "1 us before " + what));
    }
    for (const auto& [customer, n] : ops_of) {
      ASSERT_NO_FATAL_FAILURE(
          expect(customer, ops.back().committed_at, ops.back().seq, "after the last op"));
    }
    std::cerr << fmt::format(
        "store as-of checked at {} moments (every op of customer {}, {} sampled ops, seed {}, the "
        "end for all)\n",
        checked, every, sampled.size(), seed);
  }

  TempDir dir_;
  std::string bin_, project_, suffix_, workload_, history_url_;
  std::unique_ptr<TopoDatabase> db_;
  std::vector<WorkloadLine> lines_;
  std::vector<std::unique_ptr<Child>> children_;
  std::function<void()> drop_history_;
  int spawned_ = 0;
  Clock::time_point mark_ = Clock::now();
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
    // DROP DATABASE on 18.16 takes 10-25 s here (the parts of ~100 small inserts per table, and
    // their inactive predecessors, deleted file by file). The server finishes it without the
    // client (DDL is not cancelled when the connection closes), so the test does not wait for it.
    ClickHouseHistoryOptions o;
    o.url = url;
    o.timeout_seconds = 2;
    if (auto store = ClickHouseHistoryStore::Open(o); store.ok()) {
      Status dropped = (*store)->DropDatabaseForTesting();
      if (!dropped.ok()) std::cerr << "drop left to the server: " << dropped.ToString() << "\n";
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
