// SqliteOutboxSource: the ChangeSource of log capture on SQLite. It relays the outbox that
// SqliteCampaignStore's triggers fill (docs/formats/outbox.md), in commit order, through its own
// connection to the campaign database file.
//
// Durability: Poll hands out only changes that survive a power loss (it fsyncs the WAL after
// reading them: see SqliteOutboxSourceOptions::sync_wal), so the history never holds a version
// the campaign database can lose; a power loss takes back only commits not yet polled, from
// both sides alike.
//
// Delivery: at least once, as ChangeSource says. Poll returns the events after the last polled
// outbox seq, whole transactions only; each event's row is the full Campaign image and its
// source_position the seq as text; txn_seq counts on from the transactions confirmed before
// (kept beside the confirmed seq in outbox_state). Confirm(position) records the position in the
// database and deletes the outbox rows with seq <= position (the newest row of the outbox is kept,
// so that seq is never reused), so after a restart Poll starts again after the last confirmed
// position (unconfirmed events are delivered again). One source per database: two relays on one
// outbox would each deliver and confirm the other's rows.
//
// Latency: Poll checks the outbox every `poll_interval` while it waits; an in-process committer
// can cut that short by calling Wake() after each commit (or by registering commit_observer()
// with the CampaignService).
//
// Thread-safety: Poll, Confirm and Backlog from one consumer thread; Wake (and the commit
// observer) from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "campaign/campaign_service.h"
#include "campaign/captured_change.h"
#include "capture/change_source.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

class SqliteDb;

struct SqliteOutboxSourceOptions {
  // The campaign database file (written by SqliteCampaignStore with capture log). REQUIRES: the
  // file exists and has an outbox.
  std::string path;
  // How often a waiting Poll looks at the outbox. Default: 5 ms.
  Micros poll_interval = std::chrono::milliseconds(5);
  // How long a statement waits for the database lock (Confirm deletes rows). Default: 10000 ms.
  int busy_timeout_ms = 10000;
  // Fsync the WAL before Poll hands out changes and before Heartbeat hands out a heartbeat
  // (SqliteDb::SyncWal): writers commit at synchronous=NORMAL, and without it a power loss could
  // take back commits the history already holds, whose version numbers would then come back
  // with other content. Costs one fsync per non-empty Poll, taken by the relay (no lock is held:
  // writers go on). Turn it off only to measure its cost. Default: true.
  bool sync_wal = true;
  // The clock of the writers (their commit stamps), for heartbeats. Not owned; must outlive the
  // source. Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
};

class SqliteOutboxSource final : public ChangeSource {
 public:
  // Open a connection to options.path. Fails with Unavailable when the file is missing or cannot
  // be opened, FailedPrecondition when it has no outbox (the store was opened without capture
  // log) or an outbox format newer than this code.
  static Result<std::unique_ptr<SqliteOutboxSource>> Open(const SqliteOutboxSourceOptions& options);
  ~SqliteOutboxSource() override;

  // See ChangeSource. `max_events` 0 is treated as 1. Fails with the database's error
  // (Unavailable when locked too long, DataLoss when a row cannot be decoded).
  Result<SourceBatch> Poll(size_t max_events, Micros wait) override;
  // See ChangeSource. Fails with InvalidArgument when `position` is not an outbox seq.
  Status Confirm(const std::string& position) override;
  // Return the number of outbox rows not yet confirmed.
  Result<int64_t> Backlog() override;
  // See ChangeSource: under the database's write lock, when nothing is unread, raises the commit
  // time floor of later transactions to now (OutboxHeartbeat in campaign/sqlite_outbox.h).
  Result<std::optional<CaptureHeartbeat>> Heartbeat() override;

  // Make a waiting (or the next) Poll look at the outbox now. Safe from any thread.
  void Wake();

  // Return an observer that calls Wake() after each commit; register it with the CampaignService
  // that writes the same file. Lives as long as this source.
  CommitObserver& commit_observer() { return waker_; }

 private:
  class Waker final : public CommitObserver {
   public:
    explicit Waker(SqliteOutboxSource& source) : source_(source) {}
    void OnCommit(const CommitInfo&) override { source_.Wake(); }

   private:
    SqliteOutboxSource& source_;
  };

  SqliteOutboxSource(SqliteOutboxSourceOptions options, std::unique_ptr<SqliteDb> db);
  // Number the transactions of `rows` (read after last_polled_) and hand them out as a batch.
  SourceBatch MakeBatch(std::vector<CapturedChange> rows);

  const SqliteOutboxSourceOptions options_;
  std::unique_ptr<SqliteDb> db_;  // used by the consumer thread only
  // Consumer thread only: the outbox seq and the transaction count (txn_seq) of the last row
  // polled and of the last one confirmed; and the end of each polled batch not yet confirmed,
  // with its transaction count, so that Confirm records the count that goes with a position.
  int64_t last_polled_ = 0;
  int64_t polled_txns_ = 0;
  int64_t last_confirmed_ = 0;
  int64_t confirmed_txns_ = 0;
  std::deque<std::pair<int64_t, int64_t>> unconfirmed_ends_;

  std::mutex wake_mu_;
  std::condition_variable wake_cv_;
  bool wake_pending_ = false;  // guarded by wake_mu_
  Waker waker_{*this};
};

}  // namespace ch
