// Helpers of the production-topology tests (topology_test.cc): a throwaway PostgreSQL database
// with its replication slot, child processes of the real binary, the replay's output, and control
// of the shared Pub/Sub emulator (emulator_control.h).
//
// Thread-safety: every helper is used by the test's thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "testing/workload_model.h"
#include "tests/integration/emulator_control.h"
#include "workload/replayer.h"
#include "workload/workload.h"

namespace ch::testing {

// A database `ch_topo_<pid>_<n>_<random>` on the CH_TEST_PG_URL server. Drop() removes its
// replication slots first (terminating their consumers: a slot keeps WAL for ever and blocks the
// DROP DATABASE), then the database; the destructor calls it.
class TopoDatabase {
 public:
  // REQUIRES: `admin_url` is a postgresql:// URL of a superuser (CH_TEST_PG_URL).
  static Result<std::unique_ptr<TopoDatabase>> Create(const std::string& admin_url);
  ~TopoDatabase();
  TopoDatabase(const TopoDatabase&) = delete;
  TopoDatabase& operator=(const TopoDatabase&) = delete;

  // The database as a postgresql:// URL (what the CLI's --campaign-db takes).
  const std::string& url() const { return url_; }
  const std::string& name() const { return name_; }
  // Drop the slots, then the database. Safe to call twice.
  Status Drop();

 private:
  TopoDatabase(std::string admin, std::string name, std::string url)
      : admin_url_(std::move(admin)), name_(std::move(name)), url_(std::move(url)) {}
  std::string admin_url_, name_, url_;
  bool dropped_ = false;
};

// A child process of the binary; stdout and stderr go to files. SIGKILLed (and reaped) on
// destruction when still running, so a failing test leaves no process behind.
class Child {
 public:
  // Start `args` (args[0] is the executable) with `env` ("NAME=value") added to the environment.
  static Result<std::unique_ptr<Child>> Start(std::string name,
                                              const std::vector<std::string>& args,
                                              const std::string& out_file,
                                              const std::string& err_file,
                                              const std::vector<std::string>& env = {});
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  const std::string& out_file() const { return out_file_; }
  const std::string& err_file() const { return err_file_; }
  // True until the process was reaped.
  bool running();
  // The exit code once reaped (128 + signal when killed by one), else -1.
  int exit_code() const { return code_; }
  // Send `signal` (when still running).
  void Signal(int signal);
  // SIGKILL and reap.
  void Kill();
  // Wait up to `timeout` for the exit. Return the exit code, or DeadlineExceeded (the process
  // keeps running).
  Result<int> Wait(Micros timeout);
  // SIGTERM, then wait up to `timeout` (SIGKILL after it). Return the exit code.
  int Stop(Micros timeout);
  // The last `max_bytes` of stderr, for failure messages.
  std::string ErrTail(size_t max_bytes = 4000) const;

 private:
  Child(std::string name, pid_t pid, std::string out, std::string err)
      : name_(std::move(name)), pid_(pid), out_file_(std::move(out)), err_file_(std::move(err)) {}
  std::string name_;
  pid_t pid_;
  std::string out_file_, err_file_;
  int code_ = -1;
};

// A TCP proxy on 127.0.0.1 in front of host:port, to cut one process off a server and let it
// back while the server stays up for everyone else (outage tests). Down: every connection through
// it is closed, and new ones are accepted and closed at once (the client sees the server go
// away, as when it restarts). Stopped (and its connections closed) on destruction.
class TcpProxy {
 public:
  static Result<std::unique_ptr<TcpProxy>> Start(const std::string& host, int port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const;
  void SetDown(bool down);
  // Connections accepted so far (refused ones included).
  int64_t accepted() const;

 private:
  struct Impl;
  explicit TcpProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// A tmpfs mounted at a directory (created), to run a store out of space on purpose. Unmounted
// on destruction (lazily, so a process still holding a file there cannot keep it mounted).
class TmpfsMount {
 public:
  // Fails with PermissionDenied when this process may not mount (not root, or a container
  // without CAP_SYS_ADMIN), naming why.
  static Result<std::unique_ptr<TmpfsMount>> Mount(const std::string& dir, int size_mib);
  ~TmpfsMount();
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  const std::string& dir() const { return dir_; }
  // Write a file of zeros until the file system is full; return its size.
  Result<int64_t> Fill();
  // Delete that file.
  Status Unfill();
  // Bytes still free for files.
  int64_t FreeBytes() const;

 private:
  explicit TmpfsMount(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Return `url` (postgresql://[user@]host:port/db...) with its port replaced.
Result<std::string> WithPort(const std::string& url, int port);
// Return the host and port of a postgresql:// URL (port 5432 when it has none).
Result<std::pair<std::string, int>> HostPort(const std::string& url);

// Return the file's contents ("" when it cannot be read).
std::string ReadFileText(const std::string& path);

// Parse `replay`'s output: one {"seq","committed_at","versions"} line per applied op.
Result<std::vector<ReplayedOp>> ParseReplayOutput(const std::string& text);

// Feed `model` every line with the commit time of its op (ops in line order; headers and footers
// get none). Fails when ops and applied lines do not pair up (seq, versions).
Status ApplyToModel(const std::vector<WorkloadLine>& lines, const std::vector<ReplayedOp>& ops,
                    WorkloadModel& model);

}  // namespace ch::testing
