#include "bus/bus_consumer.h"

#include <fmt/format.h>

#include <atomic>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "bus/flaky_change_bus.h"
#include "bus/in_memory_change_bus.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using std::chrono::milliseconds;
using std::chrono::seconds;

// A bus that, like Pub/Sub without a dead-letter policy, does not report delivery_attempt.
class NoAttemptCountBus final : public ChangeBus {
 public:
  explicit NoAttemptCountBus(ChangeBus& inner) : inner_(inner) {}
  Status EnsureTopic(std::string_view t) override { return inner_.EnsureTopic(t); }
  Status EnsureSubscription(std::string_view s, std::string_view t,
                            const SubscriptionOptions& o) override {
    return inner_.EnsureSubscription(s, t, o);
  }
  Status Publish(std::string_view t, std::span<const BusMessage> m) override {
    return inner_.Publish(t, m);
  }
  Result<std::vector<Delivery>> Pull(std::string_view s, size_t max, Micros wait) override {
    ASSIGN_OR_RETURN(auto got, inner_.Pull(s, max, wait));
    for (Delivery& d : got) d.delivery_attempt = 0;
    return got;
  }
  Status Ack(std::string_view s, std::span<const std::string> ids) override {
    return inner_.Ack(s, ids);
  }
  Status Nack(std::string_view s, std::span<const std::string> ids) override {
    return inner_.Nack(s, ids);
  }
  Status ExtendDeadline(std::string_view s, std::span<const std::string> ids, Micros d) override {
    return inner_.ExtendDeadline(s, ids, d);
  }

 private:
  ChangeBus& inner_;
};

BusMessage Msg(std::string data, std::string key = "") {
  return BusMessage{.data = std::move(data), .ordering_key = std::move(key)};
}

std::string Join(const std::vector<std::string>& v) { return fmt::format("{}", fmt::join(v, " ")); }

class BusConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(bus_.EnsureTopic("changes"));
    ASSERT_OK(bus_.EnsureSubscription("workers", "changes",
                                      {.ack_deadline = seconds(30), .ordered = true}));
    ASSERT_OK(bus_.EnsureTopic("changes-dlq"));
    ASSERT_OK(bus_.EnsureSubscription("dlq-reader", "changes-dlq", {.ordered = false}));
  }

  BusConsumerOptions Options(ChangeBus* bus = nullptr) {
    return BusConsumerOptions{.bus = bus ? bus : &bus_,
                              .subscription = "workers",
                              .dead_letter_topic = "changes-dlq",
                              .pull_wait = milliseconds(50),
                              .ack_deadline = seconds(30),
                              .initial_backoff = milliseconds(1),
                              .max_backoff = milliseconds(20)};
  }

  void Publish(std::vector<BusMessage> m) { ASSERT_OK(bus_.Publish("changes", m)); }

  std::vector<Delivery> DeadLetters() {
    auto got = bus_.Pull("dlq-reader", 1000, Micros(0));
    EXPECT_OK(got);
    return got.ok() ? *got : std::vector<Delivery>{};
  }

  // What HoldOneMessage saw.
  struct HeldBatch {
    size_t handled = 0;
    int stolen = 0;  // deliveries a competing puller got while the handler held the message
    BusConsumerStats stats;
  };
  // Publish one message and consume it with `o` through a handler that holds it for `hold`,
  // while a competing puller (waiting `pull_wait` per pull) tries to get it from o.subscription.
  HeldBatch HoldOneMessage(const BusConsumerOptions& o, Micros hold, Micros pull_wait) {
    Publish({Msg("slow")});
    HeldBatch out;
    std::atomic<bool> in_handler{false};
    std::atomic<bool> done{false};
    auto consumer = BusConsumer::Create(o, [&](std::span<const Delivery> batch) {
      in_handler = true;
      std::this_thread::sleep_for(hold);
      return std::vector<Status>(batch.size());
    });
    EXPECT_OK(consumer.status());
    if (!consumer.ok()) return out;
    std::atomic<int> stolen{0};
    std::thread competitor([&] {
      while (!in_handler && !done) std::this_thread::sleep_for(milliseconds(1));
      while (!done) {
        auto got = bus_.Pull(o.subscription, 10, pull_wait);
        if (got.ok() && !done) stolen += static_cast<int>(got->size());
      }
    });
    Result<size_t> n = (*consumer)->RunOnce();
    done = true;
    competitor.join();
    EXPECT_OK(n.status());
    out.handled = n.ok() ? *n : 0;
    out.stolen = stolen.load();
    out.stats = (*consumer)->stats();
    return out;
  }

  InMemoryChangeBus bus_;  // system clock: the lease-extension test needs real time
  // What the handler saw, in order ("data" per delivery), across calls.
  std::mutex seen_mu_;
  std::vector<std::string> seen_;
  void See(std::span<const Delivery> batch) {
    std::lock_guard lock(seen_mu_);
    for (const Delivery& d : batch) seen_.push_back(d.message.data);
  }
};

