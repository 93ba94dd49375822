#include "app/runtime.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "bus/embedded_change_bus.h"
#include "bus/pubsub_change_bus.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/sqlite_campaign_store.h"
#include "capture/pg_logical_source.h"
#include "capture/sqlite_outbox_source.h"
#include "history/clickhouse_history_store.h"
#include "history/pg_history_store.h"
#include "history/sqlite_history_store.h"
#include "publisher/history_topic_writer.h"

namespace ch {
namespace {

Status Unsupported(std::string_view flag, const BackendUrl& url, std::string_view what) {
  return UnimplementedError(fmt::format("{}: '{}' is not supported as {} (use {})", flag,
                                        url.original, what, "sqlite:PATH or postgresql://..."));
}

Status EnsureParentDir(const std::string& file) {
  std::filesystem::path parent = std::filesystem::path(file).parent_path();
  if (parent.empty()) return Status::OK();
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return UnavailableError(
        fmt::format("cannot create directory '{}': {}", parent.string(), ec.message()));
  }
  return Status::OK();
}

}  // namespace

Runtime::Runtime(const RuntimeOptions& options)
    : options_(options), clock_(options.clock ? options.clock : &SystemClock::Default()) {}

Result<std::unique_ptr<Runtime>> Runtime::Create(const RuntimeOptions& options) {
  std::unique_ptr<Runtime> rt(new Runtime(options));
  ASSIGN_OR_RETURN(rt->campaign_url_,
                   ParseBackendUrl("--campaign-db", options.config.CampaignDbUrl()));
  ASSIGN_OR_RETURN(rt->history_url_, ParseBackendUrl("--history", options.config.HistoryUrl()));
  ASSIGN_OR_RETURN(rt->bus_url_, ParseBackendUrl("--bus", options.config.bus));
  if (rt->bus_url_.scheme != UrlScheme::kEmbedded && rt->bus_url_.scheme != UrlScheme::kPubSub) {
    return InvalidArgumentError(fmt::format(
        "--bus: '{}' is not a bus (expected embedded or pubsub://PROJECT)", options.config.bus));
  }
  if (rt->campaign_url_.scheme != UrlScheme::kSqlite &&
      rt->campaign_url_.scheme != UrlScheme::kPostgres) {
    return InvalidArgumentError(fmt::format(
        "--campaign-db: '{}' is not a campaign database (expected sqlite:PATH or postgresql://...)",
        rt->campaign_url_.original));
  }
  if (rt->history_url_.scheme == UrlScheme::kEmbedded ||
      rt->history_url_.scheme == UrlScheme::kPubSub) {
    return InvalidArgumentError(fmt::format(
        "--history: '{}' is not a history store (expected sqlite:PATH, postgresql://... or "
        "clickhouse://HOST:PORT/DB)",
        rt->history_url_.original));
  }
  return rt;
}

