// NotifyPublisher: `notify` capture, faithful to the reference design. After each commit the
// writer publishes {campaign_id, customer_id, op, version} per touched campaign (the whole content
// only on delete) to the change topic, asynchronously: the request path only enqueues.
//
// This mode is lossy by design, and says so: notifications queued in a process that crashes
// before publishing are gone (the history then shows the gap through missed_versions once a
// later change of the campaign is recorded), and a full queue drops notifications (counted in
// stats().dropped) rather than slowing writers down. The publisher worker re-reads each campaign
// and may collapse several saves into one record. For every committed version, use `log` capture.
//
// Thread-safety: OnCommit may be called from any thread; Start/Stop/Flush from one.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "bus/change_bus.h"
#include "campaign/campaign_service.h"
#include "common/status.h"

namespace ch {

struct NotifyPublisherOptions {
  // REQUIRES: not null; must outlive the publisher.
  ChangeBus* bus = nullptr;
  // Default: "campaign-changes".
  std::string topic = "campaign-changes";
  // Notifications waiting at most; beyond it new ones are dropped and counted. Default: 100,000.
  size_t max_queue = 100000;
  // Notifications per publish call. Default: 500.
  size_t batch_size = 500;
  // Backoff after a failed publish, doubling. Default: 50 ms .. 5 s.
  Micros min_backoff = std::chrono::milliseconds(50);
  Micros max_backoff = std::chrono::seconds(5);
};

struct NotifyPublisherStats {
  int64_t enqueued = 0;
  int64_t published = 0;
  int64_t dropped = 0;
  int64_t errors = 0;
};

class NotifyPublisher final : public CommitObserver {
 public:
  explicit NotifyPublisher(const NotifyPublisherOptions& options) : options_(options) {}
  ~NotifyPublisher() override { Stop(); }

  // Enqueue one notification per change of the commit. Never blocks on the bus.
  void OnCommit(const CommitInfo& info) override;

  Status Start();
  // Publish what is queued (trying for up to `drain_timeout`), then stop.
  void Stop(Micros drain_timeout = std::chrono::seconds(10));
  // Wait until the queue is empty and nothing is in flight, or `timeout` passes
  // (DeadlineExceeded naming how many wait).
  Status Flush(Micros timeout);

  NotifyPublisherStats stats() const;

 private:
  void Loop();

  NotifyPublisherOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;                           // the loop waits for work or stop
  std::condition_variable idle_cv_;                      // Flush waits for an empty queue
  std::deque<BusMessage> queue_;                         // guarded by mu_
  size_t in_flight_ = 0;                                 // guarded by mu_
  bool stop_ = false;                                    // guarded by mu_
  std::chrono::steady_clock::time_point stop_deadline_;  // guarded by mu_
  NotifyPublisherStats stats_;                           // guarded by mu_
  std::thread thread_;
};

}  // namespace ch
