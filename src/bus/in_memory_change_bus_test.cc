#include "bus/in_memory_change_bus.h"

#include <fmt/format.h>

#include "bus/bus_limits.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

BusMessage Msg(std::string data, std::string key = "") {
  return BusMessage{.data = std::move(data), .ordering_key = std::move(key)};
}

// Render deliveries as "data@attempt" joined by spaces.
std::string Render(const std::vector<Delivery>& ds) {
  std::string out;
  for (const Delivery& d : ds) {
    if (!out.empty()) out += ' ';
    out += fmt::format("{}@{}", d.message.data, d.delivery_attempt);
  }
  return out;
}

std::vector<std::string> AckIds(const std::vector<Delivery>& ds) {
  std::vector<std::string> ids;
  for (const Delivery& d : ds) ids.push_back(d.ack_id);
  return ids;
}

class InMemoryChangeBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(bus_.EnsureTopic("changes"));
    ASSERT_OK(bus_.EnsureSubscription("workers", "changes",
                                      {.ack_deadline = std::chrono::seconds(10), .ordered = true}));
  }
  std::vector<Delivery> Pull(size_t max = 100) {
    auto r = bus_.Pull("workers", max, Micros(0));
    EXPECT_OK(r);
    return r.ok() ? *r : std::vector<Delivery>{};
  }

  FakeClock clock_;
  InMemoryChangeBus bus_{clock_};
};

TEST_F(InMemoryChangeBusTest, RedeliversAfterDeadlineOnTheInjectedClock) {
  std::vector<BusMessage> m = {Msg("a"), Msg("b")};
  ASSERT_OK(bus_.Publish("changes", m));
  EXPECT_EQ(Render(Pull()), "a@1 b@1");
  EXPECT_EQ(Render(Pull()), "");
  clock_.Advance(std::chrono::seconds(9));
  EXPECT_EQ(Render(Pull()), "");
  clock_.Advance(std::chrono::seconds(1));  // exactly at the deadline: due again
  auto again = Pull();
  EXPECT_EQ(Render(again), "a@2 b@2");
  ASSERT_OK(bus_.Ack("workers", AckIds(again)));
  clock_.Advance(std::chrono::seconds(60));
  EXPECT_EQ(Render(Pull()), "");
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
}

TEST_F(InMemoryChangeBusTest, StaleAckIdIsIgnored) {
  std::vector<BusMessage> m = {Msg("a")};
  ASSERT_OK(bus_.Publish("changes", m));
  auto first = Pull();
  clock_.Advance(std::chrono::seconds(10));
  auto second = Pull();
  ASSERT_EQ(Render(second), "a@2");
  ASSERT_OK(bus_.Ack("workers", AckIds(first)));  // the old lease: no effect
  EXPECT_EQ(bus_.Unacked("workers"), 1u);
  ASSERT_OK(bus_.Ack("workers", AckIds(second)));
  EXPECT_EQ(bus_.Unacked("workers"), 0u);
}

TEST_F(InMemoryChangeBusTest, NackAndZeroExtensionRedeliverAtOnce) {
  std::vector<BusMessage> m = {Msg("a"), Msg("b")};
  ASSERT_OK(bus_.Publish("changes", m));
  auto got = Pull();
  ASSERT_OK(bus_.Nack("workers", std::vector<std::string>{got[0].ack_id}));
  ASSERT_OK(bus_.ExtendDeadline("workers", std::vector<std::string>{got[1].ack_id}, Micros(0)));
  EXPECT_EQ(Render(Pull()), "a@2 b@2");
}

