#include "history/in_memory_history_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

namespace ch {

std::string HistoryRecordProblem(const HistoryRecord& r) {
  if (r.customer_id <= 0) return fmt::format("customer_id must be positive, got {}", r.customer_id);
  if (r.campaign_id <= 0) return fmt::format("campaign_id must be positive, got {}", r.campaign_id);
  if (r.version <= 0) return fmt::format("version must be positive, got {}", r.version);
  if (r.snapshot.empty()) return "snapshot must not be empty";
  if (r.missed_versions < 0) {
    return fmt::format("missed_versions must not be negative, got {}", r.missed_versions);
  }
  return TxnFieldsProblem(r);
}

void SortByPriority(std::vector<HistoryRecord>& records) {
  std::sort(records.begin(), records.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
    if (a.priority != b.priority) return a.priority < b.priority;
    return a.campaign_id < b.campaign_id;
  });
}

void SortCustomerChanges(std::vector<HistoryRecord>& records) {
  std::sort(records.begin(), records.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
    if (a.event_time != b.event_time) return a.event_time < b.event_time;
    if (a.transaction_id != b.transaction_id) return a.transaction_id < b.transaction_id;
    if (a.campaign_id != b.campaign_id) return a.campaign_id < b.campaign_id;
    return a.version < b.version;
  });
}

InMemoryHistoryStore::InMemoryHistoryStore(const InMemoryHistoryOptions& options)
    : clock_(options.clock ? *options.clock : SystemClock::Default()) {}

Result<int64_t> InMemoryHistoryStore::Append(std::span<const HistoryRecord> records) {
  std::lock_guard<std::mutex> lock(mu_);
  // Validate everything first so that a bad record stores nothing.
  std::map<int64_t, int64_t> batch_owner;
  for (size_t i = 0; i < records.size(); ++i) {
    const HistoryRecord& r = records[i];
    std::string problem = HistoryRecordProblem(r);
    if (problem.empty()) {
      auto it = owner_.find(r.campaign_id);
      auto [bit, inserted] = batch_owner.emplace(r.campaign_id, r.customer_id);
      int64_t known = it != owner_.end() ? it->second : bit->second;
      if (known != r.customer_id) {
        problem = fmt::format("campaign {} belongs to customer {}, not {}", r.campaign_id, known,
                              r.customer_id);
      }
    }
    if (!problem.empty()) {
      return InvalidArgumentError(
          fmt::format("history record {} (c{}@v{}): {}", i, r.campaign_id, r.version, problem));
    }
  }
  const Timestamp now = clock_.Now();
  ASSIGN_OR_RETURN(GateResult gate, GateRecords(records, ledger_, [this](const HistoryRecord& r) {
                     return erased_.contains(r.customer_id);  // refused from then on
                   }));
  int64_t stored = gate.held;
  for (const HistoryRecord* r : gate.visible) stored += StoreLocked(*r, now) ? 1 : 0;
  for (const HistoryRecord& r : gate.released) StoreLocked(r, now);
  return stored;
}

bool InMemoryHistoryStore::StoreLocked(const HistoryRecord& r, Timestamp now) {
  auto& versions = campaigns_[r.campaign_id];
  if (auto it = versions.find(r.version); it != versions.end()) {
    // At-least-once delivery: the stored one wins. A different content is a reused version.
    if (!SameVersionContent(it->second, r)) conflicts_.emplace_back(it->second, r);
    return false;
  }
  HistoryRecord copy = r;
  copy.ingested_at = now;
  versions.emplace(r.version, std::move(copy));
  if (owner_.emplace(r.campaign_id, r.customer_id).second) {
    auto& list = customer_campaigns_[r.customer_id];
    list.insert(std::upper_bound(list.begin(), list.end(), r.campaign_id), r.campaign_id);
  }
  return true;
}

Status InMemoryHistoryStore::RecordHeartbeat(const CaptureHeartbeat& h) {
  std::lock_guard<std::mutex> lock(mu_);
  return GateHeartbeat(h, ledger_);
}

Result<Completeness> InMemoryHistoryStore::GetCompleteness() {
  std::lock_guard<std::mutex> lock(mu_);
  Completeness c = ledger_.Summary();
  c.conflicts = static_cast<int64_t>(conflicts_.size());
  return c;
}

