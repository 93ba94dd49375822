// EmbeddedChangeBus: a durable queue in one SQLite file, the change bus of the embedded setup
// (one machine, no servers) -- notify-mode capture publishes to it and the publisher workers pull
// from it, in one process or in several processes sharing the file.
//
// Semantics: those of InMemoryChangeBus (in_memory_change_bus.h), kept in the file:
//   - Publish commits one SQLite transaction (synchronous=FULL by default): when it returns OK
//     the messages survive a crash of the process or of the machine;
//   - each subscription keeps its own copy of every message published after it was created; a
//     message is deleted once every subscription has acknowledged it;
//   - leases (lease deadline and attempt count) are stored in the file, so a message leased by a
//     process that dies is delivered again -- to any process -- once its deadline passes;
//   - ordered subscriptions lease a key to one puller at a time and deliver it in publish order;
//   - ack ids are "<message id>:<attempt>": stale after the next delivery (then ignored).
// Deadlines compare the injected clock across processes: every process sharing a file must use
// the system clock (the default).
//
// Pull waits by polling the file (every `poll_interval` at most) and wakes at once for messages
// published or nacked through the same object. A pull scans at most `scan_limit` waiting
// messages, so when the head of the queue belongs to keys that are leased elsewhere it may
// return fewer messages than are due (progress resumes as those keys are acknowledged).
//
// Thread-safety: safe to use from several threads (one connection behind a mutex) and from
// several processes (SQLite's file locking; every change is one IMMEDIATE transaction).
#pragma once

#include <memory>
#include <string>

#include "bus/change_bus.h"
#include "common/clock.h"

namespace ch {

struct EmbeddedChangeBusOptions {
  // The queue file; created with its schema when missing. REQUIRES: not empty.
  std::string path;
  // PRAGMA synchronous of the connection: "FULL" (power-loss safe) or "NORMAL" (crash safe; the
  // last commits may be lost on power loss). Default: "FULL".
  std::string synchronous = "FULL";
  // Longest sleep between two looks at the file while Pull waits. Default: 50 ms.
  Micros poll_interval = std::chrono::milliseconds(50);
  // Most waiting messages one Pull examines. Default: 5000.
  size_t scan_limit = 5000;
  // Where lease deadlines and publish times come from. Not owned; must outlive the bus.
  // Default: the system clock.
  const Clock* clock = &SystemClock::Default();
};

class EmbeddedChangeBus final : public ChangeBus {
 public:
  // Open (creating when missing) the queue at options.path. Fails with Unavailable when the file
  // cannot be opened, FailedPrecondition when it holds an incompatible queue schema, and
  // InvalidArgument for bad options.
  static Result<std::unique_ptr<EmbeddedChangeBus>> Open(const EmbeddedChangeBusOptions& options);
  ~EmbeddedChangeBus() override;

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

  // Return how many messages of `subscription` are not yet acknowledged. 0 when unknown.
  Result<int64_t> Unacked(std::string_view subscription);

  // The version of the file layout this build reads and writes. DO NOT CHANGE for an existing
  // layout: bump it (and migrate) when the tables change.
  static constexpr int kSchemaVersion = 1;

 private:
  struct Impl;
  explicit EmbeddedChangeBus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
