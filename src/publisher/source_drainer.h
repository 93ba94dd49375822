// SourceDrainer: the publisher's loop over a ChangeSource (the embedded pipeline: the SQLite
// outbox drained straight into the history store, in commit order).
//
//   Poll (whole transactions or parts of a large one, commit order) -> Publisher::Process
//   (durable history append; the history holds a transaction's parts back until its last)
//   -> ChangeSource::Confirm (the source may now discard them).
//
// A failed batch is kept and retried as it is (a source hands out each event once per session).
// A crash at any point loses nothing (the source keeps everything unconfirmed and delivers it
// again) and duplicates nothing (the history store is idempotent on (campaign_id, version)).
// Transient failures (Unavailable, ...) are retried with exponential backoff; the loop never
// skips an event, so a permanently bad event stops progress and is reported through
// last_error() and the log, rather than being lost.
//
// Thread-safety: Start/Stop/stats/last_error may be called from any thread; RunOnce and DrainAll
// must not be called while the background thread runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>

#include "capture/change_source.h"
#include "common/clock.h"
#include "common/status.h"
#include "publisher/publisher.h"

namespace ch {

struct SourceDrainerOptions {
  // REQUIRES: not null; must outlive the drainer.
  ChangeSource* source = nullptr;
  // REQUIRES: not null; must outlive the drainer.
  Publisher* publisher = nullptr;
  // Events per batch (a source splits only transactions larger than its own limit, so a batch
  // may be larger). Default: 2000.
  size_t batch_size = 2000;
  // How long one Poll waits for new events. Default: 200 ms.
  Micros poll_wait = std::chrono::milliseconds(200);
  // While the source is idle, ask it for a heartbeat this often and pass it to the history, so
  // the history is complete through "now" rather than through its last commit
  // (ChangeSource::Heartbeat). 0 turns heartbeats off. Default: 500 ms.
  Micros heartbeat_interval = std::chrono::milliseconds(500);
  // Backoff after a failure: starts here, doubles up to max_backoff. Default: 50 ms .. 5 s.
  Micros min_backoff = std::chrono::milliseconds(50);
  Micros max_backoff = std::chrono::seconds(5);
  // Test-only: called at named points of a cycle ("after_poll", "after_append" — the history
  // holds the batch but the source was not confirmed). Crash tests kill the process there.
  std::function<void(std::string_view point)> TEST_hook;
};

class SourceDrainer {
 public:
  explicit SourceDrainer(const SourceDrainerOptions& options) : options_(options) {}
  SourceDrainer(const SourceDrainer&) = delete;
  SourceDrainer& operator=(const SourceDrainer&) = delete;
  ~SourceDrainer() { Stop(); }

  // One poll -> process -> confirm cycle, waiting up to `wait` for events.
  Result<PublishStats> RunOnce(Micros wait);
  // Run cycles until a poll comes back empty, then pass a heartbeat on (when the source gives
  // one and heartbeats are on). Stops at the first failure.
  Result<PublishStats> DrainAll();

  // Start the background loop. OK when already running.
  Status Start();
  // Stop the loop after the batch in flight (that batch is completed and confirmed).
  void Stop();

  PublishStats stats() const;
  // The most recent failure of the background loop (OK when the last cycle succeeded).
  Status last_error() const;

 private:
  void Loop();
  // Pass the source's heartbeat to the history when `force` or the interval has passed.
  Status MaybeHeartbeat(bool force);

  SourceDrainerOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  PublishStats stats_;  // guarded by mu_
  Status last_error_;   // guarded by mu_
  bool stop_ = false;   // guarded by mu_
  std::thread thread_;
  // The batch being worked on: polled but not yet confirmed. Used only by the thread that runs
  // RunOnce.
  std::optional<SourceBatch> pending_;
  std::chrono::steady_clock::time_point last_heartbeat_{};  // RunOnce thread only
};

}  // namespace ch
