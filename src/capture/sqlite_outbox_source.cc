#include "capture/sqlite_outbox_source.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "campaign/sqlite_outbox.h"
#include "common/sqlite.h"

namespace ch {

Result<std::unique_ptr<SqliteOutboxSource>> SqliteOutboxSource::Open(
    const SqliteOutboxSourceOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("path: must not be empty");
  std::error_code ec;
  if (!std::filesystem::exists(options.path, ec)) {
    return UnavailableError(
        fmt::format("no campaign database at '{}' (open the campaign store first)", options.path));
  }
  SqliteOptions o;
  o.wal = true;
  // Losing the last Confirm on power loss only means redelivery (at least once).
  o.synchronous = "NORMAL";
  o.busy_timeout_ms = options.busy_timeout_ms;
  o.cache_kib = 8192;
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(options.path, o));
  RETURN_IF_ERROR(CheckOutbox(*db));
  RETURN_IF_ERROR(UpgradeOutboxState(*db));
  ASSIGN_OR_RETURN(OutboxPosition confirmed, ReadConfirmedPosition(*db));
  std::unique_ptr<SqliteOutboxSource> source(new SqliteOutboxSource(options, std::move(db)));
  // Resume after the confirmed position: what is before it is durable downstream.
  source->last_polled_ = source->last_confirmed_ = confirmed.seq;
  source->polled_txns_ = source->confirmed_txns_ = confirmed.txns;
  return source;
}

SqliteOutboxSource::SqliteOutboxSource(SqliteOutboxSourceOptions options,
                                       std::unique_ptr<SqliteDb> db)
    : options_(std::move(options)), db_(std::move(db)) {}

SqliteOutboxSource::~SqliteOutboxSource() = default;

Result<SourceBatch> SqliteOutboxSource::Poll(size_t max_events, Micros wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    {
      // A wake-up that arrives while we read is kept for the wait below.
      std::lock_guard lock(wake_mu_);
      wake_pending_ = false;
    }
    ASSIGN_OR_RETURN(auto rows, ReadOutbox(*db_, last_polled_, max_events));
    if (!rows.empty()) {
      // Writers commit at synchronous=NORMAL: make what was read durable before anyone
      // downstream sees it, so a power loss cannot take back a version the history holds.
      if (options_.sync_wal) RETURN_IF_ERROR(db_->SyncWal());
      return MakeBatch(std::move(rows));
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return SourceBatch{};
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait_until(lock, std::min(deadline, now + options_.poll_interval),
                        [this] { return wake_pending_; });
  }
}

SourceBatch SqliteOutboxSource::MakeBatch(std::vector<CapturedChange> rows) {
  SourceBatch batch;
  batch.events.reserve(rows.size());
  last_polled_ = rows.back().seq;
  batch.end_position = std::to_string(last_polled_);
  // Number the transactions (their rows are contiguous: writers are serialized) and say how
  // many changes each made.
  for (size_t begin = 0; begin < rows.size();) {
    size_t end = begin + 1;
    while (end < rows.size() && rows[end].transaction_id == rows[begin].transaction_id) ++end;
    ++polled_txns_;
    for (size_t k = begin; k < end; ++k) {
      batch.events.push_back(ChangeEventFromCapture(std::move(rows[k])));
      batch.events.back().txn_seq = polled_txns_;
      batch.events.back().txn_changes = static_cast<int64_t>(end - begin);
    }
    begin = end;
  }
  unconfirmed_ends_.emplace_back(last_polled_, polled_txns_);
  return batch;
}

Status SqliteOutboxSource::Confirm(const std::string& position) {
  int64_t seq = 0;
  auto [end, ec] = std::from_chars(position.data(), position.data() + position.size(), seq);
  if (ec != std::errc() || end != position.data() + position.size() || seq < 0) {
    return InvalidArgumentError(
        fmt::format("position: '{}' is not an outbox sequence number", position));
  }
  if (seq <= last_confirmed_) return Status::OK();
  // The transaction count that goes with `seq`: the end of a polled batch.
  auto batch_end = std::find_if(unconfirmed_ends_.begin(), unconfirmed_ends_.end(),
                                [seq](const auto& e) { return e.first == seq; });
  if (batch_end == unconfirmed_ends_.end()) {
    return InvalidArgumentError(fmt::format(
        "position: {} is not the end of a batch this source handed out (last polled: {})", seq,
        last_polled_));
  }
  const int64_t txns = batch_end->second;
  RETURN_IF_ERROR(ConfirmOutboxThrough(*db_, OutboxPosition{seq, txns}));
  unconfirmed_ends_.erase(unconfirmed_ends_.begin(), batch_end + 1);
  last_confirmed_ = seq;
  confirmed_txns_ = txns;
  return Status::OK();
}

Result<std::optional<CaptureHeartbeat>> SqliteOutboxSource::Heartbeat() {
  if (last_confirmed_ != last_polled_) return std::optional<CaptureHeartbeat>();
  ASSIGN_OR_RETURN(
      std::optional<Timestamp> at,
      OutboxHeartbeat(*db_, last_polled_,
                      (options_.clock ? *options_.clock : SystemClock::Default()).Now()));
  if (!at) return std::optional<CaptureHeartbeat>();
  // The history will rely on the raised floor: it must survive a power loss first.
  if (options_.sync_wal) RETURN_IF_ERROR(db_->SyncWal());
  return std::optional<CaptureHeartbeat>(CaptureHeartbeat{.seq = polled_txns_, .at = *at});
}

Result<int64_t> SqliteOutboxSource::Backlog() { return CountUnconfirmed(*db_); }

void SqliteOutboxSource::Wake() {
  {
    std::lock_guard lock(wake_mu_);
    wake_pending_ = true;
  }
  wake_cv_.notify_all();
}

}  // namespace ch
