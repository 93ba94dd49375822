// BusConsumer: the at-least-once consumer loop every worker runs on a ChangeBus subscription.
//
//   Pull a batch -> call the batch handler -> settle every delivery by whose fault a failure is
//   (ClassifyFailure in common/status.h):
//     OK                                   Ack
//     kDependency (the history store, the  HOLD: keep the delivery leased (extended again and
//     campaign database, ... is down, full again), back off, and call the handler with the held
//     read-only, refusing)                 deliveries again -- before pulling anything new --
//                                          until it succeeds. Never dead-lettered; a hold is not
//                                          an attempt.
//     kUncertain (Internal, Unknown)       Nack; dead-letter on the max_attempts-th attempt
//     kBadMessage (malformed, inconsistent) publish the message to the dead-letter topic with
//                                          attributes dead_letter_reason, dead_letter_attempts,
//                                          source_subscription, dead_letter_message_id; then Ack
//                                          it: the rest of the stream goes on
//   A delivery after a held or nacked one with the same ordering key is held or nacked with it
//   (whatever its own status), so the key is handled again in order (the Pub/Sub emulator
//   reorders a key when only one message is nacked: facts.md). A dead-letter publish that fails
//   (the bus is a dependency too) holds the message instead.
//
//   While the handler runs, and while deliveries are held, a background thread extends their
//   leases every extend_fraction of the ack deadline.
//
// Backoff: after a failed pull or settle, a held batch, or a batch with nacked deliveries, the
// loop pauses for a time drawn uniformly from [c/2, c] with c = min(max_backoff,
// initial_backoff * 2^(n-1)) after the n-th consecutive such try; a clean try resets n.
//
// Blocked: while the last try failed for a dependency reason (the bus, or kDependency from the
// handler) the consumer is *blocked*: stats() reports it with the error, since when and the
// current backoff, and the log says so once when it starts (error), when the error's code changes
// (warn) and when it clears (warn) -- not once per retry.
//
// Attempts: the bus's delivery_attempt when it reports one (> 0); otherwise the consumer counts
// the deliveries of each message_id itself, in a map bounded to attempt_memory entries (oldest
// forgotten first). Deliveries this consumer released on Stop() while it held them for a
// dependency are not counted. Counting is per consumer process: with several consumers on one
// subscription a message may take up to max_attempts deliveries per consumer.
//
// Delivery semantics: at least once. The handler may see a message again after it returned OK
// (a lost ack, a redelivery, a lease lost while held) and must be idempotent -- the history store
// is, on (campaign_id, version). Nothing is acknowledged before the handler said OK or the
// message is safely on the dead-letter topic.
//
// Thread-safety: Start/Stop/stats/last_error may be called from any thread. The handler is
// called from one thread at a time (the loop thread, or the caller of RunOnce).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bus/change_bus.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

// Return one Status per delivery, in the same order. An exception escaping the handler, or a
// vector of the wrong length, fails the whole batch with an Internal error (kUncertain).
using BatchHandler = std::function<std::vector<Status>(std::span<const Delivery>)>;

