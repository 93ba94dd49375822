// Campaign: the record whose history campaign-history keeps, with its limits and its canonical
// JSON form (the "snapshot" of a history record; see docs/formats/history-record.md).
//
// Limits (checked on every write; errors name the field):
//   name 1-200 characters; trigger_event and audience_segment 0-200 characters;
//   content a JSON object of at most 64 KiB serialized; all strings valid UTF-8 (stored and
//   returned byte for byte); frequency_cap 0..1,000,000; end_at after start_at when both are
//   set; actor (updated_by) 1-128 characters; ids and customer ids positive.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

// Persisted as text ("draft", "active", "paused", "ended"). DO NOT CHANGE the names.
enum class CampaignStatus { kDraft, kActive, kPaused, kEnded };

// Return the persisted name of `s`.
std::string_view CampaignStatusName(CampaignStatus s);
// Parse a persisted name. Fails with InvalidArgument naming the value and the allowed ones.
Result<CampaignStatus> ParseCampaignStatus(std::string_view name);

inline constexpr size_t kMaxNameChars = 200;
inline constexpr size_t kMaxLabelChars = 200;
inline constexpr size_t kMaxContentBytes = 64 * 1024;
// How deeply arrays and objects may nest in `content`, the content object itself counting as 1.
// Messages that carry a snapshot wrap it a few levels deeper, within kMaxJsonNesting
// (common/text.h), the limit of every parser of outside input.
inline constexpr size_t kMaxContentNesting = 32;
inline constexpr size_t kMaxActorChars = 128;
inline constexpr int64_t kMaxFrequencyCap = 1'000'000;

struct Campaign {
  int64_t id = 0;
  int64_t customer_id = 0;
  std::string name;
  CampaignStatus status = CampaignStatus::kDraft;
  // 1 = top; 1..N contiguous per customer.
  int64_t priority = 0;
  std::string trigger_event;
  std::string audience_segment;
  std::optional<Timestamp> start_at;
  std::optional<Timestamp> end_at;
  int64_t frequency_cap = 0;
  // Canonical JSON text of an object (see CanonicalContent). Never empty for a stored row.
  std::string content = "{}";
  // 1, 2, 3, ... one per committed change of this campaign.
  int64_t version = 0;
  Timestamp created_at{};
  Timestamp updated_at{};
  // Actor of the last change: "user:<id>", "api:<key>", "worker:<name>".
  std::string updated_by;

  bool operator==(const Campaign&) const = default;
};

// Return OK when every field of `c` is within the limits above, else InvalidArgument naming the
// first offending field. Does not check version/timestamps (the service sets those); id 0 means
// "not assigned yet" and passes, and an empty updated_by passes (the service sets it).
Status ValidateCampaign(const Campaign& c);

// Return OK when `actor` is 1-128 characters of valid UTF-8.
Status ValidateActor(std::string_view actor);

// Parse `json_text` as a JSON object and return its canonical text (compact, keys sorted,
// strings byte for byte). Fails with InvalidArgument when it is not a JSON object or exceeds
// 64 KiB serialized.
Result<std::string> CanonicalContent(std::string_view json_text);

// Return the canonical snapshot JSON of `c`: an object with, in this order, id, customer_id,
// name, status, priority, trigger_event, audience_segment, start_at, end_at, frequency_cap,
// version, created_at, updated_at, updated_by, content. Times are RFC 3339 UTC with
// microseconds; absent start_at/end_at are null. DO NOT CHANGE the field names.
std::string CampaignToJson(const Campaign& c);

// Parse a snapshot (the output of CampaignToJson). Unknown fields are rejected. Fails with
// InvalidArgument naming the field.
Result<Campaign> CampaignFromJson(std::string_view json_text);

// A partial update: the fields to set. `start_at`/`end_at` hold an optional so that "set to
// null" differs from "leave alone". Priority is not part of a patch: use CampaignService::Move.
struct CampaignPatch {
  std::optional<std::string> name;
  std::optional<CampaignStatus> status;
  std::optional<std::string> trigger_event;
  std::optional<std::string> audience_segment;
  std::optional<std::optional<Timestamp>> start_at;
  std::optional<std::optional<Timestamp>> end_at;
  std::optional<int64_t> frequency_cap;
  // Canonical content JSON; replaces the whole object.
  std::optional<std::string> content;
  // When present, must equal the writer's actor (workload lines carry it).
  std::optional<std::string> updated_by;

  bool empty() const {
    return !name && !status && !trigger_event && !audience_segment && !start_at && !end_at &&
           !frequency_cap && !content;
  }
};

// Parse a JSON object of fields to set, e.g. {"name":"x","status":"paused","end_at":null}.
// Unknown fields, wrong types, bad values and read-only fields (id, version, priority, ...) fail
// with InvalidArgument naming the field.
Result<CampaignPatch> ParseCampaignPatch(std::string_view json_text);

// Apply `patch` to `c` (no validation; call ValidateCampaign afterwards).
void ApplyPatch(const CampaignPatch& patch, Campaign& c);

// Parse a campaign row as the workload format writes it (id, customer_id, name, status,
// priority, trigger_event, audience_segment, start_at, end_at, frequency_cap, content,
// updated_by; version/created_at/updated_at optional). `id` 0 or absent means "assign one".
Result<Campaign> ParseCampaignRow(std::string_view json_text);

}  // namespace ch
