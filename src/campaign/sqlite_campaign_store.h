// SqliteCampaignStore: the campaign database in one SQLite file (WAL mode): the embedded
// default, and the system whose history the embedded setup keeps.
//
// Transactions: BeginWrite runs BEGIN IMMEDIATE on the store's write connection, which
// serializes writers across threads (an in-process lock held for the transaction's lifetime) and
// across processes (SQLite's write lock, waited for up to busy_timeout_ms). Under that lock it
// assigns the transaction's stamp, persisted in the database so that it holds across
// connections, processes and restarts:
//   commit_time    = max(clock.Now(), previous commit_time + 1 us)  (strictly increasing)
//   transaction_id = previous transaction id + 1, as decimal text
// Campaign ids are never reused: the highest id ever used and every deleted id are kept.
//
// Capture "log" (the file's recorded mode, campaign/sqlite_capture.h): triggers on the campaigns
// table copy every inserted,
// updated and deleted row, with its version, actor, transaction id and commit time, into the
// `outbox` table in the same transaction, so nothing that writes the table can bypass capture
// and a rolled-back change leaves no trace. docs/formats/outbox.md specifies the outbox;
// campaign/sqlite_outbox.h reads it and capture/sqlite_outbox_source.h relays it.
//
// Reads (Get, List, ...) run on separate read-only connections and see the last committed state
// (a consistent snapshot per call); they never wait for a writer.
//
// Thread-safety: safe to use from several threads; a transaction is used by one thread. Several
// processes may open the same file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campaign/campaign_store.h"
#include "campaign/capture_setting.h"
#include "campaign/sqlite_capture.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct SqliteCampaignStoreOptions {
  // The database file; created with the schema when missing. REQUIRES: not empty.
  std::string path;
  // The source of commit times. Not owned; must outlive the store.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
  // The capture mode this process is configured for (campaign/sqlite_capture.h). A file this
  // Open creates records it; an existing file must record the same mode, or Open fails with
  // FailedPrecondition naming both modes and the command that changes the database's (only an
  // explicit SetSqliteCapture does). Log mode installs the outbox and its triggers.
  // Default: kLog (the lossless default of the design).
  CaptureSetting capture = CaptureSetting::kLog;
  // The outbox row format recorded for a file that has none yet (one this Open creates, or a
  // schema-1 file without capture). An existing file keeps its own. Default: kCompact.
  OutboxRows rows_if_new = OutboxRows::kCompact;
  // PRAGMA synchronous for the write connection. Default: "NORMAL".
  // Durability trade-off: in WAL mode "NORMAL" does not fsync at each commit, only at checkpoints.
  // A committed transaction survives a crash of the process (the WAL is in the OS page cache) but
  // the last transactions before a power loss or OS crash may be lost -- together with their
  // outbox rows. The outbox relay fsyncs the WAL before it hands changes out
  // (SqliteOutboxSource), so the history never holds a change the database lost: a power loss
  // takes back only commits not relayed yet, from both sides alike. "FULL" fsyncs the WAL at
  // every commit (an acknowledged commit survives power loss) and costs one fsync per
  // transaction, in the writer.
  std::string synchronous = "NORMAL";
  // How long BeginWrite waits for another writer (thread or process). Default: 10000 ms.
  int busy_timeout_ms = 10000;
  // Page cache per connection, in KiB. Default: 32768 (32 MiB).
  int cache_kib = 32768;
  // Page size of a newly created file, in bytes (a power of two, 512..65536); 0 keeps SQLite's
  // default (4096). Ignored for an existing file. Default: 0.
  int page_size = 0;
  // Log capture with compact rows: capture a priority shift (one statement that moves a range of
  // a customer's campaigns) as one outbox row instead of one per shifted campaign (outbox format
  // 3, docs/formats/outbox.md). false writes the rows one by one, as format 2 did (tests, the
  // capture bench). Default: true.
  bool one_row_per_shift = true;
};

class SqliteCampaignStore final : public CampaignStore {
 public:
  // Open (creating when missing) the database at options.path, create or check the schema and
  // install or check capture. Fails with Unavailable when the file cannot be opened,
  // FailedPrecondition when it was written by a newer schema version or on a capture conflict
  // (see SqliteCampaignStoreOptions::capture), InvalidArgument on bad options.
  static Result<std::unique_ptr<SqliteCampaignStore>> Open(
      const SqliteCampaignStoreOptions& options);
  ~SqliteCampaignStore() override;

  // See CampaignStore. BeginWrite fails with Unavailable when the write lock is not free within
  // busy_timeout_ms.
  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view actor) override;
  Result<std::optional<Campaign>> Get(int64_t id) override;
  Result<std::vector<Campaign>> List(int64_t customer_id) override;
  Result<std::vector<int64_t>> ListCustomers() override;
  Result<std::vector<Campaign>> ListExpired(Timestamp now, int64_t limit) override;
  // See CampaignStore: fsyncs the WAL (SqliteDb::SyncWal) through a read connection, so it
  // neither waits for nor holds up writers.
  Status SyncCommitted() override;
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view workload) override;

  // Return every stored campaign ordered by (customer_id, priority, id): a full dump for tests
  // and tools.
  Result<std::vector<Campaign>> AllCampaigns();

  const std::string& path() const;
  StoreCapture capture() const;

 private:
  struct Impl;
  explicit SqliteCampaignStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
