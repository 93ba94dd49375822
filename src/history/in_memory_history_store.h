// InMemoryHistoryStore: the reference implementation of HistoryStore, kept in process memory.
//
// It is the executable definition of the query semantics in history_store.h: every method is
// written the obvious way (scan, filter, sort) so that it is easy to check by reading, and the
// contract suite (tests/contract/history_store_contract_test.cc) holds every other store to the
// same answers. It is also what unit tests of the publisher and the query engine run against.
// Nothing survives the process.
//
// Semantics beyond history_store.h (shared by every store, checked by the contract suite):
//   * A campaign belongs to one customer. A record naming a different customer_id for a campaign
//     already stored (or earlier in the same batch) is rejected with InvalidArgument.
//   * Validation happens before anything is stored: one bad record fails the whole call.
//   * ingested_at is read from the injected Clock once per Append call and stamped on every
//     record stored by that call; the caller's value is ignored.
//
// Thread-safety: safe to use from several threads (one internal mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "history/history_store.h"

namespace ch {

struct InMemoryHistoryOptions {
  // Source of ingested_at. Not owned; must outlive the store. Default: SystemClock::Default().
  const Clock* clock = nullptr;
};

class InMemoryHistoryStore final : public HistoryStore {
 public:
  explicit InMemoryHistoryStore(const InMemoryHistoryOptions& options = {});

  Result<int64_t> Append(std::span<const HistoryRecord> records) override;
  Status RecordHeartbeat(const CaptureHeartbeat& h) override;
  Result<Completeness> GetCompleteness() override;
  Result<std::vector<HistoryRecord>> AsOf(int64_t customer_id, Timestamp at) override;
  Result<std::vector<HistoryRecord>> CampaignLog(int64_t campaign_id,
                                                 const TimeRange& range) override;
  Result<std::optional<HistoryRecord>> GetVersion(int64_t campaign_id, int64_t version) override;
  Result<std::optional<HistoryRecord>> LatestAt(int64_t campaign_id, Timestamp at) override;
  Result<std::optional<int64_t>> LatestVersion(int64_t campaign_id) override;
  Result<int64_t> CountVersions(int64_t campaign_id, int64_t from, int64_t to) override;
  Result<std::vector<HistoryRecord>> CustomerChanges(int64_t customer_id, const TimeRange& range,
                                                     int64_t limit) override;
  Result<std::vector<HistoryRecord>> TransactionChanges(int64_t customer_id, Timestamp at,
                                                        std::string_view transaction_id,
                                                        bool with_snapshots) override;
  Result<std::vector<HistoryRecord>> CustomerCampaigns(int64_t customer_id) override;
  Result<std::vector<int64_t>> ListCustomers() override;
  // bytes is always 0.
  Result<HistoryStats> Stats() override;
  Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                std::string_view actor) override;
  Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) override;
  Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) override;
  Result<bool> Erased(int64_t customer_id) override;
  Result<std::vector<AuditEntry>> AuditLog(int64_t limit) override;

  // Return every stored record ordered by (customer_id, campaign_id, version): a deterministic
  // dump for tests and golden files.
  std::vector<HistoryRecord> AllRecords() const;

  // Return the conflicting records kept as evidence: (the stored record, the one received), in
  // order of arrival.
  std::vector<std::pair<HistoryRecord, HistoryRecord>> Conflicts() const;

 private:
  // Store `r` visibly unless its key is stored (a redelivery, or a conflict kept as evidence).
  // Return true when stored. REQUIRES: mu_ held; `r` validated.
  bool StoreLocked(const HistoryRecord& r, Timestamp now);

  // Return the campaign's record with the greatest (event_time, version) <= at, or nullptr.
  // REQUIRES: mu_ held.
  const HistoryRecord* LatestAtLocked(int64_t campaign_id, Timestamp at) const;

  const Clock& clock_;
  mutable std::mutex mu_;
  // campaign_id -> version -> record.
  std::map<int64_t, std::map<int64_t, HistoryRecord>> campaigns_;
  // campaign_id -> customer_id (a campaign belongs to one customer).
  std::map<int64_t, int64_t> owner_;
  // customer_id -> its campaign ids, ascending.
  std::map<int64_t, std::vector<int64_t>> customer_campaigns_;
  // Held-back records and the watermark (history/completeness.h).
  InMemoryCompletenessLedger ledger_;
  std::vector<std::pair<HistoryRecord, HistoryRecord>> conflicts_;
  // Retention and erasure.
  std::map<int64_t, Timestamp> purged_before_;
  std::map<int64_t, Timestamp> erased_;
  std::vector<AuditEntry> audit_;
};

// Return "" when `r` may be stored, else what is wrong with it ("campaign_id must be positive").
// Shared by the stores so that every one rejects the same records with the same words.
std::string HistoryRecordProblem(const HistoryRecord& r);

// Return true when `a` comes after `b` in as-of order: (event_time, version) greater.
inline bool LaterThan(const HistoryRecord& a, const HistoryRecord& b) {
  if (a.event_time != b.event_time) return a.event_time > b.event_time;
  return a.version > b.version;
}

// Sort as-of answers: by priority, then campaign id.
void SortByPriority(std::vector<HistoryRecord>& records);

// Sort customer changes: by (event_time, transaction_id, campaign_id, version).
void SortCustomerChanges(std::vector<HistoryRecord>& records);

}  // namespace ch
