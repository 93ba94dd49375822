#include "capture/change_event.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "campaign/campaign_json.h"
#include "common/text.h"
#include "common/time_util.h"

namespace ch {

using nlohmann::json;

namespace {

Status Field(std::string_view name, std::string_view problem) {
  return InvalidArgumentError(fmt::format("change message: {}: {}", name, problem));
}

Status WrongType(std::string_view name, std::string_view expected, const json& v) {
  return Field(name, fmt::format("must be {} (got {})", expected, v.type_name()));
}

const json* Find(const json& j, const char* name) {
  auto it = j.find(name);
  return it == j.end() ? nullptr : &*it;
}

Status GetInt(const json& j, const char* name, bool required, int64_t& out) {
  const json* v = Find(j, name);
  if (v == nullptr) return required ? Field(name, "missing") : Status::OK();
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return Field(name, "out of the 64-bit range");
  }
  if (!v->is_number_integer()) return WrongType(name, "an integer", *v);
  out = v->get<int64_t>();
  return Status::OK();
}

Status GetString(const json& j, const char* name, bool required, std::string& out) {
  const json* v = Find(j, name);
  if (v == nullptr || (!required && v->is_null())) {
    return required ? Field(name, "missing") : Status::OK();
  }
  if (!v->is_string()) return WrongType(name, "a string", *v);
  out = v->get_ref<const std::string&>();
  return Status::OK();
}

Result<ChangeEvent> Decode(const json& j) {
  if (!j.is_object()) {
    return InvalidArgumentError(
        fmt::format("change message: must be a JSON object (got {})", j.type_name()));
  }
  int64_t schema_version = 0;
  RETURN_IF_ERROR(GetInt(j, "schema_version", true, schema_version));
  if (schema_version < 1)
    return Field("schema_version", fmt::format("{} is not valid", schema_version));
  if (schema_version > kNewestChangeTopicVersion) {
    return Field("schema_version",
                 fmt::format("{} is newer than the supported {} (upgrade the reader)",
                             schema_version, kNewestChangeTopicVersion));
  }
  if (schema_version == kChangeBatchSchemaVersion) {
    return Field("schema_version", "2 is a change batch, not a change (batches do not nest)");
  }
  if (schema_version == kCaptureHeartbeatSchemaVersion) {
    return Field("schema_version", "4 is a capture heartbeat, not a change");
  }
  ChangeEvent e;
  std::string text;
  RETURN_IF_ERROR(GetString(j, "capture", true, text));
  auto capture = ParseCaptureMode(text);
  if (!capture.ok())
    return Field("capture",
                 fmt::format("unknown value '{}' (expected log, notify)", Excerpt(text)));
  e.capture = *capture;
  RETURN_IF_ERROR(GetString(j, "op", true, text));
  auto op = ParseChangeOp(text);
  if (!op.ok()) {
    return Field("op", fmt::format("unknown value '{}' (expected created, updated, deleted)",
                                   Excerpt(text)));
  }
  e.op = *op;
  RETURN_IF_ERROR(GetInt(j, "campaign_id", true, e.campaign_id));
  if (e.campaign_id <= 0)
    return Field("campaign_id", fmt::format("must be positive (got {})", e.campaign_id));
  RETURN_IF_ERROR(GetInt(j, "customer_id", true, e.customer_id));
  if (e.customer_id <= 0)
    return Field("customer_id", fmt::format("must be positive (got {})", e.customer_id));
  RETURN_IF_ERROR(GetInt(j, "version", true, e.version));
  if (e.version <= 0) return Field("version", fmt::format("must be positive (got {})", e.version));
  RETURN_IF_ERROR(GetString(j, "event_time", true, text));
  auto t = ParseTimestamp(text);
  if (!t.ok()) return Field("event_time", t.status().message());
  e.event_time = *t;
  const bool log = e.capture == CaptureMode::kLog;
  RETURN_IF_ERROR(GetString(j, "actor", log, e.actor));
  RETURN_IF_ERROR(GetString(j, "transaction_id", log, e.transaction_id));
  RETURN_IF_ERROR(GetString(j, "source_position", false, e.source_position));
  if (schema_version >= 3) {
    RETURN_IF_ERROR(GetInt(j, "txn_seq", true, e.txn_seq));
    if (e.txn_seq < 0) return Field("txn_seq", fmt::format("must be >= 0 (got {})", e.txn_seq));
    RETURN_IF_ERROR(GetInt(j, "txn_changes", true, e.txn_changes));
    if (e.txn_changes < 0) {
      return Field("txn_changes", fmt::format("must be >= 0 (got {})", e.txn_changes));
    }
    if (e.txn_changes > 0 && e.txn_seq == 0) {
      return Field("txn_changes", "is set but txn_seq is 0");
    }
  }

  const json* row = Find(j, "row");
  if (row != nullptr && !row->is_null()) {
    auto c = CampaignFromJsonValue(*row, "row.");
    if (!c.ok()) return c.status().WithContext("change message");
    if (c->id != e.campaign_id) {
      return Field("row.id", fmt::format("{} differs from campaign_id {}", c->id, e.campaign_id));
    }
    if (c->customer_id != e.customer_id) {
      return Field("row.customer_id",
                   fmt::format("{} differs from customer_id {}", c->customer_id, e.customer_id));
    }
    // The row is the campaign after the change; for deletes, the version before the tombstone.
    int64_t expected = e.op == ChangeOp::kDeleted ? e.version - 1 : e.version;
    if (c->version != expected) {
      return Field("row.version", fmt::format("{} does not match a {} of version {} (expected {})",
                                              c->version, ChangeOpName(e.op), e.version, expected));
    }
    e.row = std::move(*c);
  } else if (log) {
    return Field("row", "missing (a log message carries the row image)");
  }
  return e;
}

}  // namespace