TEST_F(BusConsumerTest, AcksWhatTheHandlerAccepted) {
  Publish({Msg("a", "k1"), Msg("b", "k2"), Msg("c")});
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(), [&](std::span<const Delivery> batch) {
                         See(batch);
                         return std::vector<Status>(batch.size());
                       }));
  ASSERT_OK_AND_ASSIGN(size_t n, consumer->RunOnce());
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(Join(seen_), "a b c");
  BusConsumerStats s = consumer->stats();
  EXPECT_EQ(s.delivered, 3);
  EXPECT_EQ(s.acked, 3);
  EXPECT_EQ(s.nacked, 0);
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  ASSERT_OK_AND_ASSIGN(n, consumer->RunOnce());
  EXPECT_EQ(n, 0u);
}

TEST_F(BusConsumerTest, RetryableFailureNacksItAndEveryLaterMessageOfItsKey) {
  Publish({Msg("a1", "a"), Msg("b1", "b"), Msg("a2", "a"), Msg("a3", "a"), Msg("b2", "b")});
  bool fail = true;
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(), [&](std::span<const Delivery> batch) {
                         See(batch);
                         std::vector<Status> out(batch.size());
                         for (size_t i = 0; i < batch.size(); ++i) {
                           if (fail && batch[i].message.data == "a2") {
                             out[i] = UnavailableError("history store busy");
                           }
                         }
                         return out;
                       }));
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(consumer->stats().acked, 3);   // a1 b1 b2
  EXPECT_EQ(consumer->stats().nacked, 2);  // a2 and a3, although a3 itself was fine
  EXPECT_EQ(bus_.Unacked("workers"), 2u);
  EXPECT_THAT(consumer->last_error(), StatusIs(StatusCode::kUnavailable));
  fail = false;
  seen_.clear();
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(Join(seen_), "a2 a3");  // the key again, in order, from the failed message on
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

TEST_F(BusConsumerTest, PoisonMessageIsDeadLetteredAndTheRestFlowsOn) {
  Publish({Msg("ok-1", "k"), Msg("poison", "k"), Msg("ok-2", "k"), Msg("other", "j")});
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(), [&](std::span<const Delivery> batch) {
                         std::vector<Status> out(batch.size());
                         for (size_t i = 0; i < batch.size(); ++i) {
                           if (batch[i].message.data == "poison") {
                             out[i] = InvalidArgumentError("campaign_id is not a number");
                           }
                         }
                         return out;
                       }));
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  EXPECT_EQ(consumer->stats().acked, 4);
  EXPECT_EQ(consumer->stats().dead_lettered, 1);
  std::vector<Delivery> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  const BusMessage& m = dead[0].message;
  EXPECT_EQ(m.data, "poison");
  EXPECT_EQ(m.ordering_key, "k");
  EXPECT_EQ(m.attributes.at("dead_letter_reason"), "INVALID_ARGUMENT: campaign_id is not a number");
  EXPECT_EQ(m.attributes.at("dead_letter_attempts"), "1");
  EXPECT_EQ(m.attributes.at("source_subscription"), "workers");
  EXPECT_FALSE(m.attributes.at("dead_letter_message_id").empty());
}

