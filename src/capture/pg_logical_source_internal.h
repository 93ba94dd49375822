// The wire formats under PgLogicalSource, without a server: the replication protocol's CopyData
// messages (XLogData, keepalive, standby status update) and pgoutput's logical messages
// (protocol version 1 with `messages`), decoded into whole transactions of ChangeEvents.
// docs/formats/pg-capture.md describes them; PostgreSQL's "Logical Replication Message Formats"
// is the reference. Never include from outside src/capture/.
//
// Thread-safety: PgOutputDecoder is used by one thread; the free functions are pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capture/change_event.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch::pg_logical {

// PostgreSQL's epoch (2000-01-01T00:00:00Z) in Unix microseconds: wire timestamps are int64
// microseconds since it.
inline constexpr int64_t kPgEpochUnixMicros = 946'684'800'000'000;

// The actor used for a delete whose transaction carried no actor message (a writer other than
// PgCampaignStore with capture log deleted the row). DO NOT CHANGE: it lands in the history.
inline constexpr char kUnknownActor[] = "unknown";

// A CopyData message from the server.
struct ServerMessage {
  enum class Kind { kXLogData, kKeepalive } kind = Kind::kKeepalive;
  // XLogData: the WAL position of the payload; keepalive: the server's end of WAL.
  uint64_t wal_end = 0;
  // Keepalive only: the server asks for a status update now.
  bool reply_requested = false;
  // XLogData only: one pgoutput message (points into the parsed buffer).
  std::string_view payload;
};

// Parse one CopyData message ('w' XLogData or 'k' keepalive). Fails with DataLoss on anything
// else or a truncated message.
Result<ServerMessage> ParseServerMessage(std::string_view data);

// Return a standby status update ('r'): `written` = the WAL received and processed, `flushed` =
// applied = the position confirmed durable downstream (what the slot may discard), `now_unix_us`
// the client's clock.
std::string EncodeStandbyStatus(uint64_t written, uint64_t flushed, int64_t now_unix_us,
                                bool reply_requested);

// A position PgLogicalSource hands out (SourceBatch::end_position): the end of a transaction
// (`lsn` = its end LSN, `part` = 0, written "0/16B3748"), or the end of a part of a large one
// (`lsn` = its commit LSN, `part` = how many of its changes were handed out through that part,
// written "0/16B3700#10000"). Ordered as the stream is.
struct SourcePosition {
  uint64_t lsn = 0;
  int64_t part = 0;
  auto operator<=>(const SourcePosition&) const = default;
};
std::string FormatSourcePosition(const SourcePosition& p);
// Parse either form. Fails with InvalidArgument naming the text.
Result<SourcePosition> ParseSourcePosition(std::string_view text);

// One committed transaction, decoded: the whole of it, or -- for a transaction with more changes
// than the decoder may hold -- one part of it (then more parts follow, the last one `complete`).
struct DecodedTransaction {
  uint32_t xid = 0;
  // The commit record's LSN (known from Begin, so parts carry it too) and, in the complete piece
  // only, the LSN just after it (what Confirm takes).
  uint64_t commit_lsn = 0;
  uint64_t end_lsn = 0;
  // False for a part: more of the transaction follows.
  bool complete = true;
  // The index within the transaction of events[0] (0 for the first piece).
  int64_t first_change = 0;
  // Complete pieces: the number of campaigns changes of the whole transaction.
  int64_t total_changes = 0;
  // PostgreSQL's commit timestamp.
  Timestamp pg_commit_time{};
  // The stamp PgCampaignStore wrote into ch_txn in this transaction, if it did.
  std::optional<std::string> stamp_txn_id;
  std::optional<Timestamp> stamp_commit_time;
  // The campaigns changes in WAL order: capture kLog, full row images, event_time = the stamp's
  // commit time (PostgreSQL's commit timestamp when there is no stamp), transaction_id = the
  // stamp's txn id (else the 32-bit xid). source_position = FormatLsn(end_lsn) in a complete
  // piece; empty in a part (the source names parts).
  std::vector<ChangeEvent> events;
};

// Decodes a stream of pgoutput messages into transactions. Relation messages are cached by
// relation id (PostgreSQL sends one before a relation's first change in each session).
//
// Memory: at most `max_buffered` changes of the open transaction are held. When one more
// arrives, the first `max_buffered` are returned as a part (so the complete piece that the
// Commit returns always holds at least one change of a split transaction). A part's events get
// the transaction's time and id as known then: the stamp comes first in PgCampaignStore's
// transactions; a stamp that comes after the first part is too late (warned about, ignored).
class PgOutputDecoder {
 public:
  // REQUIRES: max_buffered >= 1. Default: no limit.
  explicit PgOutputDecoder(size_t max_buffered = SIZE_MAX) : max_buffered_(max_buffered) {}

  // Decode one pgoutput message. Return the transaction when `message` is its Commit, a part of
  // it when the open transaction holds more than `max_buffered` changes, nullopt otherwise.
  // Fails with DataLoss on a malformed message, a change of an unknown relation, a campaigns
  // row that cannot be decoded, or a delete without the old row (the table is not REPLICA
  // IDENTITY FULL).
  Result<std::optional<DecodedTransaction>> Feed(std::string_view message);

  // Return true between a Begin and its Commit.
  bool in_transaction() const { return in_txn_; }

  // Forget the open transaction and the relations (a new replication session starts).
  void Reset();

 private:
  struct Relation {
    std::string ns;
    std::string name;
    std::vector<std::string> columns;
    // For campaigns: the attribute index of each kPgCampaignColumns entry (-1 when missing).
    std::vector<int> campaign_index;
  };
  // One tuple: per attribute, nullopt for NULL, the text otherwise; `unchanged` marks unchanged
  // TOAST values (taken from the old tuple).
  struct Tuple {
    std::vector<std::optional<std::string>> values;
    std::vector<bool> unchanged;
  };

  Status OnRelation(std::string_view body);
  Status OnChange(char kind, std::string_view body);
  Result<Campaign> DecodeCampaign(const Relation& rel, const Tuple& t, std::string_view what);
  Status OnStamp(const Relation& rel, const Tuple& t);
  // Give the buffered events the transaction's time, id and (complete pieces) position.
  void Finish(DecodedTransaction& piece);
  // Return the first max_buffered_ events of the open transaction as a part.
  DecodedTransaction TakePart();

  const size_t max_buffered_;
  std::map<uint32_t, Relation> relations_;
  bool in_txn_ = false;
  DecodedTransaction txn_;
  // Changes of the open transaction returned in parts so far.
  int64_t handed_ = 0;
  // The actor of the latest actor message in the open transaction.
  std::optional<std::string> actor_;
};

}  // namespace ch::pg_logical
