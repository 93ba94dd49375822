#include "bus/embedded_change_bus.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/sqlite.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::ch::testing::TempDir;

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

class EmbeddedChangeBusTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<EmbeddedChangeBus>> OpenBus() {
    return EmbeddedChangeBus::Open({.path = dir_.File("queue.db"), .clock = &clock_});
  }
  void CreateTopics(EmbeddedChangeBus& bus) {
    ASSERT_OK(bus.EnsureTopic("changes"));
    ASSERT_OK(bus.EnsureSubscription("workers", "changes",
                                     {.ack_deadline = std::chrono::seconds(10), .ordered = true}));
  }

  TempDir dir_;
  FakeClock clock_;
};

TEST_F(EmbeddedChangeBusTest, MessagesAndLeasesSurviveReopening) {
  std::string first_ack;
  {
    ASSERT_OK_AND_ASSIGN(auto bus, OpenBus());
    CreateTopics(*bus);
    std::vector<BusMessage> m = {
        {.data = std::string("a\0b", 3), .ordering_key = "k", .attributes = {{"x", "1"}}},
        {.data = "c", .ordering_key = "k"}};
    ASSERT_OK(bus->Publish("changes", m));
    ASSERT_OK_AND_ASSIGN(auto got, bus->Pull("workers", 1, Micros(0)));
    ASSERT_EQ(got.size(), 1u);
    first_ack = got[0].ack_id;
  }
  ASSERT_OK_AND_ASSIGN(auto bus, OpenBus());
  CreateTopics(*bus);  // idempotent on an existing file
  // The lease held by the closed handle still blocks key k until its deadline.
  ASSERT_OK_AND_ASSIGN(auto none, bus->Pull("workers", 10, Micros(0)));
  EXPECT_EQ(Render(none), "");
  clock_.Advance(std::chrono::seconds(10));
  ASSERT_OK_AND_ASSIGN(auto got, bus->Pull("workers", 10, Micros(0)));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message.data, std::string("a\0b", 3));
  EXPECT_EQ(got[0].message.attributes, (std::map<std::string, std::string>{{"x", "1"}}));
  EXPECT_EQ(got[0].delivery_attempt, 2);
  EXPECT_EQ(got[0].publish_time, clock_.Now() - std::chrono::seconds(10));
  EXPECT_EQ(got[1].delivery_attempt, 1);
  std::vector<std::string> stale = {first_ack};
  ASSERT_OK(bus->Ack("workers", stale));
  EXPECT_EQ(*bus->Unacked("workers"), 2);
  ASSERT_OK(bus->Ack("workers", AckIds(got)));
  EXPECT_EQ(*bus->Unacked("workers"), 0);
}

TEST_F(EmbeddedChangeBusTest, TwoHandlesShareLeasesAndKeys) {
  ASSERT_OK_AND_ASSIGN(auto a, OpenBus());
  ASSERT_OK_AND_ASSIGN(auto b, OpenBus());
  CreateTopics(*a);
  std::vector<BusMessage> m = {{.data = "k1-1", .ordering_key = "k1"},
                               {.data = "k1-2", .ordering_key = "k1"},
                               {.data = "k2-1", .ordering_key = "k2"}};
  ASSERT_OK(a->Publish("changes", m));
  ASSERT_OK_AND_ASSIGN(auto got_a, a->Pull("workers", 1, Micros(0)));
  EXPECT_EQ(Render(got_a), "k1-1@1");
  ASSERT_OK_AND_ASSIGN(auto got_b, b->Pull("workers", 10, Micros(0)));
  EXPECT_EQ(Render(got_b), "k2-1@1");  // k1 is leased by the other handle
  ASSERT_OK(a->Ack("workers", AckIds(got_a)));
  ASSERT_OK_AND_ASSIGN(auto next, b->Pull("workers", 10, Micros(0)));
  EXPECT_EQ(Render(next), "k1-2@1");
}

TEST_F(EmbeddedChangeBusTest, MessageRowsGoWithTheLastAcknowledgement) {
  ASSERT_OK_AND_ASSIGN(auto bus, OpenBus());
  CreateTopics(*bus);
  ASSERT_OK(bus->EnsureSubscription("audit", "changes", {.ordered = false}));
  std::vector<BusMessage> m = {{.data = "x"}};
  ASSERT_OK(bus->Publish("changes", m));
  ASSERT_OK_AND_ASSIGN(auto w, bus->Pull("workers", 10, Micros(0)));
  ASSERT_OK(bus->Ack("workers", AckIds(w)));
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("queue.db")));
  auto count = [&] {
    auto q = db->Prepare("SELECT count(*) FROM bus_messages");
    EXPECT_OK(q);
    EXPECT_TRUE(*(*q)->Step());
    int64_t n = (*q)->ColumnInt64(0);
    (*q)->Reset();
    return n;
  };
  EXPECT_EQ(count(), 1);
  ASSERT_OK_AND_ASSIGN(auto a, bus->Pull("audit", 10, Micros(0)));
  ASSERT_OK(bus->Ack("audit", AckIds(a)));
  EXPECT_EQ(count(), 0);
}

TEST_F(EmbeddedChangeBusTest, RefusesAnotherSchemaVersion) {
  { ASSERT_OK_AND_ASSIGN(auto bus, OpenBus()); }
  {
    ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(dir_.File("queue.db")));
    ASSERT_OK(db->Exec("UPDATE bus_meta SET value = '99' WHERE key = 'schema_version'"));
  }
  EXPECT_THAT(OpenBus(), StatusIsWith(StatusCode::kFailedPrecondition, "version 99"));
  EXPECT_THAT(EmbeddedChangeBus::Open({.path = ""}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(EmbeddedChangeBus::Open({.path = dir_.File("no/such/dir/q.db")}),
              StatusIs(StatusCode::kUnavailable));
}

// A real second process: the child publishes; the parent, already waiting, receives it.
TEST(EmbeddedChangeBusProcessTest, AnotherProcessPublishesWhilePullWaits) {
  TempDir dir;
  std::string path = dir.File("queue.db");
  {
    ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedChangeBus::Open({.path = path}));
    ASSERT_OK(bus->EnsureTopic("changes"));
    ASSERT_OK(bus->EnsureSubscription("workers", "changes", {}));
  }
  ASSERT_OK_AND_ASSIGN(auto bus, EmbeddedChangeBus::Open({.path = path}));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    usleep(200 * 1000);
    auto child = EmbeddedChangeBus::Open({.path = path});
    if (!child.ok()) _exit(2);
    std::vector<BusMessage> m = {{.data = "from-child"}};
    _exit((*child)->Publish("changes", m).ok() ? 0 : 3);
  }
  auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto got, bus->Pull("workers", 10, std::chrono::seconds(10)));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(Render(got), "from-child@1");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

}  // namespace
}  // namespace ch
