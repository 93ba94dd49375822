#include "campaign/campaign.h"

#include <fmt/format.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "campaign/campaign_internal.h"
#include "campaign/campaign_json.h"
#include "common/text.h"
#include "common/time_util.h"

namespace ch {

using nlohmann::json;

namespace {

constexpr std::string_view kStatusNames[] = {"draft", "active", "paused", "ended"};

bool ValidStatus(CampaignStatus s) {
  auto i = static_cast<int>(s);
  return i >= 0 && i < 4;
}

// Check a free-text field: valid UTF-8 and [min_chars, max_chars] code points.
Status CheckText(std::string_view field, std::string_view value, size_t min_chars,
                 size_t max_chars) {
  if (!IsValidUtf8(value)) return InvalidArgumentError(fmt::format("{}: not valid UTF-8", field));
  size_t n = Utf8Length(value);
  if (n < min_chars || n > max_chars) {
    if (min_chars == 0) {
      return InvalidArgumentError(
          fmt::format("{}: must be at most {} characters (got {})", field, max_chars, n));
    }
    return InvalidArgumentError(
        fmt::format("{}: must be {}-{} characters (got {})", field, min_chars, max_chars, n));
  }
  return Status::OK();
}

Result<json> ParseJson(std::string_view text, std::string_view what) {
  if (JsonNestingDepth(text) > kMaxJsonNesting) {
    return InvalidArgumentError(
        fmt::format("{}: arrays and objects nest more than {} levels deep", what, kMaxJsonNesting));
  }
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    return InvalidArgumentError(
        fmt::format("{}: malformed JSON ({})", what, BriefJsonError(e.what())));
  }
}

// Dump an already parsed value in canonical form (compact, keys sorted by nlohmann's std::map).
Result<std::string> Dump(const json& j, std::string_view what) {
  try {
    return j.dump();
  } catch (const json::exception& e) {
    return InvalidArgumentError(fmt::format("{}: {}", what, BriefJsonError(e.what())));
  }
}

Status CheckContentNesting(std::string_view field, std::string_view text) {
  if (JsonNestingDepth(text, kMaxContentNesting) <= kMaxContentNesting) return Status::OK();
  return InvalidArgumentError(fmt::format("{}: nests arrays and objects more than {} levels deep",
                                          field, kMaxContentNesting));
}

Result<std::string> CanonicalFromValue(const json& j, std::string_view field) {
  if (!j.is_object()) {
    return InvalidArgumentError(
        fmt::format("{}: must be a JSON object (got {})", field, j.type_name()));
  }
  ASSIGN_OR_RETURN(std::string text, Dump(j, field));
  if (text.size() > kMaxContentBytes) {
    return InvalidArgumentError(fmt::format("{}: {} bytes exceeds the {}-byte limit", field,
                                            text.size(), kMaxContentBytes));
  }
  RETURN_IF_ERROR(CheckContentNesting(field, text));
  return text;
}

// ---- typed field readers (error messages name the field) --------------------------------------

std::string FieldName(std::string_view prefix, std::string_view key) {
  std::string s(prefix);
  s += key;
  return s;
}

Status WrongType(std::string_view field, std::string_view expected, const json& v) {
  return InvalidArgumentError(
      fmt::format("{}: must be {} (got {})", field, expected, v.type_name()));
}

Status ReadInt(const json& v, std::string_view field, int64_t& out) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      return InvalidArgumentError(fmt::format("{}: {} is out of the 64-bit range", field, u));
    }
    out = static_cast<int64_t>(u);
    return Status::OK();
  }
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return Status::OK();
  }
  return WrongType(field, "an integer", v);
}

Status ReadString(const json& v, std::string_view field, std::string& out) {
  if (!v.is_string()) return WrongType(field, "a string", v);
  out = v.get_ref<const std::string&>();
  return Status::OK();
}

Status ReadStatus(const json& v, std::string_view field, CampaignStatus& out) {
  if (!v.is_string()) return WrongType(field, "a string", v);
  auto r = ParseCampaignStatus(v.get_ref<const std::string&>());
  if (!r.ok()) {
    return InvalidArgumentError(
        fmt::format("{}: unknown value '{}' (expected draft, active, "
                    "paused, ended)",
                    field, Excerpt(v.get_ref<const std::string&>())));
  }
  out = *r;
  return Status::OK();
}

