// JSON building blocks shared by the modules that write or read campaign snapshots on hot paths
// (the snapshot in campaign.cc, the change message in capture/change_event.cc).
//
// The writers append to a caller-owned std::string so that a whole message is built with one
// allocation; their output is byte for byte what nlohmann::json::dump() would write for the same
// value (compact; UTF-8 passed through; `"`, `\` and control characters escaped), so a snapshot
// built here and one re-serialized by nlohmann compare equal.
//
// Thread-safety: pure functions.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

#include "campaign/campaign.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

// Append `s` as a JSON string literal (with the quotes). REQUIRES: `s` is valid UTF-8 (bytes
// >= 0x80 are copied as they are).
void AppendJsonString(std::string& out, std::string_view s);

// Append `t` as a quoted RFC 3339 string, exactly as FormatTimestamp(t) writes it.
void AppendJsonTimestamp(std::string& out, Timestamp t);

// Append the decimal text of `v`.
void AppendJsonInt(std::string& out, int64_t v);

// Append CampaignToJson(c) to `out`.
void AppendCampaignJson(std::string& out, const Campaign& c);

// Convert an already parsed snapshot object (see CampaignFromJson) into a Campaign, so that a
// message carrying a snapshot inline is parsed once. `field_prefix` is prepended to the field
// names in error messages (e.g. "row." gives "row.name: missing"). Never throws.
Result<Campaign> CampaignFromJsonValue(const nlohmann::json& j, std::string_view field_prefix = "");

}  // namespace ch
