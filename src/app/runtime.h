// Runtime: the wiring of one process. Opens the backends a command needs (from BackendConfig) and
// runs the roles of docs/design ("Roles and binaries"), alone or together:
//
//   api        the campaign service (its HTTP API is started by the CLI on top of Service())
//   capture    captured changes -> change topic: a PostgreSQL replication slot (log), or a SQLite
//              outbox relayed to Pub/Sub; nothing to do on the embedded setup (see publisher)
//   publisher  change messages -> history records -> history store (or the history topic);
//              on the embedded setup (SQLite, log capture, embedded bus) it drains the outbox
//              straight into the history, with no bus in between
//   sink       the history topic -> history store
//   scheduler  ends campaigns whose end_at passed (started by the CLI on top of Service())
//
// Notify capture (the reference design) hooks a NotifyPublisher into the service: each commit
// publishes campaign ids to the change topic; the publisher role re-reads the rows.
//
// Embedded publisher: at most one process drains a given outbox at a time. StartPublisher takes
// an advisory lock file beside the history store (`<history>.publisher.lock`); when another
// process holds it, this process does not publish but stands by: while it waits for the history
// (WaitCaughtUp, WaitForVersions) it takes the lock and starts publishing as soon as the other
// process lets go, so two replays on one directory both finish. Commits made through this
// runtime's service wake the publisher at once.
//
// Thread-safety: open/start/stop from one thread; the service and stores are thread-safe.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/backend_config.h"
#include "app/committed_versions.h"
#include "bus/bus_consumer.h"
#include "bus/change_bus.h"
#include "campaign/campaign_service.h"
#include "campaign/campaign_store.h"
#include "capture/capture_relay.h"
#include "capture/change_source.h"
#include "capture/notify_publisher.h"
#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"
#include "publisher/publisher.h"
#include "publisher/source_drainer.h"

