#include "bench/peers/ch_peer.h"

#include <fmt/format.h>

#include <chrono>
#include <thread>

#include "app/runtime.h"
#include "campaign/campaign.h"
#include "capture/pg_logical_source.h"
#include "history/sqlite_history_store.h"
#include "workload/replayer.h"

namespace ch::peers {
namespace {

namespace fs = std::filesystem;

// `url` with the query parameter `key=value` added.
std::string WithParam(const std::string& url, std::string_view key, std::string_view value) {
  return fmt::format("{}{}{}={}", url, url.find('?') == std::string::npos ? '?' : '&', key, value);
}

class ChPeerImpl final : public ChPeer {
 public:
  explicit ChPeerImpl(const ChPeerOptions& o) : o_(o) {}
  ~ChPeerImpl() override { Close(); }

  Status Start() {
    fs::remove_all(o_.dir);
    fs::create_directories(o_.dir);
    RuntimeOptions options;
    options.config.data_dir = o_.dir.string();
    options.config.capture = o_.capture ? CaptureSetting::kLog : CaptureSetting::kNone;
    if (!o_.pg_url.empty()) {
      // The database's name is unique to this run: it names the slot and the publication too.
      slot_ = o_.pg_url.substr(o_.pg_url.find_last_of('/') + 1);
      options.config.campaign_db = o_.pg_url;
      options.config.bus = "pubsub://" + o_.pubsub_project;
      options.config.history = WithParam(o_.pg_url, "schema", "history");
      options.topology.slot = slot_;
      options.topology.publication = slot_;
      if (o_.capture) {
        RETURN_IF_ERROR(PgLogicalSource::CreateCapture(o_.pg_url, slot_, slot_));
        have_capture_ = true;
      }
    }
    ASSIGN_OR_RETURN(runtime_, Runtime::Create(options));
    ASSIGN_OR_RETURN(CampaignService * service, runtime_->Service());
    replayer_ = std::make_unique<Replayer>(*service);
    if (!o_.capture) return Status::OK();
    if (!o_.pg_url.empty()) RETURN_IF_ERROR(runtime_->StartCapture().status());
    RETURN_IF_ERROR(runtime_->StartPublisher().status());
    return runtime_->History().status();
  }

  std::string Name() const override { return o_.name; }
  bool Versioned() const override { return o_.capture; }

  Status Apply(const WorkloadLine& line) override { return replayer_->Apply(line).status(); }

  // The history's event times are commit times on this machine's clock (the campaign DB's or
  // the PostgreSQL server's, which is the same clock here): now, after the commit returned, lies
  // between this op's commit and the next one's (peers_bench waits 1 ms before the next op).
  Result<std::string> Moment() override {
    return std::to_string(ToUnixMicros(SystemClock::Default().Now()));
  }

  Status AsOf(int64_t customer_id, const std::string& moment) override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    answer_.clear();
    ASSIGN_OR_RETURN(answer_, history->AsOf(customer_id, FromUnixMicros(std::stoll(moment))));
    return Status::OK();
  }

  Status Log(int64_t campaign_id) override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    answer_.clear();
    ASSIGN_OR_RETURN(answer_, history->CampaignLog(campaign_id, {}));
    std::erase_if(answer_,
                  [](const HistoryRecord& r) { return r.event_type == ChangeOp::kDeleted; });
    return Status::OK();
  }

  Result<std::vector<testing::ModelCampaign>> Answer() override {
    std::vector<testing::ModelCampaign> out;
    out.reserve(answer_.size());
    for (const HistoryRecord& r : answer_) {
      ASSIGN_OR_RETURN(Campaign c, CampaignFromJson(r.snapshot));
      out.push_back(testing::ToModelCampaign(c));
    }
    return out;
  }

  // The history store's bytes; the campaign DB is the same with and without capture (the
  // outbox is drained), so capture off counts 0.
  Result<int64_t> Bytes() override {
    if (!o_.capture) return int64_t{0};
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    if (auto* sqlite = dynamic_cast<SqliteHistoryStore*>(history)) {
      RETURN_IF_ERROR(sqlite->Checkpoint());
    }
    ASSIGN_OR_RETURN(HistoryStats stats, history->Stats());
    return stats.bytes;
  }

  Result<int64_t> VersionsCaptured() override {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    ASSIGN_OR_RETURN(HistoryStats stats, history->Stats());
    return stats.records;
  }

  Status Finish(int64_t versions) override {
    if (!o_.capture) return Status::OK();
    if (o_.pg_url.empty()) {
      RETURN_IF_ERROR(runtime_->WaitCaughtUp(std::chrono::minutes(30)));
    } else {
      RETURN_IF_ERROR(WaitForRecords(versions));
    }
    runtime_->StopAll();
    return Status::OK();
  }

  void Close() override {
    if (runtime_) runtime_->StopAll();
    replayer_.reset();
    runtime_.reset();  // disconnects from the slot
    if (have_capture_) {
      PgLogicalSource::DropCapture(o_.pg_url, slot_, slot_).IgnoreError();
      have_capture_ = false;
    }
  }

 private:
  // Wait until the history holds `versions` records (the relay and the publisher run in this
  // process's threads).
  Status WaitForRecords(int64_t versions) {
    ASSIGN_OR_RETURN(HistoryStore * history, runtime_->History());
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(30);
    int64_t have = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      ASSIGN_OR_RETURN(HistoryStats stats, history->Stats());
      have = stats.records;
      if (have >= versions) return Status::OK();
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return DeadlineExceededError(fmt::format("{}: the history holds {} of {} versions after 30 min",
                                             o_.name, have, versions));
  }

  ChPeerOptions o_;
  std::string slot_;
  bool have_capture_ = false;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<Replayer> replayer_;
  std::vector<HistoryRecord> answer_;  // of the last AsOf or Log
};

}  // namespace

Result<std::unique_ptr<ChPeer>> ChPeer::Open(const ChPeerOptions& options) {
  auto peer = std::make_unique<ChPeerImpl>(options);
  RETURN_IF_ERROR(peer->Start());
  return std::unique_ptr<ChPeer>(std::move(peer));
}

}  // namespace ch::peers