std::string EncodeChangeMessage(const ChangeEvent& e) {
  std::string out;
  out.reserve(256 + (e.row ? e.row->content.size() + 512 : 0));
  out.append("{\"schema_version\":");
  AppendJsonInt(out, ChangeMessageVersionOf(e));
  out.append(",\"capture\":\"");
  out.append(CaptureModeName(e.capture));
  out.append("\",\"op\":\"");
  out.append(ChangeOpName(e.op));
  out.append("\",\"campaign_id\":");
  AppendJsonInt(out, e.campaign_id);
  out.append(",\"customer_id\":");
  AppendJsonInt(out, e.customer_id);
  out.append(",\"version\":");
  AppendJsonInt(out, e.version);
  out.append(",\"event_time\":");
  AppendJsonTimestamp(out, e.event_time);
  out.append(",\"actor\":");
  AppendJsonString(out, e.actor);
  out.append(",\"transaction_id\":");
  AppendJsonString(out, e.transaction_id);
  out.append(",\"source_position\":");
  AppendJsonString(out, e.source_position);
  if (e.txn_seq != 0) {
    out.append(",\"txn_seq\":");
    AppendJsonInt(out, e.txn_seq);
    out.append(",\"txn_changes\":");
    AppendJsonInt(out, e.txn_changes);
  }
  out.append(",\"row\":");
  if (e.row) {
    AppendCampaignJson(out, *e.row);
  } else {
    out.append("null");
  }
  out.push_back('}');
  return out;
}

std::string AssembleChangeBatch(std::span<const std::string> messages) {
  size_t bytes = 32;
  for (const std::string& m : messages) bytes += m.size() + 1;
  std::string out;
  out.reserve(bytes);
  out.append("{\"schema_version\":");
  AppendJsonInt(out, kChangeBatchSchemaVersion);
  out.append(",\"changes\":[");
  for (size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(messages[i]);
  }
  out.append("]}");
  return out;
}

std::string EncodeChangeBatch(std::span<const ChangeEvent> events) {
  std::vector<std::string> messages;
  messages.reserve(events.size());
  for (const ChangeEvent& e : events) messages.push_back(EncodeChangeMessage(e));
  return AssembleChangeBatch(messages);
}

namespace {

// Run `parse` with the JSON library's exceptions turned into InvalidArgument.
template <typename F>
auto Guarded(F&& parse) -> decltype(parse()) {
  try {
    return parse();
  } catch (const json::exception& e) {
    return InvalidArgumentError(
        fmt::format("change message: malformed JSON ({})", BriefJsonError(e.what())));
  } catch (const std::exception& e) {
    return InvalidArgumentError(fmt::format("change message: {}", BriefJsonError(e.what())));
  }
}

// Refuse data larger or deeper than any change-topic message may be, before parsing it.
Status CheckSize(std::string_view data) {
  if (data.size() > kMaxChangeMessageBytes) {
    return InvalidArgumentError(fmt::format(
        "change message: {} bytes, more than the limit of {} (it starts with '{}…')", data.size(),
        kMaxChangeMessageBytes, Excerpt(data.substr(0, kMaxExcerptBytes))));
  }
  if (JsonNestingDepth(data) > kMaxJsonNesting) {
    return InvalidArgumentError(fmt::format(
        "change message: arrays and objects nest more than {} levels deep", kMaxJsonNesting));
  }
  return Status::OK();
}

}  // namespace

