// Scheduler: the background worker that ends active campaigns whose end_at has passed.
//
// Each expired campaign is ended through CampaignService::Update (status -> ended) as actor
// "worker:scheduler", with expect_version set to the version it read: when someone changed the
// campaign in between, the update fails with FailedPrecondition and the campaign is skipped (the
// next run looks at it again). So the worker never overwrites a concurrent edit, and each ending
// is an ordinary, captured change.
//
// "Now" comes from the injected Clock, so tests drive it with a FakeClock and RunOnce().
//
// Thread-safety: RunOnce may be called from any thread, but not concurrently with itself; Start
// and Stop from one controlling thread. The destructor stops the worker.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "campaign/campaign_service.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct SchedulerOptions {
  // The actor stamped on every change the worker makes. Default: "worker:scheduler".
  std::string actor = "worker:scheduler";
  // How many expired campaigns one store query returns. Default: 500. REQUIRES: > 0.
  int64_t batch = 500;
};

class Scheduler {
 public:
  // REQUIRES: `service` and `clock` outlive the scheduler.
  Scheduler(CampaignService& service, const Clock& clock, SchedulerOptions options = {});
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;
  // Stop the worker (if started) and wait for it.
  ~Scheduler();

  // End every active campaign whose end_at <= clock.Now(). Return how many were ended (skipped
  // ones, changed concurrently, are not counted). Fails with the store's error (e.g.
  // Unavailable) when listing or updating fails for another reason; campaigns ended before the
  // failure stay ended.
  Result<int64_t> RunOnce();

  // Run RunOnce() now and then every `interval` on a background thread until Stop(). Errors are
  // logged and retried at the next interval. Calling Start on a started scheduler does nothing.
  void Start(Micros interval);
  // Stop the background thread promptly (it does not wait out the interval) and join it.
  // Idempotent.
  void Stop();

  // Return the total number of campaigns ended by this scheduler (RunOnce and the worker).
  int64_t ended_total() const;

 private:
  void Loop(Micros interval);

  CampaignService& service_;
  const Clock& clock_;
  const SchedulerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;        // guarded by mu_
  int64_t ended_total_ = 0;  // guarded by mu_
  std::thread worker_;       // touched only by the controlling thread
};

}  // namespace ch