Result<int64_t> InMemoryHistoryStore::PurgeCustomer(int64_t customer_id, Timestamp before,
                                                    std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t removed = 0;
  if (auto it = customer_campaigns_.find(customer_id); it != customer_campaigns_.end()) {
    for (int64_t campaign_id : it->second) {
      const HistoryRecord* keep = LatestAtLocked(campaign_id, before);
      const int64_t keep_version = keep != nullptr ? keep->version : 0;
      removed += static_cast<int64_t>(std::erase_if(campaigns_.at(campaign_id), [&](const auto& e) {
        return e.second.event_time < before && e.first != keep_version;
      }));
    }
  }
  Timestamp& horizon = purged_before_[customer_id];
  horizon = std::max(horizon, before);
  audit_.push_back({.at = clock_.Now(),
                    .actor = std::string(actor),
                    .action = "purge",
                    .customer_id = customer_id,
                    .before = before,
                    .records = removed});
  return removed;
}

Result<int64_t> InMemoryHistoryStore::EraseCustomer(int64_t customer_id, std::string_view actor) {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t removed = ledger_.DropHeldOfCustomer(customer_id);
  if (auto it = customer_campaigns_.find(customer_id); it != customer_campaigns_.end()) {
    for (int64_t campaign_id : it->second) {
      removed += static_cast<int64_t>(campaigns_[campaign_id].size());
      campaigns_.erase(campaign_id);
      owner_.erase(campaign_id);
    }
    customer_campaigns_.erase(it);
  }
  std::erase_if(conflicts_, [&](const auto& c) { return c.first.customer_id == customer_id; });
  purged_before_.erase(customer_id);
  erased_[customer_id] = clock_.Now();
  audit_.push_back({.at = clock_.Now(),
                    .actor = std::string(actor),
                    .action = "erase",
                    .customer_id = customer_id,
                    .records = removed});
  return removed;
}

Result<std::optional<Timestamp>> InMemoryHistoryStore::PurgedBefore(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = purged_before_.find(customer_id);
  if (it == purged_before_.end()) return std::optional<Timestamp>();
  return std::optional<Timestamp>(it->second);
}

Result<bool> InMemoryHistoryStore::Erased(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  return erased_.contains(customer_id);
}

Result<std::vector<AuditEntry>> InMemoryHistoryStore::AuditLog(int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<AuditEntry> out(audit_.rbegin(), audit_.rend());
  if (limit >= 0 && out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
  return out;
}

std::vector<std::pair<HistoryRecord, HistoryRecord>> InMemoryHistoryStore::Conflicts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return conflicts_;
}

const HistoryRecord* InMemoryHistoryStore::LatestAtLocked(int64_t campaign_id, Timestamp at) const {
  auto it = campaigns_.find(campaign_id);
  if (it == campaigns_.end()) return nullptr;
  const HistoryRecord* best = nullptr;
  for (const auto& [version, r] : it->second) {
    if (r.event_time > at) continue;
    if (best == nullptr || LaterThan(r, *best)) best = &r;
  }
  return best;
}

Result<std::vector<HistoryRecord>> InMemoryHistoryStore::AsOf(int64_t customer_id, Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  auto it = customer_campaigns_.find(customer_id);
  if (it == customer_campaigns_.end()) return out;
  for (int64_t campaign_id : it->second) {
    const HistoryRecord* r = LatestAtLocked(campaign_id, at);
    if (r != nullptr && r->event_type != ChangeOp::kDeleted) out.push_back(*r);
  }
  SortByPriority(out);
  return out;
}

Result<std::vector<HistoryRecord>> InMemoryHistoryStore::CampaignLog(int64_t campaign_id,
                                                                     const TimeRange& range) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  auto it = campaigns_.find(campaign_id);
  if (it == campaigns_.end()) return out;
  for (const auto& [version, r] : it->second) {
    if (range.Contains(r.event_time)) out.push_back(r);
  }
  return out;
}

Result<std::optional<HistoryRecord>> InMemoryHistoryStore::GetVersion(int64_t campaign_id,
                                                                      int64_t version) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = campaigns_.find(campaign_id);
  if (it == campaigns_.end()) return std::optional<HistoryRecord>();
  auto v = it->second.find(version);
  if (v == it->second.end()) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(v->second);
}

