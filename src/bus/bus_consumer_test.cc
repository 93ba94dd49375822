#include "bus/bus_consumer.h"

#include <fmt/format.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

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

// Collects what the code under test logs (the default spdlog logger) while it lives.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(10000)) {
    previous_ = spdlog::default_logger();
    auto logger = std::make_shared<spdlog::logger>("capture", sink_);
    logger->set_level(spdlog::level::trace);
    logger->set_pattern("%l %v");
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }
  // The lines that contain `needle`.
  std::vector<std::string> Lines(std::string_view needle) {
    std::vector<std::string> out;
    for (std::string& l : sink_->last_formatted()) {
      if (l.find(needle) != std::string::npos) out.push_back(std::move(l));
    }
    return out;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
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

  // A consumer whose handler sees every batch and fails the message `data` with `failure` while
  // `fail` is set.
  std::unique_ptr<BusConsumer> FailingWhile(const bool& fail, std::string data, Status failure) {
    auto consumer = BusConsumer::Create(
        Options(), [this, &fail, data, failure](std::span<const Delivery> batch) {
          See(batch);
          std::vector<Status> out(batch.size());
          for (size_t i = 0; i < batch.size(); ++i) {
            if (fail && batch[i].message.data == data) out[i] = failure;
          }
          return out;
        });
    EXPECT_OK(consumer.status());
    return consumer.ok() ? std::move(consumer).value() : nullptr;
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

TEST_F(BusConsumerTest, UncertainFailureNacksItAndEveryLaterMessageOfItsKey) {
  Publish({Msg("a1", "a"), Msg("b1", "b"), Msg("a2", "a"), Msg("a3", "a"), Msg("b2", "b")});
  bool fail = true;
  auto consumer = FailingWhile(fail, "a2", InternalError("parser crashed"));
  ASSERT_NE(consumer, nullptr);
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(consumer->stats().acked, 3);   // a1 b1 b2
  EXPECT_EQ(consumer->stats().nacked, 2);  // a2 and a3, although a3 itself was fine
  EXPECT_EQ(bus_.Unacked("workers"), 2u);
  EXPECT_THAT(consumer->last_error(), StatusIs(StatusCode::kInternal));
  EXPECT_FALSE(consumer->stats().blocked) << "a message's own failure blocks nothing";
  fail = false;
  seen_.clear();
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(Join(seen_), "a2 a3");  // the key again, in order, from the failed message on
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

// The history store is down: the message is fine, so it is held -- leased, not redelivered --
// and handed to the handler again, with every later message of its key, before anything new is
// pulled.
TEST_F(BusConsumerTest, DependencyFailureHoldsItAndEveryLaterMessageOfItsKey) {
  Publish({Msg("a1", "a"), Msg("b1", "b"), Msg("a2", "a"), Msg("a3", "a"), Msg("b2", "b")});
  bool fail = true;
  auto consumer = FailingWhile(fail, "a2", UnavailableError("history store: cannot connect"));
  ASSERT_NE(consumer, nullptr);
  EXPECT_THAT(consumer->RunOnce(), StatusIs(StatusCode::kUnavailable));
  BusConsumerStats s = consumer->stats();
  EXPECT_EQ(s.acked, 3);  // a1 b1 b2
  EXPECT_EQ(s.nacked, 0);
  EXPECT_EQ(s.held, 2);  // a2 and a3
  EXPECT_TRUE(s.blocked);
  EXPECT_EQ(s.blocking_error.message(), "history store: cannot connect");
  EXPECT_EQ(bus_.Unacked("workers"), 2u);
  Publish({Msg("a4", "a"), Msg("c1", "c")});
  seen_.clear();
  EXPECT_THAT(consumer->RunOnce(), StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(Join(seen_), "a2 a3") << "a held batch is retried before anything new is pulled";
  EXPECT_EQ(consumer->stats().retries, 2);
  fail = false;
  seen_.clear();
  ASSERT_OK_AND_ASSIGN(size_t n, consumer->RunOnce());
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(Join(seen_), "a2 a3");
  s = consumer->stats();
  EXPECT_FALSE(s.blocked);
  EXPECT_OK(s.blocking_error);
  EXPECT_EQ(s.held, 0);
  EXPECT_EQ(s.delivered, 5) << "held messages are not delivered again";
  EXPECT_EQ(s.dependency_failures, 2);
  seen_.clear();
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(Join(seen_), "a4 c1");
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
  EXPECT_TRUE(DeadLetters().empty());
}

// An outage is not a poison message: whatever the dependency's failure (down, full, read-only,
// misconfigured, corrupt) and however long it lasts, the message is never dead-lettered and the
// outage costs it no attempt.
TEST_F(BusConsumerTest, DependencyFailuresAreNeverDeadLetteredAndCostNoAttempts) {
  for (Status failure :
       {UnavailableError("cannot connect"), ResourceExhaustedError("database or disk is full"),
        PermissionDeniedError("attempt to write a readonly database"),
        FailedPreconditionError("topic is missing"),
        DataLossError("database disk image is malformed"),
        DeadlineExceededError("statement timeout")}) {
    SCOPED_TRACE(failure.ToString());
    Publish({Msg("m", "k")});
    BusConsumerOptions o = Options();
    o.max_attempts = 2;
    int calls = 0;
    std::vector<int> attempts;
    ASSERT_OK_AND_ASSIGN(auto consumer,
                         BusConsumer::Create(o, [&](std::span<const Delivery> batch) {
                           ++calls;
                           for (const Delivery& d : batch) attempts.push_back(d.delivery_attempt);
                           if (calls <= 10) return std::vector<Status>(batch.size(), failure);
                           if (calls == 11) {  // then a failure of its own, once
                             return std::vector<Status>(batch.size(), InternalError("oops"));
                           }
                           return std::vector<Status>(batch.size());
                         }));
    for (int i = 0; i < 10; ++i) EXPECT_THAT(consumer->RunOnce(), StatusIs(failure.code()));
    EXPECT_TRUE(DeadLetters().empty());
    EXPECT_EQ(consumer->stats().dead_lettered, 0);
    ASSERT_OK(consumer->RunOnce().status());  // its first real attempt: nacked, not given up
    EXPECT_TRUE(DeadLetters().empty());
    ASSERT_OK(consumer->RunOnce().status());
    EXPECT_EQ(consumer->stats().acked, 1);
    EXPECT_EQ(attempts, (std::vector<int>{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2}));
    EXPECT_EQ(bus_.Unacked("workers"), 0u);
  }
}

// The state is visible (stats) and logged when it changes -- not once per retry.
TEST_F(BusConsumerTest, BlockedStateIsReportedAndLoggedOncePerChange) {
  LogCapture log;
  FakeClock clock;
  Publish({Msg("m")});
  BusConsumerOptions o = Options();
  o.clock = &clock;
  int calls = 0;
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> b) {
                         ++calls;
                         if (calls <= 5) {
                           return std::vector<Status>(b.size(), UnavailableError("history down"));
                         }
                         if (calls <= 8) {
                           return std::vector<Status>(b.size(),
                                                      ResourceExhaustedError("disk is full"));
                         }
                         return std::vector<Status>(b.size());
                       }));
  const Timestamp start = clock.Now();
  for (int i = 0; i < 8; ++i) {
    EXPECT_FALSE(consumer->RunOnce().ok());
    clock.Advance(seconds(1));
  }
  BusConsumerStats s = consumer->stats();
  EXPECT_TRUE(s.blocked);
  EXPECT_EQ(s.blocked_since, start);
  EXPECT_EQ(s.retries, 8);
  EXPECT_EQ(s.held, 1);
  EXPECT_THAT(s.blocking_error, StatusIs(StatusCode::kResourceExhausted));
  ASSERT_OK(consumer->RunOnce().status());
  s = consumer->stats();
  EXPECT_FALSE(s.blocked);
  EXPECT_EQ(s.retries, 0);
  EXPECT_EQ(s.dependency_failures, 8);
  EXPECT_EQ(s.acked, 1);
  auto blocked = log.Lines("blocked: UNAVAILABLE: history down");
  ASSERT_EQ(blocked.size(), 1u);
  EXPECT_TRUE(blocked[0].starts_with("error bus consumer 'workers'")) << blocked[0];
  EXPECT_NE(blocked[0].find("holding 1 message(s)"), std::string::npos) << blocked[0];
  EXPECT_EQ(log.Lines("still blocked").size(), 1u);  // when the error changed, once
  auto cleared = log.Lines("unblocked");
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_NE(cleared[0].find("8 failed tries (it was: RESOURCE_EXHAUSTED: disk is full)"),
            std::string::npos)
      << cleared[0];
}

// A failed pull is a dependency failure too: blocked until the bus answers again.
TEST_F(BusConsumerTest, AFailingBusBlocksUntilItAnswers) {
  FlakyChangeBus flaky(bus_, {});
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create(Options(&flaky), [&](std::span<const Delivery> b) {
                         return std::vector<Status>(b.size());
                       }));
  flaky.FailNextPulls(2);
  EXPECT_THAT(consumer->RunOnce(), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(consumer->RunOnce(), StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(consumer->stats().blocked);
  EXPECT_NE(consumer->stats().blocking_error.message().find("pulling from 'workers'"),
            std::string::npos);
  ASSERT_OK(consumer->RunOnce().status());
  EXPECT_FALSE(consumer->stats().blocked);
}

// Every failed try is followed by a pause that doubles up to max_backoff -- also when the
// deliveries were nacked successfully (that is not progress).
TEST_F(BusConsumerTest, TheLoopBacksOffExponentiallyAfterFailedTries) {
  Publish({Msg("held"), Msg("flaky")});
  BusConsumerOptions o = Options();
  o.initial_backoff = milliseconds(1);
  o.max_backoff = milliseconds(8);
  o.max_attempts = 100;
  o.batch_size = 1;
  std::mutex mu;
  std::vector<int64_t> ceilings_ms;  // the backoff ceiling seen by each handler call
  std::map<std::string, int> calls;
  std::atomic<bool> done{false};
  BusConsumer* self = nullptr;
  ASSERT_OK_AND_ASSIGN(
      auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> b) {
        std::lock_guard lock(mu);
        ceilings_ms.push_back(
            std::chrono::duration_cast<milliseconds>(self->stats().backoff).count());
        const std::string& data = b[0].message.data;
        int n = ++calls[data];
        std::vector<Status> out(b.size());
        if (data == "held" && n <= 6) {
          out[0] = UnavailableError("down");  // held
        } else if (data == "flaky" && n <= 3) {
          out[0] = InternalError("oops");  // nacked
        } else if (data == "flaky") {
          done = true;
        }
        return out;
      }));
  self = consumer.get();
  ASSERT_OK(consumer->Start());
  for (int i = 0; i < 2000 && !done; ++i) std::this_thread::sleep_for(milliseconds(5));
  consumer->Stop();
  std::lock_guard lock(mu);
  ASSERT_TRUE(done);
  // 6 holds: 0 (first call), 1, 2, 4, 8, 8 ms; then "held" succeeds (8: the try before failed);
  // "flaky" fails 3 times: 0 (a clean try reset it), 1, 2; then succeeds after 4.
  ASSERT_GE(ceilings_ms.size(), 11u);
  EXPECT_EQ(std::vector<int64_t>(ceilings_ms.begin(), ceilings_ms.begin() + 11),
            (std::vector<int64_t>{0, 1, 2, 4, 8, 8, 8, 0, 1, 2, 4}));
  EXPECT_EQ(consumer->stats().backoffs, 9);
  EXPECT_EQ(consumer->stats().dead_lettered, 0);
}

