// The outbox of a SQLite campaign database, read through any connection to the file: the row
// images that log capture (SqliteCampaignStore opened with StoreCapture::kLog) writes, by
// triggers, in the same transaction as each change. docs/formats/outbox.md is the spec.
//
// These functions are the only code outside SqliteCampaignStore that knows the outbox's columns;
// the capture module's SqliteOutboxSource builds on them.
//
// Thread-safety: like the SqliteDb passed in (one thread at a time per connection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "campaign/captured_change.h"
#include "common/clock.h"
#include "common/sqlite.h"
#include "common/status.h"

namespace ch {

// The outbox format this code reads and writes (meta key "outbox_version"). DO NOT CHANGE the
// meaning of a released version.
inline constexpr int kOutboxFormatVersion = 3;

// Return OK when `db` has an outbox of a format this code understands. Fails with
// FailedPrecondition when there is none (the store was never opened with capture "log") or when
// it was written by a newer format version.
Status CheckOutbox(SqliteDb& db);

// Return the captured changes with seq > `after_seq`, in seq (= commit) order: the first
// `max_rows` of them (a shift row counts as the changes it expands to) and then on until the last
// transaction read is complete, so a transaction is never split. Empty when there is nothing new.
// REQUIRES: CheckOutbox(db) is OK.
Result<std::vector<CapturedChange>> ReadOutbox(SqliteDb& db, int64_t after_seq, size_t max_rows);

// The relay's confirmed position: the last confirmed outbox seq and how many captured
// transactions were confirmed up to it (the txn_seq of the last one; ChangeEvent::txn_seq).
struct OutboxPosition {
  int64_t seq = 0;
  int64_t txns = 0;
};

// Add what older files lack to the relay's state (outbox_state.confirmed_txns, counted from the
// upgrade on). REQUIRES: CheckOutbox(db) is OK.
Status UpgradeOutboxState(SqliteDb& db);

// Return the relay's confirmed position (zeros when nothing was confirmed yet). Poll after it.
// REQUIRES: UpgradeOutboxState(db) ran on this file.
Result<OutboxPosition> ReadConfirmedPosition(SqliteDb& db);

// Record that everything up to and including `through.seq` is durable downstream (through.txns
// transactions so far) and delete those rows (except the newest row of the outbox, which is kept
// so that seq is never reused), in one transaction. Confirming a seq at or below the recorded
// one changes nothing (idempotent).
Status ConfirmOutboxThrough(SqliteDb& db, const OutboxPosition& through);

// Under the database's write lock: when the outbox holds nothing after `polled_seq`, make every
// later transaction commit after now (txn_context.commit_us = max(commit_us, now); writers stamp
// max(commit_us + 1, their clock)) and return that time; nullopt when rows after `polled_seq`
// exist (the relay has not read everything yet). A heartbeat costs one small write transaction.
Result<std::optional<Timestamp>> OutboxHeartbeat(SqliteDb& db, int64_t polled_seq, Timestamp now);

// Return the number of changes after the confirmed seq (the relay's backlog): a shift row counts
// as the changes it stands for.
Result<int64_t> CountUnconfirmed(SqliteDb& db);

// Erasure (HistoryStore::EraseCustomer): remove the row images of `customer_id` that the relay
// already confirmed, in one transaction, and return how many rows were removed or blanked. The
// outbox's newest row is kept (seq is never reused) with every text and content column of it
// emptied. Unconfirmed rows are left for the relay: the history refuses an erased customer's
// records, and removing them here would make their transactions look incomplete forever.
// REQUIRES: CheckOutbox(db) is OK.
Result<int64_t> EraseConfirmedOutboxRows(SqliteDb& db, int64_t customer_id);

}  // namespace ch