struct BusConsumerOptions {
  // The bus. REQUIRES: not null; must outlive the consumer.
  ChangeBus* bus = nullptr;
  // The subscription to consume. REQUIRES: exists (EnsureSubscription).
  std::string subscription;
  // Where poison messages go. REQUIRES: not empty. Created on first use when missing.
  std::string dead_letter_topic;
  // A subscription on dead_letter_topic that keeps what is dead-lettered until someone reads it
  // (`campaign-history dead-letters`): Pub/Sub delivers a message only to the subscriptions that
  // exist when it is published. Created together with the topic when the consumer creates it.
  // Default: empty (none).
  std::string dead_letter_subscription;
  // Most deliveries per Pull and per handler call. Default: 100.
  size_t batch_size = 100;
  // How long one Pull waits for the first message. Stop() may take this long. Default: 500 ms.
  Micros pull_wait = std::chrono::milliseconds(500);
  // The subscription's ack deadline; each extension renews the leases for this long.
  // REQUIRES: > 0 and <= 600 s. Default: 60 s.
  Micros ack_deadline = std::chrono::seconds(60);
  // Extend the leases each time the batch has been held this fraction of ack_deadline, or of
  // kMinSubscriptionAckDeadline when that is shorter (the subscription's own deadline, which
  // gives the first lease, may be shorter than ours).
  // REQUIRES: in (0, 1). Default: 0.5.
  double extend_fraction = 0.5;
  // Attempts at a message that fails with kUncertain before it is dead-lettered. REQUIRES: >= 1.
  // Default: 5.
  int max_attempts = 5;
  // Backoff (see the file comment). REQUIRES: 0 < initial_backoff <= max_backoff.
  // Defaults: 100 ms and 10 s.
  Micros initial_backoff = std::chrono::milliseconds(100);
  Micros max_backoff = std::chrono::seconds(10);
  // Message ids whose attempts are remembered when the bus does not count them. Default: 100000.
  size_t attempt_memory = 100000;
  // The time reported in BusConsumerStats::blocked_since. Not owned; must outlive the consumer.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
};

struct BusConsumerStats {
  // Handler calls (non-empty pulls and retries of held deliveries).
  int64_t batches = 0;
  // Deliveries pulled from the bus (a held delivery counts once).
  int64_t delivered = 0;
  int64_t acked = 0;
  int64_t nacked = 0;
  int64_t dead_lettered = 0;
  // Failed pulls, acks, nacks, extensions and dead-letter publishes; failed handler batches.
  int64_t errors = 0;
  // ExtendDeadline calls made while a handler was slow or deliveries were held.
  int64_t extensions = 0;
  // Tries that failed for a dependency reason (a failed pull or settle, a held batch).
  int64_t dependency_failures = 0;
  // Backoff pauses the loop took.
  int64_t backoffs = 0;

  // The state now. Blocked: the last try failed for a dependency reason; the consumer retries
  // with backoff and acknowledges nothing new until it clears.
  bool blocked = false;
  // What blocks it (OK when not blocked).
  Status blocking_error;
  // When the blocked state began (the clock of the options); meaningful only while blocked.
  Timestamp blocked_since{};
  // Consecutive failed tries so far (0 when not blocked).
  int64_t retries = 0;
  // Deliveries held for a retry right now.
  int64_t held = 0;
  // The ceiling of the current backoff pause (0 when not backing off).
  Micros backoff{0};
};

class BusConsumer {
 public:
  // Check the options. No I/O. Fails with InvalidArgument naming the bad option.
  static Result<std::unique_ptr<BusConsumer>> Create(const BusConsumerOptions& options,
                                                     BatchHandler handler);
  BusConsumer(const BusConsumer&) = delete;
  BusConsumer& operator=(const BusConsumer&) = delete;
  // Stops the loop (as Stop) when it runs, and releases held deliveries.
  ~BusConsumer();

  // Run the loop on a background thread until Stop(). Errors do not end the loop: they are
  // counted, kept in last_error() and followed by a backoff. Fails with FailedPrecondition when
  // already running.
  Status Start();
  // Ask the loop to end, let it finish the try in flight (handler and settling), nack what it
  // holds (those deliveries are not counted as attempts) and return once it has. No-op when not
  // running. Safe to call concurrently and repeatedly.
  void Stop();
  bool running() const;

  // Process one batch on the calling thread: the held deliveries when there are any, else a new
  // pull. Returns how many deliveries were handled (0 when nothing arrived within pull_wait).
  // Fails when the pull or the settling failed, or with the handler's kDependency error when
  // deliveries are now held (the next RunOnce retries them); the error is also counted and kept.
  // Does not back off. FailedPrecondition while the loop runs.
  Result<size_t> RunOnce();

  BusConsumerStats stats() const;
  // The most recent error (OK when none yet).
  Status last_error() const;

 private:
  struct Impl;
  explicit BusConsumer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