Runtime::~Runtime() {
  StopAll();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

bool Runtime::embedded_direct() const {
  return campaign_url_.scheme == UrlScheme::kSqlite && bus_url_.scheme == UrlScheme::kEmbedded &&
         options_.config.capture == CaptureSetting::kLog;
}

SubscriptionOptions Runtime::Subscriptions() const {
  SubscriptionOptions o;
  // Per-key ordering is not needed for correctness (history writes are idempotent and the
  // history answers by (event_time, version), whatever the arrival order), and the Pub/Sub
  // emulator leaks a thread pool for every message delivered on an ordered subscription
  // (measured: 1.5 M versions would mean 1.5 M threads). So ordering is requested from the real
  // service only; messages always carry an ordering key (log: the customer id, notify: the
  // campaign id).
  o.ordered = options_.topology.ordered_delivery && std::getenv("PUBSUB_EMULATOR_HOST") == nullptr;
  o.ack_deadline = options_.topology.ack_deadline;
  return o;
}

Result<CampaignStore*> Runtime::Campaigns() {
  if (campaigns_) return campaigns_.get();
  const bool log = options_.config.capture == CaptureSetting::kLog;
  if (campaign_url_.scheme == UrlScheme::kPostgres) {
    PgCampaignStoreOptions o;
    o.url = campaign_url_.target;
    o.clock = clock_;
    o.capture = log ? StoreCapture::kLog : StoreCapture::kNone;
    // A database whose campaigns table is published is captured in log mode: a process
    // configured otherwise fails (the store names `capture drop`), as on SQLite.
    ASSIGN_OR_RETURN(auto store, PgCampaignStore::Open(o));
    campaigns_ = std::move(store);
    return campaigns_.get();
  }
  RETURN_IF_ERROR(EnsureParentDir(campaign_url_.target));
  SqliteCampaignStoreOptions o;
  o.path = campaign_url_.target;
  o.clock = clock_;
  // The database records its capture mode; this process's --capture must agree with it (only
  // `capture setup|drop` changes it).
  o.capture = options_.config.capture;
  // A relay to Pub/Sub needs self-contained rows; the embedded publisher resolves compact ones.
  // This only chooses the format of a new file: an existing file keeps its own.
  o.rows_if_new =
      bus_url_.scheme == UrlScheme::kEmbedded ? OutboxRows::kCompact : OutboxRows::kFull;
  ASSIGN_OR_RETURN(auto store, SqliteCampaignStore::Open(o));
  campaigns_ = std::move(store);
  return campaigns_.get();
}

Result<CampaignService*> Runtime::Service() {
  if (service_) return service_.get();
  ASSIGN_OR_RETURN(CampaignStore * store, Campaigns());
  service_ = std::make_unique<CampaignService>(*store);
  if (embedded_direct()) {
    RETURN_IF_ERROR(OpenOutboxSource());
    service_->AddObserver(&static_cast<SqliteOutboxSource&>(*source_).commit_observer());
  } else if (options_.config.capture == CaptureSetting::kNotify) {
    ASSIGN_OR_RETURN(ChangeBus * bus, Bus());
    if (options_.topology.create_missing) {
      RETURN_IF_ERROR(bus->EnsureTopic(options_.topology.changes_topic));
      // And the publisher's subscription, as StartCapture does: on Pub/Sub, notifications
      // published before a subscription exists are not delivered to it (a writer that starts
      // before the first publisher would lose them for good).
      RETURN_IF_ERROR(bus->EnsureSubscription(options_.topology.publisher_subscription,
                                              options_.topology.changes_topic, Subscriptions()));
    }
    NotifyPublisherOptions n;
    n.bus = bus;
    n.topic = options_.topology.changes_topic;
    notify_ = std::make_unique<NotifyPublisher>(n);
    RETURN_IF_ERROR(notify_->Start());
    service_->AddObserver(notify_.get());
  }
  return service_.get();
}

Result<HistoryStore*> Runtime::History(bool create) {
  if (history_) return history_.get();
  switch (history_url_.scheme) {
    case UrlScheme::kSqlite: {
      ASSIGN_OR_RETURN(history_, OpenSqliteHistory(create));
      return history_.get();
    }
    case UrlScheme::kPostgres: {
      // The server keeps the history: nothing to "not find" on an empty setup (the schema is
      // created on first use, and an empty history answers empty).
      PgHistoryOptions o;
      o.url = history_url_.target;
      o.clock = clock_;
      ASSIGN_OR_RETURN(auto store, PgHistoryStore::Open(o));
      history_ = std::move(store);
      return history_.get();
    }
    case UrlScheme::kClickHouse: {
      // The database and its tables are created when missing (docs/clickhouse.md).
      ClickHouseHistoryOptions o;
      o.url = history_url_.target;
      o.clock = clock_;
      ASSIGN_OR_RETURN(auto store, ClickHouseHistoryStore::Open(o));
      history_ = std::move(store);
      return history_.get();
    }
    default:
      return Unsupported("--history", history_url_, "a history store by this build");
  }
}

Result<std::unique_ptr<HistoryStore>> Runtime::OpenSqliteHistory(bool create) {
  if (!create && !std::filesystem::exists(history_url_.target)) {
    return NotFoundError(fmt::format(
        "no history at '{}' yet (run 'campaign-history demo' or 'replay' first, or pass --data / "
        "--history)",
        history_url_.target));
  }
  RETURN_IF_ERROR(EnsureParentDir(history_url_.target));
  SqliteHistoryOptions o;
  o.path = history_url_.target;
  o.clock = clock_;
  ASSIGN_OR_RETURN(auto store, SqliteHistoryStore::Open(o));
  return std::unique_ptr<HistoryStore>(std::move(store));
}

Result<ChangeBus*> Runtime::Bus() {
  if (bus_) return bus_.get();
  if (bus_url_.scheme == UrlScheme::kPubSub) {
    PubSubOptions o;
    o.project = bus_url_.target;
    o.create_missing = options_.topology.create_missing;
    ASSIGN_OR_RETURN(auto bus, PubSubChangeBus::Open(o));
    bus_ = std::move(bus);
    return bus_.get();
  }
  EmbeddedChangeBusOptions o;
  o.path = (std::filesystem::path(options_.config.data_dir) / "bus.db").string();
  RETURN_IF_ERROR(EnsureParentDir(o.path));
  ASSIGN_OR_RETURN(auto bus, EmbeddedChangeBus::Open(o));
  bus_ = std::move(bus);
  return bus_.get();
}

Status Runtime::OpenOutboxSource() {
  if (source_) return Status::OK();
  if (campaign_url_.scheme != UrlScheme::kSqlite) {
    return InternalError("the outbox exists only on a SQLite campaign database");
  }
  // The store creates the outbox; open it first so the source finds the schema.
  RETURN_IF_ERROR(Campaigns().status());
  SqliteOutboxSourceOptions o;
  o.path = campaign_url_.target;
  o.clock = clock_;
  ASSIGN_OR_RETURN(auto source, SqliteOutboxSource::Open(o));
  source_ = std::move(source);
  return Status::OK();
}

Status Runtime::CheckRelayableOutbox() {
  // Open the store first: it creates the file, or checks that its mode is log.
  RETURN_IF_ERROR(Campaigns().status());
  ASSIGN_OR_RETURN(SqliteCaptureState state, ReadSqliteCaptureState(campaign_url_.target));
  if (state.rows == OutboxRows::kFull) return Status::OK();
  return FailedPreconditionError(fmt::format(
      "campaign database '{}' keeps compact outbox rows (an update that leaves the content alone "
      "omits it, for the embedded publisher, which takes it from the history); a relay to "
      "{} needs every row self-contained. Switch the database to full rows first (the omitted "
      "contents still queued are filled in): campaign-history --campaign-db sqlite:{} --history "
      "{} capture setup --outbox-rows full",
      campaign_url_.target, options_.config.bus, campaign_url_.target, history_url_.original));
}

Result<bool> Runtime::TakePublisherLock() {
  if (have_lock_) return true;
  // Beside the history file; a history on a server has no file, so the lock lives in the data
  // directory (publishers that share a server history must share --data to exclude each other).
  std::string path =
      history_url_.scheme == UrlScheme::kSqlite
          ? history_url_.target + ".publisher.lock"
          : (std::filesystem::path(options_.config.data_dir) / "publisher.lock").string();
  RETURN_IF_ERROR(EnsureParentDir(path));
  if (lock_fd_ < 0) {
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
      return UnavailableError(
          fmt::format("cannot open lock file '{}': {}", path, std::strerror(errno)));
    }
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return false;
    return UnavailableError(fmt::format("cannot lock '{}': {}", path, std::strerror(errno)));
  }
  have_lock_ = true;
  return true;
}

