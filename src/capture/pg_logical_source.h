// PgLogicalSource: the ChangeSource of log capture on PostgreSQL. It streams the campaign
// database's WAL through a logical replication slot (libpq's replication protocol, plugin
// pgoutput, protocol version 1 with logical messages) and turns each committed transaction into
// ChangeEvents. docs/formats/pg-capture.md explains the whole mechanism for operators.
//
// What an event holds: the full row image (inserts/updates: the new row; deletes: the old row,
// which needs REPLICA IDENTITY FULL), version (for deletes: the old version + 1), op, actor
// (row.updated_by; for deletes the actor PgCampaignStore wrote into the same transaction with
// pg_logical_emit_message, or "unknown" when the deleting writer did not), event_time and
// transaction_id. transaction_id is the stamp PgCampaignStore writes first in every transaction
// (ch_customer_txn; ch_txn in WAL from schema version 1), else the 32-bit xid. event_time follows
// WAL (= commit) order: max(the stamp -- PostgreSQL's commit timestamp when there is none --, the
// previous transaction's event time + 1 us), so it equals CommitInfo::committed_at and the rows'
// updated_at unless transactions of different customers committed out of stamp order, and the
// history's completeness watermark never passes a transaction still to come. The chain resumes
// from the last confirmed transaction's event time (ch_capture_progress.confirmed_event_us), so a
// resent transaction gets the same event time.
// source_position is the commit's end LSN ("0/16B3748"), the same for every event of a
// transaction (of a transaction handed out in parts: each part's position, below).
//
// Delivery: at least once, as ChangeSource says. Poll returns transactions in commit order; a
// transaction of up to `max_buffered_changes` changes is buffered until its Commit arrives and
// handed out whole. A larger one is handed out in parts of that many as it is decoded (pgoutput
// sends a transaction only once it committed), so memory stays bounded: each part's
// end_position is "<commit LSN>#<changes so far>" (e.g. "0/16B3700#10000"), its events have
// txn_changes 0, and the last part (ending at the end LSN) states the whole count.
// Confirm(position) first records the position in ch_capture_progress (a normal connection; one
// row per slot), then reports it to the server as flushed, which lets the slot discard the WAL
// before it. The server only ever hears of whole transactions: confirming a part records it
// (partial_lsn, partial_changes), so that a restarted source, which PostgreSQL sends the whole
// transaction again, skips the confirmed part and hands out the rest with the same txn_seq. Status
// updates never report more than the last confirmed position, except when the source is idle and
// everything it delivered is confirmed: then the server's end of WAL (from a keepalive) is
// reported, so an idle slot does not pin WAL that other databases write. Status updates go out when
// the server asks, after each Confirm, and every `feedback_interval` while Poll or Confirm is
// called (call Poll at least every wal_sender_timeout, 60 s by default).
//
// Restarts: a new source starts streaming after the recorded position. PostgreSQL 15 may still
// resend transactions it was told about (it does not always persist the slot's position on
// shutdown); the source skips every transaction whose end LSN is <= the recorded position, and,
// after a reconnect within one session, everything it already handed out. A dropped connection
// makes Poll fail with Unavailable; the next Poll reconnects.
//
// Setup is explicit: Open never creates anything. CreateCapture makes the publication (first:
// decoding needs it to exist before the slot's start), the slot, the schema, REPLICA IDENTITY
// FULL; DropCapture removes the slot and the publication (a slot that nobody reads keeps WAL
// forever). SlotStatus tells operators how much WAL a slot retains.
//
// Backlog(): bytes of WAL between the slot's confirmed position and the server's current end of
// WAL (not a number of events: the source cannot count what it has not decoded). 0 means caught
// up and idle; on a busy server it stays small but rarely reaches 0 (other databases write WAL
// too), so compare it with a threshold rather than with 0.
//
// Thread-safety: Poll, Confirm and Backlog from one consumer thread. The static functions are
// safe from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "capture/change_source.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

struct PgLogicalSourceOptions {
  // The campaign database (postgresql://... URL or conninfo). The user needs the REPLICATION
  // attribute (or superuser). REQUIRES: not empty.
  std::string url;
  // The logical replication slot (plugin pgoutput). REQUIRES: 1-63 of [a-z0-9_].
  std::string slot;
  // The publication the slot decodes. REQUIRES: 1-63 of [A-Za-z0-9_].
  std::string publication;
  // How often a status update is sent while nothing else triggers one. Default: 5 s.
  Micros feedback_interval = std::chrono::seconds(5);
  // Seconds to wait for the server when (re)connecting. Default: 5.
  int connect_timeout_s = 5;
  // The most changes of one transaction held in memory. A transaction with more is handed out
  // in parts of this many (see the file comment), so memory stays bounded whatever the size of
  // a transaction. Default: 10,000 (~10 MB; a priority shift of a 2,000-campaign customer still
  // comes whole). REQUIRES: >= 1.
  size_t max_buffered_changes = 10000;

