#include "campaign/scheduler.h"

#include <spdlog/spdlog.h>

#include <set>

namespace ch {

Scheduler::Scheduler(CampaignService& service, const Clock& clock, SchedulerOptions options)
    : service_(service), clock_(clock), options_(std::move(options)) {}

Scheduler::~Scheduler() { Stop(); }

Result<int64_t> Scheduler::RunOnce() {
  const int64_t batch = options_.batch > 0 ? options_.batch : 500;
  int64_t ended = 0;
  // Campaigns already tried in this run: a skipped one may still be listed as expired, and
  // must not make the loop spin.
  std::set<int64_t> tried;
  while (true) {
    const Timestamp now = clock_.Now();
    const int64_t limit = batch + static_cast<int64_t>(tried.size());
    ASSIGN_OR_RETURN(std::vector<Campaign> expired, service_.store().ListExpired(now, limit));
    bool progress = false;
    for (const Campaign& c : expired) {
      if (!tried.insert(c.id).second) continue;
      progress = true;
      CampaignPatch patch;
      patch.status = CampaignStatus::kEnded;
      WriteContext ctx;
      ctx.actor = options_.actor;
      ctx.expect_version = c.version;
      ctx.expect_customer = c.customer_id;
      auto r = service_.Update(c.id, patch, ctx);
      if (r.ok()) {
        ++ended;
        std::lock_guard lock(mu_);
        ++ended_total_;
      } else if (r.status().code() == StatusCode::kFailedPrecondition ||
                 r.status().code() == StatusCode::kNotFound) {
        // Changed or deleted meanwhile: leave it to the next run.
        spdlog::debug("scheduler: skipped campaign {}: {}", c.id, r.status().ToString());
      } else {
        return r.status().WithContext("scheduler: ending campaign " + std::to_string(c.id));
      }
    }
    if (!progress || static_cast<int64_t>(expired.size()) < limit) break;
  }
  return ended;
}

void Scheduler::Start(Micros interval) {
  if (worker_.joinable()) return;
  {
    std::lock_guard lock(mu_);
    stop_ = false;
  }
  worker_ = std::thread([this, interval] { Loop(interval); });
}

void Scheduler::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

int64_t Scheduler::ended_total() const {
  std::lock_guard lock(mu_);
  return ended_total_;
}

void Scheduler::Loop(Micros interval) {
  while (true) {
    auto r = RunOnce();
    if (!r.ok()) {
      spdlog::warn("scheduler: {} (retrying in {} ms)", r.status().ToString(),
                   interval.count() / 1000);
    } else if (*r > 0) {
      spdlog::info("scheduler: ended {} campaigns", *r);
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, interval, [this] { return stop_; })) return;
  }
}

}  // namespace ch