Result<std::vector<Status>> Runtime::HandleChanges(std::span<const Delivery> deliveries) {
  // Decode each message (one change, or a change batch); a malformed one is dead-lettered on its
  // own.
  std::vector<Status> statuses(deliveries.size());
  std::vector<ChangeEvent> events;
  // The events of delivery index[k] are events[begin[k], begin[k + 1]).
  std::vector<size_t> index, begin;
  std::vector<std::pair<size_t, CaptureHeartbeat>> heartbeats;
  for (size_t i = 0; i < deliveries.size(); ++i) {
    Result<ChangeTopicMessage> e = DecodeChangeTopicMessage(deliveries[i].message.data);
    if (!e.ok()) {
      statuses[i] = e.status();
      continue;
    }
    if (e->heartbeat) {
      heartbeats.emplace_back(i, *e->heartbeat);
      continue;
    }
    index.push_back(i);
    begin.push_back(events.size());
    for (ChangeEvent& x : e->events) events.push_back(std::move(x));
  }
  begin.push_back(events.size());
  std::lock_guard<std::mutex> lock(publisher_mu_);
  // Heartbeats are passed on as they come: the store keeps one until the transactions before it
  // are complete, so their order relative to the changes does not matter.
  for (const auto& [i, h] : heartbeats) {
    statuses[i] = DependencyFailure(publisher_->RecordHeartbeat(h), "history store");
  }
  Result<PublishStats> all = publisher_->Process(events);
  if (all.ok() && options_.TEST_publisher_hook) options_.TEST_publisher_hook("after_append");
  // OK, or a store or the campaign database failed (the publisher attributes those): the same
  // for every message, so the consumer acknowledges or holds them all.
  if (all.ok() || ClassifyFailure(all.status().code()) == FailureKind::kDependency) {
    for (size_t k : index) statuses[k] = all.status();
    return statuses;
  }
  // A bad or suspect message: find the culprit(s) message by message so the rest flows on.
  for (size_t k = 0; k < index.size(); ++k) {
    std::span<const ChangeEvent> mine(events.data() + begin[k], begin[k + 1] - begin[k]);
    statuses[index[k]] = publisher_->Process(mine).status();
  }
  return statuses;
}

