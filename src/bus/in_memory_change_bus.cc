#include "bus/in_memory_change_bus.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <set>

#include "bus/bus_limits.h"

namespace ch {

namespace {

// Ack ids are "<entry seq>.<lease token>": a handle stays valid only for the lease it was issued
// for, so an Ack that arrives after the message was delivered again is a harmless no-op.
std::string MakeAckId(uint64_t seq, uint64_t token) { return fmt::format("{}.{}", seq, token); }

bool ParseAckId(std::string_view id, uint64_t& seq, uint64_t& token) {
  size_t dot = id.find('.');
  if (dot == std::string_view::npos) return false;
  auto a = std::from_chars(id.data(), id.data() + dot, seq);
  auto b = std::from_chars(id.data() + dot + 1, id.data() + id.size(), token);
  return a.ec == std::errc() && a.ptr == id.data() + dot && b.ec == std::errc() &&
         b.ptr == id.data() + id.size();
}

}  // namespace

struct InMemoryChangeBus::Impl {
  struct Entry {
    const PublishedMessage* published;  // points into Topic::log (a deque: stable addresses)
    int attempts = 0;
    bool leased = false;
    Timestamp lease_until{};
    uint64_t token = 0;
  };
  struct Subscription {
    std::string topic;
    SubscriptionOptions options;
    std::map<uint64_t, Entry> entries;  // by publish sequence
  };
  struct Topic {
    std::deque<PublishedMessage> log;
    std::vector<std::string> subscriptions;
  };

  explicit Impl(const Clock& c) : clock(c) {}

  const Clock& clock;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, Topic, std::less<>> topics;
  std::map<std::string, Subscription, std::less<>> subscriptions;
  uint64_t next_seq = 1;
  uint64_t next_token = 1;

  // Return every expired lease to the queue. REQUIRES: mu held.
  static void Expire(Subscription& sub, Timestamp now) {
    for (auto& [seq, e] : sub.entries) {
      if (e.leased && e.lease_until <= now) e.leased = false;
    }
  }

  // Lease up to `max` due messages in publish order. REQUIRES: mu held.
  std::vector<Delivery> Take(Subscription& sub, size_t max) {
    Timestamp now = clock.Now();
    Expire(sub, now);
    std::set<std::string_view> blocked;
    if (sub.options.ordered) {
      for (const auto& [seq, e] : sub.entries) {
        if (e.leased && !e.published->message.ordering_key.empty()) {
          blocked.insert(e.published->message.ordering_key);
        }
      }
    }
    std::vector<Delivery> out;
    for (auto& [seq, e] : sub.entries) {
      if (out.size() >= max) break;
      if (e.leased) continue;
      const std::string& key = e.published->message.ordering_key;
      if (sub.options.ordered && !key.empty()) {
        if (blocked.contains(key)) continue;
      }
      e.leased = true;
      e.attempts++;
      e.lease_until = now + sub.options.ack_deadline;
      e.token = next_token++;
      out.push_back(Delivery{.ack_id = MakeAckId(seq, e.token),
                             .message = e.published->message,
                             .delivery_attempt = e.attempts,
                             .publish_time = e.published->publish_time,
                             .message_id = e.published->message_id});
    }
    return out;
  }

  Result<Subscription*> FindSubscription(std::string_view name) {
    auto it = subscriptions.find(name);
    if (it == subscriptions.end()) {
      return NotFoundError(fmt::format("subscription '{}' not found", name));
    }
    return &it->second;
  }