TEST_F(BusConsumerTest, RetryableFailureIsDeadLetteredAfterMaxAttempts) {
  Publish({Msg("flaky", "k"), Msg("after", "k")});
  BusConsumerOptions o = Options();
  o.max_attempts = 3;
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> batch) {
                         See(batch);
                         std::vector<Status> out(batch.size());
                         for (size_t i = 0; i < batch.size(); ++i) {
                           if (batch[i].message.data == "flaky") out[i] = AbortedError("conflict");
                         }
                         return out;
                       }));
  for (int i = 0; i < 3; ++i) ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(Join(seen_), "flaky after flaky after flaky after");
  std::vector<Delivery> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attributes.at("dead_letter_attempts"), "3");
  EXPECT_EQ(dead[0].message.attributes.at("dead_letter_reason"),
            "ABORTED: gave up after 3 attempts: conflict");
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
}

TEST_F(BusConsumerTest, CountsAttemptsItselfWhenTheBusDoesNot) {
  NoAttemptCountBus blind(bus_);
  Publish({Msg("flaky")});
  BusConsumerOptions o = Options(&blind);
  o.max_attempts = 4;
  std::vector<int> reported;
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> batch) {
                         for (const Delivery& d : batch) reported.push_back(d.delivery_attempt);
                         return std::vector<Status>(batch.size(), UnavailableError("down"));
                       }));
  for (int i = 0; i < 4; ++i) ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(reported, (std::vector<int>{0, 0, 0, 0}));
  std::vector<Delivery> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attributes.at("dead_letter_attempts"), "4");
  ASSERT_OK_AND_ASSIGN(size_t n, consumer->RunOnce());
  EXPECT_EQ(n, 0u);
}

TEST_F(BusConsumerTest, BoundedAttemptMemoryForgetsTheOldest) {
  NoAttemptCountBus blind(bus_);
  Publish({Msg("m1"), Msg("m2"), Msg("m3")});
  auto failing = [](std::span<const Delivery> batch) {
    return std::vector<Status>(batch.size(), UnavailableError("down"));
  };
  BusConsumerOptions o = Options(&blind);
  o.max_attempts = 2;
  o.attempt_memory = 2;  // three messages per batch: each count is evicted before it reaches 2
  ASSERT_OK_AND_ASSIGN(auto forgetful, BusConsumer::Create(o, failing));
  for (int i = 0; i < 3; ++i) ASSERT_OK(forgetful->RunOnce().status());
  EXPECT_TRUE(DeadLetters().empty());
  o.attempt_memory = 3;  // room for all three: dead-lettered on their second delivery here
  ASSERT_OK_AND_ASSIGN(auto mindful, BusConsumer::Create(o, failing));
  for (int i = 0; i < 2; ++i) ASSERT_OK(mindful->RunOnce().status());
  EXPECT_EQ(DeadLetters().size(), 3u);
}

TEST_F(BusConsumerTest, SlowHandlerKeepsItsLeasesExtended) {
  ASSERT_OK(bus_.EnsureSubscription("short", "changes",
                                    {.ack_deadline = milliseconds(300), .ordered = false}));
  BusConsumerOptions o = Options();
  o.subscription = "short";
  o.ack_deadline = milliseconds(300);
  HeldBatch held = HoldOneMessage(o, milliseconds(1200), milliseconds(20));
  EXPECT_EQ(held.handled, 1u);
  EXPECT_EQ(held.stolen, 0);
  EXPECT_GE(held.stats.extensions, 3);
  EXPECT_EQ(held.stats.acked, 1);
  EXPECT_EQ(bus_.Unacked("short"), 0u);
}

