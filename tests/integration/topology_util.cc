#include "tests/integration/topology_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
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
// TcpProxy

struct TcpProxy::Impl {
  std::string host;
  int target_port = 0;
  int listen_fd = -1;
  int port = 0;
  std::atomic<bool> stop{false};
  std::atomic<bool> down{false};
  std::atomic<uint64_t> cuts{0};  // bumped by SetDown(true): pumps of older connections end
  std::atomic<int64_t> accepted{0};
  std::thread acceptor;
  std::mutex mu;
  std::vector<std::thread> pumps;

  int ConnectTarget() const {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(target_port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      close(fd);
      return -1;
    }
    return fd;
  }

  // Copy bytes both ways until either side closes, or the proxy is cut or stopped.
  void Pump(int client, int server, uint64_t generation) {
    char buf[65536];
    while (!stop && cuts == generation) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      int n = poll(fds, 2, 100);
      if (n < 0 && errno != EINTR) break;
      if (n <= 0) continue;
      bool closed = false;
      for (int i = 0; i < 2 && !closed; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        ssize_t got = read(fds[i].fd, buf, sizeof(buf));
        if (got <= 0) {
          closed = true;
          break;
        }
        int to = i == 0 ? server : client;
        for (ssize_t off = 0; off < got;) {
          ssize_t w = write(to, buf + off, static_cast<size_t>(got - off));
          if (w <= 0) {
            closed = true;
            break;
          }
          off += w;
        }
      }
      if (closed) break;
    }
    close(client);
    close(server);
  }

  void Accept() {
    while (!stop) {
      pollfd p{listen_fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int client = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      ++accepted;
      if (down) {
        close(client);
        continue;
      }
      int server = ConnectTarget();
      if (server < 0) {
        close(client);
        continue;
      }
      std::lock_guard lock(mu);
      pumps.emplace_back([this, client, server, g = cuts.load()] { Pump(client, server, g); });
    }
  }
};

TcpProxy::TcpProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<TcpProxy>> TcpProxy::Start(const std::string& host, int port) {
  auto impl = std::make_unique<Impl>();
  impl->host = host == "localhost" ? "127.0.0.1" : host;
  impl->target_port = port;
  impl->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (impl->listen_fd < 0) return UnavailableError("proxy: no socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = 0;
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  socklen_t len = sizeof(a);
  if (bind(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(impl->listen_fd, 64) != 0 ||
      getsockname(impl->listen_fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(impl->listen_fd);
    return UnavailableError(fmt::format("proxy: cannot listen: {}", std::strerror(errno)));
  }
  impl->port = ntohs(a.sin_port);
  Impl* raw = impl.get();
  impl->acceptor = std::thread([raw] { raw->Accept(); });
  return std::unique_ptr<TcpProxy>(new TcpProxy(std::move(impl)));
}

TcpProxy::~TcpProxy() {
  impl_->stop = true;
  impl_->acceptor.join();
  std::vector<std::thread> pumps;
  {
    std::lock_guard lock(impl_->mu);
    pumps.swap(impl_->pumps);
  }
  for (std::thread& t : pumps) t.join();
  close(impl_->listen_fd);
}

int TcpProxy::port() const { return impl_->port; }
int64_t TcpProxy::accepted() const { return impl_->accepted.load(); }

void TcpProxy::SetDown(bool down) {
  impl_->down = down;
  if (down) ++impl_->cuts;
}

// ---------------------------------------------------------------------------------------------
// TmpfsMount

Result<std::unique_ptr<TmpfsMount>> TmpfsMount::Mount(const std::string& dir, int size_mib) {
  if (geteuid() != 0) {
    return PermissionDeniedError("mounting a tmpfs needs root (this test runs as uid " +
                                 std::to_string(geteuid()) + ")");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return UnavailableError(fmt::format("cannot create {}: {}", dir, ec.message()));
  std::string options = fmt::format("size={}m,mode=0755", size_mib);
  if (mount("tmpfs", dir.c_str(), "tmpfs", 0, options.c_str()) != 0) {
    return PermissionDeniedError(
        fmt::format("mount -t tmpfs -o {} tmpfs {}: {} (a container without CAP_SYS_ADMIN?)",
                    options, dir, std::strerror(errno)));
  }
  return std::unique_ptr<TmpfsMount>(new TmpfsMount(dir));
}

TmpfsMount::~TmpfsMount() {
  if (umount2(dir_.c_str(), 0) != 0) umount2(dir_.c_str(), MNT_DETACH);
}

Result<int64_t> TmpfsMount::Fill() {
  std::string path = dir_ + "/fill";
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return UnavailableError(fmt::format("cannot create {}", path));
  std::string zeros(1 << 20, '\0');
  int64_t total = 0;
  while (true) {
    ssize_t w = write(fd, zeros.data(), zeros.size());
    if (w <= 0) break;  // ENOSPC: full
    total += w;
  }
  // The last bytes, in smaller pieces.
  for (size_t piece = 4096; piece > 0; piece /= 2) {
    while (write(fd, zeros.data(), piece) > 0) total += static_cast<int64_t>(piece);
  }
  close(fd);
  return total;
}

Status TmpfsMount::Unfill() {
  std::string path = dir_ + "/fill";
  if (unlink(path.c_str()) != 0) {
    return UnavailableError(fmt::format("cannot delete {}: {}", path, std::strerror(errno)));
  }
  return Status::OK();
}

int64_t TmpfsMount::FreeBytes() const {
  struct statvfs v {};
  if (statvfs(dir_.c_str(), &v) != 0) return -1;
  return static_cast<int64_t>(v.f_bavail) * static_cast<int64_t>(v.f_frsize);
}

// ---------------------------------------------------------------------------------------------
// URLs

namespace {

// The authority of a postgresql:// URL: [user[:password]@]host[:port], and where it is.
Result<std::pair<size_t, size_t>> Authority(const std::string& url) {
  size_t start = url.find("://");
  if (start == std::string::npos) {
    return InvalidArgumentError(fmt::format("'{}' is not a postgresql:// URL", url));
  }
  start += 3;
  size_t end = url.find_first_of("/?", start);
  if (end == std::string::npos) end = url.size();
  size_t at = url.rfind('@', end);
  if (at != std::string::npos && at >= start) start = at + 1;
  return std::pair<size_t, size_t>(start, end);
}

}  // namespace

Result<std::pair<std::string, int>> HostPort(const std::string& url) {
  ASSIGN_OR_RETURN(auto span, Authority(url));
  std::string hp = url.substr(span.first, span.second - span.first);
  size_t colon = hp.rfind(':');
  if (colon == std::string::npos) return std::pair<std::string, int>(hp, 5432);
  return std::pair<std::string, int>(hp.substr(0, colon), std::atoi(hp.c_str() + colon + 1));
}

Result<std::string> WithPort(const std::string& url, int port) {
  ASSIGN_OR_RETURN(auto span, Authority(url));
  ASSIGN_OR_RETURN(auto hp, HostPort(url));
  return url.substr(0, span.first) + hp.first + ":" + std::to_string(port) +
         url.substr(span.second);
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
