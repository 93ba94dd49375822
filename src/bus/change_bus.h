// ChangeBus: the transport between capture and the publisher workers: an embedded durable queue
// (EmbeddedChangeBus, a SQLite file), Google Cloud Pub/Sub (PubSubChangeBus) or, for unit tests,
// InMemoryChangeBus.
//
// Delivery semantics: at least once. Publish returns OK only once the bus has durably accepted
// every message. A pulled message stays leased until its ack deadline; unacknowledged messages
// are delivered again (delivery_attempt counts up). Messages with the same ordering key are
// delivered in publish order on first delivery; consumers must tolerate reordering on
// redelivery (they are idempotent on (campaign_id, version)).
//
// Thread-safety: safe to use from several threads.
#pragma once

#include <cstddef>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct BusMessage {
  std::string data;
  // Messages with the same key keep their order (campaign id for change messages).
  std::string ordering_key;
  std::map<std::string, std::string> attributes;
  bool operator==(const BusMessage&) const = default;
};

struct Delivery {
  // Opaque handle for Ack / Nack / ExtendDeadline.
  std::string ack_id;
  BusMessage message;
  // 1 on first delivery.
  int delivery_attempt = 1;
  Timestamp publish_time{};
};

struct SubscriptionOptions {
  // Default: 60 s.
  Micros ack_deadline = std::chrono::seconds(60);
  // Deliver messages with the same ordering key in order. Default: true.
  bool ordered = true;
};

class ChangeBus {
 public:
  ChangeBus() = default;
  ChangeBus(const ChangeBus&) = delete;
  ChangeBus& operator=(const ChangeBus&) = delete;
  virtual ~ChangeBus() = default;

  // Create the topic when missing. OK when it exists.
  virtual Status EnsureTopic(std::string_view topic) = 0;
  // Create the subscription on `topic` when missing. OK when it exists.
  virtual Status EnsureSubscription(std::string_view subscription, std::string_view topic,
                                    const SubscriptionOptions& options) = 0;

  // Publish durably. Fails (Unavailable, retryable) without a partial success being reported as
  // success; a retry may duplicate messages that were in fact accepted.
  virtual Status Publish(std::string_view topic, std::span<const BusMessage> messages) = 0;

  // Lease up to `max` messages, waiting up to `wait` for the first one.
  virtual Result<std::vector<Delivery>> Pull(std::string_view subscription, size_t max,
                                             Micros wait) = 0;
  // Acknowledge: the messages will not be delivered again.
  virtual Status Ack(std::string_view subscription, std::span<const std::string> ack_ids) = 0;
  // Negative-acknowledge: deliver again as soon as possible.
  virtual Status Nack(std::string_view subscription, std::span<const std::string> ack_ids) = 0;
  // Extend the lease of messages still being worked on to `deadline` from now.
  virtual Status ExtendDeadline(std::string_view subscription,
                                std::span<const std::string> ack_ids, Micros deadline) = 0;
};

}  // namespace ch