Status ReadTimestamp(const json& v, std::string_view field, Timestamp& out) {
  if (!v.is_string()) return WrongType(field, "an RFC 3339 time string", v);
  auto r = ParseTimestamp(v.get_ref<const std::string&>());
  if (!r.ok()) return r.status().WithContext(field);
  out = *r;
  return Status::OK();
}

Status ReadOptTimestamp(const json& v, std::string_view field, std::optional<Timestamp>& out) {
  if (v.is_null()) {
    out.reset();
    return Status::OK();
  }
  Timestamp t;
  RETURN_IF_ERROR(ReadTimestamp(v, field, t));
  out = t;
  return Status::OK();
}

// The fields of a campaign object, in snapshot order. DO NOT CHANGE the names.
enum Field : int {
  kId,
  kCustomerId,
  kName,
  kStatus,
  kPriority,
  kTriggerEvent,
  kAudienceSegment,
  kStartAt,
  kEndAt,
  kFrequencyCap,
  kVersion,
  kCreatedAt,
  kUpdatedAt,
  kUpdatedBy,
  kContent,
  kFieldCount
};
constexpr std::string_view kFieldNames[kFieldCount] = {"id",
                                                       "customer_id",
                                                       "name",
                                                       "status",
                                                       "priority",
                                                       "trigger_event",
                                                       "audience_segment",
                                                       "start_at",
                                                       "end_at",
                                                       "frequency_cap",
                                                       "version",
                                                       "created_at",
                                                       "updated_at",
                                                       "updated_by",
                                                       "content"};

int FieldIndex(std::string_view key) {
  for (int i = 0; i < kFieldCount; ++i) {
    if (kFieldNames[i] == key) return i;
  }
  return -1;
}

// Read a campaign object. `required` says which fields must be present.
Result<Campaign> ReadCampaignObject(const json& j, std::string_view prefix, uint32_t required) {
  if (!j.is_object()) {
    std::string what =
        prefix.empty() ? "campaign" : std::string(prefix.substr(0, prefix.size() - 1));
    return InvalidArgumentError(
        fmt::format("{}: must be a JSON object (got {})", what, j.type_name()));
  }
  Campaign c;
  c.content.clear();
  uint32_t seen = 0;
  for (const auto& [key, v] : j.items()) {
    int f = FieldIndex(key);
    std::string field = FieldName(prefix, key);
    if (f < 0) return InvalidArgumentError(fmt::format("{}: unknown field", Excerpt(field)));
    seen |= 1u << f;
    switch (f) {
      case kId:
        RETURN_IF_ERROR(ReadInt(v, field, c.id));
        break;
      case kCustomerId:
        RETURN_IF_ERROR(ReadInt(v, field, c.customer_id));
        break;
      case kName:
        RETURN_IF_ERROR(ReadString(v, field, c.name));
        break;
      case kStatus:
        RETURN_IF_ERROR(ReadStatus(v, field, c.status));
        break;
      case kPriority:
        RETURN_IF_ERROR(ReadInt(v, field, c.priority));
        break;
      case kTriggerEvent:
        RETURN_IF_ERROR(ReadString(v, field, c.trigger_event));
        break;
      case kAudienceSegment:
        RETURN_IF_ERROR(ReadString(v, field, c.audience_segment));
        break;
      case kStartAt:
        RETURN_IF_ERROR(ReadOptTimestamp(v, field, c.start_at));
        break;
      case kEndAt:
        RETURN_IF_ERROR(ReadOptTimestamp(v, field, c.end_at));
        break;
      case kFrequencyCap:
        RETURN_IF_ERROR(ReadInt(v, field, c.frequency_cap));
        break;
      case kVersion:
        RETURN_IF_ERROR(ReadInt(v, field, c.version));
        break;
      case kCreatedAt:
        RETURN_IF_ERROR(ReadTimestamp(v, field, c.created_at));
        break;
      case kUpdatedAt:
        RETURN_IF_ERROR(ReadTimestamp(v, field, c.updated_at));
        break;
      case kUpdatedBy:
        RETURN_IF_ERROR(ReadString(v, field, c.updated_by));
        break;
      case kContent: {
        ASSIGN_OR_RETURN(c.content, CanonicalFromValue(v, field));
        break;
      }
    }
  }
  uint32_t missing = required & ~seen;
  if (missing != 0) {
    for (int f = 0; f < kFieldCount; ++f) {
      if (missing & (1u << f)) {
        return InvalidArgumentError(fmt::format("{}: missing", FieldName(prefix, kFieldNames[f])));
      }
    }
  }
  if (c.content.empty()) c.content = "{}";
  return c;
}

