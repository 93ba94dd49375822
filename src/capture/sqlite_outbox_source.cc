#include "capture/sqlite_outbox_source.h"

#include <fmt/format.h>

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
  ASSIGN_OR_RETURN(int64_t confirmed, ReadConfirmedSeq(*db));
  std::unique_ptr<SqliteOutboxSource> source(new SqliteOutboxSource(options, std::move(db)));
  // Resume after the confirmed position: what is before it is durable downstream.
  source->last_polled_ = source->last_confirmed_ = confirmed;
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
      SourceBatch batch;
      batch.events.reserve(rows.size());
      last_polled_ = rows.back().seq;
      batch.end_position = std::to_string(last_polled_);
      for (CapturedChange& c : rows) batch.events.push_back(ChangeEventFromCapture(std::move(c)));
      return batch;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return SourceBatch{};
    std::unique_lock lock(wake_mu_);
    wake_cv_.wait_until(lock, std::min(deadline, now + options_.poll_interval),
                        [this] { return wake_pending_; });
  }
}

Status SqliteOutboxSource::Confirm(const std::string& position) {
  int64_t seq = 0;
  auto [end, ec] = std::from_chars(position.data(), position.data() + position.size(), seq);
  if (ec != std::errc() || end != position.data() + position.size() || seq < 0) {
    return InvalidArgumentError(
        fmt::format("position: '{}' is not an outbox sequence number", position));
  }
  if (seq <= last_confirmed_) return Status::OK();
  RETURN_IF_ERROR(ConfirmOutboxThrough(*db_, seq));
  last_confirmed_ = seq;
  return Status::OK();
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
