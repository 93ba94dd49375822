#include "query/cause.h"

namespace ch {

std::string_view ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kCreated:
      return "created";
    case ChangeKind::kDeleted:
      return "deleted";
    case ChangeKind::kEdited:
      return "edited";
    case ChangeKind::kMoved:
      return "moved";
    case ChangeKind::kShifted:
      return "shifted";
  }
  return "edited";
}

std::vector<ChangeKind> ClassifyTransaction(std::span<const TxnChange> changes) {
  std::vector<ChangeKind> kinds(changes.size(), ChangeKind::kEdited);
  std::vector<size_t> by_one;  // priority-only changes by exactly one: shifted or moved
  for (size_t i = 0; i < changes.size(); ++i) {
    const TxnChange& c = changes[i];
    if (c.op == ChangeOp::kCreated) {
      kinds[i] = ChangeKind::kCreated;
    } else if (c.op == ChangeOp::kDeleted) {
      kinds[i] = ChangeKind::kDeleted;
    } else if (!c.priority_only || !c.previous_priority) {
      kinds[i] = ChangeKind::kEdited;
    } else {
      int64_t delta = c.priority - *c.previous_priority;
      if (delta == 1 || delta == -1) {
        by_one.push_back(i);
      } else {
        // priority_only with an unchanged priority cannot happen (it would be no change at
        // all, which is an edit); a move by two or more is a move.
        kinds[i] = delta == 0 ? ChangeKind::kEdited : ChangeKind::kMoved;
      }
    }
  }
  // Something else happened in the transaction: it explains the moves by one.
  const bool explained = by_one.size() < changes.size();
  for (size_t i : by_one) kinds[i] = explained ? ChangeKind::kShifted : ChangeKind::kMoved;
  return kinds;
}

}  // namespace ch
