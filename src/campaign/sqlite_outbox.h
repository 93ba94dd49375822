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
inline constexpr int kOutboxFormatVersion = 1;

// Return OK when `db` has an outbox of a format this code understands. Fails with
// FailedPrecondition when there is none (the store was never opened with capture "log") or when
// it was written by a newer format version.
Status CheckOutbox(SqliteDb& db);

// Return the captured changes with seq > `after_seq`, in seq (= commit) order: the first
// `max_rows` of them and then on until the last transaction read is complete, so a transaction
// is never split. Empty when there is nothing new. REQUIRES: CheckOutbox(db) is OK.
Result<std::vector<CapturedChange>> ReadOutbox(SqliteDb& db, int64_t after_seq, size_t max_rows);

// Delete the outbox rows with seq <= `through_seq` and return how many were deleted
// (idempotent: 0 the second time).
Result<int64_t> DeleteOutboxThrough(SqliteDb& db, int64_t through_seq);

// Return the number of outbox rows.
Result<int64_t> CountOutbox(SqliteDb& db);

}  // namespace ch
