#include "app/runtime.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "campaign/sqlite_campaign_store.h"
#include "capture/sqlite_outbox_source.h"
#include "history/sqlite_history_store.h"

namespace ch {
namespace {

Status Unsupported(std::string_view flag, const BackendUrl& url) {
  return UnimplementedError(fmt::format(
      "{}: '{}' is not supported by this build yet (use sqlite:PATH)", flag, url.original));
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
  ASSIGN_OR_RETURN(BackendUrl bus, ParseBackendUrl("--bus", options.config.bus));
  if (bus.scheme != UrlScheme::kEmbedded && bus.scheme != UrlScheme::kPubSub) {
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
  StopPublisher();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Result<CampaignStore*> Runtime::Campaigns() {
  if (campaigns_) return campaigns_.get();
  if (campaign_url_.scheme != UrlScheme::kSqlite)
    return Unsupported("--campaign-db", campaign_url_);
  RETURN_IF_ERROR(EnsureParentDir(campaign_url_.target));
  SqliteCampaignStoreOptions o;
  o.path = campaign_url_.target;
  o.clock = clock_;
  // The outbox is the lossless capture on SQLite; notify publishes after commit instead.
  o.capture =
      options_.config.capture == CaptureSetting::kLog ? StoreCapture::kLog : StoreCapture::kNone;
  // --capture notify/none is an explicit choice: it turns log capture off for this database
  // (the next log-capture open turns it back on; the history then has a gap, not an error).
  o.disable_existing_capture = o.capture == StoreCapture::kNone;
  ASSIGN_OR_RETURN(auto store, SqliteCampaignStore::Open(o));
  campaigns_ = std::move(store);
  return campaigns_.get();
}

Result<CampaignService*> Runtime::Service() {
  if (service_) return service_.get();
  ASSIGN_OR_RETURN(CampaignStore * store, Campaigns());
  service_ = std::make_unique<CampaignService>(*store);
  if (options_.config.capture == CaptureSetting::kLog) {
    RETURN_IF_ERROR(OpenSource());
    service_->AddObserver(&static_cast<SqliteOutboxSource&>(*source_).commit_observer());
  }
  return service_.get();
}

Result<HistoryStore*> Runtime::History(bool create) {
  if (history_) return history_.get();
  if (history_url_.scheme != UrlScheme::kSqlite) return Unsupported("--history", history_url_);
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
  history_ = std::move(store);
  return history_.get();
}

Status Runtime::OpenSource() {
  if (source_) return Status::OK();
  if (campaign_url_.scheme != UrlScheme::kSqlite)
    return Unsupported("--campaign-db", campaign_url_);
  // The store creates the outbox; open it first so the source finds the schema.
  RETURN_IF_ERROR(Campaigns().status());
  SqliteOutboxSourceOptions o;
  o.path = campaign_url_.target;
  ASSIGN_OR_RETURN(auto source, SqliteOutboxSource::Open(o));
  source_ = std::move(source);
  return Status::OK();
}

Result<bool> Runtime::TakePublisherLock() {
  if (have_lock_) return true;
  std::string path = history_url_.target + ".publisher.lock";
  RETURN_IF_ERROR(EnsureParentDir(path));
  if (lock_fd_ < 0) {
    lock_fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd_ < 0) {
      return UnavailableError(fmt::format("cannot open lock file '{}': {}", path, strerror(errno)));
    }
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return false;
    return UnavailableError(fmt::format("cannot lock '{}': {}", path, strerror(errno)));
  }
  have_lock_ = true;
  return true;
}

Result<bool> Runtime::StartPublisher() {
  if (options_.config.capture != CaptureSetting::kLog) return false;
  if (drainer_) return true;
  ASSIGN_OR_RETURN(bool locked, TakePublisherLock());
  if (!locked) return false;
  RETURN_IF_ERROR(OpenSource());
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

void Runtime::StopPublisher() {
  if (drainer_) drainer_->Stop();
}

PublishStats Runtime::PublisherStats() const {
  return drainer_ ? drainer_->stats() : PublishStats{};
}

Result<PublishStats> Runtime::CatchUp() {
  if (options_.config.capture != CaptureSetting::kLog) return PublishStats{};
  if (campaign_url_.scheme != UrlScheme::kSqlite ||
      !std::filesystem::exists(campaign_url_.target)) {
    return PublishStats{};
  }
  if (drainer_) {
    RETURN_IF_ERROR(WaitCaughtUp(std::chrono::minutes(10)));
    return drainer_->stats();
  }
  ASSIGN_OR_RETURN(bool locked, TakePublisherLock());
  if (!locked) return PublishStats{};  // another process is publishing right now
  RETURN_IF_ERROR(OpenSource());
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
  if (options_.config.capture != CaptureSetting::kLog) return int64_t{0};
  if (campaign_url_.scheme != UrlScheme::kSqlite)
    return Unsupported("--campaign-db", campaign_url_);
  if (!backlog_reader_) {
    // A connection of its own: the publisher thread owns source_ while it runs.
    RETURN_IF_ERROR(Campaigns().status());
    SqliteOutboxSourceOptions o;
    o.path = campaign_url_.target;
    ASSIGN_OR_RETURN(auto reader, SqliteOutboxSource::Open(o));
    backlog_reader_ = std::move(reader);
  }
  return backlog_reader_->Backlog();
}

Status Runtime::WaitCaughtUp(Micros timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
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

}  // namespace ch
