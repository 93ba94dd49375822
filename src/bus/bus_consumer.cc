#include "bus/bus_consumer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>

#include "bus/bus_limits.h"

namespace ch {

namespace {

// Cut `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string TruncateUtf8(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

}  // namespace

struct BusConsumer::Impl {
  BusConsumerOptions options;
  BatchHandler handler;
  Clock* clock = nullptr;

  // Per message id: deliveries counted here (for buses that do not count them) and deliveries
  // not to count (released on Stop while held for a dependency). Bounded, oldest first out.
  struct Counted {
    int deliveries = 0;
    int excused = 0;
    uint64_t seq = 0;  // first seen; the key of by_seq
  };
  std::mutex attempts_mu;
  std::unordered_map<std::string, Counted> attempts;
  std::map<uint64_t, std::string> by_seq;
  uint64_t next_seq = 0;

  // Lease keeper: extends the leases of the batch in flight and of held deliveries.
  std::mutex keep_mu;
  std::condition_variable keep_cv;
  std::vector<std::string> keep_ids;
  bool keep_active = false;
  uint64_t keep_generation = 0;
  bool keep_shutdown = false;
  std::thread keeper;

  // Loop lifecycle.
  mutable std::mutex life_mu;  // serializes Start/Stop
  std::thread loop;
  std::atomic<bool> running{false};
  std::mutex stop_mu;
  std::condition_variable stop_cv;
  bool stop_requested = false;
  std::mutex run_mu;  // one try at a time (loop or RunOnce); guards `held`

  // Deliveries held for a dependency failure, with their attempt counts, in batch order.
  std::vector<Delivery> held;
  std::vector<int> held_attempts;

  std::atomic<int64_t> batches{0}, delivered{0}, acked{0}, nacked{0}, dead_lettered{0}, errors{0},
      extensions{0}, dependency_failures{0}, backoffs{0}, held_count{0};
  mutable std::mutex error_mu;
  Status last_error;

  // The blocked state (see the header).
  mutable std::mutex state_mu;
  bool blocked = false;
  Status blocking_error;
  Timestamp blocked_since{};
  std::chrono::steady_clock::time_point blocked_steady{};
  int64_t retries = 0;
  Micros backoff{0};

  void RecordError(const Status& s) {
    errors++;
    std::lock_guard lock(error_mu);
    last_error = s;
  }

  // Enter (or stay in) the blocked state because of `s`. Logs only when the state begins or the
  // error's code changes, not on every retry.
  void Block(const Status& s) {
    dependency_failures++;
    std::lock_guard lock(state_mu);
    if (!blocked) {
      blocked = true;
      blocked_since = clock->Now();
      blocked_steady = std::chrono::steady_clock::now();
      retries = 1;
      blocking_error = s;
      spdlog::error(
          "bus consumer '{}': blocked: {}; {}retrying with backoff (at most {:.1f} s apart) "
          "until it clears",
          options.subscription, s.ToString(),
          held_count > 0 ? fmt::format("holding {} message(s), ", held_count.load())
                         : std::string(),
          std::chrono::duration<double>(options.max_backoff).count());
      return;
    }
    ++retries;
    if (s.code() != blocking_error.code()) {
      spdlog::warn(
          "bus consumer '{}': still blocked after {:.1f} s, now: {}", options.subscription,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - blocked_steady).count(),
          s.ToString());
    }
    blocking_error = s;
  }

