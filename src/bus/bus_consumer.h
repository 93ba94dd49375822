// BusConsumer: the at-least-once consumer loop every worker runs on a ChangeBus subscription.
//
//   Pull a batch -> call the batch handler -> settle every delivery:
//     OK                                   Ack
//     retryable failure (IsRetryable)      Nack, and Nack every LATER delivery of the batch with
//                                          the same ordering key (whatever its status), so the
//                                          key is redelivered in order (the Pub/Sub emulator
//                                          reorders a key when only one message is nacked:
//                                          facts.md)
//     non-retryable failure, or a          publish the message to the dead-letter topic with
//     retryable one on its max_attempts-th attributes dead_letter_reason, dead_letter_attempts,
//     attempt                              source_subscription, dead_letter_message_id; then Ack
//                                          it: the rest of the stream goes on
//   While the handler (and the settling) runs longer than extend_fraction of the ack deadline,
//   a background thread extends the leases of the whole batch (ExtendDeadline), again and again.
//
// Attempts: the bus's delivery_attempt when it reports one (> 0); otherwise the consumer counts
// the deliveries of each message_id itself, in a map bounded to attempt_memory entries (oldest
// forgotten first). Counting is per consumer process: with several consumers on one
// subscription a poison message may take up to max_attempts deliveries per consumer.
//
// Delivery semantics: at least once. The handler may see a message again after it returned OK
// (a lost ack, a redelivery) and must be idempotent -- the history store is, on
// (campaign_id, version). Messages of one key arrive in publish order on first delivery; after
// a retryable failure they come again from the failed one on. Nothing is acknowledged before
// the handler said OK or the message is safely on the dead-letter topic (when that publish
// fails, the message is nacked instead).
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
#include "common/status.h"

namespace ch {

// Return one Status per delivery, in the same order. An exception escaping the handler, or a
// vector of the wrong length, fails the whole batch with a retryable Internal error.
using BatchHandler = std::function<std::vector<Status>(std::span<const Delivery>)>;

struct BusConsumerOptions {
  // The bus. REQUIRES: not null; must outlive the consumer.
  ChangeBus* bus = nullptr;
  // The subscription to consume. REQUIRES: exists (EnsureSubscription).
  std::string subscription;
  // Where poison messages go. REQUIRES: not empty. Created on first use when missing.
  std::string dead_letter_topic;
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
  // Deliveries of a message that fails retryably before it is dead-lettered. REQUIRES: >= 1.
  // Default: 5.
  int max_attempts = 5;
  // Backoff after a failed pull or settle: uniform in [0, min(max, initial * 2^(n-1))] after
  // the n-th consecutive failure. Defaults: 100 ms and 10 s.
  Micros initial_backoff = std::chrono::milliseconds(100);
  Micros max_backoff = std::chrono::seconds(10);
  // Message ids whose attempts are remembered when the bus does not count them. Default: 100000.
  size_t attempt_memory = 100000;
};

struct BusConsumerStats {
  // Handler calls (non-empty pulls).
  int64_t batches = 0;
  // Deliveries handed to the handler.
  int64_t delivered = 0;
  int64_t acked = 0;
  int64_t nacked = 0;
  int64_t dead_lettered = 0;
  // Failed pulls, acks, nacks, extensions and dead-letter publishes; failed handler batches.
  int64_t errors = 0;
  // ExtendDeadline calls made while a handler was slow.
  int64_t extensions = 0;
};

class BusConsumer {
 public:
  // Check the options. No I/O. Fails with InvalidArgument naming the bad option.
  static Result<std::unique_ptr<BusConsumer>> Create(const BusConsumerOptions& options,
                                                     BatchHandler handler);
  BusConsumer(const BusConsumer&) = delete;
  BusConsumer& operator=(const BusConsumer&) = delete;
  // Stops the loop (as Stop) when it runs.
  ~BusConsumer();

  // Run the loop on a background thread until Stop(). Errors do not end the loop: they are
  // counted, kept in last_error() and followed by a backoff. Fails with FailedPrecondition when
  // already running.
  Status Start();
  // Ask the loop to end, let it finish the batch in flight (handler and settling), and return
  // once it has. No-op when not running. Safe to call concurrently and repeatedly.
  void Stop();
  bool running() const;

  // Pull and process one batch on the calling thread. Returns how many deliveries were handled
  // (0 when nothing arrived within pull_wait). Fails when the pull or the settling failed (the
  // error is also counted and kept); FailedPrecondition while the loop runs.
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
