#include "capture/notify_publisher.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "capture/change_event.h"

namespace ch {

void NotifyPublisher::OnCommit(const CommitInfo& info) {
  std::vector<BusMessage> messages;
  messages.reserve(info.changes.size());
  for (const RowChange& c : info.changes) {
    ChangeEvent e;
    e.capture = CaptureMode::kNotify;
    e.op = c.op;
    e.campaign_id = c.campaign_id;
    e.customer_id = c.customer_id;
    e.version = c.version;
    e.event_time = info.committed_at;
    e.actor = info.actor;
    e.transaction_id = info.transaction_id;
    // The reference design: the whole content only on delete (it cannot be fetched later).
    if (c.op == ChangeOp::kDeleted && info.row && info.row->id == c.campaign_id) e.row = info.row;
    BusMessage m;
    m.data = EncodeChangeMessage(e);
    m.ordering_key = std::to_string(c.campaign_id);
    m.attributes = {{"capture", "notify"},
                    {"campaign_id", std::to_string(c.campaign_id)},
                    {"version", std::to_string(c.version)}};
    messages.push_back(std::move(m));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (BusMessage& m : messages) {
      if (queue_.size() >= options_.max_queue) {
        ++stats_.dropped;
        continue;
      }
      queue_.push_back(std::move(m));
      ++stats_.enqueued;
    }
  }
  cv_.notify_one();
}

Status NotifyPublisher::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return Status::OK();
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void NotifyPublisher::Stop(Micros drain_timeout) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
    stop_deadline_ = std::chrono::steady_clock::now() + drain_timeout;
  }
  cv_.notify_all();
  thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  if (!queue_.empty()) {
    spdlog::warn(
        "notify: {} notifications not published at shutdown (lost, as in the reference "
        "design)",
        queue_.size());
    stats_.dropped += static_cast<int64_t>(queue_.size());
    queue_.clear();
  }
}

Status NotifyPublisher::Flush(Micros timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  bool done =
      idle_cv_.wait_for(lock, timeout, [this] { return queue_.empty() && in_flight_ == 0; });
  if (done) return Status::OK();
  return DeadlineExceededError(std::to_string(queue_.size() + in_flight_) +
                               " notifications still waiting to be published");
}

NotifyPublisherStats NotifyPublisher::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void NotifyPublisher::Loop() {
  Micros backoff = options_.min_backoff;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping with nothing left
    if (stop_ && std::chrono::steady_clock::now() >= stop_deadline_) return;
    size_t n = std::min(queue_.size(), options_.batch_size);
    std::vector<BusMessage> batch(std::make_move_iterator(queue_.begin()),
                                  std::make_move_iterator(queue_.begin() + static_cast<long>(n)));
    queue_.erase(queue_.begin(), queue_.begin() + static_cast<long>(n));
    in_flight_ = n;
    lock.unlock();
    Status s = options_.bus->Publish(options_.topic, batch);
    lock.lock();
    in_flight_ = 0;
    if (s.ok()) {
      stats_.published += static_cast<int64_t>(n);
      backoff = options_.min_backoff;
      if (queue_.empty()) idle_cv_.notify_all();
      continue;
    }
    // Put the batch back in front, in order, and retry after a pause.
    ++stats_.errors;
    queue_.insert(queue_.begin(), std::make_move_iterator(batch.begin()),
                  std::make_move_iterator(batch.end()));
    spdlog::warn("notify: publish failed: {} (retrying in {} ms)", s.ToString(),
                 backoff.count() / 1000);
    cv_.wait_for(lock, backoff,
                 [this] { return stop_ && std::chrono::steady_clock::now() >= stop_deadline_; });
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace ch
