// PgLogicalSource across a real PostgreSQL restart (`pg_ctl restart -m fast`), on a private
// throwaway cluster (initdb in a temp directory, ~2 s), because restarting the shared test server
// would disturb other tests. PostgreSQL 15 may forget the slot's confirmed position at such a
// restart and resend confirmed transactions; the source must deliver exactly the unconfirmed ones.
// Skipped when the PostgreSQL 15 server binaries are not installed (CH_PG_BIN overrides
// /usr/lib/postgresql/15/bin).
#include <chrono>
#include <cstdio>
#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"
#include "capture/pg_logical_source.h"
#include "testing/pg_private_cluster.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

WriteContext As(std::string actor) {
  WriteContext ctx;
  ctx.actor = std::move(actor);
  return ctx;
}

Campaign Draft(std::string name) {
  Campaign c;
  c.customer_id = 1;
  c.name = std::move(name);
  c.content = R"({"title":"Hi"})";
  return c;
}

TEST(PgLogicalSourceRestartTest, DeliversExactlyTheUnconfirmedTransactionsAcrossAServerRestart) {
  if (!testing::PgPrivateCluster::Available()) {
    GTEST_SKIP() << testing::PgPrivateCluster::SkipMessage();
  }
  testing::PgPrivateCluster cluster;
  // A shutdown waits for each logical walsender's client to confirm everything sent, up to
  // wal_sender_timeout; this test holds unconfirmed events on purpose.
  ASSERT_OK(cluster.Start("wal_sender_timeout = '3s'"));
  const std::string url = cluster.url();
  PgCampaignStoreOptions so;
  so.url = url;
  ASSERT_OK_AND_ASSIGN(auto store, PgCampaignStore::Open(so));
  CampaignService service(*store);
  ASSERT_OK(PgLogicalSource::CreateCapture(url, "restart_slot", "restart_pub"));
  PgLogicalSourceOptions o;
  o.url = url;
  o.slot = "restart_slot";
  o.publication = "restart_pub";
  o.connect_timeout_s = 2;
  ASSERT_OK_AND_ASSIGN(auto source, PgLogicalSource::Open(o));

  auto poll_txns = [&](size_t n) {
    std::vector<std::string> txns;
    std::string end;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (txns.size() < n && std::chrono::steady_clock::now() < deadline) {
      auto batch = source->Poll(1, std::chrono::milliseconds(200));
      if (!batch.ok()) {
        EXPECT_THAT(batch, StatusIs(StatusCode::kUnavailable));
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      for (const ChangeEvent& e : batch->events) {
        if (txns.empty() || txns.back() != e.transaction_id) txns.push_back(e.transaction_id);
      }
      if (!batch->events.empty()) end = batch->end_position;
    }
    return std::make_pair(txns, end);
  };

  std::vector<std::string> committed;
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK_AND_ASSIGN(auto c, service.Create(Draft("c" + std::to_string(i)), As("user:1")));
    committed.push_back(c.transaction_id);
  }
  auto [first, first_end] = poll_txns(3);
  ASSERT_EQ(first, committed);
  ASSERT_OK(source->Confirm(first_end));
  // Let the server apply the status update, so that the restart is what loses it (if it does).
  for (int i = 0; i < 5; ++i) ASSERT_OK(source->Poll(10, std::chrono::milliseconds(100)));

  std::vector<std::string> pending;
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK_AND_ASSIGN(auto c, service.Create(Draft("p" + std::to_string(i)), As("user:2")));
    pending.push_back(c.transaction_id);
  }
  auto [unconfirmed, unconfirmed_end] = poll_txns(2);
  ASSERT_EQ(unconfirmed, pending);  // delivered, never confirmed

  ASSERT_OK(cluster.Restart());
  ASSERT_OK_AND_ASSIGN(auto after_restart, PgLogicalSource::SlotStatus(url, "restart_slot"));
  std::printf("slot position after the restart: %s (confirmed before: %s)\n",
              after_restart.confirmed_flush_lsn.c_str(), first_end.c_str());

  // The same source reconnects by itself and continues after what it handed out (the consumer
  // still holds those events): only the new transaction arrives.
  ASSERT_OK_AND_ASSIGN(auto late, service.Create(Draft("late"), As("user:3")));
  auto [after, after_end] = poll_txns(1);
  EXPECT_EQ(after, std::vector<std::string>{late.transaction_id});
  auto nothing = source->Poll(100, std::chrono::milliseconds(500));
  ASSERT_OK(nothing);
  EXPECT_TRUE(nothing->events.empty());

  // A restarted relay gets exactly what was never confirmed, although the server's slot went
  // back before the confirmed transactions (it resends them; the source skips them).
  source.reset();
  ASSERT_OK_AND_ASSIGN(source, PgLogicalSource::Open(o));
  pending.push_back(late.transaction_id);
  auto [relay, relay_end] = poll_txns(3);
  EXPECT_EQ(relay, pending);
  nothing = source->Poll(100, std::chrono::milliseconds(500));
  ASSERT_OK(nothing);
  EXPECT_TRUE(nothing->events.empty());
  ASSERT_OK(source->Confirm(relay_end));
  source.reset();
  ASSERT_OK(PgLogicalSource::DropCapture(url, "restart_slot", "restart_pub"));
}

}  // namespace
}  // namespace ch