Result<std::optional<HistoryRecord>> InMemoryHistoryStore::LatestAt(int64_t campaign_id,
                                                                    Timestamp at) {
  std::lock_guard<std::mutex> lock(mu_);
  const HistoryRecord* r = LatestAtLocked(campaign_id, at);
  if (r == nullptr) return std::optional<HistoryRecord>();
  return std::optional<HistoryRecord>(*r);
}

Result<std::optional<int64_t>> InMemoryHistoryStore::LatestVersion(int64_t campaign_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = campaigns_.find(campaign_id);
  if (it == campaigns_.end() || it->second.empty()) return std::optional<int64_t>();
  return std::optional<int64_t>(it->second.rbegin()->first);
}

Result<int64_t> InMemoryHistoryStore::CountVersions(int64_t campaign_id, int64_t from, int64_t to) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = campaigns_.find(campaign_id);
  if (it == campaigns_.end() || from > to) return int64_t{0};
  return static_cast<int64_t>(
      std::distance(it->second.lower_bound(from), it->second.upper_bound(to)));
}

Result<std::vector<HistoryRecord>> InMemoryHistoryStore::CustomerChanges(int64_t customer_id,
                                                                         const TimeRange& range,
                                                                         int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  if (limit <= 0) return out;
  auto it = customer_campaigns_.find(customer_id);
  if (it == customer_campaigns_.end()) return out;
  for (int64_t campaign_id : it->second) {
    for (const auto& [version, r] : campaigns_.at(campaign_id)) {
      if (range.Contains(r.event_time)) out.push_back(r);
    }
  }
  SortCustomerChanges(out);
  if (out.size() > static_cast<size_t>(limit)) out.resize(static_cast<size_t>(limit));
  return out;
}

Result<std::vector<HistoryRecord>> InMemoryHistoryStore::TransactionChanges(
    int64_t customer_id, Timestamp at, std::string_view transaction_id, bool with_snapshots) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  auto it = customer_campaigns_.find(customer_id);
  if (transaction_id.empty() || it == customer_campaigns_.end()) return out;
  for (int64_t campaign_id : it->second) {
    for (const auto& [version, r] : campaigns_.at(campaign_id)) {
      if (r.event_time != at || r.transaction_id != transaction_id) continue;
      HistoryRecord& copy = out.emplace_back(r);
      if (!with_snapshots) copy.snapshot.clear();
    }
  }
  return out;
}

Result<std::vector<HistoryRecord>> InMemoryHistoryStore::CustomerCampaigns(int64_t customer_id) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  auto it = customer_campaigns_.find(customer_id);
  if (it == customer_campaigns_.end()) return out;
  for (int64_t campaign_id : it->second) {
    const HistoryRecord* latest = nullptr;
    for (const auto& [version, r] : campaigns_.at(campaign_id)) {
      if (latest == nullptr || LaterThan(r, *latest)) latest = &r;
    }
    if (latest != nullptr) out.push_back(*latest);
  }
  return out;
}

Result<std::vector<int64_t>> InMemoryHistoryStore::ListCustomers() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> out;
  for (const auto& [customer, list] : customer_campaigns_) out.push_back(customer);
  return out;
}

Result<HistoryStats> InMemoryHistoryStore::Stats() {
  std::lock_guard<std::mutex> lock(mu_);
  HistoryStats s;
  s.customers = static_cast<int64_t>(customer_campaigns_.size());
  for (const auto& [campaign_id, versions] : campaigns_) {
    if (versions.empty()) continue;
    ++s.campaigns;
    for (const auto& [version, r] : versions) {
      ++s.records;
      if (!s.first_event || r.event_time < *s.first_event) s.first_event = r.event_time;
      if (!s.last_event || r.event_time > *s.last_event) s.last_event = r.event_time;
    }
  }
  s.held_records = ledger_.Summary().held_records;
  s.conflicts = static_cast<int64_t>(conflicts_.size());
  return s;
}

std::vector<HistoryRecord> InMemoryHistoryStore::AllRecords() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<HistoryRecord> out;
  for (const auto& [customer, list] : customer_campaigns_) {
    for (int64_t campaign_id : list) {
      for (const auto& [version, r] : campaigns_.at(campaign_id)) out.push_back(r);
    }
  }
  return out;
}

}  // namespace ch
