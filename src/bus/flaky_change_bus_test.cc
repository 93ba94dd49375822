#include "bus/flaky_change_bus.h"

#include <fmt/format.h>

#include "bus/in_memory_change_bus.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

class FlakyChangeBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK(inner_.EnsureTopic("changes"));
    ASSERT_OK(inner_.EnsureSubscription("workers", "changes",
                                        {.ack_deadline = std::chrono::seconds(10)}));
  }
  FakeClock clock_;
  InMemoryChangeBus inner_{clock_};
};

TEST_F(FlakyChangeBusTest, DroppedPublishNeverReachesTheInnerBus) {
  FlakyChangeBus bus(inner_, {});
  bus.FailNextPublishes(1);
  std::vector<BusMessage> m = {{.data = "a"}};
  EXPECT_THAT(bus.Publish("changes", m), StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(inner_.AllMessages("changes").size(), 0u);
  EXPECT_OK(bus.Publish("changes", m));
  EXPECT_EQ(inner_.AllMessages("changes").size(), 1u);
  EXPECT_EQ(bus.stats().dropped_publishes, 1);
}

TEST_F(FlakyChangeBusTest, LostPublishReplyLeadsToDuplicatesOnRetry) {
  FlakyChangeBus bus(inner_, {.fail_after_publish = 1.0});
  std::vector<BusMessage> m = {{.data = "a"}};
  EXPECT_THAT(bus.Publish("changes", m), StatusIs(StatusCode::kUnavailable));
  bus.SetOptions({});
  EXPECT_OK(bus.Publish("changes", m));
  EXPECT_EQ(inner_.AllMessages("changes").size(), 2u);
}

TEST_F(FlakyChangeBusTest, DuplicatesAndFailuresAreInjected) {
  FlakyChangeBus bus(inner_, {.duplicate_delivery = 1.0});
  std::vector<BusMessage> m = {{.data = "a"}};
  ASSERT_OK(bus.Publish("changes", m));
  bus.FailNextPulls(1);
  EXPECT_THAT(bus.Pull("workers", 10, Micros(0)), StatusIs(StatusCode::kUnavailable));
  size_t seen = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto got, bus.Pull("workers", 10, Micros(0)));
    for (const Delivery& d : got) {
      EXPECT_EQ(d.message.data, "a");
      ++seen;
    }
  }
  EXPECT_GE(seen, 2u);
  EXPECT_GE(bus.stats().duplicated_deliveries, 1);
  bus.FailNextAcks(1);
  std::vector<std::string> ids = {"1.1"};
  EXPECT_THAT(bus.Ack("workers", ids), StatusIs(StatusCode::kUnavailable));
}

TEST_F(FlakyChangeBusTest, HeldBackRedeliveryComesAfterLaterMessages) {
  ASSERT_OK(inner_.EnsureSubscription("loose", "changes", {.ordered = false}));
  FlakyChangeBus bus(inner_, {.hold_back_redelivery = 1.0});
  std::vector<BusMessage> m = {{.data = "m1"}};
  ASSERT_OK(bus.Publish("changes", m));
  ASSERT_OK_AND_ASSIGN(auto first, bus.Pull("loose", 10, Micros(0)));
  ASSERT_OK(bus.Nack("loose", std::vector<std::string>{first[0].ack_id}));
  std::vector<BusMessage> later = {{.data = "m2"}, {.data = "m3"}};
  ASSERT_OK(bus.Publish("changes", later));
  std::vector<std::string> order;
  for (int i = 0; i < 3 && order.size() < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto got, bus.Pull("loose", 10, Micros(0)));
    for (const Delivery& d : got) order.push_back(d.message.data);
  }
  EXPECT_EQ(fmt::format("{}", fmt::join(order, " ")), "m2 m3 m1");
  EXPECT_EQ(bus.stats().held_back_redeliveries, 1);
}

}  // namespace
}  // namespace ch
