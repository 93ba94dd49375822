// The limits every ChangeBus enforces, so that a message or a name accepted by one bus is accepted
// by all of them (they are Google Cloud Pub/Sub's limits; the embedded and in-memory buses check
// the same ones instead of failing later in production).
//
// Thread-safety: constants and pure functions.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

#include "bus/change_bus.h"
#include "common/status.h"

namespace ch {

// Bytes of one message: data + ordering key + attribute keys and values. Pub/Sub's limit.
inline constexpr size_t kMaxBusMessageBytes = size_t{10} * 1024 * 1024;
inline constexpr size_t kMaxBusAttributes = 100;
inline constexpr size_t kMaxBusAttributeKeyBytes = 256;
inline constexpr size_t kMaxBusAttributeValueBytes = 1024;
inline constexpr size_t kMaxBusOrderingKeyBytes = 1024;
// Longest lease (ack deadline or extension) any bus grants.
inline constexpr Micros kMaxBusAckDeadline = std::chrono::seconds(600);
// Shortest ack deadline Pub/Sub lets a subscription have.
inline constexpr Micros kMinSubscriptionAckDeadline = std::chrono::seconds(10);

// Return the size of `m` as counted against kMaxBusMessageBytes.
size_t BusMessageBytes(const BusMessage& m);

// Check a topic or subscription name: 3-255 characters, starting with a letter, made of letters,
// digits and - _ . ~ + %, not starting with "goog". `kind` ("topic", "subscription") names it in
// the error. Fails with InvalidArgument naming the name and the rule it breaks.
Status ValidateBusName(std::string_view kind, std::string_view name);

// Check every message against the limits above (see change_bus.h). Fails with InvalidArgument
// naming the index of the first bad message and what is wrong with it.
Status ValidateMessages(std::span<const BusMessage> messages);

// Check a lease duration: REQUIRES 0 <= d <= 600 s (and > 0 when `allow_zero` is false).
// Fails with InvalidArgument naming `what` and the value.
Status ValidateLeaseDuration(std::string_view what, Micros d, bool allow_zero);

}  // namespace ch