// Stopping while a dependency is down hands the held messages back at once, and those
// deliveries do not count as attempts.
TEST_F(BusConsumerTest, StopReleasesHeldMessagesWithoutCountingThem) {
  Publish({Msg("m")});
  BusConsumerOptions o = Options();
  o.max_attempts = 2;
  std::atomic<bool> down{true};
  std::vector<int> attempts;
  std::mutex mu;
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> b) {
                         std::lock_guard lock(mu);
                         for (const Delivery& d : b) attempts.push_back(d.delivery_attempt);
                         return std::vector<Status>(
                             b.size(), down ? UnavailableError("down") : InternalError("oops"));
                       }));
  ASSERT_OK(consumer->Start());
  for (int i = 0; i < 2000 && consumer->stats().held == 0; ++i) {
    std::this_thread::sleep_for(milliseconds(1));
  }
  consumer->Stop();
  EXPECT_EQ(consumer->stats().held, 0);
  EXPECT_EQ(bus_.Leased("workers"), 0u) << "released at once, not left to expire";
  down = false;
  ASSERT_OK(consumer->RunOnce().status());  // delivery 2, attempt 1: nacked
  EXPECT_TRUE(DeadLetters().empty());
  ASSERT_OK(consumer->RunOnce().status());  // delivery 3, attempt 2: given up
  std::vector<Delivery> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attributes.at("dead_letter_attempts"), "2");
}

