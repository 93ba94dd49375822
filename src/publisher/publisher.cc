#include "publisher/publisher.h"

#include <fmt/format.h>

#include <algorithm>

namespace ch {
namespace {

// A failure of a store is the store's (DependencyFailure), unless it refused the record itself.
template <typename T>
Result<T> FromHistory(Result<T> r) {
  if (r.ok()) return r;
  return DependencyFailure(r.status(), "history store");
}
template <typename T>
Result<T> FromCampaigns(Result<T> r) {
  if (r.ok()) return r;
  return DependencyFailure(r.status(), "campaign database");
}
Status FromCampaigns(const Status& s) {
  return s.ok() ? s : DependencyFailure(s, "campaign database");
}

}  // namespace

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
  if (images_.size() >= options_.content_cache_campaigns && !images_.contains(row.id)) {
    images_.clear();
  }
  auto [it, added] = images_.try_emplace(row.id, row);
  if (!added && row.version >= it->second.version) it->second = row;
}

Result<std::optional<Campaign>> Publisher::PreviousImage(int64_t id, int64_t version) {
  auto it = images_.find(id);
  if (it != images_.end() && it->second.version == version) {
    return std::optional<Campaign>(it->second);
  }
  ASSIGN_OR_RETURN(std::optional<HistoryRecord> before,
                   FromHistory(options_.history->GetVersion(id, version)));
  if (!before) return std::optional<Campaign>();
  if (before->event_type == ChangeOp::kDeleted) {
    return DataLossError(fmt::format(
        "campaign {} version {} is a deletion, yet a later version changes the campaign", id,
        version));
  }
  Result<Campaign> prior = CampaignFromJson(before->snapshot);
  if (!prior.ok()) {
    return DataLossError(fmt::format("campaign {} version {} in the history: {}", id, version,
                                     prior.status().message()));
  }
  return std::optional<Campaign>(std::move(*prior));
}

Status Publisher::ResolveContent(ChangeEvent& event) {
  Campaign& row = *event.row;
  const int64_t previous = row.version - 1;
  ASSIGN_OR_RETURN(std::optional<Campaign> prior, PreviousImage(row.id, previous));
  if (!prior) {
    // An erased customer's versions are gone on purpose, and the store refuses this one too.
    ASSIGN_OR_RETURN(bool erased, FromHistory(options_.history->Erased(event.customer_id)));
    if (erased) {
      event.content_omitted = false;
      return Status::OK();
    }
    return DataLossError(fmt::format(
        "campaign {} version {} did not change its content, but version {} is not in the "
        "history to take it from",
        row.id, row.version, previous));
  }
  row.content = std::move(prior->content);
  event.content_omitted = false;
  return Status::OK();
}

Status Publisher::ResolveImage(ChangeEvent& event) {
  Campaign& row = *event.row;
  const int64_t previous = event.version - 1;
  ASSIGN_OR_RETURN(std::optional<Campaign> prior, PreviousImage(event.campaign_id, previous));
  if (!prior) {
    ASSIGN_OR_RETURN(bool erased, FromHistory(options_.history->Erased(event.customer_id)));
    if (!erased) {
      return DataLossError(fmt::format(
          "campaign {} version {} is a priority shift of version {}, which is not in the "
          "history to take its image from",
          event.campaign_id, event.version, previous));
    }
    // The store refuses an erased customer's records: any image will do.
    prior = row;
    prior->id = event.campaign_id;
    prior->customer_id = event.customer_id;
    prior->version = previous;
    prior->content = "{}";
  }
  ASSIGN_OR_RETURN(Campaign next,
                   ApplyShift(*prior, event.campaign_id, event.customer_id, event.version,
                              event.priority_shift, row.updated_at, row.updated_by));
  row = std::move(next);
  event.image_omitted = false;
  event.priority_shift = 0;
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
                   FromHistory(options_.history->LatestVersion(event.campaign_id)));
  if (stored) recorded = std::max(recorded, *stored);

  if (options_.campaigns == nullptr) {
    return FailedPreconditionError(
        "notify capture needs the campaign database to fetch rows (no campaign store given)");
  }
  // The database, not the message, says which version is current: a notification is only a
  // hint to look (and anyone who may publish to the change topic can write one).
  ASSIGN_OR_RETURN(std::optional<Campaign> row,
                   FromCampaigns(options_.campaigns->Get(event.campaign_id)));
  HistoryRecord r;
  if (event.op == ChangeOp::kDeleted) {
    if (row) {
      // Campaign ids are never reused, so a campaign that still exists was not deleted: the
      // notification is forged or corrupt. Recording its tombstone -- at whatever version it
      // claims -- would hide every real version that follows.
      return InvalidArgumentError(fmt::format(
          "notify message says campaign {} was deleted (version {}), but the campaign database "
          "has it at version {}",
          event.campaign_id, event.version, row->version));
    }
    // The last content rides along with a delete: record the tombstone from it.
    ASSIGN_OR_RETURN(r, BuildLogRecord(event));
  } else {
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
  bool resolved_notify = false;
  for (const ChangeEvent& e : events) {
    ++stats.events;
    if (e.capture == CaptureMode::kLog) {
      if (e.content_omitted && e.row) {
        ChangeEvent resolved = e;
        RETURN_IF_ERROR(e.image_omitted ? ResolveImage(resolved) : ResolveContent(resolved));
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
    resolved_notify = true;
  }
  // What notify events recorded was read from the campaign database: it must survive a power
  // loss there before the history holds it, or the version numbers could come back with other
  // content.
  if (resolved_notify) RETURN_IF_ERROR(FromCampaigns(options_.campaigns->SyncCommitted()));
  if (!records.empty()) {
    ASSIGN_OR_RETURN(stats.stored, FromHistory(options_.history->Append(records)));
  }
  return stats;
}

}  // namespace ch
