// Parsing and formatting of instants as RFC 3339 text.
//
// Input accepts what a person or a script would type: "2026-11-03T14:05:00Z",
// "2026-11-03T14:05:00.123456+01:00", "2026-11-03 14:05" (UTC), "2026-11-03" (midnight UTC).
// A missing offset means UTC. Fractional seconds up to 9 digits are accepted; precision beyond
// microseconds is truncated. Output is always UTC ("Z").
//
// Thread-safety: pure functions.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

// The instants RFC 3339 text can name: years 0001 to 9999, UTC. ParseTimestamp accepts only
// these, so every parsed instant formats back to text that parses to it.
inline constexpr Timestamp kEarliestTimestamp = std::chrono::time_point_cast<Micros>(
    std::chrono::sys_days(std::chrono::year(1) / std::chrono::January / 1));
inline constexpr Timestamp kLatestTimestamp =
    std::chrono::time_point_cast<Micros>(
        std::chrono::sys_days(std::chrono::year(10000) / std::chrono::January / 1)) -
    Micros(1);

// Parse `text` as an instant. Fails with InvalidArgument naming the text and what is wrong.
Result<Timestamp> ParseTimestamp(std::string_view text);

// Parse what a person types for a moment: anything ParseTimestamp accepts, or a moment relative
// to `clock`'s now -- "now", "today" (00:00 UTC of today), "yesterday", each optionally with a
// time of day ("today 14:00", "yesterday 14:05:30", "yesterday 09:00+01:00") and an offset
// ("now-2h", "now - 90m", "yesterday 14:00+30m"; units as in ParseDuration). Days are UTC days.
// Fails with InvalidArgument naming the text and the accepted forms.
Result<Timestamp> ParseTimeExpression(std::string_view text, const Clock& clock);

// Return true when `text` is a relative moment (starts with now, today or yesterday): what
// ParseTimeExpression resolves against the clock.
bool IsRelativeTime(std::string_view text);

// Return "YYYY-MM-DDThh:mm:ss.uuuuuuZ" (always six fractional digits; sorts as text).
std::string FormatTimestamp(Timestamp t);

// Return a shorter form for people: "YYYY-MM-DD hh:mm:ss.mmm" in UTC, without the zone letter
// when `with_zone` is false.
std::string FormatTimestampHuman(Timestamp t, bool with_zone = true);

// Parse a duration such as "250ms", "5s", "2m", "1h", "1500us", "3d". Fails with InvalidArgument.
Result<Micros> ParseDuration(std::string_view text);

}  // namespace ch
