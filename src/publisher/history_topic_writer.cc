#include "publisher/history_topic_writer.h"

#include <fmt/format.h>

namespace ch {

Result<int64_t> HistoryTopicWriter::Append(std::span<const HistoryRecord> records) {
  std::vector<BusMessage> messages;
  messages.reserve(records.size());
  for (const HistoryRecord& r : records) {
    BusMessage m;
    m.data = HistoryRecordToJson(r);
    m.ordering_key = std::to_string(r.campaign_id);
    m.attributes = {{"schema_version", std::to_string(kHistoryRecordSchemaVersion)},
                    {"campaign_id", std::to_string(r.campaign_id)},
                    {"version", std::to_string(r.version)}};
    messages.push_back(std::move(m));
  }
  RETURN_IF_ERROR(bus_.Publish(topic_, messages));
  return static_cast<int64_t>(records.size());
}

Status HistoryTopicWriter::RecordHeartbeat(const CaptureHeartbeat& h) {
  BusMessage m;
  m.data = CaptureHeartbeatToJson(h);
  m.ordering_key = "heartbeat";
  m.attributes = {{"schema_version", std::to_string(kHistoryRecordSchemaVersion)},
                  {"heartbeat", "1"}};
  return bus_.Publish(topic_, std::span<const BusMessage>(&m, 1));
}

Result<Completeness> HistoryTopicWriter::GetCompleteness() {
  if (!reader_) return NoReader();
  return reader_->GetCompleteness();
}

Result<int64_t> HistoryTopicWriter::PurgeCustomer(int64_t c, Timestamp t, std::string_view a) {
  if (!reader_) return NoReader();
  return reader_->PurgeCustomer(c, t, a);
}
Result<int64_t> HistoryTopicWriter::EraseCustomer(int64_t c, std::string_view a) {
  if (!reader_) return NoReader();
  return reader_->EraseCustomer(c, a);
}
Result<std::optional<Timestamp>> HistoryTopicWriter::PurgedBefore(int64_t c) {
  if (!reader_) return NoReader();
  return reader_->PurgedBefore(c);
}
Result<bool> HistoryTopicWriter::Erased(int64_t c) {
  if (!reader_) return NoReader();
  return reader_->Erased(c);
}
Result<std::vector<AuditEntry>> HistoryTopicWriter::AuditLog(int64_t limit) {
  if (!reader_) return NoReader();
  return reader_->AuditLog(limit);
}

Status HistoryTopicWriter::NoReader() const {
  return FailedPreconditionError(fmt::format(
      "the publisher writes to the '{}' topic and has no history store to read from (notify "
      "capture needs one: pass --history with the store the sink fills)",
      topic_));
}

Result<std::vector<HistoryRecord>> HistoryTopicWriter::AsOf(int64_t c, Timestamp t) {
  if (!reader_) return NoReader();
  return reader_->AsOf(c, t);
}
Result<std::vector<HistoryRecord>> HistoryTopicWriter::CampaignLog(int64_t c, const TimeRange& r) {
  if (!reader_) return NoReader();
  return reader_->CampaignLog(c, r);
}
Result<std::optional<HistoryRecord>> HistoryTopicWriter::GetVersion(int64_t c, int64_t v) {
  if (!reader_) return NoReader();
  return reader_->GetVersion(c, v);
}
Result<std::optional<HistoryRecord>> HistoryTopicWriter::LatestAt(int64_t c, Timestamp t) {
  if (!reader_) return NoReader();
  return reader_->LatestAt(c, t);
}
Result<std::optional<int64_t>> HistoryTopicWriter::LatestVersion(int64_t c) {
  if (!reader_) return NoReader();
  return reader_->LatestVersion(c);
}
Result<int64_t> HistoryTopicWriter::CountVersions(int64_t c, int64_t from, int64_t to) {
  if (!reader_) return NoReader();
  return reader_->CountVersions(c, from, to);
}
Result<std::vector<HistoryRecord>> HistoryTopicWriter::CustomerChanges(int64_t c,
                                                                       const TimeRange& r,
                                                                       int64_t limit) {
  if (!reader_) return NoReader();
  return reader_->CustomerChanges(c, r, limit);
}
Result<std::vector<HistoryRecord>> HistoryTopicWriter::TransactionChanges(
    int64_t c, Timestamp at, std::string_view transaction_id, bool with_snapshots) {
  if (!reader_) return NoReader();
  return reader_->TransactionChanges(c, at, transaction_id, with_snapshots);
}
Result<std::vector<HistoryRecord>> HistoryTopicWriter::CustomerCampaigns(int64_t c) {
  if (!reader_) return NoReader();
  return reader_->CustomerCampaigns(c);
}
Result<std::vector<int64_t>> HistoryTopicWriter::ListCustomers() {
  if (!reader_) return NoReader();
  return reader_->ListCustomers();
}
Result<HistoryStats> HistoryTopicWriter::Stats() {
  if (!reader_) return NoReader();
  return reader_->Stats();
}

}  // namespace ch
