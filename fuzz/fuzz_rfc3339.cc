// libFuzzer target: the time parsers of common/time_util.h. An accepted time formats (always
// RFC 3339 UTC) to text that parses back to the same instant; durations parse without overflow.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/time_util.h"
#include "fuzz/fuzz_check.h"

using ch::fuzz::Check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ch::Result<ch::Timestamp> t = ch::ParseTimestamp(text);
  ch::fuzz::CheckErrorIsBounded(t.status());
  if (t.ok()) {
    std::string formatted = ch::FormatTimestamp(*t);
    ch::Result<ch::Timestamp> again = ch::ParseTimestamp(formatted);
    Check(again.ok() && *again == *t, "a parsed time does not round-trip: " + formatted);
    Check(!ch::FormatTimestampHuman(*t).empty(), "FormatTimestampHuman is empty");
  }
  ch::Result<ch::Micros> d = ch::ParseDuration(text);
  ch::fuzz::CheckErrorIsBounded(d.status());
  if (d.ok()) Check(d->count() >= 0, "a negative duration");
  return 0;
}
