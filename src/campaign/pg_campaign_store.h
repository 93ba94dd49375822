// PgCampaignStore: the campaign database on PostgreSQL (the production topology), with exactly
// the semantics of SqliteCampaignStore (the CampaignStore contract; tests/contract/ checks both).
// Tables and row encoding: campaign/pg_schema.h; capture: docs/formats/pg-capture.md.
//
// Transactions: writers are serialized per customer, not per database. BeginWrite only takes a
// pooled connection; BEGIN (READ COMMITTED) goes out with the transaction's first statement. The
// statement that names the customer -- ForCustomer(c), or the first Get(id), which finds the
// campaign's customer -- locks and stamps the transaction in one round trip by upserting the
// customer's row of `ch_customer_txn`:
//   INSERT INTO ch_customer_txn AS t VALUES (c, txid_current(), <proposed µs>)
//   ON CONFLICT (customer_id) DO UPDATE SET txn_id = EXCLUDED.txn_id,
//     commit_us = GREATEST(t.commit_us + 1, EXCLUDED.commit_us) RETURNING ...
// That row lock is held until COMMIT/ROLLBACK, so it serializes the writers of one customer
// across threads, processes and hosts, while writers of other customers go on in parallel (a
// waiting writer re-reads the row once the holder commits; Get then re-reads the campaign).
// Every statement that reads or writes a customer's campaigns locks the customer first. Hence:
//   commit_time    = max(the customer's previous commit_time + 1 us, proposed): strictly
//                    increasing per customer, in commit order. `proposed` = max(clock.Now(), this
//                    process's last committed stamp + 1 us) -- lock-free, and above every stamp in
//                    the database when the store opened -- so one process writing alone stamps in
//                    commit order across customers too. Across customers written concurrently,
//                    stamps need not follow commit order: log capture therefore takes the event
//                    time in WAL (= commit) order as max(stamp, previous event time + 1 us)
//                    (capture/pg_logical_source.h), which equals the stamp unless two
//                    transactions committed out of stamp order.
//   transaction_id = the PostgreSQL transaction id (txid_current(), 64-bit, as decimal text): what
//                    PgLogicalSource reports for the same transaction
// A writer that cannot get its customer's lock within lock_timeout_ms fails with Unavailable
// (PostgreSQL's lock_timeout). Ids are never reused: AllocateId takes the next value of the
// ch_campaign_ids sequence, past every id in campaigns and ch_deleted_campaigns (every deleted id
// is kept there). PgCampaignStoreOptions::serialize_all_writers restores one lock for the whole
// database (the baseline of bench/pg_writers_bench).
//
// Reads (Get, List, ...) run as single statements on pooled connections outside any write
// transaction: each sees the last committed state and never waits for a writer (MVCC).
//
// Capture "log" (StoreCapture::kLog): PostgreSQL's WAL is the capture (PgLogicalSource reads it
// through a replication slot), so inserts and updates cost no extra statement. A delete's actor
// is not in the deleted row, so Remove first writes it into the WAL, in the same transaction,
// with pg_logical_emit_message(true, 'campaign-history.actor', actor). Opening with kLog also
// makes campaigns REPLICA IDENTITY FULL (deletes then carry the whole old row) and requires
// wal_level = logical (FailedPrecondition otherwise: nothing could read the WAL). Opening with
// kNone a database whose campaigns table is published (someone captures it) fails with
// FailedPrecondition, because its deletes would be captured without an actor; see
// PgCampaignStoreOptions::ignore_existing_capture.
//
// Errors (one translation, campaign/pg_client.h): server unreachable or connection lost ->
// Unavailable naming host:port/db (never the password); bad URL -> InvalidArgument; unique
// violation -> AlreadyExists; serialization failure or deadlock -> Aborted; lock wait too long ->
// Unavailable. A connection lost during COMMIT fails with Unavailable and the outcome is unknown
// (the transaction may have committed), as with any client/server database.
//
// Thread-safety: safe to use from several threads; a transaction is used by one thread. Several
// processes may open the same database.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campaign/campaign_store.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct PgCampaignStoreOptions {
  // postgresql://user[:password]@host[:port]/dbname[?param=value] or a libpq key=value conninfo.
  // REQUIRES: not empty. The database must exist and use the UTF8 encoding.
  std::string url;
  // The source of commit times. Not owned; must outlive the store.
  // Default: nullptr, meaning SystemClock::Default().
  Clock* clock = nullptr;
  // What the store records with each change. Default: kLog (the lossless default of the design).
  StoreCapture capture = StoreCapture::kLog;
  // Open with capture kNone even though the campaigns table is in a publication (deletes then
  // reach the capture without their actor). Default: false.
  bool ignore_existing_capture = false;
  // Idle connections kept for reuse; more are opened on demand and closed when returned.
  // Concurrent writers each hold one for their transaction. Default: 8.
  int max_idle_connections = 8;
  // Seconds to wait for the server when connecting. Default: 5.
  int connect_timeout_s = 5;
  // How long a transaction waits for another writer of its customer (in this process or another)
  // and any other row lock. Default: 10000.
  int lock_timeout_ms = 10000;
  // Serialize every writer of the database (one transaction-scoped advisory lock, taken with the
  // first customer lock), as schema version 1 did. For benchmarks (the baseline) and for
  // comparing behaviour; it costs the scaling across customers. Default: false.
  bool serialize_all_writers = false;
  // Server-side limit on each statement, 0 for none. Default: 0.
  int statement_timeout_ms = 0;
};

class PgCampaignStore final : public CampaignStore {
 public:
  // Connect to options.url, create the schema when missing (pg_schema.h) and check it. Fails with
  // InvalidArgument on bad options or URL, Unavailable when the server cannot be reached,
  // FailedPrecondition when the schema is newer than this binary, the database is not UTF8,
  // capture is kLog but wal_level is not logical, or on a capture conflict (see
  // PgCampaignStoreOptions::ignore_existing_capture).
  static Result<std::unique_ptr<PgCampaignStore>> Open(const PgCampaignStoreOptions& options);
  ~PgCampaignStore() override;

  // See CampaignStore and the file comment. BeginWrite fails with Unavailable when no connection
  // can be opened; the transaction's ForCustomer/Get fail with Unavailable when the customer's
  // lock is not free within lock_timeout_ms.
  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view actor) override;
  Result<std::optional<Campaign>> Get(int64_t id) override;
  Result<std::vector<Campaign>> List(int64_t customer_id) override;
  Result<std::vector<int64_t>> ListCustomers() override;
  Result<std::vector<Campaign>> ListExpired(Timestamp now, int64_t limit) override;
  // See CampaignStore: OK at once. PostgreSQL makes a commit visible to other sessions only once
  // its WAL is flushed -- unless the writer's session runs synchronous_commit = off, whose
  // commits are visible before they are durable (docs/operations.md, "Durability").
  Status SyncCommitted() override { return Status::OK(); }
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view workload) override;

  // Return every stored campaign ordered by (customer_id, priority, id): a full dump for tests
  // and tools.
  Result<std::vector<Campaign>> AllCampaigns();

  // Return "host:port/dbname" (no password).
  const std::string& where() const;
  StoreCapture capture() const;

 private:
  struct Impl;
  explicit PgCampaignStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
