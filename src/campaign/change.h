// The vocabulary of changes shared by the campaign service, capture, the bus and the history:
// what happened to a row (ChangeOp), how it was captured (CaptureMode), and a reference to one
// new version (RowChange).
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

// History records' event_type. Persisted as "created", "updated", "deleted". DO NOT CHANGE.
enum class ChangeOp { kCreated, kUpdated, kDeleted };
std::string_view ChangeOpName(ChangeOp op);
Result<ChangeOp> ParseChangeOp(std::string_view name);

// How a version was captured. Persisted as "log", "notify". DO NOT CHANGE.
//   kLog: every committed row image (outbox / logical replication); lossless.
//   kNotify: the reference design: id published after commit, row fetched later; may skip
//            versions (counted in missed_versions).
enum class CaptureMode { kLog, kNotify };
std::string_view CaptureModeName(CaptureMode m);
Result<CaptureMode> ParseCaptureMode(std::string_view name);

// One new version produced by a transaction.
struct RowChange {
  ChangeOp op = ChangeOp::kUpdated;
  int64_t campaign_id = 0;
  int64_t customer_id = 0;
  // The campaign's version after this change (for deletes: last version + 1).
  int64_t version = 0;
  bool operator==(const RowChange&) const = default;
};

// A capture heartbeat: the capture source has handed out every captured transaction up to
// txn_seq `seq` (0: none yet), and every later transaction commits after `at`. A history store
// that holds every transaction up to `seq` is therefore complete through `at`, even while
// nothing is being written (history/completeness.h).
struct CaptureHeartbeat {
  int64_t seq = 0;
  Timestamp at{};
  bool operator==(const CaptureHeartbeat&) const = default;
};

}  // namespace ch
