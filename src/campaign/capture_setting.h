// CaptureSetting: how a campaign database is captured -- a property of the database, which every
// process that writes it must be configured for (docs/operations.md, "Capture mode").
//
//   log     every committed row image, in the same transaction (the SQLite outbox, the
//           PostgreSQL WAL); lossless. The default.
//   notify  the reference design: each writer publishes campaign ids after commit; a publisher
//           re-reads the rows (may collapse versions).
//   none    nothing is captured.
//
// The names are persisted (SQLite campaign database: meta key "capture_mode") and are the values
// of --capture. DO NOT CHANGE them.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <string_view>

#include "common/status.h"

namespace ch {

enum class CaptureSetting { kLog, kNotify, kNone };

// Return the persisted name: "log", "notify" or "none".
std::string_view CaptureSettingName(CaptureSetting c);
// Parse a persisted name. Fails with InvalidArgument naming the value and the allowed ones.
Result<CaptureSetting> ParseCaptureSetting(std::string_view text);

}  // namespace ch
