// Runtime: the wiring of one process. Opens the backends a command needs (from BackendConfig),
// builds the CampaignService on the campaign store, and runs the embedded publisher that drains
// the SQLite outbox into the history store.
//
// Embedded publisher: at most one process drains a given history at a time. StartPublisher takes
// an advisory lock file beside the history store (`<history>.publisher.lock`); when another
// process holds it, this process does not publish and WaitCaughtUp simply waits for that process
// to drain the backlog. Commits made through this runtime's service wake the publisher at once,
// so commit-to-queryable lag is one batch, not one poll interval.
//
// Thread-safety: open/start/stop from one thread; the service and stores are themselves
// thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "app/backend_config.h"
#include "campaign/campaign_service.h"
#include "campaign/campaign_store.h"
#include "capture/change_source.h"
#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"
#include "publisher/publisher.h"
#include "publisher/source_drainer.h"

namespace ch {

struct RuntimeOptions {
  BackendConfig config;
  // The source of commit times and ingestion times. Not owned; must outlive the runtime.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
  // Events per publisher batch. Default: 2000.
  size_t publish_batch = 2000;
  // Test-only hook passed to the publisher loop (see SourceDrainerOptions::TEST_hook).
  std::function<void(std::string_view)> TEST_publisher_hook;
};

class Runtime {
 public:
  // Resolve and check the backend URLs (nothing is opened yet). Fails with InvalidArgument naming
  // a bad flag value.
  static Result<std::unique_ptr<Runtime>> Create(const RuntimeOptions& options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const BackendConfig& config() const { return options_.config; }
  Clock& clock() { return *clock_; }

  // Open (once) and return the campaign store, with capture as configured.
  Result<CampaignStore*> Campaigns();
  // Open (once) and return the service over the campaign store.
  Result<CampaignService*> Service();
  // Open (once) and return the history store. `create` false: fail with NotFound when the
  // embedded history file does not exist yet (queries on an empty setup).
  Result<HistoryStore*> History(bool create = true);

  // Start the embedded publisher in the background (log capture on SQLite). Return true when
  // this process publishes, false when another process holds the publisher lock.
  Result<bool> StartPublisher();
  // Stop the background publisher after its batch in flight.
  void StopPublisher();
  // Drain the backlog in the foreground (when this process can take the publisher lock).
  Result<PublishStats> CatchUp();
  // Return the number of captured changes not yet in the history (0 when capture is off).
  Result<int64_t> Backlog();
  // Wait until the backlog is 0 or `timeout` passes (DeadlineExceeded naming the backlog).
  Status WaitCaughtUp(Micros timeout);
  // Totals of the background publisher so far.
  PublishStats PublisherStats() const;

 private:
  explicit Runtime(const RuntimeOptions& options);
  Status OpenSource();
  Result<bool> TakePublisherLock();

  RuntimeOptions options_;
  Clock* clock_;
  BackendUrl campaign_url_;
  BackendUrl history_url_;
  std::unique_ptr<CampaignStore> campaigns_;
  std::unique_ptr<CampaignService> service_;
  std::unique_ptr<HistoryStore> history_;
  std::unique_ptr<ChangeSource> source_;
  std::unique_ptr<ChangeSource> backlog_reader_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<SourceDrainer> drainer_;
  int lock_fd_ = -1;
  bool have_lock_ = false;
};

}  // namespace ch
