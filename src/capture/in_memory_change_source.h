// InMemoryChangeSource: the ChangeSource twin over InMemoryCampaignStore's capture log, for tests
// of what consumes a source (relays, drainers) without SQLite or PostgreSQL. It keeps the
// ChangeSource contract exactly as the real sources do (tests/contract/
// change_source_contract_test.cc runs the same suite against all three):
//   * events in commit order, each with its transaction's txn_seq (dense, from 1) and
//     txn_changes; source_position and SourceBatch::end_position are capture-log seqs as text;
//     an update that left the content as it was has content_omitted (as the SQLite outbox);
//   * whole transactions, or -- with max_transaction_part set -- a transaction of more changes
//     handed out in parts of that many, txn_changes stated only on the last part (as
//     PgLogicalSource does), so consumers can be tested on parts cheaply;
//   * what is confirmed lives in an InMemoryCaptureProgress that outlives the source (the role
//     the outbox_state row or ch_capture_progress plays): a new source over the same store and
//     progress is a restarted relay, and resumes after the confirmed position, also inside a
//     transaction in parts;
//   * heartbeats: when everything is polled and confirmed, the store's commit floor is raised
//     (InMemoryCampaignStore::RaiseCommitFloor), so later transactions commit after `at`.
// The capture log is never trimmed (the store keeps it whole).
//
// Thread-safety: Poll, Confirm, Backlog and Heartbeat from one consumer thread; the store may be
// written from any thread meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "campaign/in_memory_campaign_store.h"
#include "capture/change_source.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

// What a restarted InMemoryChangeSource resumes from: the durable side of the capture.
struct InMemoryCaptureProgress {
  // Everything up to this capture-log seq is confirmed.
  int64_t confirmed_seq = 0;
  // Whole transactions confirmed (the txn_seq of the last one).
  int64_t confirmed_txns = 0;
  // When confirmed_seq lies inside a transaction handed out in parts: its id and how many of its
  // changes are confirmed (0: none is).
  std::string partial_transaction_id;
  int64_t partial_changes = 0;
};

struct InMemoryChangeSourceOptions {
  // The store whose capture log is relayed. REQUIRES: not null, opened with StoreCapture::kLog;
  // must outlive the source.
  InMemoryCampaignStore* store = nullptr;
  // The durable position. REQUIRES: not null; must outlive the source; one source at a time.
  InMemoryCaptureProgress* progress = nullptr;
  // 0: transactions are handed out whole. N > 0: a transaction of more than N changes is handed
  // out in parts of N (the last part holds 1..N). Default: 0.
  size_t max_transaction_part = 0;
  // How often a waiting Poll looks at the log. Default: 1 ms.
  Micros poll_interval = std::chrono::milliseconds(1);
  // The clock of the store's writers, for heartbeats. Not owned; must outlive the source.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
};

class InMemoryChangeSource final : public ChangeSource {
 public:
  // Fails with InvalidArgument when store or progress is missing.
  static Result<std::unique_ptr<InMemoryChangeSource>> Open(
      const InMemoryChangeSourceOptions& options);

  // See ChangeSource. `max_events` 0 is treated as 1.
  Result<SourceBatch> Poll(size_t max_events, Micros wait) override;
  // See ChangeSource. Fails with InvalidArgument when `position` is not the end of a batch this
  // source handed out (nor at or before the confirmed position).
  Status Confirm(const std::string& position) override;
  // Return the number of captured changes after the confirmed position.
  Result<int64_t> Backlog() override;
  // See ChangeSource and the file comment.
  Result<std::optional<CaptureHeartbeat>> Heartbeat() override;

 private:
  // A transaction handed out in part.
  struct OpenTransaction {
    std::string transaction_id;
    int64_t seq = 0;
    int64_t changes = 0;
  };
  // What confirming a batch end records.
  struct Handout {
    int64_t end_seq = 0;
    InMemoryCaptureProgress progress;
  };

  explicit InMemoryChangeSource(const InMemoryChangeSourceOptions& options) : options_(options) {}
  // Hand out the next pieces (whole transactions and parts), about max_events.
  SourceBatch Take(size_t max_events);

  const InMemoryChangeSourceOptions options_;
  int64_t last_polled_ = 0;
  int64_t polled_txns_ = 0;
  std::optional<OpenTransaction> open_;
  std::deque<Handout> unconfirmed_;
};

}  // namespace ch
