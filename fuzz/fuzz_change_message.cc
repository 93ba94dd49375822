// libFuzzer target: one message of the change topic (docs/formats/change-message.md) -- a change
// message, a change batch or a capture heartbeat -- decoded by DecodeChangeTopicMessage. What it
// accepts must encode back to a message that decodes to the same events.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "capture/change_event.h"
#include "fuzz/fuzz_check.h"

using ch::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ch::Result<ch::ChangeTopicMessage> m = ch::DecodeChangeTopicMessage(text);
  ch::fuzz::CheckErrorIsBounded(m.status());
  // The two entry points agree on what is a change.
  ch::Result<std::vector<ch::ChangeEvent>> events = ch::DecodeChangeMessages(text);
  ch::fuzz::CheckErrorIsBounded(events.status());
  Check(events.ok() == (m.ok() && !m->heartbeat), "DecodeChangeMessages disagrees");
  if (!m.ok()) return 0;
  if (m->heartbeat) {
    ch::Result<ch::ChangeTopicMessage> again =
        ch::DecodeChangeTopicMessage(ch::EncodeCaptureHeartbeat(*m->heartbeat));
    Check(again.ok() && again->heartbeat && again->heartbeat->seq == m->heartbeat->seq &&
              again->heartbeat->at == m->heartbeat->at,
          "a heartbeat does not round-trip");
    return 0;
  }
  Check(!m->events.empty(), "a change message without events");
  for (const ch::ChangeEvent& e : m->events) {
    ch::Result<ch::ChangeEvent> again = ch::DecodeChangeMessage(ch::EncodeChangeMessage(e));
    Check(again.ok(), again.ok() ? "" : again.status().message());
    Check(*again == e, "a change message does not round-trip");
  }
  ch::Result<std::vector<ch::ChangeEvent>> batch =
      ch::DecodeChangeMessages(ch::EncodeChangeBatch(m->events));
  Check(batch.ok() && *batch == m->events, "a change batch does not round-trip");
  return 0;
}