constexpr uint32_t kAllFields = (1u << kFieldCount) - 1;

// ---- fast writers ------------------------------------------------------------------------------

constexpr char kHex[] = "0123456789abcdef";

void AppendDigits(char*& p, int64_t v, int width) {
  for (int i = width - 1; i >= 0; --i) {
    p[i] = static_cast<char>('0' + v % 10);
    v /= 10;
  }
  p += width;
}

}  // namespace

// ---- status ------------------------------------------------------------------------------------

std::string_view CampaignStatusName(CampaignStatus s) {
  if (!ValidStatus(s)) return "unknown";
  return kStatusNames[static_cast<int>(s)];
}

Result<CampaignStatus> ParseCampaignStatus(std::string_view name) {
  for (int i = 0; i < 4; ++i) {
    if (kStatusNames[i] == name) return static_cast<CampaignStatus>(i);
  }
  return InvalidArgumentError(fmt::format(
      "status: unknown value '{}' (expected draft, active, paused, ended)", Excerpt(name)));
}

// ---- validation --------------------------------------------------------------------------------

Status ValidateActor(std::string_view actor) {
  return CheckText("actor", actor, 1, kMaxActorChars);
}

Status ValidateCampaign(const Campaign& c) { return campaign_internal::ValidateCampaign(c, true); }

Status campaign_internal::ValidateCampaign(const Campaign& c, bool check_content) {
  if (c.id < 0) return InvalidArgumentError(fmt::format("id: must be positive (got {})", c.id));
  if (c.customer_id <= 0) {
    return InvalidArgumentError(
        fmt::format("customer_id: must be positive (got {})", c.customer_id));
  }
  RETURN_IF_ERROR(CheckText("name", c.name, 1, kMaxNameChars));
  if (!ValidStatus(c.status)) {
    return InvalidArgumentError(
        fmt::format("status: unknown value {} (expected draft, active, paused, ended)",
                    static_cast<int>(c.status)));
  }
  if (c.priority < 0) {
    return InvalidArgumentError(fmt::format("priority: must be positive (got {})", c.priority));
  }
  RETURN_IF_ERROR(CheckText("trigger_event", c.trigger_event, 0, kMaxLabelChars));
  RETURN_IF_ERROR(CheckText("audience_segment", c.audience_segment, 0, kMaxLabelChars));
  if (c.start_at && c.end_at && *c.end_at <= *c.start_at) {
    return InvalidArgumentError(
        fmt::format("end_at: must be after start_at (got start_at {}, "
                    "end_at {})",
                    FormatTimestamp(*c.start_at), FormatTimestamp(*c.end_at)));
  }
  if (c.frequency_cap < 0 || c.frequency_cap > kMaxFrequencyCap) {
    return InvalidArgumentError(
        fmt::format("frequency_cap: must be 0..{} (got {})", kMaxFrequencyCap, c.frequency_cap));
  }
  if (!check_content) {
    if (!c.updated_by.empty()) {
      RETURN_IF_ERROR(CheckText("updated_by", c.updated_by, 1, kMaxActorChars));
    }
    return Status::OK();
  }
  if (c.content.size() > kMaxContentBytes) {
    return InvalidArgumentError(fmt::format("content: {} bytes exceeds the {}-byte limit",
                                            c.content.size(), kMaxContentBytes));
  }
  if (!IsValidUtf8(c.content)) return InvalidArgumentError("content: not valid UTF-8");
  if (c.content.empty() || c.content.front() != '{') {
    return InvalidArgumentError("content: must be a JSON object");
  }
  RETURN_IF_ERROR(CheckContentNesting("content", c.content));
  {
    // A full parse: the snapshot splices content in verbatim, so it must be well-formed.
    json j = json::parse(c.content, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      return InvalidArgumentError("content: must be a JSON object");
    }
  }
  if (!c.updated_by.empty())
    RETURN_IF_ERROR(CheckText("updated_by", c.updated_by, 1, kMaxActorChars));
  return Status::OK();
}

