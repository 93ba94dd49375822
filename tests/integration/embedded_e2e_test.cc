// End to end on the embedded setup: a workload replayed through the campaign service with live
// log capture (SQLite outbox -> publisher -> SQLite history), checked against the independent
// workload model at every op boundary: nothing lost, nothing invented, every version once.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "app/runtime.h"
#include "common/time_util.h"
#include "history/clickhouse_history_store.h"
#include "history/sqlite_history_store.h"
#include "testing/reference_generator.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"
#include "workload/replayer.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;
using ::ch::testing::WorkloadModel;

// Replay `lines` through a runtime on `dir` with the publisher running, feeding the model with
// each op's commit time. Return the replayed ops.
std::vector<ReplayedOp> ReplayLive(const std::string& dir, const std::vector<WorkloadLine>& lines,
                                   WorkloadModel& model, Runtime** runtime_out,
                                   std::unique_ptr<Runtime>& holder,
                                   const std::string& history_url) {
  RuntimeOptions options;
  options.config.data_dir = dir;
  options.config.history = history_url;
  auto runtime = Runtime::Create(options);
  EXPECT_TRUE(runtime.ok()) << runtime.status().ToString();
  holder = std::move(*runtime);
  *runtime_out = holder.get();
  auto service = holder->Service();
  EXPECT_TRUE(service.ok()) << service.status().ToString();
  auto publishing = holder->StartPublisher();
  EXPECT_TRUE(publishing.ok() && *publishing);
  Replayer replayer(**service);
  std::vector<ReplayedOp> ops;
  for (const WorkloadLine& line : lines) {
    auto op = replayer.Apply(line);
    EXPECT_TRUE(op.ok()) << op.status().ToString();
    if (!op.ok()) break;
    auto m = model.Apply(line, *op ? std::optional<Timestamp>((*op)->committed_at) : std::nullopt);
    EXPECT_TRUE(m.ok()) << m.status().ToString();
    if (*op) ops.push_back(**op);
  }
  return ops;
}

// `history_url` empty: the embedded SQLite history in the data directory.
void RunEndToEnd(const std::vector<WorkloadLine>& lines, const std::string& history_url = "") {
  ASSERT_FALSE(lines.empty());
  TempDir dir;
  WorkloadModel model;
  Runtime* runtime = nullptr;
  std::unique_ptr<Runtime> holder;
  std::vector<ReplayedOp> ops =
      ReplayLive(dir.path().string(), lines, model, &runtime, holder, history_url);
  ASSERT_OK(runtime->WaitCaughtUp(std::chrono::seconds(120)));
  runtime->StopPublisher();
  const WorkloadFooter& footer = lines.back().footer();
  EXPECT_EQ(model.TotalVersions(), footer.expected_versions);
  ASSERT_OK_AND_ASSIGN(HistoryStore * history, runtime->History());
  ASSERT_OK_AND_ASSIGN(HistoryStats stats, history->Stats());
  EXPECT_EQ(stats.records, footer.expected_versions);
  EXPECT_EQ(::ch::testing::CompareHistoryWithModel(*history, model, lines, ops), "");
}

TEST(EmbeddedEndToEndTest, SmallPresetMatchesTheModelAtEveryOpBoundary) {
  RunEndToEnd(::ch::testing::SmallWorkload());
}

// The same with the history in ClickHouse (CH_TEST_CLICKHOUSE_URL; database <DB>_e2e, dropped
// first): the SQLite outbox's publisher appends to ClickHouse, and every as-of is checked.
TEST(EmbeddedEndToEndTest, SmallPresetMatchesTheModelWithAClickHouseHistory) {
  const char* base = std::getenv("CH_TEST_CLICKHOUSE_URL");
  if (base == nullptr || *base == '\0') {
    GTEST_SKIP() << "CH_TEST_CLICKHOUSE_URL is not set (scripts/services.sh start clickhouse)";
  }
  const std::string url = std::string(base) + "_e2e";
  {
    ASSERT_OK_AND_ASSIGN(auto old, ClickHouseHistoryStore::Open({.url = url}));
    ASSERT_OK(old->DropDatabaseForTesting());
  }
  RunEndToEnd(::ch::testing::SmallWorkload(), url);
}

// The reference generator's workload (testing/reference_generator.h): runs as the
// embedded_e2e_reference_test ctest entry.
TEST(ReferenceEndToEndTest, ReferenceGeneratorWorkloadMatchesTheModel) {
  std::string gen = ::ch::testing::ReferenceGeneratorPath();
  if (gen.empty()) GTEST_SKIP() << ::ch::testing::kNoReferenceGenerator;
  ASSERT_OK_AND_ASSIGN(auto lines, ::ch::testing::ReferenceSmallWorkload(gen));
  RunEndToEnd(lines);
}

// The same through the real binary: `replay --wait` prints one line per op and returns only when
// all of it is queryable.
TEST(EmbeddedEndToEndTest, CliReplayWaitPrintsCommitTimesAndLeavesEverythingQueryable) {
  std::string bin = ::ch::testing::BinaryDir() + "/campaign-history";
  if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  TempDir dir;
  std::string ops_file = dir.File("small.jsonl");
  ::ch::testing::WriteSmallWorkloadFile(ops_file);
  std::string data = dir.File("data");
  std::string cmd = fmt::format("'{}' --data '{}' replay --ops '{}' --wait", bin, data, ops_file);
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::vector<ReplayedOp> ops;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) {
    int64_t seq = 0, versions = 0;
    char at[64] = {0};
    ASSERT_EQ(std::sscanf(buf, R"({"seq":%ld,"committed_at":"%63[^"]","versions":%ld})", &seq, at,
                          &versions),
              3)
        << buf;
    ASSERT_OK_AND_ASSIGN(Timestamp t, ParseTimestamp(at));
    ops.push_back({seq, t, versions});
  }
  ASSERT_EQ(pclose(p), 0);

  auto lines = ReadWorkloadFile(ops_file);
  ASSERT_OK(lines.status());
  WorkloadModel model;
  size_t i = 0;
  for (const WorkloadLine& line : *lines) {
    std::optional<Timestamp> t;
    if (line.applied()) {
      ASSERT_LT(i, ops.size());
      ASSERT_EQ(ops[i].seq, line.seq);
      EXPECT_EQ(ops[i].versions, line.versions);
      if (i > 0) {
        EXPECT_LT(ops[i - 1].committed_at, ops[i].committed_at);
      }
      t = ops[i++].committed_at;
    }
    ASSERT_OK(model.Apply(line, t).status());
  }
  EXPECT_EQ(i, ops.size());
  SqliteHistoryOptions o;
  o.path = data + "/history.db";
  o.read_only = true;
  ASSERT_OK_AND_ASSIGN(auto history, SqliteHistoryStore::Open(o));
  EXPECT_EQ(::ch::testing::CompareHistoryWithModel(*history, model, *lines, ops), "");
}

}  // namespace
}  // namespace ch