Result<std::vector<Status>> Runtime::HandleHistory(std::span<const Delivery> deliveries) {
  std::vector<Status> statuses(deliveries.size());
  std::vector<HistoryRecord> records;
  std::vector<size_t> index;
  for (size_t i = 0; i < deliveries.size(); ++i) {
    Result<HistoryMessage> m = DecodeHistoryMessage(deliveries[i].message.data);
    if (!m.ok()) {
      statuses[i] = m.status();
      continue;
    }
    if (m->heartbeat) {
      statuses[i] = DependencyFailure(history_->RecordHeartbeat(*m->heartbeat), "history store");
      continue;
    }
    records.push_back(std::move(*m->record));
    index.push_back(i);
  }
  Status all = DependencyFailure(history_->Append(records).status(), "history store");
  if (all.ok() || ClassifyFailure(all.code()) == FailureKind::kDependency) {
    for (size_t k : index) statuses[k] = all;
    return statuses;
  }
  // The store refused a record for its content: find which.
  for (size_t j = 0; j < records.size(); ++j) {
    statuses[index[j]] = DependencyFailure(
        history_->Append(std::span<const HistoryRecord>(&records[j], 1)).status(), "history store");
  }
  return statuses;
}

Result<bool> Runtime::StartPublisher() {
  if (drainer_ || publisher_consumer_) return true;
  const TopologyOptions& t = options_.topology;
  if (options_.config.capture == CaptureSetting::kNone) {
    return FailedPreconditionError("--capture none: there is nothing to publish");
  }
  if (embedded_direct()) {
    ASSIGN_OR_RETURN(bool locked, TakePublisherLock());
    publisher_standby_ = !locked;
    if (!locked) return false;
    RETURN_IF_ERROR(OpenOutboxSource());
    ASSIGN_OR_RETURN(HistoryStore * history, History());
    PublisherOptions po;
    po.history = history;
    po.campaigns = campaigns_.get();
    publisher_ = std::make_unique<Publisher>(po);
    SourceDrainerOptions d;
    d.source = source_.get();
    d.publisher = publisher_.get();
    d.batch_size = options_.publish_batch;
    d.TEST_hook = options_.TEST_publisher_hook;
    drainer_ = std::make_unique<SourceDrainer>(d);
    RETURN_IF_ERROR(drainer_->Start());
    return true;
  }
  // Through the bus: change messages -> records -> the history store or the history topic.
  ASSIGN_OR_RETURN(ChangeBus * bus, Bus());
  if (t.create_missing) {
    RETURN_IF_ERROR(bus->EnsureTopic(t.changes_topic));
    RETURN_IF_ERROR(EnsureDeadLetterTopic(t.dead_letter_topic, t.dead_letter_subscription));
    RETURN_IF_ERROR(
        bus->EnsureSubscription(t.publisher_subscription, t.changes_topic, Subscriptions()));
  }
  PublisherOptions po;
  if (options_.config.capture == CaptureSetting::kNotify) {
    ASSIGN_OR_RETURN(po.campaigns, Campaigns());  // notify re-reads the rows
  }
  if (t.publish_to_topic) {
    if (t.create_missing) RETURN_IF_ERROR(bus->EnsureTopic(t.history_topic));
    HistoryStore* reader = nullptr;
    if (options_.config.capture == CaptureSetting::kNotify) {
      ASSIGN_OR_RETURN(reader, History());  // notify needs LatestVersion
    }
    history_topic_ = std::make_unique<HistoryTopicWriter>(*bus, t.history_topic, reader);
    po.history = history_topic_.get();
  } else {
    ASSIGN_OR_RETURN(po.history, History());
  }
  publisher_ = std::make_unique<Publisher>(po);
  BusConsumerOptions c;
  c.bus = bus;
  c.subscription = t.publisher_subscription;
  c.dead_letter_topic = t.dead_letter_topic;
  c.dead_letter_subscription = t.dead_letter_subscription;
  c.batch_size = t.bus_batch;
  c.max_attempts = t.max_attempts;
  c.ack_deadline = t.ack_deadline;
  c.pull_wait = std::chrono::milliseconds(200);
  ASSIGN_OR_RETURN(publisher_consumer_, BusConsumer::Create(c, [this](std::span<const Delivery> d) {
                     Result<std::vector<Status>> r = HandleChanges(d);
                     return r.ok() ? *r : std::vector<Status>(d.size(), r.status());
                   }));
  RETURN_IF_ERROR(publisher_consumer_->Start());
  return true;
}