// The subscription may have a shorter deadline than the consumer (created by another process or
// by hand): the first lease is the subscription's, so the consumer renews before the shortest
// deadline Pub/Sub allows (10 s), whatever its own. Takes ~11 s of real time.
TEST_F(BusConsumerTest, LeasesAreRenewedBeforeAShorterSubscriptionDeadlineRunsOut) {
  ASSERT_OK(bus_.EnsureSubscription("ten-seconds", "changes",
                                    {.ack_deadline = seconds(10), .ordered = false}));
  BusConsumerOptions o = Options();
  o.subscription = "ten-seconds";
  o.ack_deadline = seconds(120);  // renewing at half of this would be far too late
  HeldBatch held = HoldOneMessage(o, milliseconds(11'000), milliseconds(50));
  EXPECT_EQ(held.handled, 1u);
  EXPECT_EQ(held.stolen, 0) << "the message was handed out again while the handler held it";
  EXPECT_GE(held.stats.extensions, 2);
  EXPECT_EQ(held.stats.acked, 1);
}

TEST_F(BusConsumerTest, StopFinishesTheBatchInFlight) {
  Publish({Msg("a"), Msg("b")});
  std::atomic<bool> started{false};
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(), [&](std::span<const Delivery> batch) {
                         started = true;
                         std::this_thread::sleep_for(milliseconds(300));
                         See(batch);
                         return std::vector<Status>(batch.size());
                       }));
  ASSERT_OK(consumer->Start());
  EXPECT_THAT(consumer->Start(), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(consumer->RunOnce(), StatusIs(StatusCode::kFailedPrecondition));
  while (!started) std::this_thread::sleep_for(milliseconds(1));
  consumer->Stop();
  EXPECT_FALSE(consumer->running());
  EXPECT_EQ(Join(seen_), "a b");
  EXPECT_EQ(consumer->stats().acked, 2);
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  consumer->Stop();  // again: no-op
  // It can run again.
  Publish({Msg("c")});
  ASSERT_OK(consumer->Start());
  for (int i = 0; i < 500 && consumer->stats().acked < 3; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  consumer->Stop();
  EXPECT_EQ(consumer->stats().acked, 3);
}

TEST_F(BusConsumerTest, ConcurrentStopsAllReturnAfterTheLoopEnded) {
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(), [&](std::span<const Delivery> batch) {
                         return std::vector<Status>(batch.size());
                       }));
  ASSERT_OK(consumer->Start());
  std::vector<std::thread> stoppers;
  for (int i = 0; i < 4; ++i) stoppers.emplace_back([&] { consumer->Stop(); });
  for (auto& t : stoppers) t.join();
  EXPECT_FALSE(consumer->running());
}

TEST_F(BusConsumerTest, HandlerThatThrowsOrMiscountsFailsTheBatchRetryably) {
  Publish({Msg("a", "k"), Msg("b", "k")});
  int calls = 0;
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(), [&](std::span<const Delivery> batch) {
                         ++calls;
                         if (calls == 1) throw std::runtime_error("boom");
                         if (calls == 2) return std::vector<Status>(1);  // wrong length
                         return std::vector<Status>(batch.size());
                       }));
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_THAT(consumer->last_error(), StatusIs(StatusCode::kInternal));
  EXPECT_EQ(bus_.Unacked("workers"), 2u);
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(bus_.Unacked("workers"), 2u);
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  EXPECT_EQ(consumer->stats().nacked, 4);
}