Result<std::string> CanonicalContent(std::string_view json_text) {
  if (!IsValidUtf8(json_text)) return InvalidArgumentError("content: not valid UTF-8");
  RETURN_IF_ERROR(CheckContentNesting("content", json_text));
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded())
    return InvalidArgumentError("content: must be a JSON object (malformed JSON)");
  return CanonicalFromValue(j, "content");
}

// ---- snapshot writer ---------------------------------------------------------------------------

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\b':
        out.append("\\b");
        break;
      case '\f':
        out.append("\\f");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default: {
        char buf[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
        out.append(buf, 6);
      }
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

void AppendJsonTimestamp(std::string& out, Timestamp t) {
  constexpr int64_t kMicrosPerDay = int64_t{86400} * 1000000;
  int64_t us = ToUnixMicros(t);
  int64_t days = us / kMicrosPerDay;
  int64_t rem = us % kMicrosPerDay;
  if (rem < 0) {
    rem += kMicrosPerDay;
    --days;
  }
  // Civil date from days since 1970-01-01 (H. Hinnant's days_from_civil inverse).
  int64_t z = days + 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t y = yoe + era * 400;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  int64_t d = doy - (153 * mp + 2) / 5 + 1;
  int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2) ++y;
  if (y < 0 || y > 9999) {  // outside the fixed-width range: the slow, general path
    out.push_back('"');
    out += FormatTimestamp(t);
    out.push_back('"');
    return;
  }
  char buf[29];
  char* p = buf;
  *p++ = '"';
  AppendDigits(p, y, 4);
  *p++ = '-';
  AppendDigits(p, m, 2);
  *p++ = '-';
  AppendDigits(p, d, 2);
  *p++ = 'T';
  int64_t secs = rem / 1000000;
  AppendDigits(p, secs / 3600, 2);
  *p++ = ':';
  AppendDigits(p, secs / 60 % 60, 2);
  *p++ = ':';
  AppendDigits(p, secs % 60, 2);
  *p++ = '.';
  AppendDigits(p, rem % 1000000, 6);
  *p++ = 'Z';
  *p++ = '"';
  out.append(buf, static_cast<size_t>(p - buf));
}

void AppendJsonInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  (void)ec;  // 24 bytes always suffice for an int64
  out.append(buf, static_cast<size_t>(end - buf));
}

void AppendCampaignJson(std::string& out, const Campaign& c) {
  out.append("{\"id\":");
  AppendJsonInt(out, c.id);
  out.append(",\"customer_id\":");
  AppendJsonInt(out, c.customer_id);
  out.append(",\"name\":");
  AppendJsonString(out, c.name);
  out.append(",\"status\":\"");
  out.append(CampaignStatusName(c.status));
  out.append("\",\"priority\":");
  AppendJsonInt(out, c.priority);
  out.append(",\"trigger_event\":");
  AppendJsonString(out, c.trigger_event);
  out.append(",\"audience_segment\":");
  AppendJsonString(out, c.audience_segment);
  out.append(",\"start_at\":");
  if (c.start_at) {
    AppendJsonTimestamp(out, *c.start_at);
  } else {
    out.append("null");
  }
  out.append(",\"end_at\":");
  if (c.end_at) {
    AppendJsonTimestamp(out, *c.end_at);
  } else {
    out.append("null");
  }
  out.append(",\"frequency_cap\":");
  AppendJsonInt(out, c.frequency_cap);
  out.append(",\"version\":");
  AppendJsonInt(out, c.version);
  out.append(",\"created_at\":");
  AppendJsonTimestamp(out, c.created_at);
  out.append(",\"updated_at\":");
  AppendJsonTimestamp(out, c.updated_at);
  out.append(",\"updated_by\":");
  AppendJsonString(out, c.updated_by);
  out.append(",\"content\":");
  // Content is canonical JSON text already (the service stores nothing else); splice it in.
  out.append(c.content.empty() ? std::string_view("{}") : std::string_view(c.content));
  out.push_back('}');
}

