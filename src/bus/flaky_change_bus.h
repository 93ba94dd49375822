// FlakyChangeBus: a decorator that injects the faults a real bus shows, for the unit tests of
// code built on ChangeBus (publishers, BusConsumer, workers), in the style of LevelDB's SpecialEnv.
//
//   - Publish fails with Unavailable, either before anything reached the inner bus (a dropped
//     publish) or after the inner bus accepted it (a lost reply: a retry then duplicates);
//   - Pull fails with Unavailable, or returns a delivery twice (a duplicate with the same
//     handle, right away or in a later Pull, as after a lost ack);
//   - redeliveries are held back and handed out after later messages (what the Pub/Sub emulator
//     does: m3, m4, m5, m2 after m2 was nacked -- facts.md);
//   - Ack fails with Unavailable (the inner bus never sees it: the message is redelivered).
// Faults are chosen by a seeded generator (deterministic for a given call sequence) or forced
// one at a time with FailNext*(). Everything else is forwarded unchanged.
//
// Thread-safety: safe to use from several threads when the inner bus is.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bus/change_bus.h"

namespace ch {

struct FlakyChangeBusOptions {
  // Probability that a Publish call fails with Unavailable without reaching the inner bus.
  // Default: 0.
  double drop_publish = 0;
  // Probability that a Publish call reaches the inner bus but still reports Unavailable.
  // Default: 0.
  double fail_after_publish = 0;
  // Probability that a Pull call fails with Unavailable (nothing is leased). Default: 0.
  double fail_pull = 0;
  // Probability that a delivery is handed out twice. Default: 0.
  double duplicate_delivery = 0;
  // Probability that a redelivery (delivery_attempt >= 2) is held back and handed out at the end
  // of the next Pull instead. Default: 0.
  double hold_back_redelivery = 0;
  // Probability that an Ack call fails with Unavailable without reaching the inner bus.
  // Default: 0.
  double fail_ack = 0;
  // Seed of the fault generator. Default: 1.
  uint64_t seed = 1;
};

struct FlakyChangeBusStats {
  int64_t dropped_publishes = 0;
  int64_t failed_after_publish = 0;
  int64_t failed_pulls = 0;
  int64_t duplicated_deliveries = 0;
  int64_t held_back_redeliveries = 0;
  int64_t failed_acks = 0;
};

class FlakyChangeBus final : public ChangeBus {
 public:
  // REQUIRES: `inner` outlives the decorator.
  FlakyChangeBus(ChangeBus& inner, const FlakyChangeBusOptions& options);
  ~FlakyChangeBus() override;

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

  // Force the next `n` Publish calls to fail without reaching the inner bus.
  void FailNextPublishes(int n);
  // Force the next `n` Pull calls to fail.
  void FailNextPulls(int n);
  // Force the next `n` Ack calls to fail.
  void FailNextAcks(int n);
  // Replace the probabilities (the generator keeps its state).
  void SetOptions(const FlakyChangeBusOptions& options);

  FlakyChangeBusStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
