// PgHistoryStore: the history in PostgreSQL (`--history postgresql://...`), with exactly the
// semantics of SqliteHistoryStore (history_store.h; the contract suite holds both to them).
//
// Layout (docs/operations.md, "PostgreSQL history store", is the operator's view). Everything
// lives in one schema (default `campaign_history`), so the store may share a database with the
// campaign tables:
//   * history: one row per visible version, declaratively partitioned by month on event_us (the
//     event time in Unix microseconds); partitions are created as the first record of a month
//     arrives, inside the appending transaction and under the store's advisory lock, so
//     concurrent appenders never race. One index, (campaign_id, event_us, version), serves
//     as-of (one probe per campaign: ordered partition scan, newest first, LIMIT 1), logs,
//     exact-key lookups and version counts.
//   * campaigns: one row per campaign (its customer, highest version, latest and key body):
//     the per-customer campaign list that as-of starts from, and the owner check.
//   * bodies: snapshot bodies (history/snapshot_codec.h) in bytea, shared by consecutive
//     versions that only moved a campaign, or stored as deltas against a full key body.
//   * held, txn_progress, heartbeats, meta: the completeness ledger (history/completeness.h).
//   * conflicts, purges, erased_customers, audit: evidence, retention and erasure.
//   * schema_version: the migrations applied (Open applies missing ones in one transaction).
//
// Append, purge and erase each run in one transaction holding a transaction-level advisory lock
// of the schema, so writers (several processes included) are serialized and every call is
// atomic; readers are never blocked by them (MVCC).
//
// Thread-safety: safe to use from several threads; calls are serialized on one connection.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"

namespace ch {

struct PgHistoryOptions {
  // postgresql:// URL or key=value conninfo. A query parameter `schema=NAME` in a URL chooses the
  // schema (and is removed before the URL reaches libpq). REQUIRES: non-empty.
  std::string url;
  // Schema of the store's tables, when the URL names none. Created when missing.
  // Default: "campaign_history".
  std::string schema = "campaign_history";
  // Source of ingested_at and audit times. Not owned; must outlive the store.
  // Default: SystemClock::Default().
  const Clock* clock = nullptr;
  // Capacity of the cache of decoded snapshot bodies, in bytes. Default: 32 MiB.
  size_t body_cache_bytes = 32 << 20;
  // When an Append creates a month's partition, rebuild the previous month's index packed
  // (REINDEX CONCURRENTLY, after the Append's commit; that call takes a few seconds longer once a
  // month). Default: true.
  bool compact_finished_months = true;
};

class PgHistoryStore final : public HistoryStore {
 public:
  // Connect, and create or migrate the schema. Fails with InvalidArgument for a bad URL or
  // schema name, Unavailable when the server cannot be reached, FailedPrecondition when the
  // schema holds a newer schema_version than this build understands, or records in the layout of
  // schema_version 1 (which this build does not convert).
  static Result<std::unique_ptr<PgHistoryStore>> Open(const PgHistoryOptions& options);

  ~PgHistoryStore() override;

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
  // bytes is pg_total_relation_size summed over the schema's tables (partitions and indexes
  // included).
  Result<HistoryStats> Stats() override;
  // Purge and erase run in one transaction each; bodies no remaining record needs are deleted.
  Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                std::string_view actor) override;
  Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) override;
  Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) override;
  Result<bool> Erased(int64_t customer_id) override;
  Result<std::vector<AuditEntry>> AuditLog(int64_t limit) override;

  // Return pg_total_relation_size by table (partitions of `history` summed under "history"), for
  // benchmarks and capacity planning.
  Result<std::vector<std::pair<std::string, int64_t>>> SpaceByObject();
  // Return the plan of the as-of query for (customer_id, at) (EXPLAIN ANALYZE when `analyze`).
  Result<std::string> ExplainAsOf(int64_t customer_id, Timestamp at, bool analyze);
  // Return the process id of the server backend serving this store's connection (0 when not
  // connected), for benchmarks that read the server's CPU time of it (/proc on the same host).
  int BackendPid();
  // Return the schema this store uses.
  const std::string& schema() const;

 private:
  struct Impl;
  explicit PgHistoryStore(std::unique_ptr<Impl> impl);

  std::mutex mu_;
  std::unique_ptr<Impl> impl_;  // guarded by mu_
};

// Split `url` into the libpq URL and the schema its `schema=NAME` query parameter names (or
// `default_schema`). Fails with InvalidArgument for an empty or over-long schema name.
Result<std::pair<std::string, std::string>> SplitPgHistoryUrl(std::string_view url,
                                                              std::string_view default_schema);

}  // namespace ch
