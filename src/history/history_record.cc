#include "history/history_record.h"

#include <fmt/format.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "common/time_util.h"

namespace ch {
namespace {

using Json = nlohmann::json;

// The persisted names of ChangeOp and CaptureMode (campaign/change.h marks them DO NOT CHANGE).
// Repeated here so that the history module depends only on the header-level vocabulary.
std::string_view OpName(ChangeOp op) {
  switch (op) {
    case ChangeOp::kCreated:
      return "created";
    case ChangeOp::kUpdated:
      return "updated";
    case ChangeOp::kDeleted:
      return "deleted";
  }
  return "updated";
}

std::string_view CaptureName(CaptureMode m) { return m == CaptureMode::kNotify ? "notify" : "log"; }

Status Bad(std::string_view field, std::string_view why) {
  return InvalidArgumentError(fmt::format("history record: field '{}' {}", field, why));
}

Result<int64_t> GetInt(const Json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return Bad(field, "is missing");
  if (it->is_number_integer()) return it->get<int64_t>();
  // BigQuery exports INT64 as a JSON string; accept a decimal string too.
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) return v;
  }
  return Bad(field, "must be an integer");
}

Result<std::string> GetString(const Json& j, const char* field, bool required = true) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (required) return Bad(field, "is missing");
    return std::string();
  }
  if (!it->is_string()) return Bad(field, "must be a string");
  return it->get<std::string>();
}

Result<Timestamp> GetTime(const Json& j, const char* field, bool required) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) {
    if (required) return Bad(field, "is missing");
    return Timestamp{};
  }
  if (!it->is_string()) return Bad(field, "must be an RFC 3339 string");
  auto t = ParseTimestamp(it->get_ref<const std::string&>());
  if (!t.ok()) return Bad(field, t.status().message());
  return *t;
}

}  // namespace

bool SameVersionContent(const HistoryRecord& a, const HistoryRecord& b) {
  return a.snapshot == b.snapshot && a.event_time == b.event_time && a.event_type == b.event_type &&
         a.actor == b.actor;
}

std::string DebugString(const HistoryRecord& r) {
  std::string s = fmt::format("c{}@v{} {} p{} by {}", r.campaign_id, r.version,
                              OpName(r.event_type), r.priority, r.actor);
  if (!r.transaction_id.empty()) s += fmt::format(" tx {}", r.transaction_id);
  if (r.capture == CaptureMode::kNotify) s += " notify";
  if (r.missed_versions != 0) s += fmt::format(" missed {}", r.missed_versions);
  return s;
}

