// libFuzzer target: the compact snapshot storage of history/snapshot_codec.h.
//   * any snapshot text splits against any columns and joins back byte for byte, and a split
//     recognizes its own body as unchanged;
//   * any target delta-encodes against any base and applies back;
//   * a body, extras or delta that the codec did not write (a corrupt store) is refused with
//     DataLoss, never a crash.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/time_util.h"
#include "fuzz/fuzz_check.h"
#include "history/snapshot_codec.h"

using ch::fuzz::Check;

namespace {

// Event times as the system has them: what ParseTimestamp accepts (time_util.h).
constexpr int64_t kMinMicros = ch::kEarliestTimestamp.time_since_epoch().count();
constexpr int64_t kMaxMicros = ch::kLatestTimestamp.time_since_epoch().count();

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int mode = in.ConsumeIntegralInRange(0, 2);
  ch::SnapshotColumns columns;
  columns.priority = in.ConsumeIntegral<int64_t>();
  columns.version = in.ConsumeIntegral<int64_t>();
  columns.event_time =
      ch::Timestamp(ch::Micros(in.ConsumeIntegralInRange<int64_t>(kMinMicros, kMaxMicros)));
  std::string actor = in.ConsumeRandomLengthString(200);
  columns.actor = actor;
  std::string a = in.ConsumeRandomLengthString(4096);
  std::string b = in.ConsumeRemainingBytesAsString();
  if (mode == 0) {
    ch::SplitSnapshot split = ch::SplitSnapshotText(b, columns);
    ch::Result<std::string> joined = ch::JoinSnapshotText(split.body, split.extras, columns);
    Check(joined.ok(), joined.ok() ? "" : joined.status().message());
    Check(*joined == b, "a snapshot does not round-trip through split and join");
    ch::SplitSnapshot again;
    Check(ch::SplitSnapshotUnlessSame(b, columns, split.body, &again),
          "a split does not recognize its own body");
    Check(again.extras == split.extras, "the extras of the same split differ");
  } else if (mode == 1) {
    std::string delta;
    ch::EncodeDelta(a, b, delta);
    ch::Result<std::string> applied = ch::ApplyDelta(a, delta);
    Check(applied.ok() && *applied == b, "a delta does not apply back to its target");
  } else {
    ch::Result<std::string> joined = ch::JoinSnapshotText(a, b, columns);
    Check(joined.ok() || joined.status().code() == ch::StatusCode::kDataLoss,
          "a corrupt body is not DataLoss");
    ch::Result<std::string> applied = ch::ApplyDelta(a, b);
    Check(applied.ok() || applied.status().code() == ch::StatusCode::kDataLoss,
          "a corrupt delta is not DataLoss");
  }
  return 0;
}
