#include "capture/in_memory_change_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <thread>

namespace ch {

Result<std::unique_ptr<InMemoryChangeSource>> InMemoryChangeSource::Open(
    const InMemoryChangeSourceOptions& options) {
  if (options.store == nullptr) return InvalidArgumentError("store: must not be null");
  if (options.progress == nullptr) return InvalidArgumentError("progress: must not be null");
  std::unique_ptr<InMemoryChangeSource> source(new InMemoryChangeSource(options));
  // Resume after the confirmed position, inside a transaction in parts if it is one.
  const InMemoryCaptureProgress& p = *options.progress;
  source->last_polled_ = p.confirmed_seq;
  source->polled_txns_ = p.confirmed_txns;
  if (p.partial_changes > 0) {
    source->open_ =
        OpenTransaction{p.partial_transaction_id, p.confirmed_txns + 1, p.partial_changes};
    source->polled_txns_ = p.confirmed_txns + 1;
  }
  return source;
}

SourceBatch InMemoryChangeSource::Take(size_t max_events) {
  SourceBatch batch;
  const size_t limit = options_.max_transaction_part;
  while (batch.events.size() < max_events) {
    // The rest of the next transaction; one change more than a part, to see whether it ends.
    std::vector<CapturedChange> rows =
        options_.store->ChangesAfter(last_polled_, limit > 0 ? limit + 1 : SIZE_MAX);
    if (rows.empty()) break;
    const std::string txn = rows.front().transaction_id;
    auto end = std::find_if(rows.begin(), rows.end(),
                            [&](const CapturedChange& c) { return c.transaction_id != txn; });
    rows.erase(end, rows.end());
    const bool complete = limit == 0 || rows.size() <= limit;
    if (!complete) rows.resize(limit);
    const bool continued = open_ && open_->transaction_id == txn;
    const int64_t seq = continued ? open_->seq : ++polled_txns_;
    const int64_t before = continued ? open_->changes : 0;
    const int64_t count = before + static_cast<int64_t>(rows.size());
    last_polled_ = rows.back().seq;
    Handout h{last_polled_, {last_polled_, seq, "", 0}};
    if (complete) {
      open_.reset();
    } else {
      open_ = OpenTransaction{txn, seq, count};
      h.progress = {last_polled_, seq - 1, txn, count};
    }
    unconfirmed_.push_back(h);
    batch.end_position = std::to_string(last_polled_);
    for (CapturedChange& c : rows) {
      batch.events.push_back(ChangeEventFromCapture(std::move(c)));
      batch.events.back().txn_seq = seq;
      batch.events.back().txn_changes = complete ? count : 0;
    }
  }
  return batch;
}

Result<SourceBatch> InMemoryChangeSource::Poll(size_t max_events, Micros wait) {
  max_events = std::max<size_t>(max_events, 1);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    SourceBatch batch = Take(max_events);
    if (!batch.events.empty()) return batch;
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return batch;
    std::this_thread::sleep_until(std::min(deadline, now + options_.poll_interval));
  }
}

Status InMemoryChangeSource::Confirm(const std::string& position) {
  int64_t seq = 0;
  auto [end, ec] = std::from_chars(position.data(), position.data() + position.size(), seq);
  if (ec != std::errc() || end != position.data() + position.size() || seq < 0) {
    return InvalidArgumentError(
        fmt::format("position: '{}' is not a capture-log seq", position.substr(0, 200)));
  }
  if (seq <= options_.progress->confirmed_seq) return Status::OK();
  auto it = std::find_if(unconfirmed_.begin(), unconfirmed_.end(),
                         [seq](const Handout& h) { return h.end_seq == seq; });
  if (it == unconfirmed_.end()) {
    return InvalidArgumentError(fmt::format(
        "position: {} is not the end of a batch this source handed out (last polled: {})", seq,
        last_polled_));
  }
  *options_.progress = it->progress;
  unconfirmed_.erase(unconfirmed_.begin(), it + 1);
  return Status::OK();
}

Result<int64_t> InMemoryChangeSource::Backlog() {
  return options_.store->LastChangeSeq() - options_.progress->confirmed_seq;
}

Result<std::optional<CaptureHeartbeat>> InMemoryChangeSource::Heartbeat() {
  if (open_ || options_.progress->confirmed_seq != last_polled_) {
    return std::optional<CaptureHeartbeat>();
  }
  Clock& clock = options_.clock != nullptr ? *options_.clock : SystemClock::Default();
  std::optional<Timestamp> at = options_.store->RaiseCommitFloor(last_polled_, clock.Now());
  if (!at) return std::optional<CaptureHeartbeat>();
  return std::optional<CaptureHeartbeat>(CaptureHeartbeat{.seq = polled_txns_, .at = *at});
}

}  // namespace ch
