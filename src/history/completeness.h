// Completeness: how a history store knows which committed transactions it holds in full, so that
// no query ever shows part of a transaction and the store can say up to when it is complete.
//
// Log capture numbers the transactions of a campaign database densely, in commit order
// (HistoryRecord::txn_seq 1, 2, 3, ...), and says how many changes each made (txn_changes). A
// transaction reaches a store in pieces and in any order: change batches of <= 100 changes,
// unordered Pub/Sub delivery, several publishers. The store therefore
//   * holds back the records of a transaction until all of them are stored (they are durable,
//     but no query sees them), then releases them together, in the same store transaction as the
//     last piece: a query sees all of a transaction or none of it;
//   * keeps a watermark: the highest txn_seq S such that every transaction 1..S is complete,
//     and the commit time of S. That time is `complete_through`: every transaction committed at
//     or before it is in the history, so an as-of at or before it is exact;
//   * takes capture heartbeats ("every transaction after S commits after T"), so an idle
//     history is complete through the heartbeat's T, not only through its last commit.
// Records without a txn_seq (notify capture, files from before schema_version 2) are stored and
// visible at once; completeness cannot be known for them.
//
// GateRecords is that bookkeeping, written once for every store over a small Ledger interface
// that each store implements inside its own write transaction (so records, held-back records and
// the watermark change atomically).
//
// Thread-safety: plain values and a pure function of the ledger; the ledger is used by the
// thread that owns the store transaction.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "history/history_record.h"

namespace ch {

// What a store reports about its completeness (HistoryStore::GetCompleteness).
struct Completeness {
  // Every transaction with txn_seq <= through_seq is stored (0: none known yet).
  int64_t through_seq = 0;
  // Every transaction committed at or before this moment is stored: the commit time of
  // through_seq, or a later heartbeat time. nullopt while nothing is known (no log-captured
  // transaction has been stored yet, or only notify records).
  std::optional<Timestamp> complete_through;
  // Transactions above through_seq that are partly stored (their records are held back).
  int64_t partial_transactions = 0;
  // Records held back because their transaction is not complete yet.
  int64_t held_records = 0;
  // Complete transactions above through_seq, waiting for an earlier one.
  int64_t waiting_transactions = 0;
  // (campaign_id, version) pairs received again with different content (the first stored
  // record was kept; the other is kept as evidence). A non-zero count means a version number was
  // reused: see docs/operations.md ("Conflicting versions").
  int64_t conflicts = 0;

  bool operator==(const Completeness&) const = default;
};

// One transaction above the watermark, as the ledger keeps it.
struct TxnProgress {
  int64_t seq = 0;
  // The changes it made, once a record said so (0: not known yet).
  int64_t expected = 0;
  // Distinct records of it stored so far (held or released).
  int64_t received = 0;
  Timestamp commit_time{};
  // All of it is stored and visible.
  bool complete = false;
};

// The watermark: every transaction 1..seq is complete; `time` is complete_through.
struct Watermark {
  int64_t seq = 0;
  std::optional<Timestamp> time;
  bool operator==(const Watermark&) const = default;
};

// The store-side state GateRecords reads and changes, inside one store write transaction.
class CompletenessLedger {
 public:
  CompletenessLedger() = default;
  CompletenessLedger(const CompletenessLedger&) = delete;
  CompletenessLedger& operator=(const CompletenessLedger&) = delete;
  virtual ~CompletenessLedger() = default;

