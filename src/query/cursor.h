// Cursors: where the next page of an as-of answer or a timeline starts.
//
// A cursor is opaque to its users (the CLI prints it, the support API returns it as
// `next_cursor`; both take it back as `--cursor` / `?cursor=`): URL-safe base64 without padding
// of a small text that names its query, so a timeline cursor given to as-of is refused rather
// than misread. Its content is not a stable format -- only a cursor this build printed needs to
// be understood -- but the "a1" / "t1" tags make a change of layout detectable.
//
//   as-of:    the moment asked for, the moment answered (they differ when the history was not
//             complete through the moment asked), and the (priority, campaign id) of the last
//             campaign returned. The next page answers at the same moment, so paging never skips
//             or repeats a campaign even while the history grows.
//   timeline: the timeline order key -- (event_time, transaction_id, campaign_id, version) -- of
//             the last record returned; the next page starts with the transaction after it.
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct AsOfCursor {
  Timestamp at{};
  Timestamp answered_at{};
  // The last campaign returned.
  int64_t priority = 0;
  int64_t campaign_id = 0;
  bool operator==(const AsOfCursor&) const = default;
};

struct TimelineCursor {
  Timestamp time{};
  std::string transaction_id;
  int64_t campaign_id = 0;
  int64_t version = 0;
  bool operator==(const TimelineCursor&) const = default;
};

std::string EncodeCursor(const AsOfCursor& c);
std::string EncodeCursor(const TimelineCursor& c);

// Parse a cursor printed by EncodeCursor. Fail with InvalidArgument ("cursor: ...") for anything
// else, a cursor of the other query included.
Result<AsOfCursor> DecodeAsOfCursor(std::string_view text);
Result<TimelineCursor> DecodeTimelineCursor(std::string_view text);

}  // namespace ch
