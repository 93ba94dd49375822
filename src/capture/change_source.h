// ChangeSource: where captured changes come from, in commit order: the SQLite outbox
// (SqliteOutboxSource), a PostgreSQL logical replication slot (PgLogicalSource), or the
// in-memory campaign store's capture log (InMemoryChangeSource). tests/contract/
// change_source_contract_test.cc checks every promise below against all of them.
//
// Delivery semantics: at least once. Poll returns events after the last polled position, in
// commit order. A transaction is handed out whole, in one batch -- except that a source may
// hand out a transaction larger than its own limit (PgLogicalSource::max_buffered_changes) in
// parts, in consecutive batches, so that it never holds the whole of it in memory.
// Every event carries its transaction's txn_seq -- 1, 2, 3, ... dense over the captured
// transactions of the database (a transaction that changed no campaign is not numbered), in
// commit order, the same numbers again after a restart -- and txn_changes, the number of events
// of its whole transaction. A transaction handed out in parts states txn_changes only on the
// events of its last part (0 on the others: the count is known at the commit), so a consumer
// that sees a count knows the transaction is all out once it holds that many
// (history/completeness.h).
// Nothing is discarded by the source until Confirm(position) says everything up to and including
// `position` is durable downstream; after a restart, Poll resumes after the last confirmed
// position, so unconfirmed events are delivered again and confirmed ones never (also when the
// position is the end of a part).
//
// Thread-safety: one consumer thread per source object.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "capture/change_event.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct SourceBatch {
  std::vector<ChangeEvent> events;
  // The position to Confirm once every event of the batch is durable downstream: the end of its
  // last transaction or part. Empty when the batch is empty.
  std::string end_position;
};

class ChangeSource {
 public:
  ChangeSource() = default;
  ChangeSource(const ChangeSource&) = delete;
  ChangeSource& operator=(const ChangeSource&) = delete;
  virtual ~ChangeSource() = default;

  // Return the next events (about `max_events`, more when needed to finish a transaction or a
  // part), waiting up to `wait` for the first one. An empty batch means nothing new arrived in
  // time.
  virtual Result<SourceBatch> Poll(size_t max_events, Micros wait) = 0;

  // Declare everything up to and including `position` durable downstream; the source may discard
  // it. Confirming a position at or before an earlier confirmed one is a no-op.
  virtual Status Confirm(const std::string& position) = 0;

  // Return how many captured events are not yet confirmed (the backlog), when the source knows.
  virtual Result<int64_t> Backlog() = 0;

  // Return a capture heartbeat (campaign/change.h) when everything captured so far has been
  // polled and confirmed: the txn_seq of the last transaction handed out, and a moment after
  // which every later transaction commits. nullopt while something is unread or unconfirmed, or
  // when the source cannot vouch for commit times. May write to the database (one small
  // transaction): call it when idle, at most every few hundred milliseconds.
  virtual Result<std::optional<CaptureHeartbeat>> Heartbeat() = 0;
};

}  // namespace ch
