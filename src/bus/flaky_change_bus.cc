#include "bus/flaky_change_bus.h"

#include <deque>
#include <map>
#include <mutex>
#include <random>

namespace ch {

struct FlakyChangeBus::Impl {
  Impl(ChangeBus& b, const FlakyChangeBusOptions& o) : inner(b), options(o), rng(o.seed) {}

  ChangeBus& inner;
  std::mutex mu;
  FlakyChangeBusOptions options;
  std::mt19937_64 rng;
  int fail_publishes = 0;
  int fail_pulls = 0;
  int fail_acks = 0;
  // Deliveries waiting to be handed out by a later Pull (held-back redeliveries, duplicates).
  std::map<std::string, std::deque<Delivery>, std::less<>> pending;
  FlakyChangeBusStats stats;

  // Return true with probability p. REQUIRES: mu held.
  bool Chance(double p) {
    if (p <= 0) return false;
    return std::uniform_real_distribution<double>(0, 1)(rng) < p;
  }
  // Consume one forced failure from `counter`, else roll the dice. REQUIRES: mu held.
  bool Fail(int& counter, double p) {
    if (counter > 0) {
      --counter;
      return true;
    }
    return Chance(p);
  }
};

FlakyChangeBus::FlakyChangeBus(ChangeBus& inner, const FlakyChangeBusOptions& options)
    : impl_(std::make_unique<Impl>(inner, options)) {}
FlakyChangeBus::~FlakyChangeBus() = default;

Status FlakyChangeBus::EnsureTopic(std::string_view topic) {
  return impl_->inner.EnsureTopic(topic);
}

Status FlakyChangeBus::EnsureSubscription(std::string_view subscription, std::string_view topic,
                                          const SubscriptionOptions& options) {
  return impl_->inner.EnsureSubscription(subscription, topic, options);
}

Status FlakyChangeBus::Publish(std::string_view topic, std::span<const BusMessage> messages) {
  bool fail_after = false;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->Fail(impl_->fail_publishes, impl_->options.drop_publish)) {
      impl_->stats.dropped_publishes++;
      return UnavailableError("injected fault: publish dropped");
    }
    fail_after = impl_->Chance(impl_->options.fail_after_publish);
  }
  RETURN_IF_ERROR(impl_->inner.Publish(topic, messages));
  if (fail_after) {
    std::lock_guard lock(impl_->mu);
    impl_->stats.failed_after_publish++;
    return UnavailableError("injected fault: publish accepted but the reply was lost");
  }
  return Status::OK();
}

Result<std::vector<Delivery>> FlakyChangeBus::Pull(std::string_view subscription, size_t max,
                                                   Micros wait) {
  bool have_pending = false;
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->Fail(impl_->fail_pulls, impl_->options.fail_pull)) {
      impl_->stats.failed_pulls++;
      return UnavailableError("injected fault: pull failed");
    }
    auto it = impl_->pending.find(subscription);
    have_pending = it != impl_->pending.end() && !it->second.empty();
  }
  // With deliveries already waiting here, do not block in the inner bus.
  ASSIGN_OR_RETURN(std::vector<Delivery> fresh,
                   impl_->inner.Pull(subscription, max, have_pending ? Micros(0) : wait));

  std::lock_guard lock(impl_->mu);
  std::deque<Delivery>& pending = impl_->pending[std::string(subscription)];
  std::deque<Delivery> earlier;
  earlier.swap(pending);
  std::vector<Delivery> out;
  for (Delivery& d : fresh) {
    if (d.delivery_attempt >= 2 && impl_->Chance(impl_->options.hold_back_redelivery)) {
      impl_->stats.held_back_redeliveries++;
      pending.push_back(std::move(d));
      continue;
    }
    out.push_back(std::move(d));
  }
  // What was held back or duplicated earlier comes after this pull's fresh messages.
  for (Delivery& d : earlier) out.push_back(std::move(d));
  size_t n = out.size();
  for (size_t i = 0; i < n; ++i) {
    if (!impl_->Chance(impl_->options.duplicate_delivery)) continue;
    impl_->stats.duplicated_deliveries++;
    if (impl_->Chance(0.5)) {
      out.push_back(out[i]);
    } else {
      pending.push_back(out[i]);
    }
  }
  // Keep within `max`; the rest waits for the next Pull.
  while (out.size() > max) {
    pending.push_front(std::move(out.back()));
    out.pop_back();
  }
  return out;
}

Status FlakyChangeBus::Ack(std::string_view subscription, std::span<const std::string> ack_ids) {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->Fail(impl_->fail_acks, impl_->options.fail_ack)) {
      impl_->stats.failed_acks++;
      return UnavailableError("injected fault: ack failed");
    }
  }
  return impl_->inner.Ack(subscription, ack_ids);
}

Status FlakyChangeBus::Nack(std::string_view subscription, std::span<const std::string> ack_ids) {
  return impl_->inner.Nack(subscription, ack_ids);
}

Status FlakyChangeBus::ExtendDeadline(std::string_view subscription,
                                      std::span<const std::string> ack_ids, Micros deadline) {
  return impl_->inner.ExtendDeadline(subscription, ack_ids, deadline);
}

void FlakyChangeBus::FailNextPublishes(int n) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_publishes = n;
}
void FlakyChangeBus::FailNextPulls(int n) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_pulls = n;
}
void FlakyChangeBus::FailNextAcks(int n) {
  std::lock_guard lock(impl_->mu);
  impl_->fail_acks = n;
}
void FlakyChangeBus::SetOptions(const FlakyChangeBusOptions& options) {
  std::lock_guard lock(impl_->mu);
  impl_->options = options;
}
FlakyChangeBusStats FlakyChangeBus::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace ch