  void Unblock() {
    std::lock_guard lock(state_mu);
    backoff = Micros(0);
    if (!blocked) return;
    spdlog::warn(
        "bus consumer '{}': unblocked after {:.1f} s and {} failed tries (it was: {})",
        options.subscription,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - blocked_steady).count(),
        retries, blocking_error.ToString());
    blocked = false;
    blocking_error = Status::OK();
    retries = 0;
  }

  // The id's entry, created when missing (nullptr when nothing may be remembered).
  // REQUIRES: attempts_mu held.
  Counted* Entry(const std::string& message_id) {
    auto it = attempts.find(message_id);
    if (it != attempts.end()) return &it->second;
    if (options.attempt_memory == 0) return nullptr;
    while (attempts.size() >= options.attempt_memory && !by_seq.empty()) {
      attempts.erase(by_seq.begin()->second);  // forget the oldest
      by_seq.erase(by_seq.begin());
    }
    uint64_t seq = next_seq++;
    by_seq.emplace(seq, message_id);
    return &attempts.emplace(message_id, Counted{0, 0, seq}).first->second;
  }

  // Return which attempt at the message this delivery is: the bus's count (or ours) minus the
  // deliveries excused.
  int Attempt(const Delivery& d) {
    if (d.message_id.empty()) return std::max(1, d.delivery_attempt);
    std::lock_guard lock(attempts_mu);
    if (d.delivery_attempt > 0) {
      auto it = attempts.find(d.message_id);
      int excused = it == attempts.end() ? 0 : it->second.excused;
      return std::max(1, d.delivery_attempt - excused);
    }
    Counted* c = Entry(d.message_id);
    if (c == nullptr) return 1;
    return std::max(1, ++c->deliveries - c->excused);
  }

  // Do not count this delivery of the message as an attempt.
  void Excuse(const Delivery& d) {
    if (d.message_id.empty()) return;
    std::lock_guard lock(attempts_mu);
    if (Counted* c = Entry(d.message_id)) ++c->excused;
  }

  void ForgetAttempts(const std::string& message_id) {
    std::lock_guard lock(attempts_mu);
    auto it = attempts.find(message_id);
    if (it == attempts.end()) return;
    by_seq.erase(it->second.seq);
    attempts.erase(it);
  }

  void KeeperLoop() {
    std::unique_lock lock(keep_mu);
    // The first lease of a pulled message is the subscription's deadline, which may be shorter
    // than ours (a subscription created by another process or by hand) but never shorter than
    // Pub/Sub's minimum: renew by then too.
    auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::min(options.ack_deadline, kMinSubscriptionAckDeadline) * options.extend_fraction);
    while (!keep_shutdown) {
      if (!keep_active) {
        keep_cv.wait(lock);
        continue;
      }
      uint64_t generation = keep_generation;
      auto next = std::chrono::steady_clock::now() + interval;
      bool changed = keep_cv.wait_until(
          lock, next, [&] { return keep_shutdown || keep_generation != generation; });
      if (changed) continue;
      std::vector<std::string> ids = keep_ids;
      lock.unlock();
      Status s = options.bus->ExtendDeadline(options.subscription, ids, options.ack_deadline);
      extensions++;
      if (!s.ok()) RecordError(s.WithContext("extending leases"));
      lock.lock();
    }
  }

  void KeepLeases(const std::vector<Delivery>& batch) {
    {
      std::lock_guard lock(keep_mu);
      keep_ids.clear();
      for (const Delivery& d : batch) keep_ids.push_back(d.ack_id);
      keep_active = true;
      keep_generation++;
    }
    keep_cv.notify_all();
  }

  void ReleaseLeases() {
    {
      std::lock_guard lock(keep_mu);
      keep_active = false;
      keep_ids.clear();
      keep_generation++;
    }
    keep_cv.notify_all();
  }

  std::vector<Status> CallHandler(std::span<const Delivery> batch) {
    std::vector<Status> statuses;
    try {
      statuses = handler(batch);
    } catch (const std::exception& e) {
      statuses.assign(batch.size(), InternalError(fmt::format("handler threw: {}", e.what())));
    } catch (...) {
      statuses.assign(batch.size(), InternalError("handler threw a non-standard exception"));
    }
    if (statuses.size() != batch.size()) {
      Status s = InternalError(fmt::format("handler returned {} statuses for {} deliveries",
                                           statuses.size(), batch.size()));
      statuses.assign(batch.size(), s);
    }
    return statuses;
  }

  BusMessage DeadLetter(const Delivery& d, const Status& reason, int attempt_count) {
    BusMessage m = d.message;
    // Room for our four attributes within Pub/Sub's 100.
    while (m.attributes.size() > kMaxBusAttributes - 4) m.attributes.erase(m.attributes.begin());
    m.attributes["dead_letter_reason"] =
        TruncateUtf8(reason.ToString(), kMaxBusAttributeValueBytes);
    m.attributes["dead_letter_attempts"] = std::to_string(attempt_count);
    m.attributes["source_subscription"] = options.subscription;
    m.attributes["dead_letter_message_id"] = d.message_id;
    return m;
  }

  Status PublishDeadLetters(std::span<const BusMessage> messages) {
    Status s = options.bus->Publish(options.dead_letter_topic, messages);
    if (s.code() == StatusCode::kNotFound) {
      // Create the topic with its keeping subscription before anything is published to it:
      // Pub/Sub would deliver these messages to no one otherwise.
      RETURN_IF_ERROR(options.bus->EnsureTopic(options.dead_letter_topic));
      if (!options.dead_letter_subscription.empty()) {
        RETURN_IF_ERROR(options.bus->EnsureSubscription(
            options.dead_letter_subscription, options.dead_letter_topic, {.ordered = false}));
      }
      s = options.bus->Publish(options.dead_letter_topic, messages);
    }
    return s;
  }

  // What happens to each delivery of a handled batch.
  enum class Fate { kAck, kHold, kNack, kDeadLetter };

  struct Settled {
    Status bus_error;         // the first failed bus call (all are attempted)
    Status held_for;          // why deliveries are held (OK when none are)
    bool nacked_any = false;  // a delivery was nacked: back off before the next try
  };

  // Settle a handled batch; the deliveries to hold go to `held` (in batch order).
  Settled Settle(const std::vector<Delivery>& batch, const std::vector<Status>& statuses,
                 const std::vector<int>& attempt_counts) {
    Settled out;
    std::vector<Fate> fate(batch.size());
    std::map<std::string_view, Fate> key_fate;  // the first hold or nack of each key
    std::vector<BusMessage> dead;
    std::vector<size_t> dead_index;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Status& s = statuses[i];
      const std::string& key = batch[i].message.ordering_key;
      auto k = key.empty() ? key_fate.end() : key_fate.find(key);
      if (k != key_fate.end()) {
        fate[i] = k->second;
      } else if (s.ok()) {
        fate[i] = Fate::kAck;
      } else {
        switch (ClassifyFailure(s.code())) {
          case FailureKind::kDependency:
            fate[i] = Fate::kHold;
            if (out.held_for.ok()) out.held_for = s;
            break;
          case FailureKind::kBadMessage:
            fate[i] = Fate::kDeadLetter;
            break;
          case FailureKind::kUncertain:
            fate[i] = attempt_counts[i] < options.max_attempts ? Fate::kNack : Fate::kDeadLetter;
            break;
        }
      }
      if ((fate[i] == Fate::kHold || fate[i] == Fate::kNack) && !key.empty()) {
        key_fate.emplace(key, fate[i]);
      }
      if (fate[i] == Fate::kDeadLetter) {
        Status reason = ClassifyFailure(s.code()) == FailureKind::kUncertain
                            ? Status(s.code(), fmt::format("gave up after {} attempts: {}",
                                                           attempt_counts[i], s.message()))
                            : s;
        dead.push_back(DeadLetter(batch[i], reason, attempt_counts[i]));
        dead_index.push_back(i);
      }
    }

    auto note = [&](const Status& s, std::string_view what) {
      if (s.ok()) return;
      Status e = s.WithContext(what);
      RecordError(e);
      if (out.bus_error.ok()) out.bus_error = e;
    };
    if (!dead.empty()) {
      Status s = PublishDeadLetters(dead);
      note(s, fmt::format("publishing {} message(s) to dead-letter topic '{}'", dead.size(),
                          options.dead_letter_topic));
      for (size_t j = 0; j < dead_index.size(); ++j) {
        const Delivery& d = batch[dead_index[j]];
        if (s.ok()) {
          spdlog::warn("bus consumer '{}': message {} dead-lettered to '{}': {}",
                       options.subscription, d.message_id, options.dead_letter_topic,
                       dead[j].attributes["dead_letter_reason"]);
          fate[dead_index[j]] = Fate::kAck;
          dead_lettered++;
        } else {
          fate[dead_index[j]] = Fate::kHold;  // not safe elsewhere yet: keep it
        }
      }
    }
    std::vector<std::string> ack_ids, nack_ids;
    for (size_t i = 0; i < batch.size(); ++i) {
      switch (fate[i]) {
        case Fate::kAck:
          ack_ids.push_back(batch[i].ack_id);
          break;
        case Fate::kNack:
          nack_ids.push_back(batch[i].ack_id);
          // Nacked only to keep its key in order: this delivery is not an attempt.
          if (statuses[i].ok() || ClassifyFailure(statuses[i].code()) == FailureKind::kDependency) {
            Excuse(batch[i]);
          }
          break;
        case Fate::kHold:
          held.push_back(batch[i]);
          held_attempts.push_back(attempt_counts[i]);
          break;
        case Fate::kDeadLetter:
          break;  // became kAck or kHold above
      }
    }
    held_count = static_cast<int64_t>(held.size());
    if (!ack_ids.empty()) {
      Status s = options.bus->Ack(options.subscription, ack_ids);
      note(s, fmt::format("acknowledging {} message(s)", ack_ids.size()));
      if (s.ok()) acked += static_cast<int64_t>(ack_ids.size());
    }
    if (!nack_ids.empty()) {
      Status s = options.bus->Nack(options.subscription, nack_ids);
      note(s, fmt::format("nacking {} message(s)", nack_ids.size()));
      nacked += static_cast<int64_t>(nack_ids.size());  // nacked or left to expire: redelivered
      out.nacked_any = true;
    }
    // Acked and dead-lettered messages need no attempt count any more.
    for (size_t i = 0; i < batch.size(); ++i) {
      if (fate[i] == Fate::kAck && !batch[i].message_id.empty()) {
        ForgetAttempts(batch[i].message_id);
      }
    }
    return out;
  }

  // The outcome of one try: what RunOnce returns, and whether the loop backs off after it.
  struct Try {
    Result<size_t> result = size_t{0};
    bool back_off = false;
  };

  // REQUIRES: run_mu held.
  Try ProcessOne() {
    std::vector<Delivery> batch;
    std::vector<int> attempt_counts;
    if (!held.empty()) {
      batch.swap(held);
      attempt_counts.swap(held_attempts);
      held_count = 0;
    } else {
      Result<std::vector<Delivery>> pulled =
          options.bus->Pull(options.subscription, options.batch_size, options.pull_wait);
      if (!pulled.ok()) {
        Status s =
            pulled.status().WithContext(fmt::format("pulling from '{}'", options.subscription));
        RecordError(s);
        Block(s);
        return {s, true};
      }
      batch = std::move(*pulled);
      if (batch.empty()) {
        Unblock();  // the bus answers again
        return {size_t{0}, false};
      }
      delivered += static_cast<int64_t>(batch.size());
      attempt_counts.reserve(batch.size());
      for (const Delivery& d : batch) attempt_counts.push_back(Attempt(d));
    }
    batches++;
    KeepLeases(batch);
    std::vector<Status> statuses = CallHandler(batch);
    for (const Status& s : statuses) {
      if (!s.ok()) {
        RecordError(s.WithContext("handler"));
        break;
      }
    }
    Settled settled = Settle(batch, statuses, attempt_counts);
    if (held.empty()) {
      ReleaseLeases();
    } else {
      KeepLeases(held);
    }
    if (!settled.bus_error.ok()) {
      Block(settled.bus_error);
      return {settled.bus_error, true};
    }
    if (!held.empty()) {
      Block(settled.held_for);
      return {settled.held_for, true};
    }
    Unblock();
    return {batch.size(), settled.nacked_any};
  }

  // Nack what is held (not counted as attempts): another consumer, or this one after a restart,
  // gets it at once. REQUIRES: run_mu held.
  void ReleaseHeld() {
    if (held.empty()) return;
    std::vector<std::string> ids;
    for (const Delivery& d : held) {
      ids.push_back(d.ack_id);
      Excuse(d);
    }
    Status s = options.bus->Nack(options.subscription, ids);
    if (!s.ok()) RecordError(s.WithContext(fmt::format("nacking {} held message(s)", ids.size())));
    nacked += static_cast<int64_t>(ids.size());
    held.clear();
    held_attempts.clear();
    held_count = 0;
    ReleaseLeases();
  }

  void Loop() {
    int failures = 0;
    std::mt19937_64 rng{std::random_device{}()};
    while (true) {
      {
        std::lock_guard lock(stop_mu);
        if (stop_requested) break;
      }
      Try t = [&] {
        std::lock_guard lock(run_mu);
        return ProcessOne();
      }();
      if (!t.back_off) {
        failures = 0;
        continue;
      }
      ++failures;
      Micros ceiling = options.initial_backoff;
      for (int i = 1; i < failures && ceiling < options.max_backoff; ++i) ceiling *= 2;
      ceiling = std::min(ceiling, options.max_backoff);
      Micros pause(
          std::uniform_int_distribution<int64_t>(ceiling.count() / 2, ceiling.count())(rng));
      backoffs++;
      {
        std::lock_guard lock(state_mu);
        backoff = ceiling;
      }
      std::unique_lock lock(stop_mu);
      stop_cv.wait_for(lock, pause, [&] { return stop_requested; });
    }
    std::lock_guard lock(run_mu);
    ReleaseHeld();
  }
};

