// SnapshotCodec: the compact storage form of history snapshots, shared by the stores that keep
// history on disk (SqliteHistoryStore today; the same bytes suit PostgreSQL bytea or a
// ClickHouse String column). docs/formats/history-record.md ("Compact storage") is the spec.
//
// Why: 87 % of the versions of a large customer are priority shifts. Between two such versions
// only four top-level snapshot fields change -- priority, version, updated_at, updated_by -- and
// each of them is already a column of the history record (priority, version, event_time,
// actor). So a snapshot is split into
//
//   * a BODY: the snapshot text with the values of those four fields cut out, plus a small
//     table saying where the holes are. Consecutive versions that differ only in the holes share
//     one body, which is stored once;
//   * EXTRAS: the hole values that the record's columns do NOT imply (a delete's snapshot
//     carries the previous version, actor and time; a notify-mode row may carry an updated_at
//     that differs from the commit time). Empty in the common case.
//
// Bodies that do change (an edited content body, a renamed campaign) are stored as a DELTA
// against a full "key" body of the same campaign: copy/insert instructions, typically a few dozen
// bytes for a word-level edit of a 1 KB snapshot. A delta always refers to a full body, never to
// another delta, so reading any version costs at most two body lookups.
//
// Everything here round-trips byte for byte: any snapshot text, JSON or not, well-formed or not,
// comes back exactly as given (the scanner just finds no holes in text it does not understand).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

// The record columns a snapshot's holes are filled from by default.
struct SnapshotColumns {
  // HistoryRecord::priority: a hole "priority" defaults to its decimal text.
  int64_t priority = 0;
  // HistoryRecord::version: a hole "version" defaults to its decimal text.
  int64_t version = 0;
  // HistoryRecord::event_time: a hole "updated_at" defaults to its RFC 3339 text, quoted.
  Timestamp event_time{};
  // HistoryRecord::actor: a hole "updated_by" defaults to it, quoted (verbatim, no escaping).
  std::string_view actor;
};

struct SplitSnapshot {
  // The body blob (format tag, hole table, text without the hole values). Never empty.
  std::string body;
  // The hole values the columns do not imply; empty when all are implied.
  std::string extras;
};

// Split `snapshot` against `columns`. Never fails: text without recognizable holes becomes a body
// without holes.
SplitSnapshot SplitSnapshotText(std::string_view snapshot, const SnapshotColumns& columns);
// As above, reusing the buffers of `*out`.
void SplitSnapshotText(std::string_view snapshot, const SnapshotColumns& columns,
                       SplitSnapshot* out);
// As above, but when the body would equal `current_body` return true and leave out->body empty
// (out->extras is always filled). Comparing in place is what makes a priority shift cheap: its
// body is the previous version's, and building a kilobyte copy of it only to compare is waste.
bool SplitSnapshotUnlessSame(std::string_view snapshot, const SnapshotColumns& columns,
                             std::string_view current_body, SplitSnapshot* out);

// Rebuild the snapshot from a full body blob, the extras and the record's columns. Fails with
// DataLoss when `body` or `extras` is not something SplitSnapshotText produced.
Result<std::string> JoinSnapshotText(std::string_view body, std::string_view extras,
                                     const SnapshotColumns& columns);
// As above, writing into `*out` (replacing its contents; the read path calls this per record).
Status JoinSnapshotText(std::string_view body, std::string_view extras,
                        const SnapshotColumns& columns, std::string* out);

// Append `v` to `out` as a LEB128 varint (7 bits per byte, low bits first).
void PutVarint(std::string& out, uint64_t v);
// Read a varint from the front of `in` and advance it. Return false when truncated.
bool GetVarint(std::string_view& in, uint64_t& v);
// Map signed to unsigned so that small magnitudes stay small (0, -1, 1, -2, ... -> 0, 1, 2, 3).
inline uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
inline int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}
// a - b modulo 2^64: the deltas of priority, version and time columns are stored this way, so
// any pair of int64 values (even a corrupt extreme one) round-trips without signed overflow.
inline int64_t WrappingSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}

// Append FormatTimestamp(t) (time_util.h) to `out` without allocating in the common case.
void AppendTimestamp(std::string& out, Timestamp t);

// Append to `out` a delta that turns `base` into `target` (copy/insert instructions). A target
// unrelated to `base` yields a delta a few bytes larger than the target; callers that store
// deltas compare sizes and keep the full target when the delta does not pay.
void EncodeDelta(std::string_view base, std::string_view target, std::string& out);

// Return the result of applying `delta` to `base`. Fails with DataLoss when the delta is
// malformed or refers outside `base`.
Result<std::string> ApplyDelta(std::string_view base, std::string_view delta);

}  // namespace ch
