#include "bus/bus_limits.h"

#include <fmt/format.h>

#include "common/text.h"

namespace ch {

size_t BusMessageBytes(const BusMessage& m) {
  size_t n = m.data.size() + m.ordering_key.size();
  for (const auto& [k, v] : m.attributes) n += k.size() + v.size();
  return n;
}

Status ValidateBusName(std::string_view kind, std::string_view name) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(fmt::format("invalid {} name '{}': {}", kind, name, why));
  };
  if (name.size() < 3 || name.size() > 255) return bad("must be 3-255 characters long");
  char first = name.front();
  if (!((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z'))) {
    return bad("must start with a letter");
  }
  if (name.starts_with("goog")) return bad("must not start with 'goog'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~' || c == '+' || c == '%';
    if (!ok) return bad("may contain only letters, digits and - _ . ~ + %");
  }
  return Status::OK();
}

Status ValidateMessages(std::span<const BusMessage> messages) {
  for (size_t i = 0; i < messages.size(); ++i) {
    const BusMessage& m = messages[i];
    auto bad = [&](const std::string& why) {
      return InvalidArgumentError(fmt::format("message {} of {}: {}", i, messages.size(), why));
    };
    if (m.data.empty() && m.attributes.empty()) return bad("has neither data nor attributes");
    if (size_t n = BusMessageBytes(m); n > kMaxBusMessageBytes) {
      return bad(fmt::format("is {} bytes, more than the limit of {}", n, kMaxBusMessageBytes));
    }
    if (m.ordering_key.size() > kMaxBusOrderingKeyBytes) {
      return bad(fmt::format("ordering key is {} bytes, more than {}", m.ordering_key.size(),
                             kMaxBusOrderingKeyBytes));
    }
    if (!IsValidUtf8(m.ordering_key)) return bad("ordering key is not valid UTF-8");
    if (m.attributes.size() > kMaxBusAttributes) {
      return bad(
          fmt::format("has {} attributes, more than {}", m.attributes.size(), kMaxBusAttributes));
    }
    for (const auto& [k, v] : m.attributes) {
      if (k.empty() || k.size() > kMaxBusAttributeKeyBytes) {
        return bad(fmt::format("an attribute key is {} bytes; keys must be 1-{} bytes", k.size(),
                               kMaxBusAttributeKeyBytes));
      }
      if (!IsValidUtf8(k)) return bad("an attribute key is not valid UTF-8");
      if (k.starts_with("goog"))
        return bad(fmt::format("attribute key '{}' starts with 'goog'", k));
      if (v.size() > kMaxBusAttributeValueBytes) {
        return bad(fmt::format("attribute '{}' is {} bytes, more than {}", k, v.size(),
                               kMaxBusAttributeValueBytes));
      }
      if (!IsValidUtf8(v)) return bad(fmt::format("attribute '{}' is not valid UTF-8", k));
    }
  }
  return Status::OK();
}

Status ValidateLeaseDuration(std::string_view what, Micros d, bool allow_zero) {
  if (d < Micros(0) || d > kMaxBusAckDeadline || (!allow_zero && d == Micros(0))) {
    return InvalidArgumentError(fmt::format("{} must be {} 600 s, got {} us", what,
                                            allow_zero ? "between 0 and" : "above 0 and at most",
                                            d.count()));
  }
  return Status::OK();
}

}  // namespace ch
