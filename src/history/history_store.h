// HistoryStore: where history records live and the primitives every query is built from.
// Implementations: InMemoryHistoryStore (tests, reference semantics), SqliteHistoryStore
// (embedded default), later PostgreSQL and ClickHouse. tests/contract/history_store_contract_test
// runs one suite against all of them; documented deviations are capability flags.
//
// Delivery semantics: writers deliver at least once. Append is idempotent on
// (campaign_id, version): a record whose key is already stored is skipped and the stored one is
// kept; when the new one differs in content (snapshot, event_time, event_type or actor), that is
// not a redelivery but a reused version number: the store keeps the first, records the other as
// a conflict (Completeness::conflicts, ConflictsForTesting) and goes on. Append is atomic and
// durable when it returns OK, so a caller may acknowledge upstream afterwards.
//
// Completeness (history/completeness.h): records of log capture carry their transaction's
// number and size. A store holds back the records of a transaction until all of them have
// arrived (durably, invisible to every read below), then shows them together: no read ever
// sees part of a transaction. It keeps a watermark -- the commit time through which every
// transaction is stored (GetCompleteness().complete_through) -- so callers can tell an exact
// as-of (at or before it) from one near the frontier, where a later transaction of the
// customer may be stored while an earlier one is still on its way.
//
// Time semantics (the same on every store):
//   as-of(customer, T): for each campaign of the customer, the record with the greatest
//   (event_time, version) whose event_time <= T; campaigns whose record is a delete are left out;
//   ordered by priority (then campaign id).
//
// Thread-safety: safe to use from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "history/completeness.h"
#include "history/history_record.h"

namespace ch {

// A closed time interval; an absent bound is unbounded.
struct TimeRange {
  std::optional<Timestamp> from;
  std::optional<Timestamp> to;
  bool Contains(Timestamp t) const { return (!from || t >= *from) && (!to || t <= *to); }
};

// One retention or erasure action, as the audit log keeps it (in the store, in the same
// transaction as the action).
struct AuditEntry {
  Timestamp at{};
  // Who asked (the CLI's --actor, default the OS user: "admin:<name>").
  std::string actor;
  // "purge" or "erase". DO NOT CHANGE (stored).
  std::string action;
  int64_t customer_id = 0;
  // purge: the horizon.
  std::optional<Timestamp> before;
  // Records removed (held-back ones included for erase).
  int64_t records = 0;
  bool operator==(const AuditEntry&) const = default;
};

struct HistoryStats {
  int64_t records = 0;
  int64_t campaigns = 0;
  int64_t customers = 0;
  std::optional<Timestamp> first_event;
  std::optional<Timestamp> last_event;
  // Bytes on disk (0 when not applicable).
  int64_t bytes = 0;
  // Records held back because their transaction is not complete yet (not in `records`).
  int64_t held_records = 0;
  // Conflicting versions kept as evidence (see the file comment).
  int64_t conflicts = 0;
};

class HistoryStore {
 public:
  HistoryStore() = default;
  HistoryStore(const HistoryStore&) = delete;
  HistoryStore& operator=(const HistoryStore&) = delete;
  virtual ~HistoryStore() = default;

  // Store `records` durably and atomically, stamping ingested_at; skip keys already stored;
  // hold back records of incomplete transactions (see the file comment). Return how many were
  // newly stored (held back ones included, released ones not counted again). Fails without
  // storing anything (InvalidArgument for a record with a non-positive id/version, an empty
  // snapshot or bad transaction fields; Unavailable when the backend is unreachable).
  virtual Result<int64_t> Append(std::span<const HistoryRecord> records) = 0;

  // Record a capture heartbeat (history/completeness.h): every transaction after h.seq commits
  // after h.at. Durable when it returns OK. Fails as Append does.
  virtual Status RecordHeartbeat(const CaptureHeartbeat& h) = 0;

  // Return what the store knows about its completeness (history/completeness.h).
  virtual Result<Completeness> GetCompleteness() = 0;

  // Return the as-of answer (see the file comment).
  virtual Result<std::vector<HistoryRecord>> AsOf(int64_t customer_id, Timestamp at) = 0;

  // Return the campaign's records whose event_time is in `range`, ordered by version.
  virtual Result<std::vector<HistoryRecord>> CampaignLog(int64_t campaign_id,
                                                         const TimeRange& range) = 0;

  // Return the record of (campaign_id, version), or nullopt.
  virtual Result<std::optional<HistoryRecord>> GetVersion(int64_t campaign_id, int64_t version) = 0;

  // Return the campaign's record with the greatest (event_time, version) at or before `at`
  // (deletes included), or nullopt.
  virtual Result<std::optional<HistoryRecord>> LatestAt(int64_t campaign_id, Timestamp at) = 0;

  // Return the campaign's highest stored version, or nullopt when none is stored.
  virtual Result<std::optional<int64_t>> LatestVersion(int64_t campaign_id) = 0;

  // Return how many of the campaign's versions in [from, to] are stored. With unordered
  // delivery the highest version can arrive before the ones below it: this is how a caller
  // tells that a range of versions is complete.
  virtual Result<int64_t> CountVersions(int64_t campaign_id, int64_t from, int64_t to) = 0;

  // Return up to `limit` of the customer's records with event_time in `range`, ordered by
  // (event_time, transaction_id, campaign_id, version).
  virtual Result<std::vector<HistoryRecord>> CustomerChanges(int64_t customer_id,
                                                             const TimeRange& range,
                                                             int64_t limit) = 0;

  // Return the records of one of the customer's transactions: those with event_time == `at`
  // and transaction_id == `transaction_id`, ordered by campaign id. With `with_snapshots` false
  // the records come without snapshots (snapshot empty; every other field, priority included,
  // set): what finding the primary change of a transaction needs (query/cause.h), at a
  // fraction of the cost. An unknown transaction, or an empty `transaction_id`, gives an empty
  // answer.
  virtual Result<std::vector<HistoryRecord>> TransactionChanges(int64_t customer_id, Timestamp at,
                                                                std::string_view transaction_id,
                                                                bool with_snapshots) = 0;

  // Return the latest record of each of the customer's campaigns -- deleted campaigns included
  // (their delete record) -- ordered by campaign id. An unknown customer gives an empty answer.
  virtual Result<std::vector<HistoryRecord>> CustomerCampaigns(int64_t customer_id) = 0;

  // Return every customer id with at least one record, ascending.
  virtual Result<std::vector<int64_t>> ListCustomers() = 0;

  virtual Result<HistoryStats> Stats() = 0;

  // ---- retention and erasure, per customer (atomic; each recorded in the audit log) ----------

  // Remove the customer's records with event_time before `before`, except each campaign's last
  // record at or before `before`, so that an as-of at `before` or later answers exactly as before.
  // Remember the horizon (PurgedBefore): an as-of before it is refused rather than answered from
  // what is left. Return the number of records removed. Fails with FailedPrecondition when the
  // store cannot do it atomically (nothing is removed then).
  virtual Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                        std::string_view actor) = 0;
  // Remove everything of the customer -- records, records held back, evidence of conflicts --
  // and refuse its records from now on (a change still on its way must not bring it back).
  // Return the number of records removed. Fails as PurgeCustomer does.
  virtual Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) = 0;
  // Return the customer's purge horizon (the latest `before` purged), or nullopt.
  virtual Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) = 0;
  // Return true when the customer was erased.
  virtual Result<bool> Erased(int64_t customer_id) = 0;
  // Return the newest `limit` audit entries, newest first.
  virtual Result<std::vector<AuditEntry>> AuditLog(int64_t limit) = 0;
};

}  // namespace ch