TEST_F(BusConsumerTest, FailedDeadLetterPublishKeepsTheMessageOnTheBus) {
  FlakyChangeBus flaky(bus_, {});
  Publish({Msg("poison")});
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(&flaky), [&](std::span<const Delivery> batch) {
                         return std::vector<Status>(batch.size(), InvalidArgumentError("bad"));
                       }));
  flaky.FailNextPublishes(1);
  EXPECT_THAT(consumer->RunOnce(), StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(bus_.Unacked("workers"), 1u);
  EXPECT_TRUE(DeadLetters().empty());
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  EXPECT_EQ(DeadLetters().size(), 1u);
}

TEST_F(BusConsumerTest, MissingDeadLetterTopicIsCreatedOnFirstUse) {
  Publish({Msg("poison")});
  BusConsumerOptions o = Options();
  o.dead_letter_topic = "fresh-dlq";
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> b) {
                         return std::vector<Status>(b.size(), InvalidArgumentError("bad"));
                       }));
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(bus_.AllMessages("fresh-dlq").size(), 1u);
}

TEST_F(BusConsumerTest, NothingIsLostUnderInjectedFaults) {
  FlakyChangeBus flaky(bus_, {.fail_pull = 0.1,
                              .duplicate_delivery = 0.05,
                              .hold_back_redelivery = 0.5,
                              .fail_ack = 0.1,
                              .seed = 7});
  std::vector<BusMessage> m;
  for (int i = 0; i < 600; ++i) {
    m.push_back(Msg(fmt::format("{}:{}", i % 12, i / 12), fmt::format("k{}", i % 12)));
  }
  // A short deadline: a failed Ack leaves its messages leased (and their keys blocked) until
  // the deadline passes.
  ASSERT_OK(bus_.EnsureSubscription("fast", "changes",
                                    {.ack_deadline = milliseconds(200), .ordered = true}));
  Publish(m);
  std::mt19937 rng(3);
  std::mutex mu;
  std::set<std::string> handled_ok;
  BusConsumerOptions o = Options(&flaky);
  o.subscription = "fast";
  o.ack_deadline = milliseconds(200);
  o.max_attempts = 1000;
  o.batch_size = 50;
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> batch) {
                         std::lock_guard lock(mu);
                         std::vector<Status> out(batch.size());
                         for (size_t i = 0; i < batch.size(); ++i) {
                           if (rng() % 10 == 0) {
                             out[i] = UnavailableError("transient");
                           } else {
                             handled_ok.insert(batch[i].message.data);
                           }
                         }
                         return out;
                       }));
  ASSERT_OK(consumer->Start());
  for (int i = 0; i < 4000 && bus_.Unacked("fast") > 0; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  consumer->Stop();
  EXPECT_EQ(bus_.Unacked("fast"), 0u);
  std::lock_guard lock(mu);
  EXPECT_EQ(handled_ok.size(), 600u);
  EXPECT_EQ(consumer->stats().dead_lettered, 0);
  EXPECT_GT(consumer->stats().errors, 0);
}

TEST(BusConsumerOptionsTest, BadOptionsAreNamed) {
  InMemoryChangeBus bus;
  auto ok = [](std::span<const Delivery> b) { return std::vector<Status>(b.size()); };
  BusConsumerOptions o{.bus = &bus, .subscription = "workers", .dead_letter_topic = "dlq-topic"};
  EXPECT_OK(BusConsumer::Create(o, ok));
  auto bad = o;
  bad.dead_letter_topic = "";
  EXPECT_THAT(BusConsumer::Create(bad, ok), StatusIs(StatusCode::kInvalidArgument));
  bad = o;
  bad.bus = nullptr;
  EXPECT_THAT(BusConsumer::Create(bad, ok), StatusIs(StatusCode::kInvalidArgument));
  bad = o;
  bad.extend_fraction = 1.5;
  EXPECT_THAT(BusConsumer::Create(bad, ok), StatusIs(StatusCode::kInvalidArgument));
  bad = o;
  bad.max_attempts = 0;
  EXPECT_THAT(BusConsumer::Create(bad, ok), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(BusConsumer::Create(o, nullptr), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ch
