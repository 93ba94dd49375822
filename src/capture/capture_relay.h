// CaptureRelay: the `capture` role. Moves captured changes from a ChangeSource (a PostgreSQL
// replication slot, a SQLite outbox) onto a ChangeBus topic (docs/formats/change-message.md), and
// only then confirms the source.
//
//   Poll (whole transactions or parts of a large one, commit order) -> Publish (durable on the
//   bus) -> Confirm
//
// Consecutive changes of one customer go into one change batch (up to changes_per_message and
// max_message_bytes; a lone change is a plain change message): a shift of 2,000 campaigns is a
// handful of bus messages, not 2,000. The ordering key is the customer id, so an ordered
// subscription delivers each customer's changes in commit order.
//
// A crash between Publish and Confirm publishes those messages again after a restart: consumers
// are idempotent on (campaign_id, version). A failed batch is retried as it is, with backoff; a
// change that cannot be encoded (content not resolved) stops the relay with the error rather than
// being skipped.
//
// Thread-safety: Start/Stop/stats/last_error from any thread; RunOnce only while not started.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "bus/change_bus.h"
#include "capture/change_source.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct CaptureRelayOptions {
  // REQUIRES: not null; must outlive the relay.
  ChangeSource* source = nullptr;
  // REQUIRES: not null; must outlive the relay.
  ChangeBus* bus = nullptr;
  // The change topic. Default: "campaign-changes".
  std::string topic = "campaign-changes";
  // Events per batch (a source splits only transactions larger than its own limit, so a batch
  // may be larger). Default: 1000.
  size_t batch_size = 1000;
  // At most this many changes in one bus message; 1 = one change message per change; at most
  // kMaxChangeBatchChanges (change_event.h). Default: 100.
  size_t changes_per_message = 100;
  // A batch is closed before its encoded size passes this (a single larger change still goes
  // alone). Default: 256 KiB (Pub/Sub's limit is 10 MB per message).
  size_t max_message_bytes = 256 * 1024;
  // How long one Poll waits. Default: 200 ms.
  Micros poll_wait = std::chrono::milliseconds(200);
  // While the source is idle, ask it for a heartbeat this often and publish it on the topic
  // (change message schema_version 4), so the history is complete through "now" rather than
  // through its last commit. 0 turns heartbeats off. Default: 1 s.
  Micros heartbeat_interval = std::chrono::seconds(1);
  // Backoff after a failure, doubling. Default: 50 ms .. 5 s.
  Micros min_backoff = std::chrono::milliseconds(50);
  Micros max_backoff = std::chrono::seconds(5);
  // Test-only: called at named points of a cycle ("after_publish" — the bus holds the batch but
  // the source was not confirmed). Crash tests kill the process there.
  std::function<void(std::string_view point)> TEST_hook;
};

struct CaptureRelayStats {
  int64_t batches = 0;
  // Changes published, and the bus messages that carried them.
  int64_t published = 0;
  int64_t messages = 0;
  int64_t heartbeats = 0;
  int64_t errors = 0;
};

class CaptureRelay {
 public:
  explicit CaptureRelay(const CaptureRelayOptions& options) : options_(options) {}
  CaptureRelay(const CaptureRelay&) = delete;
  CaptureRelay& operator=(const CaptureRelay&) = delete;
  ~CaptureRelay() { Stop(); }

  // One poll -> publish -> confirm cycle. Return the number of changes published.
  Result<int64_t> RunOnce(Micros wait);
  Status Start();
  // Stop after the batch in flight.
  void Stop();

  CaptureRelayStats stats() const;
  Status last_error() const;

 private:
  void Loop();
  // Publish the source's heartbeat when the interval has passed.
  Status MaybeHeartbeat();

  CaptureRelayOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  CaptureRelayStats stats_;  // guarded by mu_
  Status last_error_;        // guarded by mu_
  bool stop_ = false;        // guarded by mu_
  std::thread thread_;
  // Polled but not yet confirmed (retried as it is). Used by the RunOnce thread only.
  std::optional<SourceBatch> pending_;
  std::chrono::steady_clock::time_point last_heartbeat_{};  // RunOnce thread only
};

}  // namespace ch
