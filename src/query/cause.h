// Causes: what one transaction did, said the way a person would.
//
// 88 % of the versions of a large customer change nothing but `priority`, and only because
// *another* campaign was created, moved or deleted in the same transaction: a create puts the new
// campaign at priority 1 and shifts every other one down by one, a delete shifts the ones below
// it up, a move shifts the ones it passes (campaign/campaign_service.h). Such a version is
// *shift-only*; the change that made the transaction -- the created, deleted, moved or edited
// campaign -- is its *primary* change, and the shift-only versions are folded under it:
// "moved 6 → 7 because user:206 created c2019 'Spring sale'".
//
// The rule (ClassifyTransaction), from each version's own change:
//   * a create is `created`, a delete is `deleted`;
//   * an update that changed anything besides priority (or nothing at all: a save without
//     changes) is `edited`;
//   * an update that changed only priority, by 2 or more, is `moved`;
//   * an update that changed only priority, by exactly one, is `shifted` when the transaction
//     has any other kind of change (the one that explains it), and `moved` otherwise: two
//     neighbours that swapped places are both moved, and nothing else explains them.
// In the campaign service's transactions that gives exactly one primary change per transaction
// (an import: one per imported campaign; a swap of neighbours: both), everything else shifted.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "campaign/change.h"
#include "common/clock.h"

namespace ch {

// What one version did. Rendered as "created", "deleted", "edited", "moved", "shifted" in JSON
// and in the support API. DO NOT CHANGE the names.
enum class ChangeKind { kCreated, kDeleted, kEdited, kMoved, kShifted };
std::string_view ChangeKindName(ChangeKind kind);

// One version of a transaction, as the classification sees it.
struct TxnChange {
  int64_t campaign_id = 0;
  int64_t version = 0;
  ChangeOp op = ChangeOp::kUpdated;
  // After the change (a delete: the campaign's last priority).
  int64_t priority = 0;
  // The campaign's priority in its previous stored version; nullopt when there is none.
  std::optional<int64_t> previous_priority;
  // True when, bookkeeping fields aside (version, updated_at, updated_by), the version differs
  // from the previous one in priority alone.
  bool priority_only = false;
};

// Return the kind of each change of one transaction, in the order given (the rule above).
std::vector<ChangeKind> ClassifyTransaction(std::span<const TxnChange> changes);

// A primary change of a transaction: what a person did.
struct PrimaryChange {
  // Never kShifted.
  ChangeKind kind = ChangeKind::kEdited;
  int64_t campaign_id = 0;
  int64_t version = 0;
  // The campaign's name in that version (a delete: its last name).
  std::string name;
  // Where it was and where it went: created: to 1 (no from); deleted: from its last priority
  // (no to); moved: both; edited: both when the edit also moved it, else neither.
  std::optional<int64_t> priority_from;
  std::optional<int64_t> priority_to;
  // edited: the fields it changed (field paths as in query_engine.h; empty for a save without
  // changes).
  std::vector<std::string> fields;

  bool operator==(const PrimaryChange&) const = default;
};

// The cause of every version of one transaction: its primary changes and how many versions it
// only shifted.
struct TransactionCause {
  std::string transaction_id;
  // Its commit time (the event_time of each of its versions).
  Timestamp time{};
  // Who made it (the actor of its primary changes).
  std::string actor;
  // By campaign id; at least one.
  std::vector<PrimaryChange> primaries;
  // Versions the transaction made, and how many of them are shift-only.
  int64_t changes = 0;
  int64_t shifted = 0;
  // +1 when every shift-only version moved down by one (a create, a move up), -1 when every one
  // moved up by one (a delete, a move down), 0 when none was shifted or they went both ways.
  int64_t shifted_by = 0;

  bool operator==(const TransactionCause&) const = default;
};

}  // namespace ch
