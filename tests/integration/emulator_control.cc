#include "tests/integration/emulator_control.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

namespace ch::testing {

using std::chrono::milliseconds;
using std::chrono::seconds;

EmulatorControl::~EmulatorControl() {
  if (!restore_) {
    if (Answers()) Kill().IgnoreError();
    return;
  }
  if (!Answers()) {
    Status s = Start();
    if (!s.ok()) {
      std::fprintf(stderr, "could not restore the Pub/Sub emulator: %s\n", s.ToString().c_str());
    }
  }
}

bool EmulatorControl::Answers() const {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port_));
  inet_pton(AF_INET, host_.c_str(), &addr.sin_addr);
  timeval tv{.tv_sec = 2, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET / HTTP/1.0\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      // "HTTP/1.0 200 OK ... \r\n\r\nOk\n"; the emulator keeps the connection open.
      std::string reply;
      char buf[512];
      ssize_t n;
      while (reply.find("\r\n\r\nOk") == std::string::npos && (n = read(fd, buf, sizeof buf)) > 0) {
        reply.append(buf, static_cast<size_t>(n));
      }
      ok = reply.starts_with("HTTP/1.") && reply.find(" 200 ") != std::string::npos &&
           reply.find("\r\n\r\nOk") != std::string::npos;
    }
  }
  close(fd);
  return ok;
}

pid_t EmulatorControl::ListenerPid() const {
  std::set<std::string> inodes;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, inode;
      fields >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >>
          inode;
      size_t colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port_) inodes.insert(inode);
    }
  }
  if (inodes.empty()) return -1;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return -1;
  pid_t found = -1;
  while (dirent* e = readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::string fd_dir = fmt::format("/proc/{}/fd", pid);
    DIR* fds = opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    while (dirent* f = readdir(fds)) {
      char target[128];
      std::string link = fd_dir + "/" + f->d_name;
      ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      std::string t(target);
      if (t.starts_with("socket:[") && inodes.contains(t.substr(8, t.size() - 9))) found = pid;
    }
    closedir(fds);
    if (found > 0) break;
  }
  closedir(proc);
  return found;
}

Status EmulatorControl::Kill() {
  pid_t pid = ListenerPid();
  if (pid <= 0) return NotFoundError(fmt::format("nothing listens on port {}", port_));
  killed_pid_ = pid;
  kill(pid, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + seconds(15);
  while (ListenerPid() > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      deadline = std::chrono::steady_clock::now() + seconds(15);
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  return Status::OK();
}

Status EmulatorControl::Start() {
  if (Answers()) return Status::OK();
  if (pid_t other = ListenerPid(); other > 0) {
    return FailedPreconditionError(fmt::format(
        "process {} listens on port {} but does not answer like the emulator", other, port_));
  }
  std::string log = fmt::format("/tmp/ch-pubsub-emulator-{}.log", port_);
  std::string host_arg = "--host=" + host_;
  std::string port_arg = fmt::format("--port={}", port_);
  pid_t pid = fork();
  if (pid < 0) return InternalError("fork failed");
  if (pid == 0) {
    setsid();
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out >= 0) {
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
    }
    if (in >= 0) dup2(in, STDIN_FILENO);
    execl(launcher_.c_str(), launcher_.c_str(), host_arg.c_str(), port_arg.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + seconds(90);
  while (!Answers()) {
    int status = 0;
    bool exited = waitpid(pid, &status, WNOHANG) == pid;
    if (exited || std::chrono::steady_clock::now() > deadline) {
      if (!exited) {  // do not leave a half-started emulator behind
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
      }
      return UnavailableError(
          fmt::format("emulator did not answer on port {} (log: {})", port_, log));
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  // scripts/services.sh stops the emulator through its pid file: keep it pointing at the running
  // one when it pointed at the one this test killed.
  const char* dir = std::getenv("CH_SERVICES_DIR");
  std::string pid_file = fmt::format("{}/pubsub/pid", dir ? dir : "/tmp/ch-services");
  std::ifstream old(pid_file);
  pid_t recorded = -1;
  if (old >> recorded && recorded == killed_pid_) {
    old.close();
    std::ofstream(pid_file) << pid << "\n";
  }
  return Status::OK();
}

}  // namespace ch::testing
