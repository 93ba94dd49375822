#include "bus/bus_consumer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
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

  // Attempts per message id, for buses that do not count them (bounded, oldest first out).
  struct Counted {
    int attempts = 0;
    uint64_t seq = 0;  // first seen; the key of by_seq
  };
  std::mutex attempts_mu;
  std::unordered_map<std::string, Counted> attempts;
  std::map<uint64_t, std::string> by_seq;
  uint64_t next_seq = 0;

  // Lease keeper: extends the leases of the batch in flight.
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
  std::mutex run_mu;  // one batch at a time (loop or RunOnce)

  std::atomic<int64_t> batches{0}, delivered{0}, acked{0}, nacked{0}, dead_lettered{0}, errors{0},
      extensions{0};
  mutable std::mutex error_mu;
  Status last_error;

  void RecordError(const Status& s) {
    errors++;
    std::lock_guard lock(error_mu);
    last_error = s;
  }

  // Count one more delivery of `message_id`; return the count.
  int CountAttempt(const std::string& message_id) {
    std::lock_guard lock(attempts_mu);
    auto it = attempts.find(message_id);
    if (it == attempts.end()) {
      if (options.attempt_memory == 0) return 1;
      while (attempts.size() >= options.attempt_memory && !by_seq.empty()) {
        attempts.erase(by_seq.begin()->second);  // forget the oldest
        by_seq.erase(by_seq.begin());
      }
      uint64_t seq = next_seq++;
      it = attempts.emplace(message_id, Counted{0, seq}).first;
      by_seq.emplace(seq, message_id);
    }
    return ++it->second.attempts;
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
      RETURN_IF_ERROR(options.bus->EnsureTopic(options.dead_letter_topic));
      s = options.bus->Publish(options.dead_letter_topic, messages);
    }
    return s;
  }

  // Settle a handled batch. Returns the first error of the bus calls (all are attempted).
  Status Settle(const std::vector<Delivery>& batch, const std::vector<Status>& statuses,
                const std::vector<int>& attempt_counts) {
    std::vector<std::string> ack_ids, nack_ids;
    std::vector<BusMessage> dead;
    std::vector<const Delivery*> dead_deliveries;
    std::set<std::string_view> held_keys;  // keys with an earlier retryable failure
    for (size_t i = 0; i < batch.size(); ++i) {
      const Delivery& d = batch[i];
      const Status& s = statuses[i];
      const std::string& key = d.message.ordering_key;
      if (!key.empty() && held_keys.contains(key)) {
        nack_ids.push_back(d.ack_id);
        continue;
      }
      if (s.ok()) {
        ack_ids.push_back(d.ack_id);
        continue;
      }
      bool retryable = IsRetryable(s.code());
      if (retryable && attempt_counts[i] < options.max_attempts) {
        nack_ids.push_back(d.ack_id);
        if (!key.empty()) held_keys.insert(key);
        continue;
      }
      Status reason = retryable ? Status(s.code(), fmt::format("gave up after {} attempts: {}",
                                                               attempt_counts[i], s.message()))
                                : s;
      dead.push_back(DeadLetter(d, reason, attempt_counts[i]));
      dead_deliveries.push_back(&d);
    }

    Status first_error;
    auto note = [&](const Status& s, std::string_view what) {
      if (s.ok()) return;
      Status e = s.WithContext(what);
      RecordError(e);
      if (first_error.ok()) first_error = e;
    };
    if (!dead.empty()) {
      Status s = PublishDeadLetters(dead);
      note(s, fmt::format("publishing {} message(s) to dead-letter topic '{}'", dead.size(),
                          options.dead_letter_topic));
      for (size_t i = 0; i < dead_deliveries.size(); ++i) {
        const Delivery& d = *dead_deliveries[i];
        if (s.ok()) {
          spdlog::warn("bus consumer '{}': message {} dead-lettered to '{}': {}",
                       options.subscription, d.message_id, options.dead_letter_topic,
                       dead[i].attributes["dead_letter_reason"]);
          ack_ids.push_back(d.ack_id);
          dead_lettered++;
        } else {
          nack_ids.push_back(d.ack_id);  // not safe elsewhere yet: keep it on the bus
        }
      }
    }
    if (!ack_ids.empty()) {
      Status s = options.bus->Ack(options.subscription, ack_ids);
      note(s, fmt::format("acknowledging {} message(s)", ack_ids.size()));
      if (s.ok()) acked += static_cast<int64_t>(ack_ids.size());
    }
    if (!nack_ids.empty()) {
      Status s = options.bus->Nack(options.subscription, nack_ids);
      note(s, fmt::format("nacking {} message(s)", nack_ids.size()));
      nacked += static_cast<int64_t>(nack_ids.size());  // nacked or left to expire: redelivered
    }
    // Acked and dead-lettered messages need no attempt count any more.
    std::set<std::string> done(ack_ids.begin(), ack_ids.end());
    for (const Delivery& d : batch) {
      if (d.delivery_attempt <= 0 && done.contains(d.ack_id)) ForgetAttempts(d.message_id);
    }
    return first_error;
  }

  Result<size_t> ProcessOne() {
    Result<std::vector<Delivery>> pulled =
        options.bus->Pull(options.subscription, options.batch_size, options.pull_wait);
    if (!pulled.ok()) {
      Status s =
          pulled.status().WithContext(fmt::format("pulling from '{}'", options.subscription));
      RecordError(s);
      return s;
    }
    std::vector<Delivery>& batch = *pulled;
    if (batch.empty()) return size_t{0};
    batches++;
    delivered += static_cast<int64_t>(batch.size());
    std::vector<int> attempt_counts;
    attempt_counts.reserve(batch.size());
    for (const Delivery& d : batch) {
      if (d.delivery_attempt > 0) {
        attempt_counts.push_back(d.delivery_attempt);
      } else if (!d.message_id.empty()) {
        attempt_counts.push_back(CountAttempt(d.message_id));
      } else {
        attempt_counts.push_back(1);
      }
    }
    KeepLeases(batch);
    std::vector<Status> statuses = CallHandler(batch);
    for (const Status& s : statuses) {
      if (!s.ok()) {
        RecordError(s.WithContext("handler"));
        break;
      }
    }
    Status settled = Settle(batch, statuses, attempt_counts);
    ReleaseLeases();
    if (!settled.ok()) return settled;
    return batch.size();
  }

  void Loop() {
    int failures = 0;
    std::mt19937_64 rng{std::random_device{}()};
    while (true) {
      {
        std::lock_guard lock(stop_mu);
        if (stop_requested) break;
      }
      Result<size_t> r = [&] {
        std::lock_guard lock(run_mu);
        return ProcessOne();
      }();
      if (r.ok()) {
        failures = 0;
        continue;
      }
      ++failures;
      Micros ceiling = options.initial_backoff;
      for (int i = 1; i < failures && ceiling < options.max_backoff; ++i) ceiling *= 2;
      ceiling = std::min(ceiling, options.max_backoff);
      Micros pause(std::uniform_int_distribution<int64_t>(0, ceiling.count())(rng));
      std::unique_lock lock(stop_mu);
      stop_cv.wait_for(lock, pause, [&] { return stop_requested; });
    }
  }
};

BusConsumer::BusConsumer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
  impl_->keeper = std::thread([this] { impl_->KeeperLoop(); });
}

BusConsumer::~BusConsumer() {
  Stop();
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
  auto impl = std::make_unique<Impl>();
  impl->options = options;
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
  return impl_->ProcessOne();
}

BusConsumerStats BusConsumer::stats() const {
  return BusConsumerStats{.batches = impl_->batches.load(),
                          .delivered = impl_->delivered.load(),
                          .acked = impl_->acked.load(),
                          .nacked = impl_->nacked.load(),
                          .dead_lettered = impl_->dead_lettered.load(),
                          .errors = impl_->errors.load(),
                          .extensions = impl_->extensions.load()};
}

Status BusConsumer::last_error() const {
  std::lock_guard lock(impl_->error_mu);
  return impl_->last_error;
}

}  // namespace ch
