// BusConsumer on the Pub/Sub emulator: poison messages reach the dead-letter topic with their
// reason while 1,000 good messages all get acknowledged, in per-key order, and a message whose
// store is down far longer than max_attempts is held, not dead-lettered.
//
// The emulator's own dead-lettering is broken (facts.md: messages vanish, or every later pull of
// an ordered subscription fails with HTTP 500), so the subscription has no deadLetterPolicy and
// BusConsumer dead-letters by publishing; without the policy the emulator reports no
// delivery_attempt, so BusConsumer counts attempts itself -- both are exercised here.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "bus/bus_consumer.h"
#include "bus/pubsub_change_bus.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

class BusDeadLetterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* host = std::getenv("PUBSUB_EMULATOR_HOST");
    if (host == nullptr || *host == '\0') {
      GTEST_SKIP() << "PUBSUB_EMULATOR_HOST is not set (scripts/services.sh start pubsub)";
    }
    const char* project = std::getenv("CH_TEST_PUBSUB_PROJECT");
    auto bus = PubSubChangeBus::Open({.project = project ? project : "ch-test"});
    ASSERT_OK(bus);
    bus_ = std::move(bus).value();
    std::string suffix =
        fmt::format("{}-{}", getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
    topic_ = "dl-changes-" + suffix;
    sub_ = "dl-workers-" + suffix;
    dlq_ = "dl-dead-" + suffix;
    dlq_sub_ = "dl-dead-reader-" + suffix;
    ASSERT_OK(bus_->EnsureTopic(topic_));
    ASSERT_OK(
        bus_->EnsureSubscription(sub_, topic_, {.ack_deadline = seconds(30), .ordered = true}));
    ASSERT_OK(bus_->EnsureTopic(dlq_));
    ASSERT_OK(bus_->EnsureSubscription(dlq_sub_, dlq_, {.ordered = false}));
  }

  void TearDown() override {
    if (!bus_) return;
    for (const auto& s : {sub_, dlq_sub_}) bus_->DeleteSubscription(s).IgnoreError();
    for (const auto& t : {topic_, dlq_}) bus_->DeleteTopic(t).IgnoreError();
  }

  std::unique_ptr<PubSubChangeBus> bus_;
  std::string topic_, sub_, dlq_, dlq_sub_;
};

