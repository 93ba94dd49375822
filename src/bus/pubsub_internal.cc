#include "bus/pubsub_internal.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "bus/bus_limits.h"
#include "common/text.h"
#include "common/time_util.h"

namespace ch::pubsub_internal {

namespace {
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// JSON framing per message in a publish request: {"data":"","orderingKey":"","attributes":{}}
// plus quotes and commas of attributes, counted against the batch byte budget.
constexpr size_t kPerMessageOverhead = 64;
}  // namespace

std::string Base64Encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (size_t rest = in.size() - i; rest > 0) {
    uint32_t v = byte(i) << 16;
    if (rest == 2) v |= byte(i + 1) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;  // '-' and '_': the URL-safe alphabet, accepted too
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return InvalidArgumentError("base64: truncated input");
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = value(c);
    if (v < 0)
      return InvalidArgumentError(
          fmt::format("base64: unexpected character 0x{:02x}", static_cast<unsigned char>(c)));
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::vector<std::pair<size_t, size_t>> PlanBatches(std::span<const BusMessage> messages,
                                                   size_t max_messages, size_t max_bytes) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0, bytes = 0;
  for (size_t i = 0; i < messages.size(); ++i) {
    size_t n = BusMessageBytes(messages[i]) + kPerMessageOverhead;
    bool full = i - begin >= max_messages || (i > begin && bytes + n > max_bytes);
    if (full) {
      out.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += n;
  }
  if (begin < messages.size()) out.emplace_back(begin, messages.size());
  return out;
}

Result<std::string> PublishBody(std::span<const BusMessage> messages) {
  try {
    nlohmann::json list = nlohmann::json::array();
    for (const BusMessage& m : messages) {
      nlohmann::json j = nlohmann::json::object();
      if (!m.data.empty()) j["data"] = Base64Encode(m.data);
      if (!m.ordering_key.empty()) j["orderingKey"] = m.ordering_key;
      if (!m.attributes.empty()) j["attributes"] = m.attributes;
      list.push_back(std::move(j));
    }
    nlohmann::json body = {{"messages", std::move(list)}};
    return body.dump();
  } catch (const std::exception& e) {
    return InvalidArgumentError(fmt::format("cannot encode the publish request: {}", e.what()));
  }
}

Result<std::vector<Delivery>> ParsePullResponse(std::string_view body) {
  try {
    nlohmann::json j = nlohmann::json::parse(body);
    std::vector<Delivery> out;
    if (!j.is_object() || !j.contains("receivedMessages")) return out;
    for (const nlohmann::json& r : j.at("receivedMessages")) {
      Delivery d;
      d.ack_id = r.at("ackId").get<std::string>();
      d.delivery_attempt = r.value("deliveryAttempt", 0);
      const nlohmann::json& m = r.at("message");
      if (m.contains("data")) {
        ASSIGN_OR_RETURN(d.message.data, Base64Decode(m.at("data").get<std::string>()));
      }
      d.message.ordering_key = m.value("orderingKey", "");
      if (m.contains("attributes")) {
        d.message.attributes = m.at("attributes").get<std::map<std::string, std::string>>();
      }
      d.message_id = m.value("messageId", "");
      if (m.contains("publishTime")) {
        auto t = ParseTimestamp(m.at("publishTime").get<std::string>());
        if (t.ok()) d.publish_time = *t;
      }
      out.push_back(std::move(d));
    }
    return out;
  } catch (const std::exception& e) {
    return InternalError(fmt::format("malformed Pub/Sub pull response: {}", e.what()));
  }
}

Status StatusFromHttp(int http_status, std::string_view body, std::string_view what,
                      std::string_view resource) {
  std::string server_message;
  std::string server_status;
  try {
    nlohmann::json j = nlohmann::json::parse(body);
    if (j.is_object() && j.contains("error") && j["error"].is_object()) {
      server_message = j["error"].value("message", "");
      server_status = j["error"].value("status", "");
    }
  } catch (const std::exception&) {
    server_message = std::string(body);
  }
  std::string detail = server_message.empty() ? "" : fmt::format(": {}", Excerpt(server_message));
  std::string msg =
      fmt::format("Pub/Sub {} {} failed with HTTP {}{}", what, resource, http_status, detail);
  switch (http_status) {
    case 400:
      if (server_status == "FAILED_PRECONDITION") return FailedPreconditionError(std::move(msg));
      if (server_status == "OUT_OF_RANGE") return OutOfRangeError(std::move(msg));
      return InvalidArgumentError(std::move(msg));
    case 401:
      return UnauthenticatedError(std::move(msg));
    case 403:
      return PermissionDeniedError(std::move(msg));
    case 404:
      return NotFoundError(
          fmt::format("Pub/Sub {} not found ({} failed{})", resource, what, detail));
    case 409:
      return AlreadyExistsError(std::move(msg));
    case 429:
      return ResourceExhaustedError(std::move(msg));
    default:
      if (http_status >= 500) return UnavailableError(std::move(msg));
      return Status(StatusCode::kUnknown, std::move(msg));
  }
}

bool IsRetryableHttp(int http_status) {
  return http_status == 429 || http_status == 500 || http_status == 502 || http_status == 503 ||
         http_status == 504;
}

Micros BackoffCeiling(int retry, Micros initial, Micros max_backoff) {
  Micros ceiling = initial;
  for (int i = 1; i < retry && ceiling < max_backoff; ++i) ceiling *= 2;
  return std::min(ceiling, max_backoff);
}

std::string EmulatorEndpoint(std::string_view host) {
  std::string h(host);
  while (!h.empty() && h.back() == '/') h.pop_back();
  if (h.starts_with("http://") || h.starts_with("https://")) return h;
  return "http://" + h;
}

}  // namespace ch::pubsub_internal
