// ChangeBus: the transport between capture and the publisher workers: an embedded durable queue
// (EmbeddedChangeBus, a SQLite file), Google Cloud Pub/Sub (PubSubChangeBus) or, for unit tests,
// InMemoryChangeBus.
//
// Delivery semantics: at least once. Publish returns OK only once the bus has durably accepted
// every message. A pulled message stays leased until its ack deadline; unacknowledged messages
// are delivered again (delivery_attempt counts up where the bus can tell). Messages with the same
// ordering key are delivered in publish order on first delivery; consumers must tolerate
// reordering on redelivery (they are idempotent on (campaign_id, version)). BusConsumer
// (bus_consumer.h) is the loop every worker uses on top of this interface: it nacks the later
// messages of a key whose earlier message failed, and dead-letters poison messages.
//
// Names: topics and subscriptions are named as in Pub/Sub (3-255 characters, starting with a
// letter; letters, digits and - _ . ~ + %; not starting with "goog"), so a name that works on
// one bus works on every bus (ValidateBusName in bus_limits.h).
//
// Limits (every bus, ValidateMessages in bus_limits.h): a message needs data or attributes;
// at most 10 MiB per message; attribute keys 1-256 bytes, values <= 1024 bytes, <= 100 of them;
// ordering key <= 1024 bytes; attributes and ordering keys are UTF-8 (data is arbitrary bytes).
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
  // Opaque handle for Ack / Nack / ExtendDeadline. Valid for this delivery: once the message has
  // been delivered again, a bus may ignore the old handle.
  std::string ack_id;
  BusMessage message;
  // 1 on first delivery, 2 on the first redelivery, ... 0 when the bus cannot tell (Pub/Sub
  // reports it only for subscriptions with a dead-letter policy): count per message_id then.
  int delivery_attempt = 1;
  Timestamp publish_time{};
  // Bus-assigned id of the published message: the same on every redelivery, unique within the
  // topic.
  std::string message_id;
};

struct SubscriptionOptions {
  // How long a pulled message stays leased before it is delivered again.
  // REQUIRES: > 0 and <= 600 s. Pub/Sub raises anything below 10 s to 10 s. Default: 60 s.
  Micros ack_deadline = std::chrono::seconds(60);
  // Deliver messages with the same ordering key in order. Default: true.
  // On the embedded and in-memory buses an ordered subscription leases a key to one puller at a
  // time: while any message of a key is leased, later messages of that key wait.
  bool ordered = true;
};

class ChangeBus {
 public:
  ChangeBus() = default;
  ChangeBus(const ChangeBus&) = delete;
  ChangeBus& operator=(const ChangeBus&) = delete;
  virtual ~ChangeBus() = default;

  // Create the topic when missing. OK when it exists.
  // Fails: InvalidArgument for a bad name; FailedPrecondition when it is missing and the bus may
  // not create it (PubSubOptions::create_missing); Unavailable when the bus cannot be reached.
  virtual Status EnsureTopic(std::string_view topic) = 0;
  // Create the subscription on `topic` when missing. OK when it exists on `topic` with the same
  // ordering. Messages published before a subscription exists are not delivered to it.
  // Fails: NotFound when the topic does not exist; FailedPrecondition when the subscription
  // exists on another topic or with other ordering (naming both), or is missing and may not be
  // created; InvalidArgument for bad names or options; Unavailable.
  virtual Status EnsureSubscription(std::string_view subscription, std::string_view topic,
                                    const SubscriptionOptions& options) = 0;

  // Publish durably, keeping the order of `messages` for each ordering key. Every subscription
  // of the topic gets every message. Fails (Unavailable, retryable) without a partial success
  // being reported as success; a retry may duplicate messages that were in fact accepted.
  // Fails: NotFound when the topic does not exist; InvalidArgument when a message breaks the
  // limits above (nothing is published then).
  virtual Status Publish(std::string_view topic, std::span<const BusMessage> messages) = 0;

  // Lease up to `max` messages, waiting up to `wait` for the first one. Returns an empty vector
  // when nothing arrived in time. A bus may return fewer than `max` although more are waiting
  // (Pub/Sub: at most 100 per pull on the emulator, fewer when messages are large).
  // Fails: NotFound when the subscription does not exist; Unavailable.
  virtual Result<std::vector<Delivery>> Pull(std::string_view subscription, size_t max,
                                             Micros wait) = 0;
  // Acknowledge: the messages will not be delivered again. Unknown or expired handles are
  // ignored (the message may then be delivered again: at least once).
  virtual Status Ack(std::string_view subscription, std::span<const std::string> ack_ids) = 0;
  // Negative-acknowledge: deliver again as soon as possible. Unknown handles are ignored.
  virtual Status Nack(std::string_view subscription, std::span<const std::string> ack_ids) = 0;
  // Extend the lease of messages still being worked on to `deadline` from now.
  // REQUIRES: 0 <= deadline <= 600 s (0 is a nack). Unknown handles are ignored.
  virtual Status ExtendDeadline(std::string_view subscription, std::span<const std::string> ack_ids,
                                Micros deadline) = 0;
};

}  // namespace ch
