#include "capture/capture_relay.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace ch {

Result<int64_t> CaptureRelay::RunOnce(Micros wait) {
  if (!pending_) {
    ASSIGN_OR_RETURN(SourceBatch batch, options_.source->Poll(options_.batch_size, wait));
    if (batch.events.empty()) {
      // A failed heartbeat costs only a history that says "complete through" less than it
      // could: log it and go on.
      if (Status h = MaybeHeartbeat(); !h.ok()) {
        spdlog::warn("capture relay: heartbeat: {}", h.ToString());
      }
      return int64_t{0};
    }
    pending_ = std::move(batch);
  }
  for (const ChangeEvent& e : pending_->events) {
    if (e.content_omitted) {
      return FailedPreconditionError(fmt::format(
          "campaign {} version {} arrived without its content (a SQLite outbox with compact "
          "rows): switch the database to full rows with 'capture setup --outbox-rows full' "
          "(docs/formats/outbox.md), or drain it with the embedded publisher",
          e.campaign_id, e.version));
    }
  }
  std::vector<BusMessage> messages;
  const std::vector<ChangeEvent>& events = pending_->events;
  // Within what every reader accepts (change_event.h).
  const size_t per_message =
      std::clamp<size_t>(options_.changes_per_message, 1, kMaxChangeBatchChanges);
  std::vector<std::string> encoded;
  size_t i = 0;
  while (i < events.size()) {
    // The run of changes of one customer starting at i, within the limits.
    encoded.clear();
    size_t bytes = 32;
    size_t j = i;
    while (j < events.size() && j - i < per_message &&
           events[j].customer_id == events[i].customer_id) {
      std::string m = EncodeChangeMessage(events[j]);
      if (j > i && bytes + m.size() + 1 > options_.max_message_bytes) break;
      bytes += m.size() + 1;
      encoded.push_back(std::move(m));
      ++j;
    }
    const ChangeEvent& first = events[i];
    BusMessage m;
    m.ordering_key = std::to_string(first.customer_id);
    if (encoded.size() == 1) {
      m.data = std::move(encoded[0]);
      m.attributes = {{"schema_version", std::to_string(ChangeMessageVersionOf(first))},
                      {"capture", std::string(CaptureModeName(first.capture))},
                      {"customer_id", std::to_string(first.customer_id)},
                      {"campaign_id", std::to_string(first.campaign_id)},
                      {"version", std::to_string(first.version)}};
    } else {
      m.data = AssembleChangeBatch(encoded);
      m.attributes = {{"schema_version", std::to_string(kChangeBatchSchemaVersion)},
                      {"capture", std::string(CaptureModeName(first.capture))},
                      {"customer_id", std::to_string(first.customer_id)},
                      {"changes", std::to_string(encoded.size())}};
    }
    messages.push_back(std::move(m));
    i = j;
  }
  RETURN_IF_ERROR(options_.bus->Publish(options_.topic, messages));
  if (options_.TEST_hook) options_.TEST_hook("after_publish");
  // Only now, with the bus holding them, may the source discard the changes.
  RETURN_IF_ERROR(options_.source->Confirm(pending_->end_position));
  int64_t n = static_cast<int64_t>(pending_->events.size());
  pending_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.batches;
  stats_.published += n;
  stats_.messages += static_cast<int64_t>(messages.size());
  return n;
}

Status CaptureRelay::MaybeHeartbeat() {
  if (options_.heartbeat_interval <= Micros(0)) return Status::OK();
  const auto now = std::chrono::steady_clock::now();
  if (now - last_heartbeat_ < options_.heartbeat_interval) return Status::OK();
  last_heartbeat_ = now;
  ASSIGN_OR_RETURN(std::optional<CaptureHeartbeat> h, options_.source->Heartbeat());
  if (!h) return Status::OK();
  BusMessage m;
  m.data = EncodeCaptureHeartbeat(*h);
  m.ordering_key = "heartbeat";
  m.attributes = {{"schema_version", std::to_string(kCaptureHeartbeatSchemaVersion)},
                  {"heartbeat", "1"}};
  RETURN_IF_ERROR(options_.bus->Publish(options_.topic, std::span<const BusMessage>(&m, 1)));
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.heartbeats;
  return Status::OK();
}

Status CaptureRelay::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  if (thread_.joinable()) return Status::OK();
  stop_ = false;
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void CaptureRelay::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

CaptureRelayStats CaptureRelay::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

Status CaptureRelay::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

void CaptureRelay::Loop() {
  Micros backoff = options_.min_backoff;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    Result<int64_t> r = RunOnce(options_.poll_wait);
    std::unique_lock<std::mutex> lock(mu_);
    if (r.ok()) {
      last_error_ = Status::OK();
      backoff = options_.min_backoff;
      continue;
    }
    last_error_ = r.status();
    ++stats_.errors;
    spdlog::warn("capture relay: {} (retrying in {} ms)", r.status().ToString(),
                 backoff.count() / 1000);
    cv_.wait_for(lock, backoff, [this] { return stop_; });
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace ch