std::string CampaignToJson(const Campaign& c) {
  std::string out;
  out.reserve(c.content.size() + c.name.size() + 400);
  AppendCampaignJson(out, c);
  return out;
}

// ---- readers -----------------------------------------------------------------------------------

Result<Campaign> CampaignFromJsonValue(const nlohmann::json& j, std::string_view field_prefix) {
  try {
    return ReadCampaignObject(j, field_prefix, kAllFields);
  } catch (const std::exception& e) {  // defensive: nothing above should throw
    return InvalidArgumentError(fmt::format("campaign: {}", BriefJsonError(e.what())));
  }
}

Result<Campaign> CampaignFromJson(std::string_view json_text) {
  ASSIGN_OR_RETURN(json j, ParseJson(json_text, "campaign"));
  return CampaignFromJsonValue(j);
}

Result<Campaign> ParseCampaignRow(std::string_view json_text) {
  ASSIGN_OR_RETURN(json j, ParseJson(json_text, "row"));
  try {
    return ReadCampaignObject(j, "", 0);
  } catch (const std::exception& e) {
    return InvalidArgumentError(fmt::format("row: {}", BriefJsonError(e.what())));
  }
}

Result<CampaignPatch> ParseCampaignPatch(std::string_view json_text) {
  ASSIGN_OR_RETURN(json j, ParseJson(json_text, "patch"));
  if (!j.is_object()) {
    return InvalidArgumentError(
        fmt::format("patch: must be a JSON object (got {})", j.type_name()));
  }
  CampaignPatch p;
  try {
    for (const auto& [key, v] : j.items()) {
      const std::string& f = key;
      if (f == "name") {
        RETURN_IF_ERROR(ReadString(v, f, p.name.emplace()));
      } else if (f == "status") {
        RETURN_IF_ERROR(ReadStatus(v, f, p.status.emplace()));
      } else if (f == "trigger_event") {
        RETURN_IF_ERROR(ReadString(v, f, p.trigger_event.emplace()));
      } else if (f == "audience_segment") {
        RETURN_IF_ERROR(ReadString(v, f, p.audience_segment.emplace()));
      } else if (f == "start_at") {
        RETURN_IF_ERROR(ReadOptTimestamp(v, f, p.start_at.emplace()));
      } else if (f == "end_at") {
        RETURN_IF_ERROR(ReadOptTimestamp(v, f, p.end_at.emplace()));
      } else if (f == "frequency_cap") {
        RETURN_IF_ERROR(ReadInt(v, f, p.frequency_cap.emplace()));
      } else if (f == "content") {
        ASSIGN_OR_RETURN(p.content, CanonicalFromValue(v, f));
      } else if (f == "updated_by") {
        RETURN_IF_ERROR(ReadString(v, f, p.updated_by.emplace()));
      } else if (f == "priority") {
        return InvalidArgumentError("priority: read-only in a patch (move the campaign instead)");
      } else if (FieldIndex(f) >= 0) {
        return InvalidArgumentError(fmt::format("{}: read-only (set by the service)", f));
      } else {
        return InvalidArgumentError(fmt::format("{}: unknown field", Excerpt(f)));
      }
    }
  } catch (const std::exception& e) {
    return InvalidArgumentError(fmt::format("patch: {}", BriefJsonError(e.what())));
  }
  return p;
}

void ApplyPatch(const CampaignPatch& patch, Campaign& c) {
  if (patch.name) c.name = *patch.name;
  if (patch.status) c.status = *patch.status;
  if (patch.trigger_event) c.trigger_event = *patch.trigger_event;
  if (patch.audience_segment) c.audience_segment = *patch.audience_segment;
  if (patch.start_at) c.start_at = *patch.start_at;
  if (patch.end_at) c.end_at = *patch.end_at;
  if (patch.frequency_cap) c.frequency_cap = *patch.frequency_cap;
  if (patch.content) c.content = *patch.content;
  if (patch.updated_by) c.updated_by = *patch.updated_by;
}

}  // namespace ch