BusConsumer::BusConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->keeper = std::thread([this] { impl_->KeeperLoop(); });
}

BusConsumer::~BusConsumer() {
  Stop();
  {
    std::lock_guard lock(impl_->run_mu);
    impl_->ReleaseHeld();
  }
  {
    std::lock_guard lock(impl_->keep_mu);
    impl_->keep_shutdown = true;
  }
  impl_->keep_cv.notify_all();
  impl_->keeper.join();
}

Result<std::unique_ptr<BusConsumer>> BusConsumer::Create(const BusConsumerOptions& options,
                                                         BatchHandler handler) {
  auto bad = [](std::string what) {
    return InvalidArgumentError(fmt::format("bus consumer: {}", what));
  };
  if (options.bus == nullptr) return bad("bus is null");
  if (!handler) return bad("handler is empty");
  RETURN_IF_ERROR(ValidateBusName("subscription", options.subscription));
  if (options.dead_letter_topic.empty()) {
    return bad(fmt::format("subscription '{}' has no dead-letter topic", options.subscription));
  }
  RETURN_IF_ERROR(ValidateBusName("dead-letter topic", options.dead_letter_topic));
  if (options.batch_size == 0) return bad("batch_size must be > 0");
  RETURN_IF_ERROR(ValidateLeaseDuration("bus consumer ack_deadline", options.ack_deadline, false));
  if (!(options.extend_fraction > 0 && options.extend_fraction < 1)) {
    return bad(fmt::format("extend_fraction must be in (0, 1), got {}", options.extend_fraction));
  }
  if (options.max_attempts < 1) return bad("max_attempts must be >= 1");
  if (options.pull_wait < Micros(0)) return bad("pull_wait must be >= 0");
  if (options.initial_backoff <= Micros(0) || options.max_backoff < options.initial_backoff) {
    return bad("backoff must satisfy 0 < initial_backoff <= max_backoff");
  }
  if (!options.dead_letter_subscription.empty()) {
    RETURN_IF_ERROR(ValidateBusName("dead-letter subscription", options.dead_letter_subscription));
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->clock = options.clock ? options.clock : &SystemClock::Default();
  impl->handler = std::move(handler);
  return std::unique_ptr<BusConsumer>(new BusConsumer(std::move(impl)));
}

Status BusConsumer::Start() {
  std::lock_guard lock(impl_->life_mu);
  if (impl_->loop.joinable()) {
    return FailedPreconditionError(
        fmt::format("bus consumer on '{}' is already running", impl_->options.subscription));
  }
  {
    std::lock_guard stop_lock(impl_->stop_mu);
    impl_->stop_requested = false;
  }
  impl_->running = true;
  impl_->loop = std::thread([this] { impl_->Loop(); });
  return Status::OK();
}

void BusConsumer::Stop() {
  std::lock_guard lock(impl_->life_mu);
  if (!impl_->loop.joinable()) return;
  {
    std::lock_guard stop_lock(impl_->stop_mu);
    impl_->stop_requested = true;
  }
  impl_->stop_cv.notify_all();
  impl_->loop.join();
  impl_->running = false;
}

bool BusConsumer::running() const { return impl_->running.load(); }

Result<size_t> BusConsumer::RunOnce() {
  if (impl_->running.load()) {
    return FailedPreconditionError(fmt::format("bus consumer on '{}': RunOnce while the loop runs",
                                               impl_->options.subscription));
  }
  std::lock_guard lock(impl_->run_mu);
  return impl_->ProcessOne().result;
}

BusConsumerStats BusConsumer::stats() const {
  BusConsumerStats s{.batches = impl_->batches.load(),
                     .delivered = impl_->delivered.load(),
                     .acked = impl_->acked.load(),
                     .nacked = impl_->nacked.load(),
                     .dead_lettered = impl_->dead_lettered.load(),
                     .errors = impl_->errors.load(),
                     .extensions = impl_->extensions.load(),
                     .dependency_failures = impl_->dependency_failures.load(),
                     .backoffs = impl_->backoffs.load(),
                     .held = impl_->held_count.load()};
  std::lock_guard lock(impl_->state_mu);
  s.blocked = impl_->blocked;
  s.blocking_error = impl_->blocking_error;
  s.blocked_since = impl_->blocked_since;
  s.retries = impl_->retries;
  s.backoff = impl_->backoff;
  return s;
}

Status BusConsumer::last_error() const {
  std::lock_guard lock(impl_->error_mu);
  return impl_->last_error;
}

}  // namespace ch
