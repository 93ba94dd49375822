#include "tests/integration/topology_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "campaign/pg_client.h"
#include "common/time_util.h"

namespace ch::testing {

using std::chrono::milliseconds;
using std::chrono::seconds;

// ---------------------------------------------------------------------------------------------
// TopoDatabase

namespace {

// Replace the database of a postgresql:// URL (the path after host[:port]).
Result<std::string> WithDatabase(const std::string& url, const std::string& db) {
  std::string prefix;
  for (const char* scheme : {"postgresql://", "postgres://"}) {
    if (url.rfind(scheme, 0) == 0) prefix = scheme;
  }
  if (prefix.empty()) {
    return InvalidArgumentError(fmt::format("CH_TEST_PG_URL '{}' is not a postgresql:// URL", url));
  }
  size_t query = url.find('?', prefix.size());
  std::string rest = url.substr(
      prefix.size(), query == std::string::npos ? std::string::npos : query - prefix.size());
  std::string params = query == std::string::npos ? "" : url.substr(query);
  size_t slash = rest.find('/');
  std::string authority = slash == std::string::npos ? rest : rest.substr(0, slash);
  return prefix + authority + "/" + db + params;
}

Result<std::unique_ptr<PgConn>> Connect(const std::string& url) {
  PgConnectOptions o;
  o.url = url;
  return PgConn::Connect(o);
}

}  // namespace

Result<std::unique_ptr<TopoDatabase>> TopoDatabase::Create(const std::string& admin_url) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  std::string name = fmt::format("ch_topo_{}_{}_{:08x}", getpid(), counter.fetch_add(1), rd());
  ASSIGN_OR_RETURN(std::string url, WithDatabase(admin_url, name));
  ASSIGN_OR_RETURN(auto conn, Connect(admin_url));
  RETURN_IF_ERROR(
      conn->Exec(fmt::format("CREATE DATABASE {} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' "
                             "TEMPLATE template0",
                             name))
          .status());
  return std::unique_ptr<TopoDatabase>(new TopoDatabase(admin_url, name, url));
}

TopoDatabase::~TopoDatabase() {
  Status s = Drop();
  if (!s.ok()) {
    std::fprintf(stderr, "could not drop test database %s: %s\n", name_.c_str(),
                 s.ToString().c_str());
  }
}

Status TopoDatabase::Drop() {
  if (dropped_) return Status::OK();
  ASSIGN_OR_RETURN(auto conn, Connect(admin_url_));
  // The slot first: a relay may still be connected (terminate it), and DROP DATABASE refuses a
  // database that has slots.
  bool slots_gone = false;
  for (int attempt = 0; attempt < 100 && !slots_gone; ++attempt) {
    conn->Exec(fmt::format("SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                           "WHERE database = '{}' AND active_pid IS NOT NULL",
                           name_))
        .status()
        .IgnoreError();
    conn->Exec(fmt::format("SELECT count(pg_drop_replication_slot(slot_name)) FROM "
                           "pg_replication_slots WHERE database = '{}' AND NOT active",
                           name_))
        .status()
        .IgnoreError();
    auto left = conn->Exec(
        fmt::format("SELECT count(*) FROM pg_replication_slots WHERE database = '{}'", name_));
    slots_gone = left.ok() && left->Get(0, 0) == "0";
    if (!slots_gone) std::this_thread::sleep_for(milliseconds(50));
  }
  if (!slots_gone) {
    return UnavailableError(fmt::format("the replication slot of {} could not be dropped", name_));
  }
  RETURN_IF_ERROR(
      conn->Exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", name_)).status());
  dropped_ = true;
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Child

Result<std::unique_ptr<Child>> Child::Start(std::string name, const std::vector<std::string>& args,
                                            const std::string& out_file,
                                            const std::string& err_file,
                                            const std::vector<std::string>& env) {
  if (args.empty()) return InvalidArgumentError("no command");
  // Everything the child needs is prepared before fork (no allocation after it).
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> env_copy = env;
  pid_t pid = fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    int out = open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0) _exit(127);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    dup2(in, STDIN_FILENO);
    for (std::string& e : env_copy) putenv(e.data());
    execv(argv[0], argv.data());
    _exit(127);
  }
  return std::unique_ptr<Child>(new Child(std::move(name), pid, out_file, err_file));
}

Child::~Child() { Kill(); }

bool Child::running() {
  if (code_ >= 0) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == 0) return true;
  if (r == pid_) {
    code_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  } else {
    code_ = 255;  // not our child any more: treat as gone
  }
  return false;
}

void Child::Signal(int signal) {
  if (running()) kill(pid_, signal);
}

void Child::Kill() {
  if (!running()) return;
  kill(pid_, SIGKILL);
  int status = 0;
  if (waitpid(pid_, &status, 0) == pid_) {
    code_ = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
  } else {
    code_ = 255;
  }
}

Result<int> Child::Wait(Micros timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError(fmt::format("{} (pid {}) still running after {} s", name_, pid_,
                                               timeout.count() / 1000000));
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  return code_;
}

int Child::Stop(Micros timeout) {
  Signal(SIGTERM);
  Result<int> code = Wait(timeout);
  if (code.ok()) return *code;
  Kill();
  return code_;
}

std::string Child::ErrTail(size_t max_bytes) const {
  std::string text = ReadFileText(err_file_);
  if (text.size() > max_bytes) text = "..." + text.substr(text.size() - max_bytes);
  return text;
}

// ---------------------------------------------------------------------------------------------
// Replay output and the model

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

Result<std::vector<ReplayedOp>> ParseReplayOutput(const std::string& text) {
  std::vector<ReplayedOp> ops;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    int64_t seq = 0, versions = 0;
    char at[64] = {0};
    if (std::sscanf(line.c_str(), R"({"seq":%ld,"committed_at":"%63[^"]","versions":%ld})", &seq,
                    at, &versions) != 3) {
      return InvalidArgumentError(fmt::format("unexpected replay output line: {}", line));
    }
    ASSIGN_OR_RETURN(Timestamp t, ParseTimestamp(at));
    ops.push_back({seq, t, versions});
  }
  return ops;
}

Status ApplyToModel(const std::vector<WorkloadLine>& lines, const std::vector<ReplayedOp>& ops,
                    WorkloadModel& model) {
  size_t i = 0;
  for (const WorkloadLine& line : lines) {
    std::optional<Timestamp> t;
    if (line.applied()) {
      if (i >= ops.size()) {
        return FailedPreconditionError(
            fmt::format("the replay printed {} ops; seq {} has none", ops.size(), line.seq));
      }
      if (ops[i].seq != line.seq || ops[i].versions != line.versions) {
        return FailedPreconditionError(
            fmt::format("replay op {} is seq {} with {} versions; the workload says seq {} with {}",
                        i, ops[i].seq, ops[i].versions, line.seq, line.versions));
      }
      if (i > 0 && !(ops[i - 1].committed_at < ops[i].committed_at)) {
        return FailedPreconditionError(
            fmt::format("commit times do not increase at seq {}", line.seq));
      }
      t = ops[i++].committed_at;
    }
    RETURN_IF_ERROR(model.Apply(line, t).status());
  }
  if (i != ops.size()) {
    return FailedPreconditionError(
        fmt::format("the replay printed {} ops, the workload has {}", ops.size(), i));
  }
  return Status::OK();
}

}  // namespace ch::testing