std::string HistoryRecordToJson(const HistoryRecord& r) {
  // An ordered object keeps the column order of the spec, which makes rows easy to read.
  nlohmann::ordered_json j;
  j["customer_id"] = r.customer_id;
  j["campaign_id"] = r.campaign_id;
  j["version"] = r.version;
  j["event_time"] = FormatTimestamp(r.event_time);
  j["event_type"] = OpName(r.event_type);
  j["actor"] = r.actor;
  j["transaction_id"] = r.transaction_id;
  j["capture"] = CaptureName(r.capture);
  j["missed_versions"] = r.missed_versions;
  j["snapshot"] = r.snapshot;
  if (r.ingested_at == Timestamp{}) {
    j["ingested_at"] = nullptr;
  } else {
    j["ingested_at"] = FormatTimestamp(r.ingested_at);
  }
  j["txn_seq"] = r.txn_seq;
  j["txn_changes"] = r.txn_changes;
  j["schema_version"] = kHistoryRecordSchemaVersion;
  // Strings are validated UTF-8 upstream; `replace` keeps a bad byte from throwing here.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

namespace {

Result<Json> ParseObject(std::string_view json_text) {
  if (json_text.size() > kMaxHistoryRecordBytes) {
    return InvalidArgumentError(fmt::format(
        "history record: {} bytes, more than the limit of {} (it starts with '{}…')",
        json_text.size(), kMaxHistoryRecordBytes, Excerpt(json_text.substr(0, kMaxExcerptBytes))));
  }
  if (JsonNestingDepth(json_text) > kMaxJsonNesting) {
    return InvalidArgumentError(fmt::format(
        "history record: arrays and objects nest more than {} levels deep", kMaxJsonNesting));
  }
  Json j;
  try {
    j = Json::parse(json_text);
  } catch (const Json::exception& e) {
    return InvalidArgumentError(
        fmt::format("history record: not valid JSON: {}", BriefJsonError(e.what())));
  }
  if (!j.is_object()) return InvalidArgumentError("history record: not a JSON object");
  return j;
}

Result<HistoryRecord> RecordFromParsed(const Json& j) {
  ASSIGN_OR_RETURN(int64_t schema, GetInt(j, "schema_version"));
  if (schema < 1 || schema > kHistoryRecordSchemaVersion) {
    return Bad("schema_version", fmt::format("is {}; this reader understands 1..{}", schema,
                                             kHistoryRecordSchemaVersion));
  }
  HistoryRecord r;
  ASSIGN_OR_RETURN(r.customer_id, GetInt(j, "customer_id"));
  ASSIGN_OR_RETURN(r.campaign_id, GetInt(j, "campaign_id"));
  ASSIGN_OR_RETURN(r.version, GetInt(j, "version"));
  ASSIGN_OR_RETURN(r.event_time, GetTime(j, "event_time", true));
  ASSIGN_OR_RETURN(std::string type, GetString(j, "event_type"));
  if (type == "created") {
    r.event_type = ChangeOp::kCreated;
  } else if (type == "updated") {
    r.event_type = ChangeOp::kUpdated;
  } else if (type == "deleted") {
    r.event_type = ChangeOp::kDeleted;
  } else {
    return Bad("event_type",
               fmt::format("is '{}'; expected created, updated or deleted", Excerpt(type)));
  }
  ASSIGN_OR_RETURN(r.actor, GetString(j, "actor"));
  ASSIGN_OR_RETURN(r.transaction_id, GetString(j, "transaction_id", false));
  ASSIGN_OR_RETURN(std::string capture, GetString(j, "capture"));
  if (capture == "log") {
    r.capture = CaptureMode::kLog;
  } else if (capture == "notify") {
    r.capture = CaptureMode::kNotify;
  } else {
    return Bad("capture", fmt::format("is '{}'; expected log or notify", Excerpt(capture)));
  }
  if (j.contains("missed_versions") && !j["missed_versions"].is_null()) {
    ASSIGN_OR_RETURN(r.missed_versions, GetInt(j, "missed_versions"));
  }
  // BigQuery's JSON type may come back as an object instead of a string; accept both.
  auto snap = j.find("snapshot");
  if (snap == j.end() || snap->is_null()) return Bad("snapshot", "is missing");
  Json parsed;
  if (snap->is_string()) {
    r.snapshot = snap->get<std::string>();
    if (JsonNestingDepth(r.snapshot) > kMaxJsonNesting) {
      return Bad("snapshot", fmt::format("nests more than {} levels deep", kMaxJsonNesting));
    }
    try {
      parsed = Json::parse(r.snapshot);
    } catch (const Json::exception&) {
      return Bad("snapshot", "is not a JSON document");
    }
  } else if (snap->is_object()) {
    parsed = *snap;
    r.snapshot = snap->dump(-1, ' ', false, Json::error_handler_t::replace);
  } else {
    return Bad("snapshot", "must be a JSON string holding an object");
  }
  if (!parsed.is_object()) return Bad("snapshot", "must hold a JSON object");
  auto prio = parsed.find("priority");
  if (prio != parsed.end() && prio->is_number_integer()) r.priority = prio->get<int64_t>();
  ASSIGN_OR_RETURN(r.ingested_at, GetTime(j, "ingested_at", false));
  for (auto [field, out] : {std::pair{"txn_seq", &r.txn_seq}, {"txn_changes", &r.txn_changes}}) {
    if (!j.contains(field) || j[field].is_null()) continue;
    ASSIGN_OR_RETURN(*out, GetInt(j, field));
    if (*out < 0) return Bad(field, "must be >= 0");
  }
  return r;
}

Result<CaptureHeartbeat> HeartbeatFromParsed(const Json& j) {
  const Json& h = j["heartbeat"];
  if (!h.is_object()) return Bad("heartbeat", "must be an object");
  CaptureHeartbeat out;
  ASSIGN_OR_RETURN(out.seq, GetInt(h, "txn_seq"));
  if (out.seq < 0) return Bad("heartbeat.txn_seq", "must be >= 0");
  ASSIGN_OR_RETURN(out.at, GetTime(h, "at", true));
  return out;
}

}  // namespace

Result<HistoryRecord> HistoryRecordFromJson(std::string_view json_text) {
  ASSIGN_OR_RETURN(Json j, ParseObject(json_text));
  return RecordFromParsed(j);
}

std::string CaptureHeartbeatToJson(const CaptureHeartbeat& h) {
  return fmt::format(R"({{"heartbeat":{{"txn_seq":{},"at":"{}"}},"schema_version":{}}})", h.seq,
                     FormatTimestamp(h.at), kHistoryRecordSchemaVersion);
}

Result<HistoryMessage> DecodeHistoryMessage(std::string_view json_text) {
  ASSIGN_OR_RETURN(Json j, ParseObject(json_text));
  HistoryMessage m;
  if (j.contains("heartbeat")) {
    ASSIGN_OR_RETURN(m.heartbeat, HeartbeatFromParsed(j));
  } else {
    ASSIGN_OR_RETURN(m.record, RecordFromParsed(j));
  }
  return m;
}

}  // namespace ch
