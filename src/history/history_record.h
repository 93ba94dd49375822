// HistoryRecord: one captured version of one campaign, as every history store keeps it.
//
// The columns map 1:1 onto the BigQuery table of the design (partitioned by DATE(event_time),
// clustered by customer_id, campaign_id); docs/formats/history-record.md is the spec.
//
// Thread-safety: plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "campaign/change.h"
#include "common/clock.h"

namespace ch {

// Bump when a field is added; readers accept every version up to the current one.
// 2: txn_seq and txn_changes.
inline constexpr int kHistoryRecordSchemaVersion = 2;

// The largest history record (or history-topic message) HistoryRecordFromJson and
// DecodeHistoryMessage read, in bytes of JSON. A record holds one snapshot, and a snapshot is
// bounded by the campaign limits (campaign/campaign.h: content <= 64 KiB, names <= 200
// characters): even with every character escaped twice a record stays under 200 KiB, so 1 MiB
// leaves room to grow while anything larger is refused before it is parsed.
inline constexpr size_t kMaxHistoryRecordBytes = size_t{1024} * 1024;

struct HistoryRecord {
  int64_t customer_id = 0;
  int64_t campaign_id = 0;
  // The campaign's version after this change (for deletes: the last version + 1).
  int64_t version = 0;
  // Commit time of the change.
  Timestamp event_time{};
  ChangeOp event_type = ChangeOp::kUpdated;
  // Who made the change.
  std::string actor;
  // Groups the changes one action made (a create and its priority shifts).
  std::string transaction_id;
  CaptureMode capture = CaptureMode::kLog;
  // Versions known to exist but not captured (notify mode only; 0 otherwise).
  int64_t missed_versions = 0;
  // Canonical snapshot JSON (campaign/campaign.h CampaignToJson): the campaign after the change;
  // for deletes, the last content before it.
  std::string snapshot;
  // The snapshot's priority, kept beside it so stores can order as-of answers without parsing.
  int64_t priority = 0;
  // When the history store got it (set by the store on Append).
  Timestamp ingested_at{};
  // Log capture: the transaction's number in the capture stream of its campaign database (1, 2,
  // 3, ... dense over every captured transaction, in commit order) and how many changes it made.
  // A store uses them to know when a transaction is complete (HistoryStore, "Completeness").
  // 0 = unknown: notify capture, records written before schema_version 2, and -- for
  // txn_changes -- records of a transaction that did not state its size on this record.
  int64_t txn_seq = 0;
  int64_t txn_changes = 0;

  bool operator==(const HistoryRecord&) const = default;
};

// Return true when `a` and `b` describe the same version the same way: the same snapshot,
// event_time, event_type and actor (what a redelivery repeats; ingested_at and the capture
// bookkeeping may differ). Two records of one (campaign_id, version) that are not the same are a
// conflict: the version number was reused (HistoryStore, "Delivery semantics").
bool SameVersionContent(const HistoryRecord& a, const HistoryRecord& b);

// Return a compact rendering for tests and logs: "c7@v3 updated p1 by user:1 tx 12".
std::string DebugString(const HistoryRecord& r);

// Return the BigQuery-compatible JSON row of `r` (docs/formats/history-record.md): snapshot as a
// JSON string, times as RFC 3339 UTC, plus "schema_version".
std::string HistoryRecordToJson(const HistoryRecord& r);
// Parse a row written by HistoryRecordToJson (any schema_version <= current). Fails with
// InvalidArgument naming the field (quoting at most an excerpt of a bad value), and for text
// longer than kMaxHistoryRecordBytes.
Result<HistoryRecord> HistoryRecordFromJson(std::string_view json_text);

// The history topic carries records and, between them, capture heartbeats (campaign/change.h)
// so that a sink's store knows how complete it is while nothing changes:
//   {"heartbeat":{"txn_seq":N,"at":"<RFC 3339>"},"schema_version":2}
// published with the attribute "heartbeat" = "1" (a BigQuery subscription filters them out with
// `NOT attributes:heartbeat`).
std::string CaptureHeartbeatToJson(const CaptureHeartbeat& h);
// One message of the history topic: a record or a heartbeat.
struct HistoryMessage {
  std::optional<HistoryRecord> record;
  std::optional<CaptureHeartbeat> heartbeat;
};
// Parse a history-topic message. Fails with InvalidArgument naming the field, and for text longer
// than kMaxHistoryRecordBytes.
Result<HistoryMessage> DecodeHistoryMessage(std::string_view json_text);

}  // namespace ch
