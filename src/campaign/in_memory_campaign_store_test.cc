#include "campaign/in_memory_campaign_store.h"

#include "campaign/campaign_service.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::testing::ElementsAre;

Campaign Draft(int64_t customer, std::string name) {
  Campaign c;
  c.customer_id = customer;
  c.name = std::move(name);
  return c;
}

WriteContext As(std::string actor) {
  WriteContext w;
  w.actor = std::move(actor);
  return w;
}

std::vector<std::string> Log(const InMemoryCampaignStore& store) {
  std::vector<std::string> out;
  for (const auto& c : store.AllChanges()) out.push_back(DebugString(c));
  return out;
}

TEST(InMemoryCampaignStoreTest, CaptureLogRecordsEveryVersionInStatementOrder) {
  FakeClock clock;
  InMemoryCampaignStore store(clock, StoreCapture::kLog);
  CampaignService service(store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(service.Create(Draft(1, "b"), As("user:2")));
  ASSERT_OK(service.Delete(2, As("user:3")));
  // Create = shift then insert; delete = delete then shift (the workload's statement order).
  EXPECT_THAT(
      Log(store),
      ElementsAre("#1 tx 1 c1@v1 created p1 by user:1", "#2 tx 2 c1@v2 updated p2 by user:2",
                  "#3 tx 2 c2@v1 created p1 by user:2", "#4 tx 3 c2@v2 deleted p1 by user:3",
                  "#5 tx 3 c1@v3 updated p1 by user:3"));
  auto all = store.AllChanges();
  // A tombstone carries the row as it was, with the deleting actor and version + 1.
  EXPECT_EQ(all[3].row.version, 1);
  EXPECT_EQ(all[3].row.updated_by, "user:2");
  EXPECT_EQ(all[3].version, 2);
  EXPECT_EQ(all[1].commit_time, all[2].commit_time);
  EXPECT_LT(all[2].commit_time, all[3].commit_time);
  EXPECT_EQ(all[1].row.updated_at, all[1].commit_time);
}

TEST(InMemoryCampaignStoreTest, RollbackLeavesNoTrace) {
  FakeClock clock;
  InMemoryCampaignStore store(clock, StoreCapture::kLog);
  CampaignService service(store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  WriteContext ctx = As("user:2");
  ctx.expect_shifted = 5;
  EXPECT_THAT(service.Create(Draft(1, "b"), ctx), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_EQ(store.AllChanges().size(), 1u);
  EXPECT_THAT(store.AllCampaigns().size(), 1u);
  // The failed attempt's id is not handed out again either way; the next create gets a new one.
  ASSERT_OK_AND_ASSIGN(auto next, service.Create(Draft(1, "c"), As("user:1")));
  EXPECT_EQ(next.changes.at(0).campaign_id, 2);
  EXPECT_EQ(store.AllChanges().back().seq, 3);
}

TEST(InMemoryCampaignStoreTest, NoCaptureKeepsNoLog) {
  InMemoryCampaignStore store;
  CampaignService service(store);
  ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  EXPECT_TRUE(store.AllChanges().empty());
  EXPECT_EQ(store.AllCampaigns().size(), 1u);
}

TEST(InMemoryCampaignStoreTest, SecondWriterOnTheSameThreadTimesOut) {
  InMemoryCampaignStoreOptions o;
  o.lock_timeout = std::chrono::milliseconds(20);
  InMemoryCampaignStore store(o);
  ASSERT_OK_AND_ASSIGN(auto tx, store.BeginWrite("user:1"));
  EXPECT_THAT(store.BeginWrite("user:1"), StatusIs(StatusCode::kUnavailable));
  ASSERT_OK(tx->Commit());
  EXPECT_THAT(tx->Commit(), StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(store.BeginWrite("user:1"));
  EXPECT_THAT(store.BeginWrite(""), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ch