Status Runtime::EnsureDeadLetterTopic(const std::string& topic, const std::string& subscription) {
  ASSIGN_OR_RETURN(ChangeBus * bus, Bus());
  RETURN_IF_ERROR(bus->EnsureTopic(topic));
  // Its keeping subscription at once: Pub/Sub keeps a message only for the subscriptions that
  // exist when it is published, and `dead-letters` reads (and redrives) from this one.
  SubscriptionOptions keep = Subscriptions();
  keep.ordered = false;
  return bus->EnsureSubscription(subscription, topic, keep);
}

std::vector<ConsumerReport> Runtime::Consumers() const {
  std::vector<ConsumerReport> out;
  const TopologyOptions& t = options_.topology;
  if (publisher_consumer_) {
    out.push_back({"publisher", t.publisher_subscription, publisher_consumer_->stats()});
  }
  if (sink_consumer_) out.push_back({"sink", t.sink_subscription, sink_consumer_->stats()});
  return out;
}

Result<bool> Runtime::StartCapture() {
  if (relay_) return true;
  if (options_.config.capture != CaptureSetting::kLog || embedded_direct()) return false;
  const TopologyOptions& t = options_.topology;
  // Before touching the bus: a SQLite outbox the relay could not read is the operator's to fix.
  if (campaign_url_.scheme == UrlScheme::kSqlite) RETURN_IF_ERROR(CheckRelayableOutbox());
  ASSIGN_OR_RETURN(ChangeBus * bus, Bus());
  if (t.create_missing) {
    RETURN_IF_ERROR(bus->EnsureTopic(t.changes_topic));
    // Create the publisher's subscription too: on Pub/Sub, messages published before a
    // subscription exists are not delivered to it.
    RETURN_IF_ERROR(
        bus->EnsureSubscription(t.publisher_subscription, t.changes_topic, Subscriptions()));
  }
  if (campaign_url_.scheme == UrlScheme::kPostgres) {
    PgLogicalSourceOptions o;
    o.url = campaign_url_.target;
    o.slot = t.slot;
    o.publication = t.publication;
    ASSIGN_OR_RETURN(auto source, PgLogicalSource::Open(o));
    source_ = std::move(source);
  } else {
    RETURN_IF_ERROR(OpenOutboxSource());
  }
  CaptureRelayOptions r;
  r.source = source_.get();
  r.bus = bus;
  r.topic = t.changes_topic;
  r.batch_size = t.bus_batch;
  r.changes_per_message = static_cast<size_t>(t.changes_per_message);  // the relay clamps to >= 1
  r.TEST_hook = options_.TEST_capture_hook;
  relay_ = std::make_unique<CaptureRelay>(r);
  RETURN_IF_ERROR(relay_->Start());
  return true;
}

