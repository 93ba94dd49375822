// ClickHouseHistoryStore: the history in ClickHouse, over its HTTP interface (cpp-httplib).
//
// Works on the ClickHouse 18.16 that Debian ships and on current versions: it uses only what
// both have (MergeTree family, LIMIT n BY, argMax, IN with tuples; no window functions, no
// DateTime64, no per-column CODEC, no HTTP query parameters). docs/clickhouse.md is the spec of
// the schema, how Append is made idempotent and atomic, and what a cluster needs.
//
// In short:
//   * history: ReplacingMergeTree PARTITION BY toYYYYMM(event_time) ORDER BY (customer_id,
//     campaign_id, version). Times are Int64 microseconds (event_time is a DateTime copy in
//     seconds, for partitioning). Every read deduplicates in the query (LIMIT 1 BY), so answers
//     never depend on whether background merges ran. Snapshots are stored split
//     (history/snapshot_codec.h): consecutive versions that only moved share an identical body,
//     which ClickHouse's block compression stores almost for free.
//   * Append checks which keys are stored (a redelivery is skipped, other content is a conflict;
//     records above a per-campaign bound of the stored versions, which the one writer keeps,
//     need no check),
//     then writes the new records with ONE INSERT per month partition: one part, atomic. The
//     records of one captured transaction share their commit time, so no partition boundary
//     splits a transaction; the completeness ledger is written last, in one INSERT into an
//     unpartitioned table, and held-back records count only once the ledger row of their commit
//     exists. A crash between those steps leaves nothing visible that a retry (the caller's
//     redelivery) does not complete.
//   * purge and erase are atomic through a retention table (one INSERT: the removed keys, the
//     horizon or the erasure, and the audit entry) that every read filters by; an asynchronous
//     ALTER ... DELETE then removes the rows physically.
//
// One writer process per database (several threads are fine): ClickHouse has no locks, so two
// processes appending the same transaction concurrently could both hold its pieces. The `sink`
// role runs one writer.
//
// Thread-safety: safe to use from several threads; calls are serialized on one connection.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"

namespace ch {

struct ClickHouseHistoryOptions {
  // clickhouse://HOST:PORT/DB (PORT: the HTTP port, default 8123). The database is created with
  // its tables when missing.
  std::string url;
  // Source of ingested_at. Not owned; must outlive the store. Default: SystemClock::Default().
  const Clock* clock = nullptr;
  // Per-request timeout. Default: 60 s.
  int timeout_seconds = 60;
  // Tests only: work at this older schema version (migrate no further, refuse a newer database),
  // as a build of that version would. 0: this build's version.
  int64_t schema_version_for_testing = 0;
};

class ClickHouseHistoryStore final : public HistoryStore {
 public:
  // Connect, create or migrate the schema. Fails with InvalidArgument for a malformed URL,
  // Unavailable when the server cannot be reached, FailedPrecondition when the database holds a
  // newer schema than this build understands.
  static Result<std::unique_ptr<ClickHouseHistoryStore>> Open(
      const ClickHouseHistoryOptions& options);

  ~ClickHouseHistoryStore() override;

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
  // bytes: system.parts bytes_on_disk of the database's active parts (primary index included).
  Result<HistoryStats> Stats() override;
  Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                std::string_view actor) override;
  Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) override;
  Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) override;
  Result<bool> Erased(int64_t customer_id) override;
  Result<std::vector<AuditEntry>> AuditLog(int64_t limit) override;

  // Drop the database (tests).
  Status DropDatabaseForTesting();

  struct Impl;

 private:
  explicit ClickHouseHistoryStore(std::unique_ptr<Impl> impl);

  std::mutex mu_;
  std::unique_ptr<Impl> impl_;  // guarded by mu_
};

}  // namespace ch