TEST_F(BusDeadLetterTest, PoisonGoesToTheDeadLetterTopicWhileGoodMessagesFlow) {
  constexpr int kGood = 1000;
  constexpr int kKeys = 10;
  std::vector<BusMessage> messages;
  for (int i = 0; i < kGood; ++i) {
    int key = i % kKeys;
    messages.push_back({.data = fmt::format("good {}", i),
                        .ordering_key = fmt::format("campaign-{}", key),
                        .attributes = {{"kind", "good"}, {"seq", std::to_string(i / kKeys)}}});
    if (i == 300) {  // rejected for good: InvalidArgument
      messages.push_back({.data = "not json",
                          .ordering_key = "campaign-3",
                          .attributes = {{"kind", "poison"}, {"seq", "-1"}}});
    }
    if (i == 600) {  // an internal error every time: dead-lettered after max_attempts
      messages.push_back({.data = "always crashes",
                          .ordering_key = "campaign-7",
                          .attributes = {{"kind", "crashes"}, {"seq", "-1"}}});
    }
    if (i == 800) {  // its store is down 10 times in a row, far beyond max_attempts: held, kept
      messages.push_back({.data = "outage",
                          .ordering_key = "campaign-5",
                          .attributes = {{"kind", "outage"}, {"seq", "-1"}}});
    }
  }
  ASSERT_OK(bus_->Publish(topic_, messages));

  std::mutex mu;
  std::map<std::string, std::vector<int>> first_ok_order;  // per key, seqs in first-OK order
  std::set<std::string> handled_ok;
  int outage_calls = 0;
  auto handler = [&](std::span<const Delivery> batch) {
    std::lock_guard lock(mu);
    std::vector<Status> out;
    for (const Delivery& d : batch) {
      const std::string& kind = d.message.attributes.at("kind");
      if (kind == "poison") {
        out.push_back(InvalidArgumentError("change message is not JSON"));
      } else if (kind == "crashes") {
        out.push_back(InternalError("record parser crashed"));
      } else if (kind == "outage" && ++outage_calls <= 10) {
        out.push_back(UnavailableError("history store: cannot connect"));
      } else {
        out.push_back(Status::OK());
        if (handled_ok.insert(d.message.data).second && kind == "good") {
          first_ok_order[d.message.ordering_key].push_back(
              std::stoi(d.message.attributes.at("seq")));
        }
      }
    }
    return out;
  };
  ASSERT_OK_AND_ASSIGN(auto consumer, BusConsumer::Create({.bus = bus_.get(),
                                                           .subscription = sub_,
                                                           .dead_letter_topic = dlq_,
                                                           .pull_wait = milliseconds(200),
                                                           .ack_deadline = seconds(30),
                                                           .max_attempts = 3,
                                                           .initial_backoff = milliseconds(10),
                                                           .max_backoff = milliseconds(100)},
                                                          handler));
  ASSERT_OK(consumer->Start());
  auto deadline = std::chrono::steady_clock::now() + seconds(90);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mu);
      if (handled_ok.size() == kGood + 1 && consumer->stats().dead_lettered == 2) break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  consumer->Stop();
  BusConsumerStats stats = consumer->stats();
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(handled_ok.size(), static_cast<size_t>(kGood + 1));
    EXPECT_TRUE(handled_ok.contains("outage")) << "held through its outage, then handled";
    EXPECT_GT(outage_calls, 10);
    // Per key, good messages were first accepted in publish order, the failures notwithstanding.
    for (const auto& [key, seqs] : first_ok_order) {
      for (size_t i = 0; i < seqs.size(); ++i) {
        ASSERT_EQ(seqs[i], static_cast<int>(i)) << key << " out of order at position " << i;
      }
    }
  }
  EXPECT_EQ(stats.dead_lettered, 2);
  EXPECT_GE(stats.acked, kGood + 3);
  EXPECT_GE(stats.nacked, 2);  // "always crashes" twice, with the rest of campaign-7 behind it
  EXPECT_GE(stats.dependency_failures, 10);

  // The dead-letter topic holds both, with their reasons.
  std::map<std::string, BusMessage> dead;
  auto until = std::chrono::steady_clock::now() + seconds(20);
  while (dead.size() < 2 && std::chrono::steady_clock::now() < until) {
    ASSERT_OK_AND_ASSIGN(auto got, bus_->Pull(dlq_sub_, 10, milliseconds(500)));
    std::vector<std::string> ids;
    for (const Delivery& d : got) {
      dead[d.message.attributes.at("kind")] = d.message;
      ids.push_back(d.ack_id);
    }
    if (!ids.empty()) {
      ASSERT_OK(bus_->Ack(dlq_sub_, ids));
    }
  }
  ASSERT_EQ(dead.size(), 2u);
  const BusMessage& poison = dead.at("poison");
  EXPECT_EQ(poison.data, "not json");
  EXPECT_EQ(poison.ordering_key, "campaign-3");
  EXPECT_EQ(poison.attributes.at("dead_letter_reason"),
            "INVALID_ARGUMENT: change message is not JSON");
  EXPECT_EQ(poison.attributes.at("dead_letter_attempts"), "1");
  EXPECT_EQ(poison.attributes.at("source_subscription"), sub_);
  const BusMessage& crashes = dead.at("crashes");
  EXPECT_EQ(crashes.attributes.at("dead_letter_reason"),
            "INTERNAL: gave up after 3 attempts: record parser crashed");
  EXPECT_EQ(crashes.attributes.at("dead_letter_attempts"), "3");
  EXPECT_FALSE(dead.contains("outage"));

  // Nothing is left on the work subscription.
  ASSERT_OK_AND_ASSIGN(auto rest, bus_->Pull(sub_, 100, milliseconds(500)));
  EXPECT_TRUE(rest.empty()) << rest.size() << " message(s) left";
}

}  // namespace
}  // namespace ch
