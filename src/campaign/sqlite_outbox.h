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
#include <vector>

#include "campaign/captured_change.h"
#include "common/sqlite.h"
#include "common/status.h"

namespace ch {

// The outbox format this code reads and writes (meta key "outbox_version"). DO NOT CHANGE the
// meaning of a released version.
inline constexpr int kOutboxFormatVersion = 2;

// Return OK when `db` has an outbox of a format this code understands. Fails with
// FailedPrecondition when there is none (the store was never opened with capture "log") or when
// it was written by a newer format version.
Status CheckOutbox(SqliteDb& db);

// Return the captured changes with seq > `after_seq`, in seq (= commit) order: the first
// `max_rows` of them and then on until the last transaction read is complete, so a transaction
// is never split. Empty when there is nothing new. REQUIRES: CheckOutbox(db) is OK.
Result<std::vector<CapturedChange>> ReadOutbox(SqliteDb& db, int64_t after_seq, size_t max_rows);

// Return the relay's last confirmed seq (0 when nothing was confirmed yet). Poll after it.
Result<int64_t> ReadConfirmedSeq(SqliteDb& db);

// Record that everything up to and including `through_seq` is durable downstream and delete those
// rows (except the newest row of the outbox, which is kept so that seq is never reused), in one
// transaction. Confirming a seq at or below the recorded one changes nothing (idempotent).
Status ConfirmOutboxThrough(SqliteDb& db, int64_t through_seq);

// Return the number of outbox rows after the confirmed seq (the relay's backlog).
Result<int64_t> CountUnconfirmed(SqliteDb& db);

}  // namespace ch
