// CampaignStore: the campaign database (the system whose history we keep), reduced to the row
// primitives the CampaignService composes into the service semantics. Implementations:
// InMemoryCampaignStore (tests), SqliteCampaignStore (embedded default), and later
// PgCampaignStore. The service semantics live once, in CampaignService; the contract suite in
// tests/contract/ runs the service over every store.
//
// Transactions: BeginWrite() opens one write transaction and assigns its commit stamp. Writers
// are serialized per customer at least: SQLite and the in-memory store serialize every writer of
// the database; PostgreSQL serializes only the writers of one customer, once the transaction
// names the customer (ForCustomer, or reading one of its campaigns with Get). commit_time() is
// strictly greater than the commit_time of every transaction that committed before it and wrote
// the same customer (on SQLite and in memory: any customer), and transaction_id() is unique
// within the database. Rows written through the transaction carry that commit_time as
// updated_at. Destroying a transaction that was not committed rolls it back.
//
// Capture: a store opened with capture "log" records, in the same transaction, the full row image
// of every insert/update/delete with its version, actor, transaction id and commit time (the
// outbox on SQLite, the WAL on PostgreSQL). A store never calls out to other systems.
//
// Replay positions: a store also keeps, per workload, how far a workload replay got
// (workload/replayer.h). The replayer advances it inside the transaction of each op it applies,
// so an op and the record that it was applied are committed together or not at all; the table
// is never captured (it is not campaign data).
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

// How far a workload replay got on one database: the last line it applied.
struct ReplayPosition {
  // The workload's identity (workload/workload_digest.h: a fingerprint of its first line).
  // REQUIRES: 1..128 characters.
  std::string workload;
  // The seq of the last applied line.
  int64_t seq = 0;
  // A digest of the workload's lines through `seq`: tells a file apart from another one that
  // shares its first line. At most 128 characters.
  std::string digest;
  // Where the lines were read from (a file name, or "standard input"); for messages only. At
  // most 1024 bytes.
  std::string source;
  // When the transaction that recorded it committed: set by the store when reading, ignored
  // when writing (the transaction's commit_time() is stored).
  Timestamp recorded_at{};

  bool operator==(const ReplayPosition&) const = default;
};

// Move a workload's replay position forward, in the transaction of the op it records: a
// compare-and-set, so that two replays of one workload cannot both apply an op.
struct ReplayAdvance {
  // The new position (its recorded_at is ignored).
  ReplayPosition to;
  // The seq the recorded position must have now; nullopt: nothing may be recorded yet.
  std::optional<int64_t> from_seq;
};

class CampaignTransaction {
 public:
  CampaignTransaction() = default;
  CampaignTransaction(const CampaignTransaction&) = delete;
  CampaignTransaction& operator=(const CampaignTransaction&) = delete;
  // Roll back unless Commit() succeeded.
  virtual ~CampaignTransaction() = default;

  // Declare the customer whose campaigns the transaction is about to read or write. A store that
  // serializes writers per customer (PostgreSQL) waits here for the customer's other writers and
  // stamps the transaction; call it before commit_time() and before any write. Fails with
  // Unavailable when the customer's lock is not free in time. Default: OK (the store serializes
  // every writer already).
  virtual Status ForCustomer(int64_t customer_id) {
    (void)customer_id;
    return Status::OK();
  }
  // Return the transaction's commit stamp (see the file comment): assigned when the transaction
  // began, or -- on a store that serializes per customer -- when it named its customer.
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

  // Record advance.to as its workload's replay position in this transaction, provided the
  // position recorded now has seq advance.from_seq (none when from_seq is nullopt). Fails with
  // FailedPrecondition naming the recorded seq when it does not (another replay of the same
  // workload moved it), and with InvalidArgument on a bad position (see ReplayPosition); then
  // nothing was recorded and the caller must not commit.
  virtual Status AdvanceReplay(const ReplayAdvance& advance) = 0;

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
  // Return the committed replay position of `workload`, or nullopt when none was recorded.
  virtual Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view workload) = 0;
};

// Return OK when `p` can be recorded (see ReplayPosition); InvalidArgument naming the field
// otherwise. Every store checks this in AdvanceReplay.
Status ValidateReplayPosition(const ReplayPosition& p);
// Return the FailedPrecondition of an AdvanceReplay whose from_seq differs from the recorded
// position (`recorded`: its seq, nullopt when none). The same message on every store.
Status ReplayPositionConflict(const ReplayAdvance& advance, std::optional<int64_t> recorded);

}  // namespace ch
