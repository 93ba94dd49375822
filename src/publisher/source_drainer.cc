#include "publisher/source_drainer.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ch {

Result<PublishStats> SourceDrainer::RunOnce(Micros wait) {
  // A batch that failed stays pending: the source does not hand it out again until a restart, so
  // it is retried here rather than skipped.
  if (!pending_) {
    ASSIGN_OR_RETURN(SourceBatch batch, options_.source->Poll(options_.batch_size, wait));
    if (batch.events.empty()) {
      // A heartbeat only lets the history say it is complete through "now": a failure costs
      // nothing but that, and the next Append reports a broken store anyway.
      if (Status h = MaybeHeartbeat(/*force=*/false); !h.ok()) {
        spdlog::warn("publisher: heartbeat: {}", h.ToString());
      }
      return PublishStats{};
    }
    pending_ = std::move(batch);
    if (options_.TEST_hook) options_.TEST_hook("after_poll");
  }
  ASSIGN_OR_RETURN(PublishStats stats, options_.publisher->Process(pending_->events));
  if (options_.TEST_hook) options_.TEST_hook("after_append");
  // Only now, with the history durable, may the source discard the events.
  RETURN_IF_ERROR(options_.source->Confirm(pending_->end_position));
  pending_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  stats_ += stats;
  return stats;
}

Status SourceDrainer::MaybeHeartbeat(bool force) {
  if (options_.heartbeat_interval <= Micros(0)) return Status::OK();
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_heartbeat_ < options_.heartbeat_interval) return Status::OK();
  last_heartbeat_ = now;
  ASSIGN_OR_RETURN(std::optional<CaptureHeartbeat> h, options_.source->Heartbeat());
  if (!h) return Status::OK();
  return options_.publisher->RecordHeartbeat(*h);
}

Result<PublishStats> SourceDrainer::DrainAll() {
  PublishStats total;
  while (true) {
    ASSIGN_OR_RETURN(PublishStats s, RunOnce(Micros(0)));
    if (s.events == 0) break;
    total += s;
  }
  if (Status h = MaybeHeartbeat(/*force=*/true); !h.ok()) {
    spdlog::warn("publisher: heartbeat: {}", h.ToString());
  }
  return total;
}

Status SourceDrainer::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return Status::OK();
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void SourceDrainer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

PublishStats SourceDrainer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Status SourceDrainer::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void SourceDrainer::Loop() {
  Micros backoff = options_.min_backoff;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    Result<PublishStats> r = RunOnce(options_.poll_wait);
    std::unique_lock<std::mutex> lock(mu_);
    if (r.ok()) {
      last_error_ = Status::OK();
      backoff = options_.min_backoff;
      continue;
    }
    last_error_ = r.status();
    spdlog::warn("publisher: {} (retrying in {} ms)", r.status().ToString(),
                 backoff.count() / 1000);
    cv_.wait_for(lock, backoff, [this] { return stop_; });
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace ch
