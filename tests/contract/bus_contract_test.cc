// BusContractTest: one suite, every ChangeBus (conventions §3). The in-memory bus is the
// reference; the embedded SQLite queue and Google Pub/Sub (through its emulator) must mean the
// same. Documented deviations are capability flags: a test that needs a capability is skipped,
// visibly, for a bus without it.
//
// Adding a bus is one entry in AllBusBackends(). A bus that needs a server returns a skip reason
// when its environment is not configured (Pub/Sub: PUBSUB_EMULATOR_HOST; project from
// CH_TEST_PUBSUB_PROJECT, default "ch-test"). Names are unique per test and deleted afterwards.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bus/change_bus.h"
#include "bus/embedded_change_bus.h"
#include "bus/in_memory_change_bus.h"
#include "bus/pubsub_change_bus.h"
#include "testing/test_util.h"

namespace ch::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct BusCapabilities {
  // delivery_attempt counts 1, 2, ... (false: it is 0, "unknown").
  bool reports_delivery_attempt = true;
};

struct BusBackend {
  // Test name suffix. Letters and digits only.
  std::string name;
  BusCapabilities caps;
  // The shortest ack deadline the bus honours; the redelivery tests wait a few of these.
  Micros short_deadline = milliseconds(500);
  // "" when the bus can run here, else why not.
  std::function<std::string()> skip_reason = [] { return std::string(); };
  // Open a bus keeping its state under `dir` (a fresh per-test directory) when it needs files.
  std::function<Result<std::unique_ptr<ChangeBus>>(const std::string& dir)> open;
  // Remove server-side resources a test created (no-op for local buses).
  std::function<void(ChangeBus&, const std::vector<std::string>& topics,
                     const std::vector<std::string>& subscriptions)>
      cleanup = [](ChangeBus&, const auto&, const auto&) {};
};

std::vector<BusBackend> AllBusBackends() {
  std::vector<BusBackend> out;
  out.push_back(BusBackend{
      .name = "InMemory", .open = [](const std::string&) -> Result<std::unique_ptr<ChangeBus>> {
        return std::unique_ptr<ChangeBus>(std::make_unique<InMemoryChangeBus>());
      }});
  out.push_back(BusBackend{
      .name = "Embedded", .open = [](const std::string& dir) -> Result<std::unique_ptr<ChangeBus>> {
        // synchronous=NORMAL: the suite checks semantics, not power-loss durability.
        ASSIGN_OR_RETURN(auto bus, EmbeddedChangeBus::Open(
                                       {.path = dir + "/queue.db", .synchronous = "NORMAL"}));
        return std::unique_ptr<ChangeBus>(std::move(bus));
      }});
  out.push_back(BusBackend{
      .name = "PubSubEmulator",
      .caps = {.reports_delivery_attempt = false},
      // The emulator's (and Pub/Sub's) minimum ack deadline.
      .short_deadline = seconds(10),
      .skip_reason =
          [] {
            const char* host = std::getenv("PUBSUB_EMULATOR_HOST");
            return (host && *host) ? std::string()
                                   : std::string(
                                         "PUBSUB_EMULATOR_HOST is not set (start it with "
                                         "scripts/services.sh start pubsub)");
          },
      .open = [](const std::string&) -> Result<std::unique_ptr<ChangeBus>> {
        const char* project = std::getenv("CH_TEST_PUBSUB_PROJECT");
        ASSIGN_OR_RETURN(auto bus, PubSubChangeBus::Open({.project = project ? project : "ch-test",
                                                          .max_attempts = 3}));
        return std::unique_ptr<ChangeBus>(std::move(bus));
      },
      .cleanup =
          [](ChangeBus& bus, const std::vector<std::string>& topics,
             const std::vector<std::string>& subscriptions) {
            auto& pubsub = static_cast<PubSubChangeBus&>(bus);
            for (const auto& s : subscriptions) pubsub.DeleteSubscription(s).IgnoreError();
            for (const auto& t : topics) pubsub.DeleteTopic(t).IgnoreError();
          }});
  return out;
}

std::vector<std::string> AckIds(const std::vector<Delivery>& ds) {
  std::vector<std::string> ids;
  for (const Delivery& d : ds) ids.push_back(d.ack_id);
  return ids;
}

class BusContractTest : public ::testing::TestWithParam<BusBackend> {
 protected:
  void SetUp() override {
    if (std::string why = GetParam().skip_reason(); !why.empty()) GTEST_SKIP() << why;
    auto bus = GetParam().open(dir_.path().string());
    ASSERT_OK(bus);
    bus_ = std::move(bus).value();
  }

  void TearDown() override {
    if (bus_) GetParam().cleanup(*bus_, topics_, subscriptions_);
  }

