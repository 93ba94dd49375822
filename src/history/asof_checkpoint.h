// As-of checkpoints: the state of one customer's campaigns at one moment, packed into one blob,
// so that an as-of reads one row plus the customer's changes after that moment instead of
// seeking once per campaign (SqliteHistoryStore; docs/formats/history-record.md, "Checkpoints").
//
// A checkpoint holds, for every campaign of the customer that is live at its moment, the stored
// row (the store's packed record, opaque here) of the campaign's latest record at or before the
// moment. Campaigns whose latest record is a delete are left out. The store decides what a row
// means; this module only packs and unpacks the (campaign id, row) pairs and merges a state with
// later changes.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ch {

// One campaign's chosen row. `row` points into memory the caller owns.
struct CheckpointEntry {
  int64_t campaign_id = 0;
  std::string_view row;
};

// One change after a checkpoint's moment, with the ordering fields of its record.
struct CheckpointChange {
  int64_t campaign_id = 0;
  int64_t t = 0;
  int64_t version = 0;
  bool deleted = false;
  std::string_view row;
};

// Append to `out` the blob of `entries`. REQUIRES: sorted by campaign id, ids unique and
// positive. Blob layout (DO NOT CHANGE; stored): varint format (2), varint size of the body,
// then the body deflated (zlib, level 1: a checkpoint shrinks about 3.3x). The body: varint
// count, then per entry varint (campaign id - previous id), varint row size, the row bytes.
// Format 1 (still read) was the body itself after the format varint.
void EncodeCheckpoint(std::span<const CheckpointEntry> entries, std::string& out);

// Decode `blob` into `out` (replacing its contents). A deflated blob is replaced in place by its
// body, so the rows point into `blob` either way. Return false when the blob is not something
// EncodeCheckpoint produced (`blob` may then hold anything).
bool DecodeCheckpoint(std::string& blob, std::vector<CheckpointEntry>& out);

// Return the state after `changes`: for each campaign, the change with the greatest
// (t, version) when it has one (it replaces the campaign's entry in `base`), else its entry in
// `base`; campaigns whose result is a delete are left out. REQUIRES: `base` sorted by campaign
// id. `changes` is reordered. The result is sorted by campaign id; its rows point where those of
// `base` and `changes` do.
std::vector<CheckpointEntry> ApplyCheckpointChanges(std::span<const CheckpointEntry> base,
                                                    std::vector<CheckpointChange>& changes);

}  // namespace ch
