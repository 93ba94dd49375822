// PubSubChangeBus and BusConsumer survive a restart of the Pub/Sub emulator.
//
// The test kills the process listening on PUBSUB_EMULATOR_HOST's port (found through /proc),
// checks that Publish and Pull fail with Unavailable while it is down, restarts it on the same
// port with "$CH_PUBSUB_EMULATOR --host=HOST --port=PORT" and checks that the SAME client objects
// recover: the emulator lost every topic and subscription, and PubSubChangeBus re-creates the
// ones it ensured when they answer 404 (see pubsub_change_bus.h, "Recovery"). A guard restarts
// the emulator whenever the test ends with it down, failed assertions included.
//
// The emulator is shared by other tests: ctest runs this one alone (RUN_SERIAL, bus.cmake).
// Skipped unless PUBSUB_EMULATOR_HOST and CH_PUBSUB_EMULATOR are set (scripts/services.sh).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "bus/bus_consumer.h"
#include "bus/pubsub_change_bus.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Kills and starts the emulator on one host:port.
class EmulatorControl {
 public:
  EmulatorControl(std::string host, int port, std::string launcher)
      : host_(std::move(host)), port_(port), launcher_(std::move(launcher)) {}
  EmulatorControl(const EmulatorControl&) = delete;
  EmulatorControl& operator=(const EmulatorControl&) = delete;
  // Leave the emulator running, whatever happened in between.
  ~EmulatorControl() {
    if (!Answers()) {
      Status s = Start();
      if (!s.ok()) ADD_FAILURE() << "could not restore the emulator: " << s.ToString();
    }
  }