  virtual Result<Watermark> GetWatermark() = 0;
  virtual Status SetWatermark(const Watermark& w) = 0;
  // Return the progress of transaction `seq` (above the watermark), or nullopt.
  virtual Result<std::optional<TxnProgress>> GetProgress(int64_t seq) = 0;
  virtual Status PutProgress(const TxnProgress& p) = 0;
  virtual Status EraseProgress(int64_t seq) = 0;
  // Hold back `records` (all of transaction `seq`), skipping (campaign_id, version) pairs
  // already held. Return how many were newly held.
  virtual Result<int64_t> Hold(int64_t seq, std::span<const HistoryRecord* const> records) = 0;
  // Remove and return every record held for transaction `seq`.
  virtual Result<std::vector<HistoryRecord>> Release(int64_t seq) = 0;
  // Return the heartbeat with the latest `at` among those with seq <= `through_seq`, and forget
  // them all but that one; nullopt when there is none.
  virtual Result<std::optional<CaptureHeartbeat>> TakeHeartbeat(int64_t through_seq) = 0;
  // Keep `h` until the watermark reaches h.seq.
  virtual Status PutHeartbeat(const CaptureHeartbeat& h) = 0;
};

// What GateRecords decided for one Append call.
struct GateResult {
  // Records of this call to store (visibly) now, in this store transaction: those without a
  // txn_seq, those of transactions that are complete within this call, and redeliveries of
  // transactions already complete. Pointers into the caller's records.
  std::vector<const HistoryRecord*> visible;
  // Records held back until now (by this call or earlier ones) whose transaction is complete
  // with this call: store them visibly too. They were counted as stored when they were held.
  std::vector<HistoryRecord> released;
  // Records newly held back by this call (durable, not yet visible).
  int64_t held = 0;
};

// Route one Append call's records through the ledger: hold back pieces of incomplete
// transactions, release transactions that became complete, and advance the watermark (applying
// heartbeats). Records for which `refuse` says true (an erased customer's) are never shown nor
// kept, but still count for their transaction's completeness (as content-less placeholders in
// the ledger: records with an empty snapshot). REQUIRES: inside the store's write transaction;
// records already validated.
Result<GateResult> GateRecords(std::span<const HistoryRecord> records, CompletenessLedger& ledger,
                               const std::function<bool(const HistoryRecord&)>& refuse = nullptr);

// Record a heartbeat: move the watermark's time to h.at when the watermark is at or past h.seq,
// else keep it for later. REQUIRES: inside the store's write transaction.
Status GateHeartbeat(const CaptureHeartbeat& h, CompletenessLedger& ledger);

// Return "" when the transaction fields of `r` are valid, else what is wrong.
std::string TxnFieldsProblem(const HistoryRecord& r);

// A ledger in process memory: the in-memory history store's, and the reference for tests. Its
// operations never fail. Not thread-safe (the owning store serializes).
class InMemoryCompletenessLedger final : public CompletenessLedger {
 public:
  Result<Watermark> GetWatermark() override { return watermark_; }
  Status SetWatermark(const Watermark& w) override;
  Result<std::optional<TxnProgress>> GetProgress(int64_t seq) override;
  Status PutProgress(const TxnProgress& p) override;
  Status EraseProgress(int64_t seq) override;
  Result<int64_t> Hold(int64_t seq, std::span<const HistoryRecord* const> records) override;
  Result<std::vector<HistoryRecord>> Release(int64_t seq) override;
  Result<std::optional<CaptureHeartbeat>> TakeHeartbeat(int64_t through_seq) override;
  Status PutHeartbeat(const CaptureHeartbeat& h) override;

  // Return the summary GetCompleteness reports (conflicts left 0: the store counts those).
  Completeness Summary() const;
  // Return the held record of (campaign_id, version), or nullptr.
  const HistoryRecord* FindHeld(int64_t campaign_id, int64_t version) const;
  // Drop the held records of a customer (erasure); return how many. Their transactions' counts
  // stay, so the transactions still complete when their other pieces arrive.
  int64_t DropHeldOfCustomer(int64_t customer_id);

 private:
  Watermark watermark_;
  std::map<int64_t, TxnProgress> progress_;
  // seq -> (campaign_id, version) -> record.
  std::map<int64_t, std::map<std::pair<int64_t, int64_t>, HistoryRecord>> held_;
  std::map<int64_t, CaptureHeartbeat> heartbeats_;
};

}  // namespace ch
