// libFuzzer target: one history record row or history-topic message
// (docs/formats/history-record.md), read by DecodeHistoryMessage / HistoryRecordFromJson. What it
// accepts must write back (HistoryRecordToJson) to a row that reads as the same record.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "history/history_record.h"

using ch::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ch::Result<ch::HistoryMessage> m = ch::DecodeHistoryMessage(text);
  ch::fuzz::CheckErrorIsBounded(m.status());
  ch::Result<ch::HistoryRecord> r = ch::HistoryRecordFromJson(text);
  ch::fuzz::CheckErrorIsBounded(r.status());
  if (r.ok()) Check(m.ok() && m->record && *m->record == *r, "the two readers disagree");
  if (!m.ok()) return 0;
  if (m->heartbeat) {
    ch::Result<ch::HistoryMessage> again =
        ch::DecodeHistoryMessage(ch::CaptureHeartbeatToJson(*m->heartbeat));
    Check(again.ok() && again->heartbeat && again->heartbeat->seq == m->heartbeat->seq &&
              again->heartbeat->at == m->heartbeat->at,
          "a heartbeat row does not round-trip");
    return 0;
  }
  Check(m->record.has_value(), "a message that is neither record nor heartbeat");
  ch::Result<ch::HistoryRecord> again =
      ch::HistoryRecordFromJson(ch::HistoryRecordToJson(*m->record));
  Check(again.ok(), again.ok() ? "" : again.status().message());
  Check(*again == *m->record, "a history record does not round-trip");
  return 0;
}