Result<ChangeEvent> DecodeChangeMessage(std::string_view data) {
  RETURN_IF_ERROR(CheckSize(data));
  return Guarded([&]() -> Result<ChangeEvent> { return Decode(json::parse(data)); });
}

Result<ChangeTopicMessage> DecodeChangeTopicMessage(std::string_view data) {
  RETURN_IF_ERROR(CheckSize(data));
  return Guarded([&]() -> Result<ChangeTopicMessage> {
    json j = json::parse(data);
    const json* v = j.is_object() ? Find(j, "schema_version") : nullptr;
    const int64_t version = v != nullptr && v->is_number_integer() ? v->get<int64_t>() : 0;
    if (version > kNewestChangeTopicVersion) {
      return Field("schema_version",
                   fmt::format("{} is newer than the supported {} (upgrade the reader)", version,
                               kNewestChangeTopicVersion));
    }
    ChangeTopicMessage out;
    if (version == kCaptureHeartbeatSchemaVersion) {
      const json* h = Find(j, "heartbeat");
      if (h == nullptr) return Field("heartbeat", "missing");
      if (!h->is_object()) return WrongType("heartbeat", "an object", *h);
      CaptureHeartbeat hb;
      RETURN_IF_ERROR(GetInt(*h, "txn_seq", true, hb.seq));
      if (hb.seq < 0) return Field("heartbeat.txn_seq", "must be >= 0");
      std::string at;
      RETURN_IF_ERROR(GetString(*h, "at", true, at));
      auto t = ParseTimestamp(at);
      if (!t.ok()) return Field("heartbeat.at", t.status().message());
      hb.at = *t;
      out.heartbeat = hb;
      return out;
    }
    if (version != kChangeBatchSchemaVersion) {
      // A single change (or something Decode explains: a missing field, a wrong type, ...).
      ASSIGN_OR_RETURN(ChangeEvent e, Decode(j));
      out.events.push_back(std::move(e));
      return out;
    }
    const json* changes = Find(j, "changes");
    if (changes == nullptr) return Field("changes", "missing (a change batch carries changes)");
    if (!changes->is_array()) return WrongType("changes", "an array", *changes);
    if (changes->empty()) return Field("changes", "empty (a change batch carries changes)");
    if (changes->size() > kMaxChangeBatchChanges) {
      return Field("changes", fmt::format("{} changes, more than the limit of {} per batch",
                                          changes->size(), kMaxChangeBatchChanges));
    }
    out.events.reserve(changes->size());
    for (size_t i = 0; i < changes->size(); ++i) {
      Result<ChangeEvent> e = Decode((*changes)[i]);
      if (!e.ok()) {
        std::string problem(e.status().message());
        if (problem.starts_with("change message: ")) problem.erase(0, 16);
        return Status(e.status().code(), fmt::format("change batch: changes[{}]: {}", i, problem));
      }
      out.events.push_back(std::move(*e));
    }
    return out;
  });
}

Result<std::vector<ChangeEvent>> DecodeChangeMessages(std::string_view data) {
  ASSIGN_OR_RETURN(ChangeTopicMessage m, DecodeChangeTopicMessage(data));
  if (m.heartbeat) {
    return InvalidArgumentError("change message: schema_version: 4 is a capture heartbeat");
  }
  return std::move(m.events);
}

std::string EncodeCaptureHeartbeat(const CaptureHeartbeat& h) {
  std::string out = "{\"schema_version\":";
  AppendJsonInt(out, kCaptureHeartbeatSchemaVersion);
  out.append(",\"heartbeat\":{\"txn_seq\":");
  AppendJsonInt(out, h.seq);
  out.append(",\"at\":");
  AppendJsonTimestamp(out, h.at);
  out.append("}}");
  return out;
}

ChangeEvent ChangeEventFromCapture(CapturedChange&& c) {
  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  e.op = c.op;
  e.campaign_id = c.row.id;
  e.customer_id = c.row.customer_id;
  e.version = c.version;
  e.event_time = c.commit_time;
  e.actor = std::move(c.actor);
  e.transaction_id = std::move(c.transaction_id);
  e.source_position = std::to_string(c.seq);
  e.content_omitted = c.row.content.empty() || c.image_omitted;
  e.image_omitted = c.image_omitted;
  e.priority_shift = c.priority_shift;
  e.row = std::move(c.row);
  return e;
}

ChangeEvent ChangeEventFromCapture(const CapturedChange& c) {
  return ChangeEventFromCapture(CapturedChange(c));
}

}  // namespace ch
