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
  // A version of a priority shift (outbox format 3, a "shifted" row): row holds only id,
  // customer_id, version, updated_at and updated_by (content is empty); the rest of the image is
  // the previous version's, with priority + priority_shift. See ResolveOmittedContent.
  bool image_omitted = false;
  int64_t priority_shift = 0;

  bool operator==(const CapturedChange&) const = default;
};

// Return the image of a version that `shift` (image_omitted) made from `previous`, the image of
// the campaign's previous version. Fails with DataLoss when `previous` is not that (another
// campaign or customer, or not version - 1).
Result<Campaign> ApplyShift(const Campaign& previous, int64_t campaign_id, int64_t customer_id,
                            int64_t version, int64_t priority_shift, Timestamp updated_at,
                            const std::string& updated_by);

// Fill in every omitted content and image of `changes` (in commit order) from the campaign's
// previous change in the list. Fails with NotFound naming the campaign and version when the
// previous version is not in the list (it was confirmed and discarded earlier).
Status ResolveOmittedContent(std::vector<CapturedChange>& changes);

// Return a compact rendering for tests and logs: "#12 tx 4 c7@v3 updated p1 by user:1".
std::string DebugString(const CapturedChange& c);

}  // namespace ch