Status Runtime::StartSink() {
  if (sink_consumer_) return Status::OK();
  const TopologyOptions& t = options_.topology;
  ASSIGN_OR_RETURN(ChangeBus * bus, Bus());
  if (t.create_missing) {
    RETURN_IF_ERROR(bus->EnsureTopic(t.history_topic));
    RETURN_IF_ERROR(
        EnsureDeadLetterTopic(t.history_dead_letter_topic, t.history_dead_letter_subscription));
    RETURN_IF_ERROR(bus->EnsureSubscription(t.sink_subscription, t.history_topic, Subscriptions()));
  }
  RETURN_IF_ERROR(History().status());
  BusConsumerOptions c;
  c.bus = bus;
  c.subscription = t.sink_subscription;
  c.dead_letter_topic = t.history_dead_letter_topic;
  c.dead_letter_subscription = t.history_dead_letter_subscription;
  c.batch_size = t.bus_batch;
  c.max_attempts = t.max_attempts;
  c.ack_deadline = t.ack_deadline;
  c.pull_wait = std::chrono::milliseconds(200);
  ASSIGN_OR_RETURN(sink_consumer_, BusConsumer::Create(c, [this](std::span<const Delivery> d) {
                     Result<std::vector<Status>> r = HandleHistory(d);
                     return r.ok() ? *r : std::vector<Status>(d.size(), r.status());
                   }));
  return sink_consumer_->Start();
}

void Runtime::StopPublisher() {
  if (drainer_) drainer_->Stop();
  if (publisher_consumer_) publisher_consumer_->Stop();
}

void Runtime::StopAll() {
  if (notify_) notify_->Stop();
  if (relay_) relay_->Stop();
  StopPublisher();
  if (sink_consumer_) sink_consumer_->Stop();
}

PublishStats Runtime::PublisherStats() const {
  return drainer_ ? drainer_->stats() : PublishStats{};
}

std::string Runtime::RoleStats() const {
  std::string out;
  if (drainer_) {
    PublishStats s = drainer_->stats();
    out += fmt::format("publisher: {} changes, {} new records; ", s.events, s.stored);
  }
  if (publisher_consumer_) {
    BusConsumerStats s = publisher_consumer_->stats();
    out += fmt::format(
        "publisher: {} messages, {} acked, {} dead-lettered, {} tries blocked by a "
        "dependency; ",
        s.delivered, s.acked, s.dead_lettered, s.dependency_failures);
  }
  if (relay_) {
    CaptureRelayStats s = relay_->stats();
    out += fmt::format("capture: {} changes relayed in {} messages; ", s.published, s.messages);
  }
  if (sink_consumer_) {
    BusConsumerStats s = sink_consumer_->stats();
    out += fmt::format("sink: {} records, {} dead-lettered; ", s.acked, s.dead_lettered);
  }
  if (notify_) {
    NotifyPublisherStats s = notify_->stats();
    out += fmt::format("notify: {} published, {} dropped; ", s.published, s.dropped);
  }
  return out;
}

Result<PublishStats> Runtime::CatchUp() {
  if (!embedded_direct()) return PublishStats{};
  if (!std::filesystem::exists(campaign_url_.target)) return PublishStats{};
  if (drainer_) {
    RETURN_IF_ERROR(WaitCaughtUp(std::chrono::minutes(10)));
    return drainer_->stats();
  }
  ASSIGN_OR_RETURN(bool locked, TakePublisherLock());
  if (!locked) return PublishStats{};  // another process is publishing right now
  if (!source_) {
    // Read the outbox as it is: a query must not change how the database captures (opening the
    // campaign store would install the capture triggers).
    SqliteOutboxSourceOptions o;
    o.path = campaign_url_.target;
    o.clock = clock_;
    Result<std::unique_ptr<SqliteOutboxSource>> source = SqliteOutboxSource::Open(o);
    if (!source.ok()) {
      if (source.status().code() == StatusCode::kFailedPrecondition) return PublishStats{};
      return source.status();
    }
    source_ = std::move(*source);
  }
  ASSIGN_OR_RETURN(HistoryStore * history, History());
  PublisherOptions po;
  po.history = history;
  Publisher publisher(po);
  SourceDrainerOptions d;
  d.source = source_.get();
  d.publisher = &publisher;
  d.batch_size = options_.publish_batch;
  SourceDrainer drainer(d);
  return drainer.DrainAll();
}