  // Test-only: start streaming at the slot's own position, ignoring the recorded progress (as
  // if PostgreSQL had lost the position it was told), so tests can check that already confirmed
  // transactions are skipped. Default: false.
  bool TEST_start_at_slot_position = false;
  // Test-only: Confirm records the position but never tells the server. Default: false.
  bool TEST_no_server_feedback = false;
};

// What a replication slot holds back, for operators (a relay that stopped confirming makes
// retained_wal_bytes grow until the disk fills or max_slot_wal_keep_size invalidates the slot).
struct PgSlotStatus {
  bool exists = false;
  // A consumer is connected (and its server process id).
  bool active = false;
  std::optional<int64_t> active_pid;
  // The position confirmed by the consumer, and the oldest WAL the slot keeps ("0/16B3748").
  std::string confirmed_flush_lsn;
  std::string restart_lsn;
  // Bytes of WAL kept on disk for the slot: current end of WAL - restart_lsn.
  int64_t retained_wal_bytes = 0;
  // Bytes of WAL not yet confirmed: current end of WAL - confirmed_flush_lsn (the Backlog()).
  int64_t unconfirmed_wal_bytes = 0;
  // PostgreSQL's wal_status: "reserved", "extended", "unreserved" or "lost" (the slot is
  // invalid: WAL it needed was removed; recreate the capture and backfill).
  std::string wal_status;
};

class PgLogicalSource final : public ChangeSource {
 public:
  // Connect and start streaming from the slot. Fails with InvalidArgument on bad options or URL,
  // Unavailable when the server cannot be reached or the slot is in use by another consumer,
  // FailedPrecondition naming what is missing (slot, publication, progress table) and how to
  // create it (CreateCapture), or when the slot belongs to another database or plugin.
  static Result<std::unique_ptr<PgLogicalSource>> Open(const PgLogicalSourceOptions& options);
  ~PgLogicalSource() override;

  // See ChangeSource. `max_events` 0 is treated as 1; a batch holds whole transactions and parts
  // (of up to max_buffered_changes), so it may hold more. Fails with Unavailable when the
  // connection is down (the next call reconnects), DataLoss when a change cannot be decoded (see
  // pg_logical_source_internal.h).
  Result<SourceBatch> Poll(size_t max_events, Micros wait) override;
  // See ChangeSource and the file comment. Fails with InvalidArgument when `position` is not an
  // LSN or a part this source handed out, Unavailable when the progress cannot be recorded (nothing
  // is reported to the server then).
  Status Confirm(const std::string& position) override;
  // Return the bytes of WAL after the slot's confirmed position (see the file comment).
  Result<int64_t> Backlog() override;
  // Not yet: PostgreSQL commit times are not vouched for (nullopt); completeness then advances
  // with each transaction's commit, not with idle time.
  Result<std::optional<CaptureHeartbeat>> Heartbeat() override;

  // Create what log capture needs in the database at `url`, each part only when missing (so it is
  // safe to run again): the campaign schema with REPLICA IDENTITY FULL on campaigns, the
  // publication (FOR TABLE campaigns, ch_customer_txn; publishing insert, update, delete) and the
  // slot (pgoutput). A new slot starts with no recorded progress. Fails with InvalidArgument on
  // bad names, Unavailable when unreachable, FailedPrecondition when a slot of that name exists
  // for another database or plugin, or wal_level is not logical.
  static Status CreateCapture(const std::string& url, const std::string& slot,
                              const std::string& publication);
  // Drop the slot, the publication and the slot's recorded progress, each only when present.
  // Waits up to a few seconds for a consumer that is disconnecting; fails with
  // FailedPrecondition when the slot is still in use.
  static Status DropCapture(const std::string& url, const std::string& slot,
                            const std::string& publication);
  // Return the slot's state (exists = false when there is no such slot).
  static Result<PgSlotStatus> SlotStatus(const std::string& url, const std::string& slot);

 private:
  struct Impl;
  explicit PgLogicalSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
