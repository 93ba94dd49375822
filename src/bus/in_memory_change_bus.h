// InMemoryChangeBus: the reference ChangeBus, held in memory, for unit tests and the contract
// suite. It implements the interface's semantics exactly:
//   - topics and subscriptions (a subscription gets the messages published after it exists);
//   - leases with ack deadlines measured on an injected Clock (a FakeClock makes redelivery
//     deterministic: advance it past the deadline and the message is due again);
//   - redelivery after Nack, after ExtendDeadline(0) or when the lease expires, with
//     delivery_attempt counting 1, 2, 3, ...;
//   - ordered subscriptions: messages of one ordering key are delivered in publish order, and a
//     key is leased to one puller at a time (while any message of the key is leased, later ones
//     wait) -- the order a consumer sees on first delivery is the publish order;
//   - the limits of bus_limits.h.
// AllMessages() dumps what was published, deterministically, for assertions.
//
// Pull waits in real time (a condition variable woken by Publish, Nack and Ack) even when the
// clock is a FakeClock; lease expiry is checked against the injected clock at every call.
// Nothing is durable: everything is lost with the object.
//
// Thread-safety: safe to use from several threads (one mutex).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "bus/change_bus.h"
#include "common/clock.h"

namespace ch {

class InMemoryChangeBus final : public ChangeBus {
 public:
  // REQUIRES: `clock` outlives the bus.
  explicit InMemoryChangeBus(const Clock& clock = SystemClock::Default());
  ~InMemoryChangeBus() override;

  Status EnsureTopic(std::string_view topic) override;
  Status EnsureSubscription(std::string_view subscription, std::string_view topic,
                            const SubscriptionOptions& options) override;
  Status Publish(std::string_view topic, std::span<const BusMessage> messages) override;
  Result<std::vector<Delivery>> Pull(std::string_view subscription, size_t max,
                                     Micros wait) override;
  Status Ack(std::string_view subscription, std::span<const std::string> ack_ids) override;
  Status Nack(std::string_view subscription, std::span<const std::string> ack_ids) override;
  Status ExtendDeadline(std::string_view subscription, std::span<const std::string> ack_ids,
                        Micros deadline) override;

  // One published message as the bus recorded it.
  struct PublishedMessage {
    std::string topic;
    std::string message_id;
    Timestamp publish_time{};
    BusMessage message;
    bool operator==(const PublishedMessage&) const = default;
  };

  // Return every message published to `topic` (whether or not it had subscriptions), in publish
  // order. Empty for an unknown topic.
  std::vector<PublishedMessage> AllMessages(std::string_view topic) const;
  // Return every message of every topic: topics in name order, each in publish order.
  std::vector<PublishedMessage> AllMessages() const;

  // Return how many messages of `subscription` are not yet acknowledged (leased or waiting).
  // 0 for an unknown subscription.
  size_t Unacked(std::string_view subscription) const;
  // Return how many messages of `subscription` are leased right now.
  size_t Leased(std::string_view subscription) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
