// Crash safety of the embedded pipeline: the publisher process is SIGKILLed again and again at
// random moments, and ends itself exactly between the history append and the outbox confirm (its
// crash point, app/crash_point.h: the test counts those exits), while a replay is capturing.
// After a final clean run, the history must hold every committed version exactly once and match
// the independent model at every op boundary.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <thread>

#include "app/crash_point.h"
#include "capture/sqlite_outbox_source.h"
#include "common/time_util.h"
#include "history/sqlite_history_store.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;

// Start `args` as a child process with optional extra environment; stdout to `out_file` when
// given. Return its pid.
pid_t Spawn(const std::vector<std::string>& args, const std::string& out_file = "",
            const std::string& env = "") {
  pid_t pid = fork();
  if (pid == 0) {
    if (!out_file.empty()) {
      FILE* f = freopen(out_file.c_str(), "w", stdout);
      if (f == nullptr) _exit(127);
    }
    if (!env.empty()) putenv(const_cast<char*>(env.c_str()));
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int WaitExit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

bool Exited(pid_t pid, int* code) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) != pid) return false;
  *code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  return true;
}

int64_t Backlog(const std::string& campaigns_db) {
  SqliteOutboxSourceOptions o;
  o.path = campaigns_db;
  auto source = SqliteOutboxSource::Open(o);
  if (!source.ok()) return -1;
  auto b = (*source)->Backlog();
  return b.ok() ? *b : -1;
}

TEST(PublisherCrashTest, KilledPublishersLoseNothingAndDuplicateNothing) {
  std::string bin = ::ch::testing::BinaryDir() + "/campaign-history";
  if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  TempDir dir;
  std::string ops_file = dir.File("small.jsonl");
  ::ch::testing::WriteSmallWorkloadFile(ops_file);
  std::string data = dir.File("data");
  std::string replay_out = dir.File("replay.out");

  unsigned seed = static_cast<unsigned>(std::random_device{}());
  SCOPED_TRACE(fmt::format("random seed {}", seed));
  std::mt19937 rng(seed);

  // The replay captures into the outbox; publishers come and go beside it.
  pid_t replay =
      Spawn({bin, "--data", data, "replay", "--ops", ops_file, "--no-publish"}, replay_out);
  std::vector<std::string> serve = {bin,       "--data",    data,           "serve",
                                    "--roles", "publisher", "--batch-size", "37"};
  int kills = 0, crash_points = 0, crash_exits = 0;
  int replay_code = -1;
  bool replay_done = false;
  for (int round = 0; round < 40 || !replay_done; ++round) {
    ASSERT_LT(round, 400) << "replay did not finish";
    std::string env;
    // A publisher dies at a random moment (SIGKILL) -- or, every third one, exactly after the
    // history append, before the outbox confirm: the batch is delivered again by the next
    // publisher, which must not store it twice. That one gets the time to reach its crash point,
    // and says so with its exit code (it is killed too when it has not after 2 s).
    auto lifetime = std::chrono::milliseconds(10 + rng() % 150);
    if (round % 3 == 2) {
      env = fmt::format("CH_TEST_CRASH_AT=after_append:{}", 1 + rng() % 4);
      ++crash_points;
      lifetime = std::chrono::milliseconds(2000);
    }
    pid_t pub = Spawn(serve, "", env);
    int code = -1;
    bool exited = false;
    for (auto end = std::chrono::steady_clock::now() + lifetime;
         !(exited = Exited(pub, &code)) && std::chrono::steady_clock::now() < end;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!exited) {
      kill(pub, SIGKILL);
      code = WaitExit(pub);
      ++kills;
    }
    if (code == kCrashPointExitCode) {
      ASSERT_FALSE(env.empty()) << "a publisher without a crash point exited with its code";
      ++crash_exits;
    }
    if (!replay_done) replay_done = Exited(replay, &replay_code);
  }
  ASSERT_EQ(replay_code, 0);
  // Proof that the append/confirm boundary was tested: publishers did stop there.
  EXPECT_GT(crash_exits, 0) << "no publisher reached its crash point (" << crash_points
                            << " were set)";

  // A last publisher drains the rest and stops cleanly on SIGTERM.
  std::string campaigns_db = data + "/campaigns.db";
  ASSERT_GT(Backlog(campaigns_db), -1);
  pid_t last = Spawn(serve);
  for (int i = 0; i < 6000 && Backlog(campaigns_db) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Backlog(campaigns_db), 0);
  // Give it time to finish starting up (signals are handled once the roles run).
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(last, SIGTERM);
  EXPECT_EQ(WaitExit(last), 0) << "serve must exit cleanly on SIGTERM";

  // Rebuild the expected history from the replay's output and the model.
  std::vector<ReplayedOp> ops;
  std::ifstream in(replay_out);
  std::string line;
  while (std::getline(in, line)) {
    int64_t seq = 0, versions = 0;
    char at[64] = {0};
    ASSERT_EQ(std::sscanf(line.c_str(), R"({"seq":%ld,"committed_at":"%63[^"]","versions":%ld})",
                          &seq, at, &versions),
              3)
        << line;
    ASSERT_OK_AND_ASSIGN(Timestamp t, ParseTimestamp(at));
    ops.push_back({seq, t, versions});
  }
  ASSERT_OK_AND_ASSIGN(auto lines, ReadWorkloadFile(ops_file));
  ::ch::testing::WorkloadModel model;
  size_t i = 0;
  for (const WorkloadLine& l : lines) {
    std::optional<Timestamp> t;
    if (l.applied()) t = ops.at(i++).committed_at;
    ASSERT_OK(model.Apply(l, t).status());
  }
  SqliteHistoryOptions o;
  o.path = data + "/history.db";
  o.read_only = true;
  ASSERT_OK_AND_ASSIGN(auto history, SqliteHistoryStore::Open(o));
  EXPECT_EQ(::ch::testing::CompareHistoryWithModel(*history, model, lines, ops), "");
  std::cerr << fmt::format(
      "publisher killed {} times; {} of {} crash points set fired (the append/confirm "
      "boundary)\n",
      kills, crash_exits, crash_points);
}

}  // namespace
}  // namespace ch