Result<int64_t> Runtime::Backlog() {
  if (!embedded_direct()) return int64_t{0};
  if (!backlog_reader_) {
    // A connection of its own: the publisher thread owns source_ while it runs. Read the outbox
    // as it is, without opening the campaign store: reporting on a database must not depend on
    // this process's --capture.
    if (!std::filesystem::exists(campaign_url_.target)) return int64_t{0};
    SqliteOutboxSourceOptions o;
    o.path = campaign_url_.target;
    Result<std::unique_ptr<SqliteOutboxSource>> reader = SqliteOutboxSource::Open(o);
    if (!reader.ok()) {
      if (reader.status().code() == StatusCode::kFailedPrecondition) return int64_t{0};
      return reader.status();
    }
    backlog_reader_ = std::move(*reader);
  }
  return backlog_reader_->Backlog();
}

Status Runtime::TakeOverPublisher() {
  if (!publisher_standby_ || drainer_) return Status::OK();
  ASSIGN_OR_RETURN(bool started, StartPublisher());
  if (started) {
    spdlog::info(
        "publisher: the process that published this setup stopped; this one publishes now");
  }
  return Status::OK();
}

Status Runtime::WaitCaughtUp(Micros timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    RETURN_IF_ERROR(TakeOverPublisher());
    ASSIGN_OR_RETURN(int64_t backlog, Backlog());
    if (backlog == 0) return Status::OK();
    if (drainer_) {
      Status err = drainer_->last_error();
      if (!err.ok() && !IsRetryable(err.code())) return err.WithContext("publisher");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError(
          fmt::format("history not caught up after {} s: {} captured changes still waiting{}",
                      std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), backlog,
                      drainer_ ? "" : " (no publisher running in this process)"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Status Runtime::WaitForVersions(const std::map<int64_t, VersionRange>& versions, Micros timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  if (config().capture == CaptureSetting::kNone && !versions.empty()) {
    return FailedPreconditionError(
        "capture is 'none': nothing committed here reaches the history, so there is nothing to "
        "wait for (use --capture log or notify)");
  }
  if (notify_) RETURN_IF_ERROR(notify_->Flush(timeout));
  ASSIGN_OR_RETURN(HistoryStore * history, History());
  // Log capture records every version, and an unordered subscription may deliver a campaign's
  // last version before the ones below it: wait for the whole range. Notify capture records
  // what it finds when it reads the row, so only the last version (or a newer one) is certain.
  const bool every_version = config().capture != CaptureSetting::kNotify;
  std::map<int64_t, VersionRange> behind = versions;
  // The first campaign still behind, and what it lacks (for the error).
  std::string lacking;
  while (true) {
    RETURN_IF_ERROR(TakeOverPublisher());
    lacking.clear();
    for (auto it = behind.begin(); it != behind.end();) {
      const auto [first, last, customer] = it->second;
      ASSIGN_OR_RETURN(std::optional<int64_t> v, history->LatestVersion(it->first));
      bool done = v && *v >= last;
      if (!done && customer != 0) {
        // An erased customer's versions are refused by the history: nothing to wait for.
        ASSIGN_OR_RETURN(done, history->Erased(customer));
        if (done) {
          it = behind.erase(it);
          continue;
        }
      }
      if (done && every_version) {
        ASSIGN_OR_RETURN(int64_t have, history->CountVersions(it->first, first, last));
        done = have == last - first + 1;
        if (!done && lacking.empty()) {
          lacking = fmt::format("campaign {} has {} of its versions {}..{}", it->first, have, first,
                                last);
        }
      } else if (!done && lacking.empty()) {
        lacking = fmt::format("campaign {} wants version {}, the history has {}", it->first, last,
                              v ? fmt::format("version {}", *v) : std::string("none"));
      }
      it = done ? behind.erase(it) : std::next(it);
    }
    if (behind.empty()) return Status::OK();
    if (drainer_) {
      Status err = drainer_->last_error();
      if (!err.ok() && !IsRetryable(err.code())) return err.WithContext("publisher");
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError(fmt::format(
          "history not caught up after {} s: {} campaigns still behind (e.g. {}); is a "
          "publisher running for this topology? With log capture every version must arrive: one "
          "that never does was written while capture was off, or went to a dead-letter topic",
          std::chrono::duration_cast<std::chrono::seconds>(timeout).count(), behind.size(),
          lacking));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace ch
