#include "publisher/publisher.h"

#include <fmt/format.h>

#include <algorithm>

namespace ch {

Result<HistoryRecord> BuildLogRecord(const ChangeEvent& event) {
  if (event.content_omitted) {
    return InternalError(fmt::format("change for campaign {} version {} has no content resolved",
                                     event.campaign_id, event.version));
  }
  if (!event.row) {
    return InvalidArgumentError(fmt::format("change for campaign {} version {} has no row image",
                                            event.campaign_id, event.version));
  }
  const Campaign& row = *event.row;
  if (row.id != event.campaign_id || row.customer_id != event.customer_id) {
    return InvalidArgumentError(fmt::format(
        "change for campaign {} (customer {}) carries the row of campaign {} (customer {})",
        event.campaign_id, event.customer_id, row.id, row.customer_id));
  }
  int64_t expected_version = event.op == ChangeOp::kDeleted ? row.version + 1 : row.version;
  if (event.version != expected_version) {
    return InvalidArgumentError(
        fmt::format("change for campaign {} says version {} but its row image is version {}",
                    event.campaign_id, event.version, row.version));
  }
  HistoryRecord r;
  r.customer_id = event.customer_id;
  r.campaign_id = event.campaign_id;
  r.version = event.version;
  r.event_time = event.event_time;
  r.event_type = event.op;
  r.actor = event.actor;
  r.transaction_id = event.transaction_id;
  r.capture = event.capture;
  r.missed_versions = 0;
  r.snapshot = CampaignToJson(row);
  r.priority = row.priority;
  r.txn_seq = event.txn_seq;
  r.txn_changes = event.txn_changes;
  return r;
}

Publisher::Publisher(const PublisherOptions& options) : options_(options) {}

void Publisher::Remember(const Campaign& row) {
  if (row.content.empty()) return;
  if (contents_.size() >= options_.content_cache_campaigns && !contents_.contains(row.id)) {
    contents_.clear();
  }
  auto& slot = contents_[row.id];
  if (row.version >= slot.first) slot = {row.version, row.content};
}

Status Publisher::ResolveContent(ChangeEvent& event) {
  Campaign& row = *event.row;
  const int64_t previous = row.version - 1;
  auto it = contents_.find(row.id);
  if (it != contents_.end() && it->second.first == previous) {
    row.content = it->second.second;
  } else {
    ASSIGN_OR_RETURN(std::optional<HistoryRecord> before,
                     options_.history->GetVersion(row.id, previous));
    if (!before) {
      return DataLossError(fmt::format(
          "campaign {} version {} did not change its content, but version {} is not in the "
          "history to take it from",
          row.id, row.version, previous));
    }
    ASSIGN_OR_RETURN(Campaign prior, CampaignFromJson(before->snapshot));
    row.content = std::move(prior.content);
  }
  event.content_omitted = false;
  return Status::OK();
}

Result<std::optional<HistoryRecord>> Publisher::ResolveNotify(
    const ChangeEvent& event, const std::vector<HistoryRecord>& pending) {
  // The highest version recorded so far: in the store, or earlier in this batch.
  int64_t recorded = 0;
  for (const HistoryRecord& p : pending) {
    if (p.campaign_id == event.campaign_id) recorded = std::max(recorded, p.version);
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> stored,
                   options_.history->LatestVersion(event.campaign_id));
  if (stored) recorded = std::max(recorded, *stored);

  HistoryRecord r;
  if (event.op == ChangeOp::kDeleted) {
    // The last content rides along with a delete: record the tombstone from it.
    ASSIGN_OR_RETURN(r, BuildLogRecord(event));
  } else {
    if (options_.campaigns == nullptr) {
      return FailedPreconditionError(
          "notify capture needs the campaign database to fetch rows (no campaign store given)");
    }
    ASSIGN_OR_RETURN(std::optional<Campaign> row, options_.campaigns->Get(event.campaign_id));
    if (!row) return std::optional<HistoryRecord>();  // deleted since; its delete event follows
    if (row->customer_id != event.customer_id) {
      return InvalidArgumentError(fmt::format(
          "notify message says campaign {} belongs to customer {}, the database says {}",
          event.campaign_id, event.customer_id, row->customer_id));
    }
    r.customer_id = row->customer_id;
    r.campaign_id = row->id;
    r.version = row->version;
    r.event_time = row->updated_at;  // the commit time of the version we fetched
    r.event_type = row->version == 1 ? ChangeOp::kCreated : ChangeOp::kUpdated;
    r.actor = row->updated_by;
    // The message's transaction is the fetched version's only when nothing happened since.
    r.transaction_id = row->version == event.version ? event.transaction_id : "";
    r.snapshot = CampaignToJson(*row);
    r.priority = row->priority;
  }
  r.capture = CaptureMode::kNotify;
  if (r.version <= recorded) return std::optional<HistoryRecord>();  // already recorded
  r.missed_versions = r.version - 1 - recorded;
  return std::optional<HistoryRecord>(std::move(r));
}

Result<PublishStats> Publisher::Process(std::span<const ChangeEvent> events) {
  PublishStats stats;
  std::vector<HistoryRecord> records;
  records.reserve(events.size());
  for (const ChangeEvent& e : events) {
    ++stats.events;
    if (e.capture == CaptureMode::kLog) {
      if (e.content_omitted && e.row) {
        ChangeEvent resolved = e;
        RETURN_IF_ERROR(ResolveContent(resolved));
        ASSIGN_OR_RETURN(HistoryRecord r, BuildLogRecord(resolved));
        Remember(*resolved.row);
        records.push_back(std::move(r));
        continue;
      }
      ASSIGN_OR_RETURN(HistoryRecord r, BuildLogRecord(e));
      if (e.row) Remember(*e.row);
      records.push_back(std::move(r));
      continue;
    }
    ASSIGN_OR_RETURN(std::optional<HistoryRecord> r, ResolveNotify(e, records));
    if (!r) {
      ++stats.dropped;
      continue;
    }
    stats.missed_versions += r->missed_versions;
    records.push_back(std::move(*r));
  }
  if (!records.empty()) {
    ASSIGN_OR_RETURN(stats.stored, options_.history->Append(records));
  }
  return stats;
}

}  // namespace ch