  // Apply `fn(entry_iterator)` to the current lease of every handle in `ids`.
  template <typename Fn>
  Status ForEachLease(std::string_view subscription, std::span<const std::string> ids, Fn fn) {
    std::lock_guard lock(mu);
    ASSIGN_OR_RETURN(Subscription * sub, FindSubscription(subscription));
    for (const std::string& id : ids) {
      uint64_t seq = 0, token = 0;
      if (!ParseAckId(id, seq, token)) {
        return InvalidArgumentError(fmt::format("malformed ack id '{}'", id));
      }
      auto it = sub->entries.find(seq);
      if (it == sub->entries.end() || it->second.token != token) continue;  // stale: ignore
      fn(*sub, it);
    }
    cv.notify_all();
    return Status::OK();
  }
};

InMemoryChangeBus::InMemoryChangeBus(const Clock& clock) : impl_(std::make_unique<Impl>(clock)) {}
InMemoryChangeBus::~InMemoryChangeBus() = default;

Status InMemoryChangeBus::EnsureTopic(std::string_view topic) {
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  std::lock_guard lock(impl_->mu);
  impl_->topics.try_emplace(std::string(topic));
  return Status::OK();
}

Status InMemoryChangeBus::EnsureSubscription(std::string_view subscription, std::string_view topic,
                                             const SubscriptionOptions& options) {
  RETURN_IF_ERROR(ValidateBusName("subscription", subscription));
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  RETURN_IF_ERROR(ValidateLeaseDuration("ack deadline", options.ack_deadline, false));
  std::lock_guard lock(impl_->mu);
  auto existing = impl_->subscriptions.find(subscription);
  if (existing != impl_->subscriptions.end()) {
    const Impl::Subscription& sub = existing->second;
    if (sub.topic != topic) {
      return FailedPreconditionError(fmt::format(
          "subscription '{}' exists on topic '{}', not on '{}'", subscription, sub.topic, topic));
    }
    if (sub.options.ordered != options.ordered) {
      return FailedPreconditionError(
          fmt::format("subscription '{}' exists with ordering {}, requested {}", subscription,
                      sub.options.ordered ? "on" : "off", options.ordered ? "on" : "off"));
    }
    return Status::OK();
  }
  auto t = impl_->topics.find(topic);
  if (t == impl_->topics.end()) return NotFoundError(fmt::format("topic '{}' not found", topic));
  impl_->subscriptions.emplace(std::string(subscription),
                               Impl::Subscription{.topic = std::string(topic), .options = options});
  t->second.subscriptions.emplace_back(subscription);
  return Status::OK();
}

Status InMemoryChangeBus::Publish(std::string_view topic, std::span<const BusMessage> messages) {
  RETURN_IF_ERROR(ValidateMessages(messages));
  std::lock_guard lock(impl_->mu);
  auto t = impl_->topics.find(topic);
  if (t == impl_->topics.end()) return NotFoundError(fmt::format("topic '{}' not found", topic));
  Timestamp now = impl_->clock.Now();
  for (const BusMessage& m : messages) {
    uint64_t seq = impl_->next_seq++;
    t->second.log.push_back(PublishedMessage{.topic = std::string(topic),
                                             .message_id = std::to_string(seq),
                                             .publish_time = now,
                                             .message = m});
    const PublishedMessage* p = &t->second.log.back();
    for (const std::string& name : t->second.subscriptions) {
      impl_->subscriptions.at(name).entries.emplace(seq, Impl::Entry{.published = p});
    }
  }
  impl_->cv.notify_all();
  return Status::OK();
}

Result<std::vector<Delivery>> InMemoryChangeBus::Pull(std::string_view subscription, size_t max,
                                                      Micros wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  std::unique_lock lock(impl_->mu);
  while (true) {
    // Look the subscription up on every round: the map may have changed while waiting.
    ASSIGN_OR_RETURN(Impl::Subscription * sub, impl_->FindSubscription(subscription));
    std::vector<Delivery> out = impl_->Take(*sub, max);
    auto now = std::chrono::steady_clock::now();
    if (!out.empty() || max == 0 || now >= deadline) return out;
    // Wake at least every 10 ms: leases expire on the injected clock, which signals nothing.
    impl_->cv.wait_until(lock, std::min(deadline, now + std::chrono::milliseconds(10)));
  }
}

Status InMemoryChangeBus::Ack(std::string_view subscription, std::span<const std::string> ack_ids) {
  return impl_->ForEachLease(subscription, ack_ids,
                             [](Impl::Subscription& sub, auto it) { sub.entries.erase(it); });
}

Status InMemoryChangeBus::Nack(std::string_view subscription,
                               std::span<const std::string> ack_ids) {
  return impl_->ForEachLease(subscription, ack_ids,
                             [](Impl::Subscription&, auto it) { it->second.leased = false; });
}

Status InMemoryChangeBus::ExtendDeadline(std::string_view subscription,
                                         std::span<const std::string> ack_ids, Micros deadline) {
  RETURN_IF_ERROR(ValidateLeaseDuration("ack deadline extension", deadline, true));
  Timestamp until = impl_->clock.Now() + deadline;
  return impl_->ForEachLease(subscription, ack_ids, [&](Impl::Subscription&, auto it) {
    Impl::Entry& e = it->second;
    if (!e.leased) return;
    if (deadline == Micros(0)) {
      e.leased = false;
    } else {
      e.lease_until = until;
    }
  });
}

std::vector<InMemoryChangeBus::PublishedMessage> InMemoryChangeBus::AllMessages(
    std::string_view topic) const {
  std::lock_guard lock(impl_->mu);
  auto t = impl_->topics.find(topic);
  if (t == impl_->topics.end()) return {};
  return {t->second.log.begin(), t->second.log.end()};
}

std::vector<InMemoryChangeBus::PublishedMessage> InMemoryChangeBus::AllMessages() const {
  std::lock_guard lock(impl_->mu);
  std::vector<PublishedMessage> out;
  for (const auto& [name, t] : impl_->topics) out.insert(out.end(), t.log.begin(), t.log.end());
  return out;
}

size_t InMemoryChangeBus::Unacked(std::string_view subscription) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->subscriptions.find(subscription);
  return it == impl_->subscriptions.end() ? 0 : it->second.entries.size();
}

size_t InMemoryChangeBus::Leased(std::string_view subscription) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->subscriptions.find(subscription);
  if (it == impl_->subscriptions.end()) return 0;
  Timestamp now = impl_->clock.Now();
  return std::count_if(it->second.entries.begin(), it->second.entries.end(), [&](const auto& kv) {
    return kv.second.leased && kv.second.lease_until > now;
  });
}

}  // namespace ch
