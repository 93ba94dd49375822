// EmulatorControl: kill and restart the shared Pub/Sub emulator in tests that prove recovery
// (bus_emulator_restart_test, topology_test). Such tests must run alone (RUN_SERIAL).
//
// Thread-safety: used by the test's thread only.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace ch::testing {

// Kills and starts the Pub/Sub emulator on one host:port : the listener's pid is found through
// /proc/net/tcp and /proc/<pid>/fd, and it is started again with "<launcher> --host=HOST
// --port=PORT" in a session of its own (it outlives the test). The destructor starts it whenever it
// does not answer, so a failing test never leaves the shared emulator down.
class EmulatorControl {
 public:
  EmulatorControl(std::string host, int port, std::string launcher)
      : host_(std::move(host)), port_(port), launcher_(std::move(launcher)) {}
  EmulatorControl(const EmulatorControl&) = delete;
  EmulatorControl& operator=(const EmulatorControl&) = delete;
  ~EmulatorControl();

  // True when GET / answers "Ok".
  bool Answers() const;
  // The pid of the process listening on the port, or -1.
  pid_t ListenerPid() const;
  // Stop the listener (SIGTERM; SIGKILL after 15 s) and wait until the port is closed.
  Status Kill();
  // Start the emulator (when it does not answer) and wait up to 90 s until it does.
  Status Start();
  // For an emulator of the test's own (a free port): stop it on destruction instead of starting
  // it again.
  void StopOnExit() { restore_ = false; }

 private:
  std::string host_;
  int port_;
  std::string launcher_;
  pid_t killed_pid_ = -1;
  bool restore_ = true;
};

}  // namespace ch::testing