namespace ch {

// Names and knobs of the production topology. Defaults match docs/operations.md.
struct TopologyOptions {
  // Topic of change messages (capture -> publisher). Default: "campaign-changes".
  std::string changes_topic = "campaign-changes";
  // The publisher's subscription on it. Default: "campaign-changes-publisher".
  std::string publisher_subscription = "campaign-changes-publisher";
  // Where poison change messages go, with the reason. Default: "campaign-changes-dead-letter".
  std::string dead_letter_topic = "campaign-changes-dead-letter";
  // The subscription that keeps them for `dead-letters` (created with the topic).
  // Default: "campaign-changes-dead-letter-keep".
  std::string dead_letter_subscription = "campaign-changes-dead-letter-keep";
  // Topic of history records (publisher -> BigQuery subscription or sink). Default:
  // "campaign-history".
  std::string history_topic = "campaign-history";
  // The sink's subscription on it. Default: "campaign-history-sink".
  std::string sink_subscription = "campaign-history-sink";
  // Where poison history messages go. Default: "campaign-history-dead-letter".
  std::string history_dead_letter_topic = "campaign-history-dead-letter";
  // The subscription that keeps them. Default: "campaign-history-dead-letter-keep".
  std::string history_dead_letter_subscription = "campaign-history-dead-letter-keep";
  // The publisher writes records to the history topic instead of the history store.
  // Default: false.
  bool publish_to_topic = false;
  // Create missing topics and subscriptions (turn off where IAM forbids it). Default: true.
  bool create_missing = true;
  // PostgreSQL replication slot and publication of log capture. Default: "campaign_history".
  std::string slot = "campaign_history";
  std::string publication = "campaign_history";
  // Attempts at a message that fails for an uncertain reason (an internal error) before it is
  // dead-lettered. Failures of a dependency (the history store, the campaign database, the bus)
  // are never counted: the consumer holds the messages and retries (bus/bus_consumer.h).
  // Default: 5.
  int max_attempts = 5;
  // Ask Pub/Sub for per-key ordered delivery (ordering key: the customer id for log capture, the
  // campaign id for notify). Not needed for
  // correctness; ignored on the emulator, which leaks a thread per message on ordered
  // subscriptions. Default: true.
  bool ordered_delivery = true;
  // Captured changes of one customer packed into one change message by the capture role
  // (docs/formats/change-message.md, change batch); 1 = one message per change. Default: 100.
  int changes_per_message = 100;
  // Messages per bus pull / publish batch. Default: 1000.
  size_t bus_batch = 1000;
  // Ack deadline of the subscriptions this process creates, and the lease its consumers renew
  // (at half of it) while they work on a batch. After a consumer dies, Pub/Sub redelivers what it
  // held when this much time has passed: it bounds the history's extra lag after a crash. An
  // existing subscription keeps its own deadline for the first lease. 10 s .. 600 s.
  // Default: 20 s.
  Micros ack_deadline = std::chrono::seconds(20);
};

// One bus consumer of this process and its state (for `status`, /healthz and /metrics).
struct ConsumerReport {
  std::string role;  // "publisher" or "sink"
  std::string subscription;
  BusConsumerStats stats;
};

struct RuntimeOptions {
  BackendConfig config;
  TopologyOptions topology;
  // The source of commit times and ingestion times. Not owned; must outlive the runtime.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
  // Events per embedded publisher batch. Default: 2000.
  size_t publish_batch = 2000;
  // Test-only hook of the publisher role, called at named points: the embedded publisher loop's
  // (SourceDrainerOptions::TEST_hook: "after_poll", "after_append"), and on the bus "after_append"
  // once a batch of change messages is in the history (or on the history topic) but not yet
  // acknowledged. Crash tests kill the process there.
  std::function<void(std::string_view)> TEST_publisher_hook;
  // Test-only hook of the capture role (CaptureRelayOptions::TEST_hook: "after_publish").
  std::function<void(std::string_view)> TEST_capture_hook;
};

class Runtime {
 public:
  // Resolve and check the backend URLs (nothing is opened yet). Fails with InvalidArgument naming
  // a bad flag value or an unsupported combination.
  static Result<std::unique_ptr<Runtime>> Create(const RuntimeOptions& options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  const BackendConfig& config() const { return options_.config; }
  const TopologyOptions& topology() const { return options_.topology; }
  Clock& clock() { return *clock_; }
  // True for the embedded setup: SQLite campaign DB, log capture, embedded bus: the publisher
  // drains the outbox directly.
  bool embedded_direct() const;

  // Open (once) and return the campaign store, with capture as configured.
  Result<CampaignStore*> Campaigns();
  // Open (once) and return the service over the campaign store (with notify capture hooked in
  // when configured).
  Result<CampaignService*> Service();
  // Open (once) and return the history store. `create` false: fail with NotFound when the
  // embedded history file does not exist yet (queries on an empty setup).
  Result<HistoryStore*> History(bool create = true);
  // Open (once) and return the change bus (the embedded queue in --data, or Pub/Sub).
  Result<ChangeBus*> Bus();

  // Start the publisher role. Return false when another process already drains this embedded
  // outbox (this one then stands by, and takes over in the wait calls below once that process
  // released it).
  Result<bool> StartPublisher();
  // Start the capture role. Return false when there is nothing to relay (embedded setup, notify
  // or no capture).
  Result<bool> StartCapture();
  // Start the sink role (history topic -> history store).
  Status StartSink();
  // Stop every role after the work in flight (notify notifications are flushed first).
  void StopAll();
  void StopPublisher();

  // Drain the embedded outback in the foreground (when this process can take the publisher lock).
  Result<PublishStats> CatchUp();
  // Return the number of captured changes waiting in the embedded outbox (0 when not embedded).
  Result<int64_t> Backlog();
  // Wait until the embedded outbox is drained (DeadlineExceeded naming the backlog).
  Status WaitCaughtUp(Micros timeout);
  // Wait until the history holds, for every campaign in `versions`, every version of its range
  // (log capture; the subscription may deliver out of order), or the last one or a newer one
  // (notify capture, which records what it finds) -- whatever the topology: it reads the
  // history store. Notify notifications of this process are flushed first. Fails with
  // DeadlineExceeded naming how many campaigns are behind and what one of them lacks, or with
  // the publisher's error when it stopped on one.
  Status WaitForVersions(const std::map<int64_t, VersionRange>& versions, Micros timeout);

  // Totals of the roles so far (for logs, metrics and benchmarks).
  PublishStats PublisherStats() const;
  std::string RoleStats() const;
  // The bus consumers running in this process, with their state.
  std::vector<ConsumerReport> Consumers() const;

 private:
  // The SQLite history (History's kSqlite case).
  Result<std::unique_ptr<HistoryStore>> OpenSqliteHistory(bool create);
  explicit Runtime(const RuntimeOptions& options);
  Status OpenOutboxSource();
  // Fail with FailedPrecondition (naming the command that fixes it) unless the SQLite outbox
  // writes self-contained rows, which a relay to a bus needs.
  Status CheckRelayableOutbox();
  SubscriptionOptions Subscriptions() const;
  Result<bool> TakePublisherLock();
  // Start publishing when this process stands by and the other publisher has stopped.
  Status TakeOverPublisher();
  // Create a dead-letter topic and the subscription that keeps its messages.
  Status EnsureDeadLetterTopic(const std::string& topic, const std::string& subscription);
  Result<std::vector<Status>> HandleChanges(std::span<const Delivery> deliveries);
  Result<std::vector<Status>> HandleHistory(std::span<const Delivery> deliveries);

  RuntimeOptions options_;
  Clock* clock_;
  BackendUrl campaign_url_;
  BackendUrl history_url_;
  BackendUrl bus_url_;
  std::unique_ptr<CampaignStore> campaigns_;
  std::unique_ptr<CampaignService> service_;
  std::unique_ptr<HistoryStore> history_;
  std::unique_ptr<ChangeBus> bus_;
  std::unique_ptr<HistoryStore> history_topic_;  // publisher output when publish_to_topic
  std::unique_ptr<NotifyPublisher> notify_;
  std::unique_ptr<ChangeSource> source_;          // embedded outbox or capture source
  std::unique_ptr<ChangeSource> backlog_reader_;  // a connection of its own for Backlog()
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<SourceDrainer> drainer_;
  std::unique_ptr<BusConsumer> publisher_consumer_;
  std::unique_ptr<CaptureRelay> relay_;
  std::unique_ptr<BusConsumer> sink_consumer_;
  std::mutex publisher_mu_;  // serializes Publisher::Process across consumer threads
  int lock_fd_ = -1;
  bool have_lock_ = false;
  // StartPublisher found another process publishing this embedded setup.
  bool publisher_standby_ = false;
};

}  // namespace ch
