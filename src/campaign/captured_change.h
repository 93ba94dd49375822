// CapturedChange: one row image recorded by log capture, in the same transaction as the change
// it describes (the SQLite outbox, the in-memory store's capture log). It is what a ChangeSource
// turns into a ChangeEvent.
//
// Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "campaign/campaign.h"
#include "campaign/change.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct CapturedChange {
  // Position in commit order: strictly increasing, never reused, gaps allowed.
  int64_t seq = 0;
  // The id of the transaction that made the change (decimal text, unique per database).
  std::string transaction_id;
  // The transaction's commit time.
  Timestamp commit_time{};
  ChangeOp op = ChangeOp::kUpdated;
  // Who made the change. For inserts and updates this is row.updated_by; for deletes it is the
  // deleting actor (the row keeps the previous writer in updated_by).
  std::string actor;
  // The campaign's version after the change (for deletes: row.version + 1).
  int64_t version = 0;
  // The full row after the change; for deletes, the row as it was before it. An update that
  // did not change the content leaves row.content empty: it is the previous version's (outbox
  // format 2, docs/formats/outbox.md; see ResolveOmittedContent).
  Campaign row;

  bool operator==(const CapturedChange&) const = default;
};

// Fill in every omitted content of `changes` (in commit order) from the campaign's previous
// change in the list. Fails with NotFound naming the campaign and version when the previous
// content is not in the list (it was confirmed and discarded earlier).
Status ResolveOmittedContent(std::vector<CapturedChange>& changes);

// Return a compact rendering for tests and logs: "#12 tx 4 c7@v3 updated p1 by user:1".
std::string DebugString(const CapturedChange& c);

}  // namespace ch
