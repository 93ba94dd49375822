// Publisher ("campaign-big-query-publish"): turns captured changes into history records and
// writes them durably to a HistoryStore.
//
//   log events carry the full row image: the record is built from it directly.
//   notify events carry only {campaign_id, customer_id, op, version} (the row only on delete):
//   the publisher fetches the campaign's current row from the CampaignStore, records it if it is
//   newer than what the history holds, and counts the versions in between that were never
//   captured in `missed_versions`. A fetched version already recorded is dropped. Before it
//   appends what it fetched, it makes the campaign database's commits durable
//   (CampaignStore::SyncCommitted), so the history never holds a version a power loss there
//   could take back. The version a notification names is never recorded: the database's is (a
//   delete notification for a campaign the database still has is rejected as inconsistent).
//
// Delivery semantics: callers deliver at least once; Process is idempotent on
// (campaign_id, version) because the history store is. Process returns OK only once every record
// it produced is durable, so the caller may then acknowledge upstream (confirm the source
// position, ack the bus messages).
//
// Thread-safety: a Publisher may be used from one thread at a time.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "campaign/campaign_store.h"
#include "capture/change_event.h"
#include "common/status.h"
#include "history/history_record.h"
#include "history/history_store.h"

namespace ch {

struct PublisherOptions {
  // Images remembered per campaign to resolve events whose content (or, for a priority shift,
  // whole image) was omitted because it did not change (the compact outbox). Default: 50,000
  // campaigns (bounded memory: ~1 KiB each).
  size_t content_cache_campaigns = 50000;
  // REQUIRES: not null; must outlive the publisher.
  HistoryStore* history = nullptr;
  // Where notify events fetch the current row. Not owned; may be null when only log events are
  // processed (a notify event then fails with FailedPrecondition).
  CampaignStore* campaigns = nullptr;
};

struct PublishStats {
  // Events processed.
  int64_t events = 0;
  // Records newly stored (duplicates of stored versions are not counted).
  int64_t stored = 0;
  // Notify events dropped because the fetched version was already recorded (or the campaign was
  // deleted since; its delete event records the tombstone).
  int64_t dropped = 0;
  // Sum of missed_versions of the stored notify records.
  int64_t missed_versions = 0;

  PublishStats& operator+=(const PublishStats& o) {
    events += o.events;
    stored += o.stored;
    dropped += o.dropped;
    missed_versions += o.missed_versions;
    return *this;
  }
};

// Return the history record of a log event. Fails with InvalidArgument when the event has no row
// image or the row does not match the event's ids. REQUIRES: !event.content_omitted.
Result<HistoryRecord> BuildLogRecord(const ChangeEvent& event);

class Publisher {
 public:
  explicit Publisher(const PublisherOptions& options);
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // Build the records of `events` (in order) and append them durably in one call. Fails without
  // acknowledging anything: InvalidArgument for a malformed or inconsistent event (the caller
  // dead-letters it); a failure of the history store or the campaign database is attributed to
  // it (DependencyFailure: "history store: ...", never kUncertain), so the caller holds the
  // events and retries.
  Result<PublishStats> Process(std::span<const ChangeEvent> events);

  // Pass a capture heartbeat on to the history (HistoryStore::RecordHeartbeat).
  Status RecordHeartbeat(const CaptureHeartbeat& h) { return options_.history->RecordHeartbeat(h); }

 private:
  // Resolve one notify event against the campaign store and the history (plus records of this
  // batch not yet appended, in `pending`). Return nullopt when it is dropped.
  Result<std::optional<HistoryRecord>> ResolveNotify(const ChangeEvent& event,
                                                     const std::vector<HistoryRecord>& pending);

  // Fill in the content of an event whose content did not change: from the campaign's previous
  // version (this batch, the cache, or the history store). Fails with DataLoss when the previous
  // version is nowhere (it must be: the outbox is drained in commit order).
  Status ResolveContent(ChangeEvent& event);
  // Fill in the image of a priority shift's version (event.image_omitted): the previous
  // version's (the cache or the history store) with the shift applied. Fails with DataLoss when
  // the previous version is nowhere or is not the campaign's.
  Status ResolveImage(ChangeEvent& event);
  // The image of campaign `id` at `version`: from the cache, else from the history store;
  // nullopt when the history has no such version.
  Result<std::optional<Campaign>> PreviousImage(int64_t id, int64_t version);
  void Remember(const Campaign& row);

  PublisherOptions options_;
  // campaign id -> the newest full image seen. Bounded by options_.content_cache_campaigns
  // (cleared when full: a miss only costs a history lookup).
  std::unordered_map<int64_t, Campaign> images_;
};

}  // namespace ch