TEST_F(BusConsumerTest, HeldMessagesKeepTheirLeases) {
  ASSERT_OK(bus_.EnsureSubscription("short", "changes",
                                    {.ack_deadline = milliseconds(300), .ordered = false}));
  Publish({Msg("m")});
  BusConsumerOptions o = Options();
  o.subscription = "short";
  o.ack_deadline = milliseconds(300);
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> b) {
                         return std::vector<Status>(b.size(), UnavailableError("down"));
                       }));
  EXPECT_FALSE(consumer->RunOnce().ok());
  int stolen = 0;
  for (int i = 0; i < 12; ++i) {  // 1.2 s: four ack deadlines
    auto got = bus_.Pull("short", 10, milliseconds(100));
    if (got.ok()) stolen += static_cast<int>(got->size());
  }
  EXPECT_EQ(stolen, 0) << "a held message was handed out again";
  EXPECT_GE(consumer->stats().extensions, 3);
}

TEST_F(BusConsumerTest, ADeadLetterTopicIsCreatedWithItsKeepingSubscription) {
  Publish({Msg("poison")});
  BusConsumerOptions o = Options();
  o.dead_letter_topic = "fresh-dlq";
  o.dead_letter_subscription = "fresh-dlq-keep";
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> b) {
                         return std::vector<Status>(b.size(), InvalidArgumentError("bad"));
                       }));
  ASSERT_OK(consumer->RunOnce().status());
  ASSERT_OK_AND_ASSIGN(auto kept, bus_.Pull("fresh-dlq-keep", 10, Micros(0)));
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept[0].message.data, "poison");
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

TEST_F(BusConsumerTest, UncertainFailureIsDeadLetteredAfterMaxAttempts) {
  Publish({Msg("flaky", "k"), Msg("after", "k")});
  BusConsumerOptions o = Options();
  o.max_attempts = 3;
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create(o, [&](std::span<const Delivery> batch) {
                         See(batch);
                         std::vector<Status> out(batch.size());
                         for (size_t i = 0; i < batch.size(); ++i) {
                           if (batch[i].message.data == "flaky") {
                             out[i] = InternalError("parser crashed");
                           }
                         }
                         return out;
                       }));
  for (int i = 0; i < 3; ++i) ASSERT_OK(consumer->RunOnce().status());
  EXPECT_EQ(Join(seen_), "flaky after flaky after flaky after");
  std::vector<Delivery> dead = DeadLetters();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.attributes.at("dead_letter_attempts"), "3");
  EXPECT_EQ(dead[0].message.attributes.at("dead_letter_reason"),
            "INTERNAL: gave up after 3 attempts: parser crashed");
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
                         return std::vector<Status>(batch.size(), InternalError("oops"));
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
    return std::vector<Status>(batch.size(), InternalError("oops"));
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