  // True when GET / answers "Ok".
  bool Answers() const {
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
        while (reply.find("\r\n\r\nOk") == std::string::npos &&
               (n = read(fd, buf, sizeof buf)) > 0) {
          reply.append(buf, static_cast<size_t>(n));
        }
        ok = reply.starts_with("HTTP/1.") && reply.find(" 200 ") != std::string::npos &&
             reply.find("\r\n\r\nOk") != std::string::npos;
      }
    }
    close(fd);
    return ok;
  }

  // Return the pid of the process listening on the port, or -1.
  pid_t ListenerPid() const {
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

  // Stop the listener (SIGTERM, SIGKILL after 15 s) and wait until the port is closed.
  Status Kill() {
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

  // Start the emulator in its own session (it outlives this test) and wait until it answers.
  Status Start() {
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
    // scripts/services.sh stops the emulator through its pid file: keep it pointing at the
    // running one when it pointed at the one this test killed.
    const char* dir = std::getenv("CH_SERVICES_DIR");
    std::string pid_file = fmt::format("{}/pubsub/pid", dir ? dir : "/tmp/ch-services");
    std::ifstream old(pid_file);
    pid_t recorded = -1;
    if (old >> recorded && recorded == killed_pid_) {
      old.close();
      std::ofstream(pid_file) << pid << "\n";
    }
    started_pid_ = pid;
    return Status::OK();
  }

  pid_t started_pid() const { return started_pid_; }

 private:
  std::string host_;
  int port_;
  std::string launcher_;
  pid_t killed_pid_ = -1;
  pid_t started_pid_ = -1;
};

TEST(BusEmulatorRestartTest, ClientRecoversWithoutARestartOfItsOwn) {
  const char* host_port = std::getenv("PUBSUB_EMULATOR_HOST");
  const char* launcher = std::getenv("CH_PUBSUB_EMULATOR");
  if (host_port == nullptr || *host_port == '\0') {
    GTEST_SKIP() << "PUBSUB_EMULATOR_HOST is not set (scripts/services.sh start pubsub)";
  }
  if (launcher == nullptr || *launcher == '\0') {
    GTEST_SKIP() << "CH_PUBSUB_EMULATOR (the emulator launcher, to restart it) is not set";
  }
  std::string hp(host_port);
  size_t colon = hp.rfind(':');
  ASSERT_NE(colon, std::string::npos) << hp;
  std::string host = hp.substr(0, colon);
  int port = std::stoi(hp.substr(colon + 1));
  EmulatorControl emulator(host, port, launcher);  // restores the emulator on every exit path
  ASSERT_TRUE(emulator.Answers()) << "the emulator at " << hp << " does not answer";

  const char* project = std::getenv("CH_TEST_PUBSUB_PROJECT");
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open({.project = project ? project : "ch-test",
                                                        .connect_timeout = seconds(1),
                                                        .io_timeout = seconds(10),
                                                        .max_attempts = 3,
                                                        .initial_backoff = milliseconds(50),
                                                        .max_backoff = milliseconds(200)}));
  std::string suffix =
      fmt::format("{}-{}", getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
  std::string topic = "rs-changes-" + suffix, sub = "rs-workers-" + suffix,
              dlq = "rs-dead-" + suffix;
  ASSERT_OK(bus->EnsureTopic(topic));
  ASSERT_OK(bus->EnsureSubscription(sub, topic, {.ack_deadline = seconds(30), .ordered = true}));
  ASSERT_OK(bus->EnsureTopic(dlq));

  std::mutex mu;
  std::set<std::string> handled;
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create({.bus = bus.get(),
                                            .subscription = sub,
                                            .dead_letter_topic = dlq,
                                            .pull_wait = milliseconds(200),
                                            .ack_deadline = seconds(30),
                                            .initial_backoff = milliseconds(50),
                                            .max_backoff = milliseconds(500)},
                                           [&](std::span<const Delivery> batch) {
                                             std::lock_guard lock(mu);
                                             for (const Delivery& d : batch) {
                                               handled.insert(d.message.data);
                                             }
                                             return std::vector<Status>(batch.size());
                                           }));
  auto publish = [&](std::string_view prefix) {
    std::vector<BusMessage> m;
    for (int i = 0; i < 100; ++i) {
      m.push_back({.data = fmt::format("{}-{}", prefix, i),
                   .ordering_key = fmt::format("campaign-{}", i % 5)});
    }
    return bus->Publish(topic, m);
  };
  auto wait_handled = [&](size_t n) {
    auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (handled.size() >= n) return true;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  };

  ASSERT_OK(consumer->Start());
  ASSERT_OK(publish("before"));
  ASSERT_TRUE(wait_handled(100)) << "messages published before the restart were not consumed";

  // Down: every call fails with Unavailable (after its bounded retries); the consumer keeps
  // running, counting errors and backing off.
  int64_t errors_before = consumer->stats().errors;
  ASSERT_OK(emulator.Kill());
  auto down_since = std::chrono::steady_clock::now();
  EXPECT_THAT(publish("lost"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(bus->Pull(sub, 10, Micros(0)), StatusIs(StatusCode::kUnavailable));
  std::vector<std::string> ids = {"stale"};
  EXPECT_THAT(bus->Ack(sub, ids), StatusIs(StatusCode::kUnavailable));
  EXPECT_LT(std::chrono::steady_clock::now() - down_since, seconds(10))
      << "failing calls must give up quickly, not hang";
  while (consumer->stats().errors == errors_before &&
         std::chrono::steady_clock::now() - down_since < seconds(10)) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_GT(consumer->stats().errors, errors_before);
  EXPECT_TRUE(consumer->running());
  EXPECT_THAT(consumer->last_error(), StatusIs(StatusCode::kUnavailable));

  // Back (empty): the same objects carry on; topic and subscription are re-created on the 404s.
  ASSERT_OK(emulator.Start());
  ASSERT_OK(publish("after"));
  ASSERT_TRUE(wait_handled(200)) << "messages published after the restart were not consumed";
  consumer->Stop();
  EXPECT_GE(bus->stats().recreated, 1);
  {
    std::lock_guard lock(mu);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(handled.contains(fmt::format("after-{}", i)));
  }
  bus->DeleteSubscription(sub).IgnoreError();
  bus->DeleteTopic(topic).IgnoreError();
  bus->DeleteTopic(dlq).IgnoreError();
}

}  // namespace
}  // namespace ch