  // A name unique to this test run (Pub/Sub's are shared by everyone using the emulator).
  std::string Unique(std::string_view base) {
    static std::atomic<int> counter{0};
    return fmt::format("ct-{}-{}-{}-{}", base, getpid(), counter++,
                       std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
  }

  // Create a fresh topic and a subscription on it; return {topic, subscription}.
  std::pair<std::string, std::string> MakeTopicAndSubscription(const SubscriptionOptions& o) {
    std::string topic = Unique("t");
    std::string sub = Unique("s");
    Status s = bus_->EnsureTopic(topic);
    EXPECT_OK(s);
    topics_.push_back(topic);
    s = bus_->EnsureSubscription(sub, topic, o);
    EXPECT_OK(s);
    subscriptions_.push_back(sub);
    return {topic, sub};
  }

  // Pull until `n` distinct messages arrived or `timeout` passed, acknowledging each batch.
  std::vector<Delivery> PullAndAck(const std::string& sub, size_t n, Micros timeout) {
    std::vector<Delivery> out;
    std::set<std::string> seen;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (seen.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto got = bus_->Pull(sub, 100, milliseconds(500));
      EXPECT_OK(got);
      if (!got.ok()) break;
      for (Delivery& d : *got) {
        if (seen.insert(d.message_id).second) out.push_back(d);
      }
      if (!got->empty()) {
        EXPECT_OK(bus_->Ack(sub, AckIds(*got)));
      }
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<ChangeBus> bus_;
  std::vector<std::string> topics_;
  std::vector<std::string> subscriptions_;
};

TEST_P(BusContractTest, EnsureIsIdempotentAndChecksWhatExists) {
  auto [topic, sub] = MakeTopicAndSubscription({.ordered = true});
  EXPECT_OK(bus_->EnsureTopic(topic));
  EXPECT_OK(bus_->EnsureSubscription(sub, topic, {.ordered = true}));
  std::string other = Unique("o");
  ASSERT_OK(bus_->EnsureTopic(other));
  topics_.push_back(other);
  EXPECT_THAT(bus_->EnsureSubscription(sub, other, {.ordered = true}),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(bus_->EnsureSubscription(sub, topic, {.ordered = false}),
              StatusIs(StatusCode::kFailedPrecondition));
  std::string orphan = Unique("orphan");
  EXPECT_THAT(bus_->EnsureSubscription(orphan, Unique("missing"), {}),
              StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(bus_->EnsureTopic("x"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(bus_->EnsureTopic("9lives"), StatusIs(StatusCode::kInvalidArgument));
}

TEST_P(BusContractTest, PublishPullAck) {
  auto [topic, sub] = MakeTopicAndSubscription({.ordered = false});
  Timestamp before = SystemClock::Default().Now();
  std::vector<BusMessage> m = {{.data = "one"}, {.data = "two"}, {.data = "three"}};
  ASSERT_OK(bus_->Publish(topic, m));
  std::vector<Delivery> got = PullAndAck(sub, 3, seconds(20));
  ASSERT_EQ(got.size(), 3u);
  std::multiset<std::string> data;
  std::set<std::string> ids;
  for (const Delivery& d : got) {
    data.insert(d.message.data);
    ids.insert(d.message_id);
    EXPECT_FALSE(d.ack_id.empty());
    EXPECT_FALSE(d.message_id.empty());
    if (GetParam().caps.reports_delivery_attempt) {
      EXPECT_EQ(d.delivery_attempt, 1);
    }
    // Publish times come from the bus's clock (the server's for Pub/Sub): allow some skew.
    EXPECT_GE(d.publish_time, before - seconds(5));
    EXPECT_LE(d.publish_time, SystemClock::Default().Now() + seconds(5));
  }
  EXPECT_EQ(data, (std::multiset<std::string>{"one", "three", "two"}));
  EXPECT_EQ(ids.size(), 3u);
  ASSERT_OK_AND_ASSIGN(auto after, bus_->Pull(sub, 100, milliseconds(300)));
  EXPECT_TRUE(after.empty()) << after.size() << " message(s) delivered again after Ack";
}

TEST_P(BusContractTest, MissingTopicOrSubscriptionIsNotFoundAndBadMessagesAreRejected) {
  auto [topic, sub] = MakeTopicAndSubscription({.ordered = false});
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_THAT(bus_->Publish(Unique("nosuch"), m), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(bus_->Pull(Unique("nosuch"), 10, Micros(0)), StatusIs(StatusCode::kNotFound));
  std::vector<BusMessage> bad = {{.data = "ok"}, {}};
  EXPECT_THAT(bus_->Publish(topic, bad), StatusIs(StatusCode::kInvalidArgument));
  std::vector<BusMessage> bad_key = {{.data = "x", .ordering_key = "\xc3\x28"}};
  EXPECT_THAT(bus_->Publish(topic, bad_key), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(auto none, bus_->Pull(sub, 10, milliseconds(300)));
  EXPECT_TRUE(none.empty()) << "a rejected publish delivered something";
}

TEST_P(BusContractTest, MessagesPublishedBeforeTheSubscriptionAreNotDelivered) {
  std::string topic = Unique("t");
  ASSERT_OK(bus_->EnsureTopic(topic));
  topics_.push_back(topic);
  std::vector<BusMessage> early = {{.data = "early"}};
  ASSERT_OK(bus_->Publish(topic, early));
  std::string sub = Unique("s");
  ASSERT_OK(bus_->EnsureSubscription(sub, topic, {.ordered = false}));
  subscriptions_.push_back(sub);
  std::vector<BusMessage> late = {{.data = "late"}};
  ASSERT_OK(bus_->Publish(topic, late));
  std::vector<Delivery> got = PullAndAck(sub, 1, seconds(20));
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "late");
  ASSERT_OK_AND_ASSIGN(auto more, bus_->Pull(sub, 10, milliseconds(300)));
  EXPECT_TRUE(more.empty()) << "a message published before the subscription was delivered";
}

TEST_P(BusContractTest, UnackedMessageIsRedeliveredAfterTheDeadline) {
  Micros deadline = GetParam().short_deadline;
  auto [topic, sub] = MakeTopicAndSubscription({.ack_deadline = deadline, .ordered = false});
  std::vector<BusMessage> m = {{.data = "lease-me"}};
  ASSERT_OK(bus_->Publish(topic, m));
  std::vector<Delivery> first;
  for (int i = 0; i < 20 && first.empty(); ++i) {
    ASSERT_OK_AND_ASSIGN(first, bus_->Pull(sub, 10, seconds(1)));
  }
  ASSERT_EQ(first.size(), 1u);
  auto leased_at = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto early, bus_->Pull(sub, 10, Micros(0)));
  EXPECT_TRUE(early.empty()) << "delivered again while leased";
  ASSERT_OK_AND_ASSIGN(auto again, bus_->Pull(sub, 10, deadline * 4));
  ASSERT_EQ(again.size(), 1u) << "not delivered again after the ack deadline";
  EXPECT_GE(std::chrono::steady_clock::now() - leased_at, deadline - milliseconds(100));
  EXPECT_EQ(again[0].message_id, first[0].message_id);
  EXPECT_EQ(again[0].message.data, "lease-me");
  if (GetParam().caps.reports_delivery_attempt) {
    EXPECT_EQ(first[0].delivery_attempt, 1);
    EXPECT_GE(again[0].delivery_attempt, 2);
  } else {
    EXPECT_EQ(again[0].delivery_attempt, 0);
  }
  ASSERT_OK(bus_->Ack(sub, AckIds(again)));
}

TEST_P(BusContractTest, NackedMessageIsRedeliveredPromptly) {
  auto [topic, sub] = MakeTopicAndSubscription({.ack_deadline = seconds(60), .ordered = true});
  std::vector<BusMessage> m = {{.data = "retry-me", .ordering_key = "k"}};
  ASSERT_OK(bus_->Publish(topic, m));
  std::vector<Delivery> first;
  for (int i = 0; i < 20 && first.empty(); ++i) {
    ASSERT_OK_AND_ASSIGN(first, bus_->Pull(sub, 10, seconds(1)));
  }
  ASSERT_EQ(first.size(), 1u);
  ASSERT_OK(bus_->Nack(sub, AckIds(first)));
  auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto again, bus_->Pull(sub, 10, seconds(10)));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, seconds(5));
  EXPECT_EQ(again[0].message_id, first[0].message_id);
  if (GetParam().caps.reports_delivery_attempt) {
    EXPECT_EQ(again[0].delivery_attempt, 2);
  }
  ASSERT_OK(bus_->Ack(sub, AckIds(again)));
}

TEST_P(BusContractTest, ExtendedDeadlineIsNotRedeliveredEarly) {
  Micros deadline = GetParam().short_deadline;
  auto [topic, sub] = MakeTopicAndSubscription({.ack_deadline = deadline, .ordered = false});
  std::vector<BusMessage> m = {{.data = "slow-work"}};
  ASSERT_OK(bus_->Publish(topic, m));
  std::vector<Delivery> first;
  for (int i = 0; i < 20 && first.empty(); ++i) {
    ASSERT_OK_AND_ASSIGN(first, bus_->Pull(sub, 10, seconds(1)));
  }
  ASSERT_EQ(first.size(), 1u);
  std::this_thread::sleep_for(deadline / 2);
  ASSERT_OK(bus_->ExtendDeadline(sub, AckIds(first), deadline * 3));
  // Watch from half the deadline until one and a half deadlines: nothing may come back.
  ASSERT_OK_AND_ASSIGN(auto during, bus_->Pull(sub, 10, deadline));
  EXPECT_TRUE(during.empty()) << "redelivered although the lease was extended";
  ASSERT_OK(bus_->Ack(sub, AckIds(first)));
}

TEST_P(BusContractTest, PerKeyOrderOnFirstDelivery) {
  constexpr int kKeys = 10;
  constexpr int kMessages = 4000;
  auto [topic, sub] = MakeTopicAndSubscription({.ack_deadline = seconds(60), .ordered = true});
  std::vector<BusMessage> m;
  for (int i = 0; i < kMessages; ++i) {
    int key = i % kKeys;
    m.push_back(BusMessage{.data = fmt::format("{}:{}", key, i / kKeys),
                           .ordering_key = fmt::format("campaign-{}", key),
                           .attributes = {{"seq", std::to_string(i / kKeys)}}});
  }
  // In four publishes of 1,000, as a capture relay would send them.
  for (int b = 0; b < kMessages; b += 1000) {
    ASSERT_OK(bus_->Publish(topic, std::span<const BusMessage>(m).subspan(b, 1000)));
  }
  std::vector<Delivery> got = PullAndAck(sub, kMessages, seconds(120));
  ASSERT_EQ(got.size(), static_cast<size_t>(kMessages));
  std::map<std::string, int> last;
  int violations = 0;
  for (const Delivery& d : got) {
    int seq = std::stoi(d.message.attributes.at("seq"));
    auto [it, fresh] = last.try_emplace(d.message.ordering_key, -1);
    if (seq != it->second + 1) ++violations;
    it->second = seq;
  }
  EXPECT_EQ(violations, 0);
  EXPECT_EQ(last.size(), static_cast<size_t>(kKeys));
}

TEST_P(BusContractTest, LargePublishesAreSplitAndAllArrive) {
  auto [topic, sub] = MakeTopicAndSubscription({.ack_deadline = seconds(60), .ordered = false});
  // 2,500 small messages (more than 1,000 per request) and 1,100 of 10 KB (more than 9 MB).
  std::vector<BusMessage> small, big;
  for (int i = 0; i < 2500; ++i) small.push_back({.data = fmt::format("s{}", i)});
  for (int i = 0; i < 1100; ++i) {
    big.push_back({.data = fmt::format("b{}:", i) + std::string(10 * 1024, 'x')});
  }
  ASSERT_OK(bus_->Publish(topic, small));
  ASSERT_OK(bus_->Publish(topic, big));
  std::vector<Delivery> got = PullAndAck(sub, 3600, seconds(120));
  std::set<std::string> names;
  for (const Delivery& d : got) names.insert(d.message.data.substr(0, d.message.data.find(':')));
  EXPECT_EQ(got.size(), 3600u);
  EXPECT_EQ(names.size(), 3600u);
}

TEST_P(BusContractTest, AttributesAndDataAreBinarySafe) {
  auto [topic, sub] = MakeTopicAndSubscription({.ack_deadline = seconds(60), .ordered = true});
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte.push_back(static_cast<char>(b));
  std::vector<BusMessage> m = {
      {.data = every_byte, .ordering_key = "k", .attributes = {{"kind", "bytes"}}},
      {.data = std::string("nul\0inside\0", 11),
       .ordering_key = "k",
       .attributes = {{"kind", "nul"}}},
      {.data = "Grüße 👋 \"quoted\" \\ back",
       .ordering_key = "k",
       .attributes = {{"kind", "utf8"}, {"emoji", "🎉"}, {"quote", "\"\\/\n\t"}, {"empty", ""}}},
      {.data = "", .ordering_key = "kunde-ü", .attributes = {{"kind", "attributes-only"}}},
  };
  ASSERT_OK(bus_->Publish(topic, m));
  std::vector<Delivery> got = PullAndAck(sub, m.size(), seconds(20));
  ASSERT_EQ(got.size(), m.size());
  std::map<std::string, BusMessage> by_kind;
  for (const Delivery& d : got) by_kind[d.message.attributes.at("kind")] = d.message;
  EXPECT_EQ(by_kind["bytes"], m[0]);
  EXPECT_EQ(by_kind["nul"], m[1]);
  EXPECT_EQ(by_kind["utf8"], m[2]);
  EXPECT_EQ(by_kind["attributes-only"], m[3]);
}

INSTANTIATE_TEST_SUITE_P(AllBuses, BusContractTest, ::testing::ValuesIn(AllBusBackends()),
                         [](const ::testing::TestParamInfo<BusBackend>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace ch::testing
