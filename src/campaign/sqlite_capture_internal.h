// The steps behind SqliteCaptureState and SetSqliteCapture (sqlite_capture.h), shared with
// SqliteCampaignStore::Open, which checks (and, for a new or schema-1 file, records) the mode of
// the file it opens. Never include from outside src/campaign/.
//
// Every function here runs inside a write transaction the caller holds on `db`.
#pragma once

#include <optional>
#include <string>

#include "campaign/capture_setting.h"
#include "campaign/sqlite_capture.h"
#include "common/sqlite.h"
#include "common/status.h"

namespace ch::sqlite_capture {

// Meta keys. DO NOT CHANGE.
inline constexpr char kModeKey[] = "capture_mode";
inline constexpr char kRowsKey[] = "outbox_rows";

// What the file records and has installed.
struct Recorded {
  std::optional<CaptureSetting> mode;
  std::optional<OutboxRows> rows;
  // The capture triggers are installed; `compact_triggers`: their update trigger omits
  // unchanged content.
  bool triggers = false;
  bool compact_triggers = false;
  bool has_outbox = false;
  int outbox_version = 0;
};
Result<Recorded> ReadRecorded(SqliteDb& db);

// How SqliteCampaignStore::Open treats the mode of the file.
struct OpenCheck {
  // The mode the opening process is configured for.
  CaptureSetting configured = CaptureSetting::kLog;
  // The row format recorded for a file that has none yet.
  OutboxRows rows_if_new = OutboxRows::kCompact;
  // The file had no campaign tables before this open: it takes the configured mode.
  bool fresh = false;
};
// Record the mode of a new or schema-1 file, fail with FailedPrecondition (naming both modes
// and the command that changes the database's) when it differs from `check.configured`, and make
// the triggers match the recorded mode and row format.
Status CheckOnOpen(SqliteDb& db, const OpenCheck& check);

// Return the command that sets the database at `path` to `mode`.
std::string CaptureCommand(const std::string& path, CaptureSetting mode);

}  // namespace ch::sqlite_capture
