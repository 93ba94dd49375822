#include "campaign/scheduler.h"

#include <functional>
#include <thread>

#include "campaign/in_memory_campaign_store.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

Timestamp T(const char* text) { return ParseTimestamp(text).value(); }

// Forwards to an InMemoryCampaignStore; runs `on_list` after each ListExpired (to simulate a
// concurrent edit between the scheduler's read and its write).
class HookedStore final : public CampaignStore {
 public:
  explicit HookedStore(Clock& clock) : inner_(clock, StoreCapture::kLog) {}
  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view actor) override {
    return inner_.BeginWrite(actor);
  }
  Result<std::optional<Campaign>> Get(int64_t id) override { return inner_.Get(id); }
  Result<std::vector<Campaign>> List(int64_t c) override { return inner_.List(c); }
  Result<std::vector<int64_t>> ListCustomers() override { return inner_.ListCustomers(); }
  Result<std::vector<Campaign>> ListExpired(Timestamp now, int64_t limit) override {
    auto r = inner_.ListExpired(now, limit);
    if (on_list) on_list();
    return r;
  }
  Status SyncCommitted() override { return inner_.SyncCommitted(); }
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view workload) override {
    return inner_.GetReplayPosition(workload);
  }
  InMemoryCampaignStore inner_;
  std::function<void()> on_list;
};

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : clock_(T("2026-03-01T00:00:00Z")), store_(clock_), service_(store_) {}

  int64_t Make(CampaignStatus status, std::optional<Timestamp> end) {
    Campaign c;
    c.customer_id = 1;
    c.name = "c";
    c.status = status;
    c.end_at = end;
    WriteContext w;
    w.actor = "user:1";
    auto r = service_.Create(c, w);
    EXPECT_OK(r);
    return r.ok() ? r->changes.at(0).campaign_id : 0;
  }

  CampaignStatus StatusOf(int64_t id) {
    auto r = store_.Get(id);
    return r.ok() && r->has_value() ? (*r)->status : CampaignStatus::kDraft;
  }

  FakeClock clock_;
  HookedStore store_;
  CampaignService service_;
};

TEST_F(SchedulerTest, EndsActiveCampaignsWhoseEndHasPassed) {
  int64_t due = Make(CampaignStatus::kActive, T("2026-02-01"));
  int64_t exactly_now = Make(CampaignStatus::kActive, T("2026-03-01"));
  int64_t future = Make(CampaignStatus::kActive, T("2026-04-01"));
  int64_t paused = Make(CampaignStatus::kPaused, T("2026-02-01"));
  int64_t open_ended = Make(CampaignStatus::kActive, std::nullopt);
  Scheduler scheduler(service_, clock_);
  ASSERT_OK_AND_ASSIGN(int64_t ended, scheduler.RunOnce());
  EXPECT_EQ(ended, 2);
  EXPECT_EQ(StatusOf(due), CampaignStatus::kEnded);
  EXPECT_EQ(StatusOf(exactly_now), CampaignStatus::kEnded);
  EXPECT_EQ(StatusOf(future), CampaignStatus::kActive);
  EXPECT_EQ(StatusOf(paused), CampaignStatus::kPaused);
  EXPECT_EQ(StatusOf(open_ended), CampaignStatus::kActive);
  // Each ending is an ordinary captured change by the scheduler.
  auto log = store_.inner_.AllChanges();
  EXPECT_EQ(log.back().actor, "worker:scheduler");
  EXPECT_EQ(log.back().row.status, CampaignStatus::kEnded);
  EXPECT_EQ(*scheduler.RunOnce(), 0);
  clock_.Advance(std::chrono::hours(24 * 40));
  EXPECT_EQ(*scheduler.RunOnce(), 1);
  EXPECT_EQ(StatusOf(future), CampaignStatus::kEnded);
  EXPECT_EQ(scheduler.ended_total(), 3);
}

TEST_F(SchedulerTest, WorksThroughMoreThanOneBatch) {
  for (int i = 0; i < 25; ++i) Make(CampaignStatus::kActive, T("2026-02-01"));
  SchedulerOptions o;
  o.batch = 7;
  Scheduler scheduler(service_, clock_, o);
  EXPECT_EQ(*scheduler.RunOnce(), 25);
}

TEST_F(SchedulerTest, SkipsACampaignChangedMeanwhile) {
  int64_t edited = Make(CampaignStatus::kActive, T("2026-02-01"));
  int64_t other = Make(CampaignStatus::kActive, T("2026-02-01"));
  bool once = true;
  store_.on_list = [&] {
    if (!once) return;
    once = false;
    CampaignPatch p;
    p.name = "edited by a user";
    WriteContext w;
    w.actor = "user:2";
    EXPECT_OK(service_.Update(edited, p, w));
  };
  Scheduler scheduler(service_, clock_);
  EXPECT_EQ(*scheduler.RunOnce(), 1);
  EXPECT_EQ(StatusOf(edited), CampaignStatus::kActive);  // the user's edit was not overwritten
  EXPECT_EQ(StatusOf(other), CampaignStatus::kEnded);
  EXPECT_EQ(*scheduler.RunOnce(), 1);  // the next run ends it
  EXPECT_EQ(StatusOf(edited), CampaignStatus::kEnded);
}

TEST_F(SchedulerTest, BackgroundWorkerRunsAndStopsPromptly) {
  int64_t id = Make(CampaignStatus::kActive, T("2026-02-01"));
  Scheduler scheduler(service_, clock_);
  scheduler.Start(std::chrono::hours(1));  // runs once at once, then would sleep an hour
  for (int i = 0; i < 5000 && scheduler.ended_total() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(StatusOf(id), CampaignStatus::kEnded);
  auto t0 = std::chrono::steady_clock::now();
  scheduler.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  scheduler.Stop();  // idempotent

  // A short interval picks up campaigns that expire later.
  int64_t later = Make(CampaignStatus::kActive, T("2026-03-02"));
  scheduler.Start(std::chrono::milliseconds(1));
  clock_.Advance(std::chrono::hours(48));
  for (int i = 0; i < 5000 && StatusOf(later) != CampaignStatus::kEnded; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(StatusOf(later), CampaignStatus::kEnded);
}  // the destructor stops the worker

TEST_F(SchedulerTest, ReportsStoreErrors) {
  Make(CampaignStatus::kActive, T("2026-02-01"));
  SchedulerOptions o;
  o.actor = "";  // an invalid actor makes every update fail with InvalidArgument
  Scheduler scheduler(service_, clock_, o);
  EXPECT_THAT(scheduler.RunOnce(), StatusIs(StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace ch
