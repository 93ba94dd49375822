// Pure helpers of PubSubChangeBus (encoding, batching, error mapping, backoff), separated so the
// unit tests can check them without a server. Never included from outside src/bus.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bus/change_bus.h"
#include "common/status.h"

namespace ch::pubsub_internal {

// Standard base64 (RFC 4648, with padding), as Pub/Sub's JSON carries `data`.
std::string Base64Encode(std::string_view in);
// Decode standard base64; also accepts missing padding. Fails with InvalidArgument.
Result<std::string> Base64Decode(std::string_view in);

// Split `messages` into consecutive [begin, end) ranges of at most `max_messages` messages and
// at most `max_bytes` bytes (BusMessageBytes plus a per-message allowance); a single message
// larger than `max_bytes` gets a range of its own.
std::vector<std::pair<size_t, size_t>> PlanBatches(std::span<const BusMessage> messages,
                                                   size_t max_messages, size_t max_bytes);

// The JSON body of a publish request for `messages`. Fails with InvalidArgument when an
// attribute or ordering key cannot be encoded.
Result<std::string> PublishBody(std::span<const BusMessage> messages);

// Parse a pull response ({"receivedMessages": [...]}); messages without deliveryAttempt get 0.
// Fails with Internal for a malformed body.
Result<std::vector<Delivery>> ParsePullResponse(std::string_view body);

// Translate a non-2xx HTTP answer into a Status: 400 InvalidArgument (or the code the body's
// "status" names: FAILED_PRECONDITION, OUT_OF_RANGE), 401 Unauthenticated, 403 PermissionDenied,
// 404 NotFound naming `resource`, 409 AlreadyExists, 429 ResourceExhausted, 5xx Unavailable,
// anything else Unknown. The message carries the server's own message when the body has one.
Status StatusFromHttp(int http_status, std::string_view body, std::string_view what,
                      std::string_view resource);

// True for the answers worth repeating: 429, 500, 502, 503, 504.
bool IsRetryableHttp(int http_status);

// The upper bound of the backoff before retry `retry` (1-based):
// min(max_backoff, initial * 2^(retry-1)). The caller sleeps a uniform fraction of it.
Micros BackoffCeiling(int retry, Micros initial, Micros max_backoff);

// "http://HOST" from PUBSUB_EMULATOR_HOST's value (which may already carry a scheme).
std::string EmulatorEndpoint(std::string_view host);

}  // namespace ch::pubsub_internal
