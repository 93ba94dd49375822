// ChangeEvent: one captured change on its way from the campaign database to the history, and its
// wire forms on a change bus (docs/formats/change-message.md): a change message (schema_version
// 1) carries one change; a change batch (schema_version 2) carries several.
//
//   log     every committed version: the full row image (for deletes, the last content), the
//           commit time, the actor and the transaction id.
//   notify  the reference design: {campaign_id, customer_id, op, version} published after commit;
//           the row rides along only on delete; the publisher fetches the current row.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "bus/bus_limits.h"
#include "campaign/campaign.h"
#include "campaign/captured_change.h"
#include "campaign/change.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

// DO NOT CHANGE the meaning of a released version; add fields and bump it.
// A change message: one change. Version 1: the original fields; version 3: plus txn_seq and
// txn_changes (written when the event has a txn_seq; readers accept 1 and 3).
inline constexpr int kChangeMessageSchemaVersion = 3;
inline constexpr int kChangeMessageV1 = 1;
// A change batch: {"schema_version":2,"changes":[<change message>, ...]}, several changes in one
// bus message (the capture relay packs consecutive changes of one customer: fewer, larger
// messages cost Pub/Sub -- and its emulator -- far less per change).
inline constexpr int kChangeBatchSchemaVersion = 2;
// A capture heartbeat (campaign/change.h): {"schema_version":4,"heartbeat":{"txn_seq":N,
// "at":"<RFC 3339>"}}. The capture relay sends one when it has relayed everything and the
// source vouches that later transactions commit after `at`.
inline constexpr int kCaptureHeartbeatSchemaVersion = 4;
// The newest version a reader of the change topic understands.
inline constexpr int kNewestChangeTopicVersion = 4;

// The largest change-topic message a reader decodes: the bus's own limit (Pub/Sub's 10 MB). No
// writer of this project comes near it (the capture relay closes a message before 256 KiB,
// CaptureRelayOptions::max_message_bytes); anything larger is refused unparsed.
inline constexpr size_t kMaxChangeMessageBytes = kMaxBusMessageBytes;
// The most changes one change batch may carry (`serve --changes-per-message` allows 1..this;
// default 100).
inline constexpr size_t kMaxChangeBatchChanges = 10000;

struct ChangeEvent {
  CaptureMode capture = CaptureMode::kLog;
  ChangeOp op = ChangeOp::kUpdated;
  int64_t campaign_id = 0;
  int64_t customer_id = 0;
  // The campaign's version after the change (for deletes: the last version + 1).
  int64_t version = 0;
  // Commit time of the change.
  Timestamp event_time{};
  std::string actor;
  std::string transaction_id;
  // log: always set (for deletes: the row before it). notify: set only for deletes.
  std::optional<Campaign> row;
  // Opaque position in the source (outbox sequence number, WAL LSN); informational on the wire.
  std::string source_position;
  // True when row->content is empty because the content did not change in this version: it is
  // the previous version's (the compact SQLite outbox). Consumers must resolve it before the
  // event is recorded or put on a bus; EncodeChangeMessage refuses such events.
  bool content_omitted = false;
  // True when only the ids, version, updated_at and updated_by of `row` are set: the version is
  // a priority shift (the SQLite outbox's "shifted" rows, format 3), its image the previous
  // version's with priority + priority_shift (CapturedChange). content_omitted is set too.
  bool image_omitted = false;
  int64_t priority_shift = 0;
  // Log capture: the transaction's number in the capture stream (1, 2, 3, ... dense over every
  // captured transaction of the campaign database, in commit order), assigned by the source;
  // and the number of changes the transaction made. Together they let the history know when a
  // transaction -- and every one before it -- is complete (history/completeness.h). 0 =
  // unknown (notify capture; a source that cannot number). A source that hands out a large
  // transaction in parts may state txn_changes only on the events of its last part.
  int64_t txn_seq = 0;
  int64_t txn_changes = 0;

  bool operator==(const ChangeEvent&) const = default;
};

// Return the JSON message for `e`. REQUIRES: !e.content_omitted (resolve the content first).
std::string EncodeChangeMessage(const ChangeEvent& e);
// Return the schema_version EncodeChangeMessage writes for `e` (3 with a txn_seq, else 1).
inline int ChangeMessageVersionOf(const ChangeEvent& e) {
  return e.txn_seq != 0 ? kChangeMessageSchemaVersion : kChangeMessageV1;
}

// Parse a message. Fails with InvalidArgument naming what is wrong (malformed JSON, missing or
// mistyped field, unknown schema_version, a log message without a row, more than
// kMaxChangeMessageBytes, ...); the message quotes at most an excerpt of the data.
Result<ChangeEvent> DecodeChangeMessage(std::string_view data);

// Return the change batch of `events` (schema_version 2). REQUIRES: !events.empty(), and no
// event has content_omitted.
std::string EncodeChangeBatch(std::span<const ChangeEvent> events);
// The same from change messages already encoded (EncodeChangeMessage), e.g. to size a batch.
std::string AssembleChangeBatch(std::span<const std::string> messages);

// Return the heartbeat message for `h`.
std::string EncodeCaptureHeartbeat(const CaptureHeartbeat& h);

// What one message of the change topic holds: changes (one, or a batch's), or a heartbeat.
struct ChangeTopicMessage {
  std::vector<ChangeEvent> events;
  std::optional<CaptureHeartbeat> heartbeat;
};
// Parse any message of the change topic. Fails as DecodeChangeMessages does.
Result<ChangeTopicMessage> DecodeChangeTopicMessage(std::string_view data);

// Parse either wire form: a change message (one event) or a change batch (its events, in order).
// Fails with InvalidArgument naming what is wrong, for a batch also which change (`changes[3]:
// ...`); a batch is accepted or refused as a whole, and refused when it holds more than
// kMaxChangeBatchChanges changes.
Result<std::vector<ChangeEvent>> DecodeChangeMessages(std::string_view data);

// Return the log-capture event for a captured row image (the outbox's and the in-memory
// store's capture log): capture kLog, the row image, source_position = the seq as text.
ChangeEvent ChangeEventFromCapture(const CapturedChange& c);
ChangeEvent ChangeEventFromCapture(CapturedChange&& c);

}  // namespace ch
