// InMemoryCampaignStore: a CampaignStore kept in process memory, for unit tests, the contract
// suite and demos that need no files. It keeps the CampaignStore contract exactly (commit stamps,
// ids never reused, rollback on destruction) and, when opened with StoreCapture::kLog, a capture
// log with the same content and order as the SQLite outbox, so capture semantics can be tested
// without SQLite (AllChanges()).
//
// Transactions: one writer at a time. BeginWrite takes the store's writer lock and keeps it for
// the transaction's lifetime; the transaction writes into a private overlay that Commit applies
// atomically, so readers only ever see committed data and a rollback (destroying an uncommitted
// transaction) simply drops the overlay.
//
// Commit stamps: commit_time = max(clock.Now(), previous commit_time + 1 us), assigned under the
// writer lock; transaction ids count up from "1". A rolled-back transaction gives its stamp back
// (as SqliteCampaignStore's does), so both stores stamp the same actions alike.
//
// Thread-safety: safe to use from several threads. A transaction is used by one thread. Starting
// a second transaction on a thread that still holds one waits for `lock_timeout` and then fails
// with Unavailable (it cannot deadlock forever).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "campaign/campaign_store.h"
#include "campaign/captured_change.h"
#include "common/clock.h"
#include "common/timed_mutex.h"

namespace ch {

struct InMemoryCampaignStoreOptions {
  // The source of commit times. Not owned; must outlive the store.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
  // kLog keeps a capture log (AllChanges()). Default: kNone.
  StoreCapture capture = StoreCapture::kNone;
  // How long BeginWrite waits for another writer. Default: 10 s.
  Micros lock_timeout = std::chrono::seconds(10);
};

class InMemoryCampaignStore final : public CampaignStore {
 public:
  explicit InMemoryCampaignStore(const InMemoryCampaignStoreOptions& options = {});
  // Convenience: capture kNone (or kLog), commit times from `clock` (must outlive the store).
  explicit InMemoryCampaignStore(Clock& clock, StoreCapture capture = StoreCapture::kNone);
  ~InMemoryCampaignStore() override;

  // See CampaignStore. BeginWrite fails with Unavailable after waiting `lock_timeout` for
  // another writer, and with InvalidArgument for an invalid actor. Reads never wait for a writer
  // (they see the last committed state).
  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view actor) override;
  Result<std::optional<Campaign>> Get(int64_t id) override;
  Result<std::vector<Campaign>> List(int64_t customer_id) override;
  Result<std::vector<int64_t>> ListCustomers() override;
  Result<std::vector<Campaign>> ListExpired(Timestamp now, int64_t limit) override;
  // See CampaignStore: nothing survives a power loss, nothing to sync.
  Status SyncCommitted() override { return Status::OK(); }
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view workload) override;

  // Return every captured change in commit order (seq 1, 2, 3, ...). Empty with capture kNone.
  // The log is never trimmed: this store is for tests and short demos.
  std::vector<CapturedChange> AllChanges() const;
  // Return up to `max` captured changes with seq > `after`, in commit order. A commit adds all
  // of its changes at once, so the changes of a transaction are either all there or none.
  std::vector<CapturedChange> ChangesAfter(int64_t after, size_t max) const;
  // Return the seq of the newest captured change (0 when none).
  int64_t LastChangeSeq() const;
  // A capture heartbeat's floor (as OutboxHeartbeat does for SQLite): when no transaction is open
  // and the capture log ends at `polled_seq`, make every later transaction commit after
  // max(now, the last commit time) and return that moment; else nullopt.
  std::optional<Timestamp> RaiseCommitFloor(int64_t polled_seq, Timestamp now);
  // Return every stored campaign ordered by (customer_id, priority, id): a full dump for tests.
  std::vector<Campaign> AllCampaigns() const;

 private:
  class Transaction;
  friend class Transaction;

  // Committed state. Guarded by data_mu_ (shared for readers, exclusive while a commit applies).
  struct State {
    std::map<int64_t, Campaign> rows;
    std::map<int64_t, std::set<int64_t>> by_customer;  // customer id -> campaign ids
    std::set<int64_t> used_ids;                        // every id ever inserted
    int64_t max_id = 0;
    std::vector<CapturedChange> log;
    // Workload -> its replay position.
    std::map<std::string, ReplayPosition, std::less<>> replay_positions;
  };

  Clock& clock_;
  const StoreCapture capture_;
  const Micros lock_timeout_;

  // Held by the open transaction for its whole lifetime.
  TimedMutex writer_mu_;
  // Written only under writer_mu_.
  Timestamp last_commit_time_{};
  int64_t last_transaction_id_ = 0;

  mutable std::shared_mutex data_mu_;
  State state_;
};

}  // namespace ch
