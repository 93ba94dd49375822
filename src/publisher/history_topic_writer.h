// HistoryTopicWriter: the publisher's output when history records go to the `campaign-history`
// topic (what a Pub/Sub BigQuery subscription loads, or the sink role) instead of a store.
//
// It is a HistoryStore whose Append publishes each record as its BigQuery JSON row
// (docs/formats/history-record.md), ordering key = campaign id; Append returns OK once the bus
// holds them durably and reports every record as stored (duplicates are removed downstream:
// the sink's store is idempotent; in BigQuery, queries deduplicate on (campaign_id, version)).
// Reads go to an optional reader store (notify capture needs LatestVersion); without one they
// fail with FailedPrecondition.
//
// Thread-safety: as the bus and the reader.
#pragma once

#include <string>

#include "bus/change_bus.h"
#include "history/history_store.h"

namespace ch {

class HistoryTopicWriter final : public HistoryStore {
 public:
  // REQUIRES: `bus` outlives the writer. `reader` is not owned and may be null.
  HistoryTopicWriter(ChangeBus& bus, std::string topic, HistoryStore* reader)
      : bus_(bus), topic_(std::move(topic)), reader_(reader) {}

  Result<int64_t> Append(std::span<const HistoryRecord> records) override;
  // Publish the heartbeat on the topic (history_record.h, CaptureHeartbeatToJson), for the sink.
  Status RecordHeartbeat(const CaptureHeartbeat& h) override;
  Result<Completeness> GetCompleteness() override;
  // Retention and erasure go to the reader store (the one the sink fills); without one they fail
  // with FailedPrecondition.
  Result<int64_t> PurgeCustomer(int64_t customer_id, Timestamp before,
                                std::string_view actor) override;
  Result<int64_t> EraseCustomer(int64_t customer_id, std::string_view actor) override;
  Result<std::optional<Timestamp>> PurgedBefore(int64_t customer_id) override;
  Result<bool> Erased(int64_t customer_id) override;
  Result<std::vector<AuditEntry>> AuditLog(int64_t limit) override;
  Result<std::vector<HistoryRecord>> AsOf(int64_t customer_id, Timestamp at) override;
  Result<std::vector<HistoryRecord>> CampaignLog(int64_t campaign_id,
                                                 const TimeRange& range) override;
  Result<std::optional<HistoryRecord>> GetVersion(int64_t campaign_id, int64_t version) override;
  Result<std::optional<HistoryRecord>> LatestAt(int64_t campaign_id, Timestamp at) override;
  Result<std::optional<int64_t>> LatestVersion(int64_t campaign_id) override;
  Result<int64_t> CountVersions(int64_t campaign_id, int64_t from, int64_t to) override;
  Result<std::vector<HistoryRecord>> CustomerChanges(int64_t customer_id, const TimeRange& range,
                                                     int64_t limit) override;
  Result<std::vector<HistoryRecord>> TransactionChanges(int64_t customer_id, Timestamp at,
                                                        std::string_view transaction_id,
                                                        bool with_snapshots) override;
  Result<std::vector<HistoryRecord>> CustomerCampaigns(int64_t customer_id) override;
  Result<std::vector<int64_t>> ListCustomers() override;
  Result<HistoryStats> Stats() override;

 private:
  Status NoReader() const;

  ChangeBus& bus_;
  const std::string topic_;
  HistoryStore* const reader_;  // not owned; may be null
};

}  // namespace ch
