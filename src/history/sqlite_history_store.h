// SqliteHistoryStore: the embedded history store, one SQLite file (WAL mode).
//
// Built for a customer with thousands of campaigns and millions of versions, most of which are
// priority shifts that change one field:
//   * as-of(customer, T) costs about one index seek per campaign of the customer (a per-customer
//     campaign list, then per campaign a seek on (campaign_id, event_time, version), all in one
//     SQL statement), never a scan of the customer's history;
//   * a version that only moved the campaign shares its snapshot body with the previous version;
//     a body that did change is stored as a small delta against a full body of the same
//     campaign (history/snapshot_codec.h), so a stored version costs tens of bytes, not the
//     kilobyte its snapshot has;
//   * Append writes one transaction per call and is durable when it returns (synchronous=FULL by
//     default), so callers may acknowledge upstream afterwards.
// The on-disk layout is specified in docs/formats/history-record.md ("SQLite layout").
//
// Memory is bounded: no per-record state is kept in memory, only LRU caches of recent bodies
// and small dictionaries (actors, batches), each with a fixed capacity.
//
// Several processes may open the same file: SQLite's locking serializes writers, and WAL lets
// readers proceed during a write. The caches hold only immutable facts (a body id's text, an
// actor id's name), so they stay valid whatever other writers do.
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

class SqliteDb;

struct SqliteHistoryOptions {
  // Path of the database file; created (with its schema) when missing unless read_only.
  // REQUIRES: non-empty.
  std::string path;
  // Source of ingested_at. Not owned; must outlive the store. Default: SystemClock::Default().
  const Clock* clock = nullptr;
  // Open without write access: Append fails with FailedPrecondition, and a missing or foreign
  // file fails Open. Default: false.
  bool read_only = false;
  // PRAGMA synchronous. "FULL" makes every Append survive power loss before it returns, which
  // is what lets callers acknowledge upstream afterwards. "NORMAL" survives process crashes only
  // (for benchmarks and throwaway data). Default: "FULL".
  std::string synchronous = "FULL";
  // SQLite page cache in KiB. Default: 65536 (64 MiB; the hot index of a 2,000-campaign
  // customer is a few MiB).
  int cache_kib = 64 * 1024;
  // Memory-mapped reads, in KiB (SqliteOptions::mmap_kib): pages are read in place from the OS
  // page cache instead of being copied into SQLite's cache, which takes the page copies and the
  // fresh-memory page faults out of a cold process's first as-of (about 2,000 pages for a
  // 2,000-campaign customer). Only address space; files larger than this read the rest the
  // usual way. Default: 1 GiB.
  int64_t mmap_kib = int64_t{1} << 20;
  // Page size of a NEW file, in bytes (a power of two, 512..65536); an existing file keeps its
  // own. Small pages cut the bytes written per Append: a batch of priority shifts touches one
  // page per campaign. Default: 4096.
  int page_size = 4096;
  // PRAGMA wal_autocheckpoint, in pages. Larger than SQLite's 1000 so that pages rewritten by
  // consecutive batches are copied into the main file once. Default: 10000 (40 MiB at 4 KiB).
  int wal_autocheckpoint_pages = 10000;
  // New records go to a small table (`recent`) that is merged into the big, campaign-clustered
  // history table in one sorted pass when it reaches this many rows. Appending to the small
  // table dirties few pages per batch (a batch of priority shifts would otherwise rewrite one
  // page per campaign); the merge rewrites each touched campaign's page once per this many
  // records. Once the threshold is reached, each Append merges a chunk of about
  // merge_chunk_rows rows (whole campaigns) until the table is empty, so no single Append pauses
  // for the whole merge. Default: 65536 (about 3 MiB).
  int64_t merge_threshold_rows = 65536;
  // Rows per merge chunk (capped at merge_threshold_rows). Default: 8192.
  int64_t merge_chunk_rows = 8192;
  // Capacity of the cache of decoded snapshot bodies, in bytes. Bodies are immutable, so the
  // cache serves every read (as-of, log, ...) and the append path (which compares a new version
  // with the campaign's previous body). Default: 32 MiB (a 2,000-campaign customer's bodies over
  // a year of edits take a few MiB).
  size_t body_cache_bytes = 32 << 20;
};

class SqliteHistoryStore final : public HistoryStore {
 public:
  // Open (and, unless read_only, create or migrate) the store at options.path.
  // Fails with InvalidArgument for an empty path, Unavailable when the file cannot be opened,
  // FailedPrecondition when the file holds a newer schema_version than this build understands or
  // is not a history store, DataLoss when it is corrupt.
  static Result<std::unique_ptr<SqliteHistoryStore>> Open(const SqliteHistoryOptions& options);

  ~SqliteHistoryStore() override;

  // See HistoryStore. Additionally fails with FailedPrecondition on a read-only store and with
  // Unavailable when another writer holds the lock longer than the busy timeout.
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
  // bytes is the file size (pages in use times page size; the WAL is not counted).
  Result<HistoryStats> Stats() override;
  // Purge and erase run in one SQLite transaction. Bodies no remaining record uses are blanked
  // (their ids stay taken: ids are never reused), so the snapshots' text is gone from the file's
  // live pages; VACUUM (or the next checkpointed rewrite of those pages) reclaims the space.
  Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                std::string_view actor) override;
  Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) override;
  Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) override;
  Result<bool> Erased(int64_t customer_id) override;
  Result<std::vector<AuditEntry>> AuditLog(int64_t limit) override;

  // Return a breakdown of the bytes on disk by table and index (SQLite's dbstat), e.g.
  // {"history": 51234567, "history_by_customer": 2345678, "bodies": ...}. For benchmarks and
  // capacity planning; scans the whole file.
  Result<std::vector<std::pair<std::string, int64_t>>> SpaceByObject();

  // Merge the recent records into the history table and run PRAGMA wal_checkpoint(TRUNCATE), so
  // that the main file holds everything in its final layout (for measurements and backups).
  // Fails with FailedPrecondition on a read-only store.
  Status Checkpoint();

  // Return the conflicting versions kept as evidence, oldest first: (stored, received).
  Result<std::vector<std::pair<HistoryRecord, HistoryRecord>>> Conflicts();

  // Return the SQL of the as-of query, for EXPLAIN in tests and benchmarks.
  static const char* AsOfSqlForTesting();

 private:
  struct Impl;
  explicit SqliteHistoryStore(std::unique_ptr<Impl> impl);

  std::mutex mu_;
  std::unique_ptr<Impl> impl_;  // guarded by mu_
};

}  // namespace ch