TEST_F(InMemoryChangeBusTest, ExtendDeadlineDelaysRedelivery) {
  std::vector<BusMessage> m = {Msg("a")};
  ASSERT_OK(bus_.Publish("changes", m));
  auto got = Pull();
  clock_.Advance(std::chrono::seconds(8));
  ASSERT_OK(bus_.ExtendDeadline("workers", AckIds(got), std::chrono::seconds(30)));
  clock_.Advance(std::chrono::seconds(29));
  EXPECT_EQ(Render(Pull()), "");
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Render(Pull()), "a@2");
  EXPECT_THAT(bus_.ExtendDeadline("workers", AckIds(got), std::chrono::seconds(601)),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(InMemoryChangeBusTest, OrderedKeyIsLeasedToOnePullerAtATime) {
  std::vector<BusMessage> m = {Msg("k1-1", "k1"), Msg("k2-1", "k2"), Msg("k1-2", "k1"),
                               Msg("none-1")};
  ASSERT_OK(bus_.Publish("changes", m));
  auto first = Pull(1);
  EXPECT_EQ(Render(first), "k1-1@1");
  // k1 is leased: its later message waits; k2 and unkeyed messages flow.
  std::vector<BusMessage> more = {Msg("k1-3", "k1"), Msg("none-2")};
  ASSERT_OK(bus_.Publish("changes", more));
  auto second = Pull();
  EXPECT_EQ(Render(second), "k2-1@1 none-1@1 none-2@1");
  ASSERT_OK(bus_.Ack("workers", AckIds(first)));
  EXPECT_EQ(Render(Pull()), "k1-2@1 k1-3@1");
}

TEST_F(InMemoryChangeBusTest, PartialNackOfAKeyReordersLikeTheEmulator) {
  // m1..m5 on one key in one batch; ack m1, nack only m2: m2 waits until m3..m5 are done, then
  // comes after them (what the Pub/Sub emulator does -- BusConsumer nacks the later ones too).
  std::vector<BusMessage> m;
  for (int i = 1; i <= 5; ++i) m.push_back(Msg(fmt::format("m{}", i), "k"));
  ASSERT_OK(bus_.Publish("changes", m));
  auto got = Pull();
  ASSERT_EQ(got.size(), 5u);
  ASSERT_OK(bus_.Ack("workers", std::vector<std::string>{got[0].ack_id}));
  ASSERT_OK(bus_.Nack("workers", std::vector<std::string>{got[1].ack_id}));
  EXPECT_EQ(Render(Pull()), "");
  ASSERT_OK(
      bus_.Ack("workers", std::vector<std::string>{got[2].ack_id, got[3].ack_id, got[4].ack_id}));
  EXPECT_EQ(Render(Pull()), "m2@2");
}

TEST_F(InMemoryChangeBusTest, UnorderedSubscriptionDoesNotBlockKeys) {
  ASSERT_OK(bus_.EnsureSubscription("loose", "changes", {.ordered = false}));
  std::vector<BusMessage> m = {Msg("a", "k"), Msg("b", "k")};
  ASSERT_OK(bus_.Publish("changes", m));
  ASSERT_OK_AND_ASSIGN(auto one, bus_.Pull("loose", 1, Micros(0)));
  ASSERT_OK_AND_ASSIGN(auto two, bus_.Pull("loose", 1, Micros(0)));
  EXPECT_EQ(Render(one) + " " + Render(two), "a@1 b@1");
}

TEST_F(InMemoryChangeBusTest, SubscriptionSeesOnlyLaterMessagesAndAllMessagesDumpsEverything) {
  std::vector<BusMessage> before = {Msg("early")};
  ASSERT_OK(bus_.Publish("changes", before));
  ASSERT_OK(bus_.EnsureSubscription("late", "changes", {}));
  std::vector<BusMessage> after = {Msg("later")};
  ASSERT_OK(bus_.Publish("changes", after));
  ASSERT_OK_AND_ASSIGN(auto got, bus_.Pull("late", 10, Micros(0)));
  EXPECT_EQ(Render(got), "later@1");
  auto all = bus_.AllMessages("changes");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].message.data, "early");
  EXPECT_EQ(all[0].message_id, "1");
  EXPECT_EQ(all[1].message.data, "later");
  EXPECT_EQ(all[1].publish_time, clock_.Now());
  EXPECT_EQ(bus_.AllMessages().size(), 2u);
  EXPECT_TRUE(bus_.AllMessages("nope").empty());
}

TEST_F(InMemoryChangeBusTest, ErrorsNameWhatIsWrong) {
  std::vector<BusMessage> m = {Msg("a")};
  EXPECT_THAT(bus_.Publish("missing", m), StatusIsWith(StatusCode::kNotFound, "missing"));
  EXPECT_THAT(bus_.Pull("missing", 1, Micros(0)), StatusIsWith(StatusCode::kNotFound, "missing"));
  EXPECT_THAT(bus_.EnsureSubscription("sub", "missing", {}), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(bus_.EnsureTopic("ab"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(bus_.EnsureTopic("1abc"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(bus_.EnsureTopic("goog-x"), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK(bus_.EnsureTopic("other"));
  EXPECT_THAT(bus_.EnsureSubscription("workers", "other", {}),
              StatusIsWith(StatusCode::kFailedPrecondition, "exists on topic 'changes'"));
  EXPECT_THAT(bus_.EnsureSubscription("workers", "changes", {.ordered = false}),
              StatusIsWith(StatusCode::kFailedPrecondition, "ordering"));
  EXPECT_OK(bus_.EnsureSubscription("workers", "changes", {}));
  std::vector<BusMessage> empty = {Msg("ok"), BusMessage{}};
  EXPECT_THAT(bus_.Publish("changes", empty),
              StatusIsWith(StatusCode::kInvalidArgument, "message 1 of 2"));
  EXPECT_EQ(bus_.Unacked("workers"), 0u);  // nothing of a rejected batch is published
  std::vector<BusMessage> bad_attr = {BusMessage{.data = "x", .attributes = {{"k", "\xff"}}}};
  EXPECT_THAT(bus_.Publish("changes", bad_attr),
              StatusIsWith(StatusCode::kInvalidArgument, "UTF-8"));
  std::vector<BusMessage> huge = {Msg(std::string(kMaxBusMessageBytes + 1, 'x'))};
  EXPECT_THAT(bus_.Publish("changes", huge), StatusIs(StatusCode::kInvalidArgument));
  std::vector<std::string> bogus = {"nonsense"};
  EXPECT_THAT(bus_.Ack("workers", bogus), StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(InMemoryChangeBusTest, PullWaitsForAPublishFromAnotherThread) {
  std::thread publisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<BusMessage> m = {Msg("late")};
    EXPECT_OK(bus_.Publish("changes", m));
  });
  auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto got, bus_.Pull("workers", 10, std::chrono::seconds(5)));
  publisher.join();
  EXPECT_EQ(Render(got), "late@1");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace ch
