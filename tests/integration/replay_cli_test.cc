// `replay` is safe to re-run (issue 9, item 8), through the real binary on the embedded setup:
//  - a re-run of applied ops fails with a clear message and changes nothing, unless --resume,
//    which skips what the campaign database records as applied and applies the rest once
//    (after a rejected line, after a SIGKILL, after a complete run);
//  - a different file is not confused with the applied one;
//  - two replays on one --data directory at once both finish (no wait until --wait-timeout);
//  - each op's line is on stdout as soon as it is committed (a pipe reader sees it);
//  - `--ops -` reads standard input.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "campaign/in_memory_campaign_store.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_test_util.h"
#include "common/time_util.h"
#include "history/pg_history_store.h"
#include "history/sqlite_history_store.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::RunCommand;
using ::ch::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;

// A CLI process whose standard input and output are pipes of the test; stderr goes to a file.
class CliProcess {
 public:
  CliProcess() = default;
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;
  ~CliProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    CloseInput();
    if (out_ >= 0) close(out_);
  }

  bool Start(const std::vector<std::string>& argv, const std::string& stderr_path) {
    // Close-on-exec: another child must not hold this one's input open.
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(in[0], 0);
      dup2(out[1], 1);
      int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      dup2(err, 2);
      close(in[1]);
      close(out[0]);
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(in[0]);
    close(out[1]);
    in_ = in[1];
    out_ = out[0];
    return pid_ > 0;
  }

  // From now on, write to the FIFO at `path` instead of the standard input (once the process
  // opened it for reading, which a FIFO writer waits for).
  bool WriteToFifo(const std::string& path, std::chrono::seconds timeout) {
    CloseInput();
    for (auto deadline = Clock::now() + timeout; in_ < 0 && Clock::now() < deadline;) {
      in_ = open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);  // ENXIO: no reader yet
      if (in_ < 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return in_ >= 0 && fcntl(in_, F_SETFL, 0) == 0;
  }

  bool Write(std::string_view text) {
    while (!text.empty()) {
      ssize_t n = write(in_, text.data(), text.size());
      if (n <= 0) return false;
      text.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  void CloseInput() {
    if (in_ >= 0) close(in_);
    in_ = -1;
  }

  // Return the next line of its standard output (without the newline), or nullopt when none
  // came within `timeout` or the output ended.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout) {
    auto deadline = Clock::now() + timeout;
    while (true) {
      if (size_t nl = buffer_.find('\n'); nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = read(out_, buf, sizeof buf);
      if (n <= 0) return std::nullopt;
      buffer_.append(buf, static_cast<size_t>(n));
    }
  }

  // Return every line still on its standard output, up to its end.
  std::vector<std::string> ReadAll() {
    std::vector<std::string> lines;
    while (auto line = ReadLine(std::chrono::seconds(60))) lines.push_back(*line);
    return lines;
  }

  // Wait up to `timeout` for it to exit; return its exit code, 128 + signal, or -1 when it was
  // still running (it is then killed).
  int Wait(std::chrono::seconds timeout) {
    auto deadline = Clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() >= deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void Kill() { kill(pid_, SIGKILL); }

 private:
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::string buffer_;
};

Result<ReplayedOp> ParseOpLine(const std::string& line) {
  int64_t seq = 0, versions = 0;
  char at[64] = {0};
  if (std::sscanf(line.c_str(), R"({"seq":%ld,"committed_at":"%63[^"]","versions":%ld})", &seq, at,
                  &versions) != 3) {
    return InvalidArgumentError("not a replay line: " + line);
  }
  ASSIGN_OR_RETURN(Timestamp t, ParseTimestamp(at));
  return ReplayedOp{seq, t, versions};
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ReplayCliTest : public ::testing::Test {
 protected:
  struct Run {
    int code = -1;
    std::string out;  // stdout
    std::string err;  // stderr
  };

  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    data_ = dir_.File("data");
    small_ = dir_.File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(small_);
    std::istringstream text(ReadText(small_));
    for (std::string l; std::getline(text, l);) text_.push_back(l);
    ASSERT_OK_AND_ASSIGN(lines_, ReadWorkloadFile(small_));
    for (const WorkloadLine& l : lines_) {
      if (l.applied()) customers_.insert(l.customer_id());
    }
  }

  std::string Cli(const std::string& args) const {
    return fmt::format("'{}' --data '{}' {}", bin_, data_, args);
  }

  Run Replay(const std::string& args) {
    std::string err = dir_.File("stderr.txt");
    ::ch::testing::CommandOutcome o =
        RunCommand(fmt::format("{{ {} 2>'{}'; }}", Cli("replay " + args), err));
    return {o.code, o.output, ReadText(err)};
  }

  // Write `lines` as a file; return its path.
  std::string WriteLines(const std::string& name, const std::vector<std::string>& lines) const {
    std::string path = dir_.File(name);
    std::ofstream out(path);
    for (const std::string& l : lines) out << l << "\n";
    return path;
  }

  // The small workload with line `line_no` (1-based) replaced by `edit(line)`.
  std::string WriteEdited(const std::string& name, size_t line_no,
                          const std::function<std::string(std::string)>& edit) const {
    std::vector<std::string> lines = text_;
    lines[line_no - 1] = edit(lines[line_no - 1]);
    return WriteLines(name, lines);
  }

  // Publish what the outbox still holds (a query does it first on the embedded setup).
  void CatchUp() { RunCommand(Cli("as-of --customer 1 --at now")); }

  // What a user could observe of the setup: the history's counts and every customer's campaigns.
  std::string Observed() {
    // complete_through moves with heartbeats, not with what was recorded.
    std::string out = std::regex_replace(RunCommand(Cli("status --json")).output,
                                         std::regex(R"("complete_through":"[^"]*")"), "");
    for (int64_t c : customers_) {
      std::string text =
          RunCommand(fmt::format("{{ {} 2>/dev/null; }}",
                                 Cli(fmt::format("as-of --customer {} --at 2100-01-01 --json", c))))
              .output;
      // Only the campaigns: the answer also says when it was answered.
      auto answer = nlohmann::json::parse(text, nullptr, false);
      out += answer.is_object() && answer.contains("campaigns") ? answer["campaigns"].dump()
                                                                : "unparseable: " + text;
      out += "\n";
    }
    return out;
  }

  // Every customer's campaigns without their timestamps: comparable across setups.
  std::string FinalState(const std::string& data) {
    std::string out;
    for (int64_t c : customers_) {
      auto o =
          RunCommand(fmt::format("{{ '{}' --data '{}' as-of --customer {} --at 2100-01-01 "
                                 "--json 2>/dev/null; }}",
                                 bin_, data, c));
      auto answer = nlohmann::json::parse(o.output, nullptr, false);
      if (answer.is_discarded() || !answer.contains("campaigns")) return "unparseable: " + o.output;
      nlohmann::json campaigns = answer["campaigns"];
      for (auto& campaign : campaigns) {
        campaign.erase("created_at");
        campaign.erase("updated_at");
      }
      out += campaigns.dump() + "\n";
    }
    return out;
  }

  int64_t HistoryRecords() {
    auto status = nlohmann::json::parse(
        RunCommand(fmt::format("{{ {} 2>/dev/null; }}", Cli("status --json"))).output, nullptr,
        false);
    if (status.is_discarded() || !status.contains("records")) return -1;
    return status["records"].get<int64_t>();
  }

  // Check the history against the independent model, given every applied op's commit time.
  // `history`: the store to check (default: the embedded SQLite history of data_).
  void ExpectHistoryMatchesModel(const std::vector<ReplayedOp>& ops,
                                 HistoryStore* history = nullptr) {
    std::map<int64_t, Timestamp> at;
    for (const ReplayedOp& op : ops) at[op.seq] = op.committed_at;
    testing::WorkloadModel model;
    for (const WorkloadLine& line : lines_) {
      std::optional<Timestamp> t;
      if (line.applied()) {
        ASSERT_TRUE(at.contains(line.seq)) << "no commit time printed for seq " << line.seq;
        t = at[line.seq];
      }
      ASSERT_OK(model.Apply(line, t).status());
    }
    ASSERT_EQ(ops.size(), at.size()) << "an op was printed twice";
    std::unique_ptr<SqliteHistoryStore> sqlite;
    if (history == nullptr) {
      SqliteHistoryOptions o;
      o.path = data_ + "/history.db";
      o.read_only = true;
      ASSERT_OK_AND_ASSIGN(sqlite, SqliteHistoryStore::Open(o));
      history = sqlite.get();
    }
    EXPECT_EQ(::ch::testing::CompareHistoryWithModel(*history, model, lines_, ops), "");
  }

  // A postgresql:// URL of database `dbname` on the CH_TEST_PG_URL server (the CLI takes URLs).
  static std::string PgCliUrl(const std::string& dbname) {
    std::string url = ::ch::testing::PgTestUrl();
    EXPECT_TRUE(url.starts_with("postgresql://")) << "CH_TEST_PG_URL is not a postgresql:// URL";
    size_t slash = url.find('/', std::string("postgresql://").size());
    size_t query = url.find('?');
    return url.substr(0, slash) + "/" + dbname +
           (query == std::string::npos ? "" : url.substr(query));
  }

  static std::vector<ReplayedOp> Ops(const std::string& out) {
    std::vector<ReplayedOp> ops;
    std::istringstream in(out);
    for (std::string l; std::getline(in, l);) {
      auto op = ParseOpLine(l);
      EXPECT_OK(op);
      if (op.ok()) ops.push_back(*op);
    }
    return ops;
  }

  int64_t LastOpSeq() const {
    for (auto it = lines_.rbegin(); it != lines_.rend(); ++it) {
      if (it->applied()) return it->seq;
    }
    return -1;
  }
  int64_t AppliedLines() const {
    return std::count_if(lines_.begin(), lines_.end(), [](const auto& l) { return l.applied(); });
  }

  TempDir dir_;
  std::string bin_, data_, small_;
  std::vector<std::string> text_;
  std::vector<WorkloadLine> lines_;
  std::set<int64_t> customers_;
};

TEST_F(ReplayCliTest, ReRunFailsSayingToResumeAndChangesNothing) {
  Run first = Replay(fmt::format("--ops '{}' --wait --quiet", small_));
  ASSERT_EQ(first.code, 0) << first.err;
  const std::string before = Observed();

  Run again = Replay(fmt::format("--ops '{}' --wait", small_));
  EXPECT_EQ(again.code, 4) << again.err;
  EXPECT_THAT(again.err, HasSubstr(fmt::format("already applied to this campaign database through "
                                               "seq {}",
                                               LastOpSeq())));
  EXPECT_THAT(again.err, HasSubstr("replay --resume"));
  EXPECT_THAT(again.err, Not(HasSubstr("already taken")));
  EXPECT_EQ(again.out, "");
  EXPECT_EQ(Observed(), before);

  // Resuming a complete replay applies nothing, and says so.
  Run resumed = Replay(fmt::format("--ops '{}' --resume --wait", small_));
  EXPECT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_THAT(resumed.err, HasSubstr(fmt::format("resuming after op seq {}: {} ops already applied",
                                                 LastOpSeq(), AppliedLines())));
  EXPECT_THAT(resumed.err, HasSubstr("replayed 0 ops"));
  EXPECT_EQ(resumed.out, "");
  EXPECT_EQ(Observed(), before);
}

TEST_F(ReplayCliTest, ResumeAfterARejectedLineAppliesTheRestOnce) {
  // Line 1001 claims a wrong version count: rejected before anything of it is committed.
  const size_t bad_line = 1001;
  ASSERT_TRUE(lines_[bad_line - 1].applied());
  const int64_t bad_seq = lines_[bad_line - 1].seq;
  std::string bad = WriteEdited("bad.jsonl", bad_line, [](std::string l) {
    return std::regex_replace(l, std::regex(R"("versions":\d+)"), R"("versions":999)");
  });
  Run first = Replay(fmt::format("--ops '{}' --wait", bad));
  ASSERT_EQ(first.code, 4) << first.err;
  ASSERT_THAT(first.err, HasSubstr(fmt::format("workload line {} (seq {}", bad_line, bad_seq)));
  std::vector<ReplayedOp> ops = Ops(first.out);
  ASSERT_EQ(static_cast<int64_t>(ops.size()), static_cast<int64_t>(bad_line) - 2);  // header
  CatchUp();  // the failed run did not wait for its last changes to be published
  const std::string before = Observed();

  // The fixed file, again without --resume: refused, naming the way out.
  Run plain = Replay(fmt::format("--ops '{}' --wait", small_));
  EXPECT_EQ(plain.code, 4) << plain.err;
  EXPECT_THAT(plain.err, HasSubstr(fmt::format("through seq {}", bad_seq - 1)));
  EXPECT_THAT(plain.err, HasSubstr("--resume"));
  EXPECT_EQ(Observed(), before);

  Run resumed = Replay(fmt::format("--ops '{}' --resume --wait", small_));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_THAT(resumed.err, HasSubstr(fmt::format("resuming after op seq {}: {} ops already applied",
                                                 bad_seq - 1, ops.size())));
  std::vector<ReplayedOp> rest = Ops(resumed.out);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(rest.front().seq, bad_seq);
  ops.insert(ops.end(), rest.begin(), rest.end());
  ExpectHistoryMatchesModel(ops);
}

TEST_F(ReplayCliTest, ResumeAfterSigkillAppliesTheRestOnce) {
  std::string err = dir_.File("killed.stderr");
  CliProcess p;
  ASSERT_TRUE(p.Start({bin_, "--data", data_, "replay", "--ops", small_}, err));
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(p.ReadLine(std::chrono::seconds(60))) << i;
  p.Kill();
  std::vector<std::string> printed = p.ReadAll();
  EXPECT_EQ(p.Wait(std::chrono::seconds(60)), 128 + SIGKILL);
  const int64_t printed_ops = 300 + static_cast<int64_t>(printed.size());
  ASSERT_LT(printed_ops, AppliedLines()) << "the replay ended before it was killed";

  Run resumed = Replay(fmt::format("--ops '{}' --resume --wait", small_));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  // Every op committed before the kill was printed, except perhaps the one in flight.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(resumed.err, m,
                                std::regex(R"(resuming after op seq (\d+): (\d+) ops already)")))
      << resumed.err;
  const int64_t skipped = std::stoll(m[2]);
  EXPECT_GE(skipped, printed_ops);
  EXPECT_LE(skipped, printed_ops + 1);
  EXPECT_EQ(static_cast<int64_t>(Ops(resumed.out).size()), AppliedLines() - skipped);

  // Nothing applied twice, nothing lost: the same campaigns and versions as one clean run.
  EXPECT_EQ(HistoryRecords(), lines_.back().footer().expected_versions);
  std::string clean = dir_.File("clean");
  auto o = RunCommand(
      fmt::format("'{}' --data '{}' replay --ops '{}' --wait --quiet", bin_, clean, small_));
  ASSERT_EQ(o.code, 0) << o.output;
  EXPECT_EQ(FinalState(data_), FinalState(clean));
}

TEST_F(ReplayCliTest, ADifferentFileIsNotConfusedWithTheAppliedOne) {
  Run first = Replay(fmt::format("--ops '{}' --wait --quiet", small_));
  ASSERT_EQ(first.code, 0) << first.err;

  // Another workload (another first line) on the same data: applied as a workload of its own.
  auto as_of = nlohmann::json::parse(
      RunCommand(
          fmt::format("{{ {} 2>/dev/null; }}", Cli("as-of --customer 2 --at 2100-01-01 --json")))
          .output);
  const int64_t id = as_of["campaigns"][0]["id"].get<int64_t>();
  std::string edits = WriteLines(
      "edits.jsonl",
      {fmt::format(
           R"({{"op":"update","seq":90000,"at":"2030-01-01T00:00:00Z","customer_id":2,"id":{},"set":{{"name":"Renamed once"}},"actor":"user:1","versions":1}})",
           id),
       fmt::format(
           R"({{"op":"update","seq":90001,"at":"2030-01-01T00:00:01Z","customer_id":2,"id":{},"set":{{"name":"Renamed twice"}},"actor":"user:1","versions":1}})",
           id)});
  Run other = Replay(fmt::format("--ops '{}' --wait", edits));
  EXPECT_EQ(other.code, 0) << other.err;
  EXPECT_EQ(Ops(other.out).size(), 2u);
  const std::string before = Observed();

  // A file with the small workload's first line but another line further on is not taken for
  // it, with or without --resume.
  std::string changed = WriteEdited("changed.jsonl", 500, [](std::string l) {
    return std::regex_replace(l, std::regex(R"("at":"[^"]*")"), R"("at":"2031-01-01T00:00:00Z")");
  });
  for (const char* flags : {"--resume", ""}) {
    Run r = Replay(fmt::format("--ops '{}' --wait {}", changed, flags));
    EXPECT_EQ(r.code, 4) << flags << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("not the workload applied to this campaign database"));
    EXPECT_THAT(r.err, HasSubstr("differ from the applied ones"));
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(Observed(), before);

  // Each workload is still known as itself.
  Run edits_again = Replay(fmt::format("--ops '{}' --resume", edits));
  EXPECT_EQ(edits_again.code, 0) << edits_again.err;
  EXPECT_THAT(edits_again.err, HasSubstr("resuming after op seq 90001: 2 ops already applied"));
  Run small_again = Replay(fmt::format("--ops '{}' --resume", small_));
  EXPECT_EQ(small_again.code, 0) << small_again.err;
  EXPECT_THAT(small_again.err, HasSubstr(fmt::format("resuming after op seq {}", LastOpSeq())));
  EXPECT_EQ(Observed(), before);
}

// A replay that reads a FIFO: the test writes lines and expects each op's output line before it
// writes more (stdout used to be flushed only at the end).
TEST_F(ReplayCliTest, EachOpIsOnStdoutAsSoonAsItIsCommitted) {
  std::string fifo = dir_.File("ops.fifo");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  CliProcess p;
  ASSERT_TRUE(p.Start({bin_, "--data", data_, "replay", "--ops", fifo}, dir_.File("fifo.stderr")));
  ASSERT_TRUE(p.WriteToFifo(fifo, std::chrono::seconds(30))) << ReadText(dir_.File("fifo.stderr"));
  ASSERT_TRUE(p.Write(text_[0] + "\n"));  // the header: no output
  for (size_t i = 1; i <= 3; ++i) {
    ASSERT_TRUE(p.Write(text_[i] + "\n"));
    std::optional<std::string> out = p.ReadLine(std::chrono::seconds(30));
    ASSERT_TRUE(out) << "no output for line " << i + 1 << " while the input is open";
    ASSERT_OK_AND_ASSIGN(ReplayedOp op, ParseOpLine(*out));
    EXPECT_EQ(op.seq, lines_[i].seq);
  }
  p.CloseInput();
  EXPECT_EQ(p.Wait(std::chrono::seconds(60)), 0) << ReadText(dir_.File("fifo.stderr"));
}

TEST_F(ReplayCliTest, OpsDashReadsStandardInput) {
  auto o = RunCommand(fmt::format("{{ cat '{}' | {} 2>'{}'; }}", small_,
                                  Cli("replay --ops - --wait"), dir_.File("stdin.stderr")));
  ASSERT_EQ(o.code, 0) << ReadText(dir_.File("stdin.stderr"));
  std::vector<ReplayedOp> ops = Ops(o.output);
  EXPECT_EQ(static_cast<int64_t>(ops.size()), AppliedLines());
  ExpectHistoryMatchesModel(ops);

  // Standard input is a workload like any other: a re-run knows it.
  auto again = RunCommand(
      fmt::format("{{ cat '{}' | {} 2>&1 >/dev/null; }}", small_, Cli("replay --ops - --resume")));
  EXPECT_EQ(again.code, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr(fmt::format("resuming after op seq {}", LastOpSeq())));
}

// Two replays of two workloads on one --data at once. The first publishes this setup and stops
// while the second still commits: the second takes over publishing, and its --wait returns
// instead of waiting for its --wait-timeout.
TEST_F(ReplayCliTest, TwoReplaysOnOneDataDirectoryBothFinish) {
  Run seed = Replay(fmt::format("--ops '{}' --wait --quiet", small_));
  ASSERT_EQ(seed.code, 0) << seed.err;
  auto first_of = [&](int64_t customer) {
    auto j = nlohmann::json::parse(
        RunCommand(fmt::format("{{ {} 2>/dev/null; }}", Cli(fmt::format("as-of --customer {} --at "
                                                                        "2100-01-01 --json",
                                                                        customer))))
            .output);
    return j["campaigns"][0]["id"].get<int64_t>();
  };
  auto update = [](int64_t customer, int64_t id, int64_t seq) {
    return fmt::format(
        R"({{"op":"update","seq":{},"at":"2030-01-01T00:00:00Z","customer_id":{},"id":{},"set":{{"name":"edit {}"}},"actor":"user:1","versions":1}})",
        seq, customer, id, seq);
  };
  const int64_t a_id = first_of(2), b_id = first_of(3);
  // Each reads a FIFO the test writes, so that the test decides when each one ends. A replay
  // opens its FIFO after it started publishing, or found another process publishing.
  auto start = [&](CliProcess& p, const std::string& name) {
    std::string fifo = dir_.File(name + ".fifo");
    if (mkfifo(fifo.c_str(), 0600) != 0) return false;
    return p.Start(
               {bin_, "--data", data_, "replay", "--ops", fifo, "--wait", "--wait-timeout", "60s"},
               dir_.File(name + ".stderr")) &&
           p.WriteToFifo(fifo, std::chrono::seconds(30));
  };
  CliProcess a, b;
  ASSERT_TRUE(start(a, "a")) << ReadText(dir_.File("a.stderr"));
  ASSERT_TRUE(a.Write(update(2, a_id, 1) + "\n"));
  // A publishes this setup now; B starts while it does.
  ASSERT_TRUE(start(b, "b")) << ReadText(dir_.File("b.stderr"));
  ASSERT_TRUE(b.Write(update(3, b_id, 1) + "\n"));
  a.CloseInput();
  EXPECT_EQ(a.Wait(std::chrono::seconds(60)), 0) << ReadText(dir_.File("a.stderr"));
  // B commits more after A is gone.
  for (int64_t seq = 2; seq <= 20; ++seq) ASSERT_TRUE(b.Write(update(3, b_id, seq) + "\n"));
  b.CloseInput();
  auto closed = Clock::now();
  EXPECT_EQ(b.Wait(std::chrono::seconds(50)), 0) << ReadText(dir_.File("b.stderr"));
  EXPECT_LT(Clock::now() - closed, std::chrono::seconds(30));
  EXPECT_THAT(RunCommand(Cli(fmt::format("log --campaign {}", b_id))).output, HasSubstr("edit 20"));
}

// The end-to-end replay into a PostgreSQL history (issue 8): the embedded campaign database and
// publisher, the history in PostgreSQL; as-of equals the independent model at every op boundary,
// and status and the query commands read it through the same URL.
TEST_F(ReplayCliTest, ReplayIntoAPostgresHistoryMatchesTheModel) {
  if (::ch::testing::PgTestUrl().empty()) GTEST_SKIP() << ::ch::testing::kPgTestSkipMessage;
  ASSERT_OK_AND_ASSIGN(auto db, ::ch::testing::PgTestDatabase::Create());
  std::string url = PgCliUrl(db->name());
  url += url.find('?') == std::string::npos ? "?schema=pghistory_e2e" : "&schema=pghistory_e2e";
  const std::string flags = fmt::format("--history '{}'", url);
  std::string err = dir_.File("pg.stderr");
  auto o = RunCommand(fmt::format("{{ '{}' --data '{}' {} replay --ops '{}' --wait 2>'{}'; }}",
                                  bin_, data_, flags, small_, err));
  ASSERT_EQ(o.code, 0) << ReadText(err);
  EXPECT_FALSE(std::filesystem::exists(data_ + "/history.db")) << "the history went to SQLite";

  PgHistoryOptions po;
  po.url = db->url();
  po.schema = "pghistory_e2e";
  ASSERT_OK_AND_ASSIGN(auto history, PgHistoryStore::Open(po));
  ExpectHistoryMatchesModel(Ops(o.output), history.get());

  auto status = nlohmann::json::parse(
      RunCommand(
          fmt::format("{{ '{}' --data '{}' {} status --json 2>/dev/null; }}", bin_, data_, flags))
          .output,
      nullptr, false);
  ASSERT_FALSE(status.is_discarded());
  ASSERT_OK_AND_ASSIGN(HistoryStats stats, history->Stats());
  EXPECT_EQ(status["records"].get<int64_t>(), stats.records);
  EXPECT_GT(stats.records, 0);
}

// The same on a PostgreSQL campaign database (the position is in ch_replay_positions): a
// rejected line, a refused plain re-run, then --resume; the campaigns end as one replay leaves
// them. Capture is off here: the history is not what this test is about.
TEST_F(ReplayCliTest, ResumeOnAPostgresCampaignDatabase) {
  if (::ch::testing::PgTestUrl().empty()) GTEST_SKIP() << ::ch::testing::kPgTestSkipMessage;
  ASSERT_OK_AND_ASSIGN(auto db, ::ch::testing::PgTestDatabase::Create());
  // The CLI takes postgresql:// URLs: the server's, with the test database.
  std::string url = ::ch::testing::PgTestUrl();
  ASSERT_TRUE(url.starts_with("postgresql://")) << "CH_TEST_PG_URL is not a postgresql:// URL";
  size_t slash = url.find('/', std::string("postgresql://").size());
  size_t query = url.find('?');
  url = url.substr(0, slash) + "/" + db->name() +
        (query == std::string::npos ? "" : url.substr(query));
  const std::string flags = fmt::format("--campaign-db '{}' --capture none", url);
  auto run = [&](const std::string& args) {
    std::string err = dir_.File("pg.stderr");
    auto o = RunCommand(
        fmt::format("{{ '{}' --data '{}' {} replay {} 2>'{}'; }}", bin_, data_, flags, args, err));
    return Run{o.code, o.output, ReadText(err)};
  };
  const size_t bad_line = 1001;
  const int64_t bad_seq = lines_[bad_line - 1].seq;
  std::string bad = WriteEdited("bad.jsonl", bad_line, [](std::string l) {
    return std::regex_replace(l, std::regex(R"("versions":\d+)"), R"("versions":999)");
  });
  Run first = run(fmt::format("--ops '{}' --quiet", bad));
  ASSERT_EQ(first.code, 4) << first.err;
  Run plain = run(fmt::format("--ops '{}' --quiet", small_));
  EXPECT_EQ(plain.code, 4) << plain.err;
  EXPECT_THAT(plain.err, HasSubstr(fmt::format("already applied to this campaign database through "
                                               "seq {}",
                                               bad_seq - 1)));
  Run resumed = run(fmt::format("--ops '{}' --resume", small_));
  ASSERT_EQ(resumed.code, 0) << resumed.err;
  EXPECT_THAT(resumed.err, HasSubstr(fmt::format("resuming after op seq {}", bad_seq - 1)));
  EXPECT_EQ(Ops(resumed.out).front().seq, bad_seq);

  PgCampaignStoreOptions o;
  o.url = db->url();
  o.capture = StoreCapture::kNone;
  ASSERT_OK_AND_ASSIGN(auto pg, PgCampaignStore::Open(o));
  ASSERT_OK_AND_ASSIGN(std::vector<Campaign> got, pg->AllCampaigns());
  InMemoryCampaignStore clean_store;
  CampaignService clean(clean_store);
  ASSERT_OK(Replayer(clean).ReplayFile(small_));
  testing::RenderOptions all{.all_fields = true};
  EXPECT_EQ(testing::RenderCampaigns(got, all),
            testing::RenderCampaigns(clean_store.AllCampaigns(), all));
}

}  // namespace
}  // namespace ch
