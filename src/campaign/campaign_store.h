// CampaignStore: the campaign database (the system whose history we keep), reduced to the row
// primitives the CampaignService composes into the service semantics. Implementations:
// InMemoryCampaignStore (tests), SqliteCampaignStore (embedded default), and later
// PgCampaignStore. The service semantics live once, in CampaignService; the contract suite in
// tests/contract/ runs the service over every store.
//
// Transactions: BeginWrite() opens one write transaction (serialized with every other writer of
// the same database) and assigns its commit stamp: commit_time() is strictly greater than the
// commit_time of every transaction that committed before it in this database, and
// transaction_id() is unique within the database. Rows written through the transaction carry
// that commit_time as updated_at. Destroying a transaction that was not committed rolls it back.
//
// Capture: a store opened with capture "log" records, in the same transaction, the full row image
// of every insert/update/delete with its version, actor, transaction id and commit time (the
// outbox on SQLite, the WAL on PostgreSQL). A store never calls out to other systems.
//
// Thread-safety: a CampaignStore is safe to use from several threads; a CampaignTransaction is
// used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "campaign/campaign.h"
#include "campaign/change.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

// What a store records in the same transaction as each change.
//   kNone  nothing (notify capture, if any, happens after commit through a CommitObserver).
//   kLog   the full row image of every insert/update/delete, with version, actor, transaction id
//          and commit time (the outbox on SQLite; the WAL on PostgreSQL).
enum class StoreCapture { kNone, kLog };

class CampaignTransaction {
 public:
  CampaignTransaction() = default;
  CampaignTransaction(const CampaignTransaction&) = delete;
  CampaignTransaction& operator=(const CampaignTransaction&) = delete;
  // Roll back unless Commit() succeeded.
  virtual ~CampaignTransaction() = default;

  // Return the commit stamp assigned when the transaction began (see the file comment).
  virtual Timestamp commit_time() const = 0;
  // Return the transaction id (unique within the database), e.g. "1042".
  virtual const std::string& transaction_id() const = 0;

  // Return the row with this id, or nullopt.
  virtual Result<std::optional<Campaign>> Get(int64_t id) = 0;
  // Return the number of campaigns of the customer.
  virtual Result<int64_t> CountCustomer(int64_t customer_id) = 0;
  // Return the customer's campaigns ordered by priority (then id), as this transaction sees them.
  virtual Result<std::vector<Campaign>> List(int64_t customer_id) = 0;
  // Return an id never used before in this database (greater than every id ever inserted).
  virtual Result<int64_t> AllocateId() = 0;

  // Insert `row` as given. Fails with AlreadyExists when the id exists (or existed: ids are never
  // reused).
  virtual Status Insert(const Campaign& row) = 0;
  // Replace the stored row that has row.id with `row`. Fails with NotFound when absent.
  virtual Status Replace(const Campaign& row) = 0;
  // Delete the row. Fails with NotFound when absent. `actor` is recorded as the delete's actor.
  virtual Status Remove(int64_t id, std::string_view actor) = 0;
  // For the customer's rows with lo <= priority (and priority <= *hi when hi is set): priority +=
  // delta, version += 1, updated_at = commit_time(), updated_by = actor. Return one RowChange per
  // touched row (in no particular order).
  virtual Result<std::vector<RowChange>> Shift(int64_t customer_id, int64_t delta, int64_t lo,
                                               std::optional<int64_t> hi,
                                               std::string_view actor) = 0;

  // Make the transaction durable and visible. After a failure the transaction is rolled back.
  virtual Status Commit() = 0;
};

class CampaignStore {
 public:
  CampaignStore() = default;
  CampaignStore(const CampaignStore&) = delete;
  CampaignStore& operator=(const CampaignStore&) = delete;
  virtual ~CampaignStore() = default;

  // Open a write transaction for `actor` (REQUIRES: a valid actor). Blocks while another writer
  // holds the database; fails with Unavailable when it cannot get the lock in time.
  virtual Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view actor) = 0;

  // Reads (each a consistent snapshot of committed data).
  virtual Result<std::optional<Campaign>> Get(int64_t id) = 0;
  // Return the customer's campaigns ordered by priority.
  virtual Result<std::vector<Campaign>> List(int64_t customer_id) = 0;
  // Return every customer id that has at least one campaign, ascending.
  virtual Result<std::vector<int64_t>> ListCustomers() = 0;
  // Return up to `limit` active campaigns whose end_at <= now, oldest end_at first.
  virtual Result<std::vector<Campaign>> ListExpired(Timestamp now, int64_t limit) = 0;

  // Make every transaction committed so far survive a power loss, when committing did not
  // already (SQLite at synchronous=NORMAL: an fsync of the WAL). A caller that records what it
  // read -- notify capture's publisher -- calls it between the reads and the record, so the
  // record never holds a version the database can still lose. OK at once where a committed row
  // is durable before any reader sees it (PostgreSQL with synchronous_commit on; in memory).
  // Fails with Unavailable when the database cannot be reached or synced.
  virtual Status SyncCommitted() = 0;
};

}  // namespace ch
