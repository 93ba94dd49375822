// AsOfCachingHistoryStore: a HistoryStore that remembers as-of answers that can no longer change,
// for readers that ask the same moments again and again (the support API: a console paging
// through a 2,000-campaign customer asks the same as-of once per page).
//
// An as-of answer at T is final once T lies strictly before complete_through (history/
// completeness.h): every transaction committed at or before T is stored, and nothing committed
// later can change it. Retention keeps it so too: a purge keeps every answer at or after its
// horizon and QueryEngine refuses earlier ones (PurgedBefore, never cached), and an erased
// customer is refused (Erased, never cached). Everything else is passed through. Caveat: records
// without a txn_seq (notify capture) are visible at once and not covered by completeness; a
// history that mixes them with log capture, written by another process, could change an answer
// this cache already holds. The support role serves log-captured histories.
//
// Memory is bounded by `max_bytes` of snapshots; the least recently used answers go first.
//
// Thread-safety: as the inner store (safe from several threads); the cache has its own mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "history/history_store.h"

namespace ch {

class AsOfCachingHistoryStore final : public HistoryStore {
 public:
  // REQUIRES: `inner` outlives this store (or is owned: the second form).
  explicit AsOfCachingHistoryStore(HistoryStore& inner, size_t max_bytes = 64 << 20);
  explicit AsOfCachingHistoryStore(std::unique_ptr<HistoryStore> owned,
                                   size_t max_bytes = 64 << 20);

  Result<std::vector<HistoryRecord>> AsOf(int64_t customer_id, Timestamp at) override;

  // How many AsOf calls were answered from the cache.
  int64_t hits() const;

  // Writes through this store drop the whole cache (cheap, and safe even for records that carry
  // no txn_seq, which completeness does not cover).
  Result<int64_t> Append(std::span<const HistoryRecord> records) override;
  Status RecordHeartbeat(const CaptureHeartbeat& h) override { return inner_.RecordHeartbeat(h); }
  Result<Completeness> GetCompleteness() override { return inner_.GetCompleteness(); }
  Result<std::vector<HistoryRecord>> CampaignLog(int64_t campaign_id,
                                                 const TimeRange& range) override {
    return inner_.CampaignLog(campaign_id, range);
  }
  Result<std::optional<HistoryRecord>> GetVersion(int64_t campaign_id, int64_t version) override {
    return inner_.GetVersion(campaign_id, version);
  }
  Result<std::optional<HistoryRecord>> LatestAt(int64_t campaign_id, Timestamp at) override {
    return inner_.LatestAt(campaign_id, at);
  }
  Result<std::optional<int64_t>> LatestVersion(int64_t campaign_id) override {
    return inner_.LatestVersion(campaign_id);
  }
  Result<int64_t> CountVersions(int64_t campaign_id, int64_t from, int64_t to) override {
    return inner_.CountVersions(campaign_id, from, to);
  }
  Result<std::vector<HistoryRecord>> CustomerChanges(int64_t customer_id, const TimeRange& range,
                                                     int64_t limit) override {
    return inner_.CustomerChanges(customer_id, range, limit);
  }
  Result<std::vector<HistoryRecord>> TransactionChanges(int64_t customer_id, Timestamp at,
                                                        std::string_view transaction_id,
                                                        bool with_snapshots) override {
    return inner_.TransactionChanges(customer_id, at, transaction_id, with_snapshots);
  }
  Result<std::vector<HistoryRecord>> CustomerCampaigns(int64_t customer_id) override {
    return inner_.CustomerCampaigns(customer_id);
  }
  Result<std::vector<int64_t>> ListCustomers() override { return inner_.ListCustomers(); }
  Result<HistoryStats> Stats() override { return inner_.Stats(); }
  Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                std::string_view actor) override;
  Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) override;
  Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) override {
    return inner_.PurgedBefore(customer_id);
  }
  Result<bool> Erased(int64_t customer_id) override { return inner_.Erased(customer_id); }
  Result<std::vector<AuditEntry>> AuditLog(int64_t limit) override {
    return inner_.AuditLog(limit);
  }

 private:
  using Key = std::pair<int64_t, Timestamp>;
  struct Entry {
    std::shared_ptr<const std::vector<HistoryRecord>> records;
    size_t bytes = 0;
    std::list<Key>::iterator lru;
  };
  // Drop the customer's answers (every answer when customer_id is 0).
  void Forget(int64_t customer_id);

  std::unique_ptr<HistoryStore> owned_;
  HistoryStore& inner_;
  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;  // guarded by mu_
  std::list<Key> lru_;            // most recent first; guarded by mu_
  size_t bytes_ = 0;              // guarded by mu_
  int64_t hits_ = 0;              // guarded by mu_
};

}  // namespace ch
