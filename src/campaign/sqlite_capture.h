// The capture state of a SQLite campaign database, and the admin actions that change it
// (`campaign-history capture setup|drop|status` on SQLite; docs/formats/outbox.md, "Capture mode").
//
// Capture is a property of the database file, recorded in its `meta` table (campaign schema
// version 2):
//   capture_mode  "log" | "notify" | "none" (CaptureSetting). Log mode has the capture triggers
//                 installed; the other two have none. Every process that writes the file states
//                 the mode it is configured for (SqliteCampaignStoreOptions::capture) and fails
//                 to open the file when the two disagree: nothing but SetSqliteCapture (an
//                 explicit admin action) changes the mode of an existing file.
//   outbox_rows   "compact" | "full" (OutboxRows): whether an update that leaves the content alone
//                 stores '' in the outbox (compact, for the embedded publisher, which resolves it
//                 from the history) or the content again (full: every row is self-contained, as a
//                 relay to a bus needs). Chosen when the file is created, changed only by
//                 SetSqliteCapture, never by a process's --bus.
// Rows are self-describing either way: content '' (never a valid content) means "the previous
// version's".
//
// Thread-safety: pure functions over a file; several processes may call them (they take the
// database's write lock).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "campaign/capture_setting.h"
#include "common/status.h"

namespace ch {

// The outbox row format of a log-capturing SQLite database. Persisted as "compact" and "full"
// (meta key "outbox_rows"). DO NOT CHANGE the names.
enum class OutboxRows { kCompact, kFull };
std::string_view OutboxRowsName(OutboxRows rows);
// Fails with InvalidArgument naming the value and the allowed ones.
Result<OutboxRows> ParseOutboxRows(std::string_view text);

// What a SQLite campaign database says about its capture.
struct SqliteCaptureState {
  // Campaign schema version of the file (1: written before the mode was recorded).
  int schema_version = 0;
  // The recorded mode. For a schema-1 file (recorded = false): log when the triggers are
  // installed, none otherwise (notify and none cannot be told apart there).
  CaptureSetting mode = CaptureSetting::kLog;
  bool recorded = false;
  // The outbox row format (recorded, or for a schema-1 file the one the triggers write).
  OutboxRows rows = OutboxRows::kCompact;
  // Whether the capture triggers are installed.
  bool triggers = false;
  // Outbox rows not yet confirmed downstream, and how many of them omit their content.
  int64_t backlog = 0;
  int64_t omitted_content = 0;
  // The relay's confirmed position (outbox seq).
  int64_t confirmed_seq = 0;
};

// Return the capture state of the database at `path`, read-only. Fails with NotFound when there
// is no campaign database there, FailedPrecondition when its schema is newer than this code.
Result<SqliteCaptureState> ReadSqliteCaptureState(const std::string& path);

// Where the content of a campaign version that the outbox no longer holds can be read (the
// history, into which the embedded publisher drained it): return the content (canonical JSON
// object text) of campaign `id` at `version`, or nullopt when it is not known there.
using PreviousContentFn =
    std::function<Result<std::optional<std::string>>(int64_t id, int64_t version)>;

struct SqliteCaptureChange {
  // The mode to record. Default: log.
  CaptureSetting mode = CaptureSetting::kLog;
  // Log mode: the outbox row format; nullopt keeps the recorded one (compact when none is).
  // Default: nullopt.
  std::optional<OutboxRows> rows;
  // Compact -> full: fills in the omitted contents whose previous version is no longer in the
  // outbox. May be empty (then such a row fails the change). Default: empty.
  PreviousContentFn previous_content;
  // How long to wait for the database's write lock. Default: 10000 ms.
  int busy_timeout_ms = 10000;
};

// Set the capture of the database at `path` (created when missing) to `change`, in one write
// transaction, and return the new state:
//   to log from notify/none: install the triggers; the campaigns that exist now are listed in
//     capture_baseline (their next captured update carries the content: the previous version
//     was never captured). Versions written while capture was off are not in the history.
//   to notify/none from log: drop the triggers; the outbox keeps its rows for draining.
//   compact -> full rows: every omitted content still in the outbox is filled in (from the
//     outbox itself, else from `previous_content`), so that a relay to a bus can read every row.
//   the same mode: re-create the triggers in the current format (idempotent).
// Fails with FailedPrecondition when an omitted content cannot be resolved (naming the campaign
// and version; nothing changes), or when the file's schema is newer than this code; Unavailable
// when the lock is not free in time.
Result<SqliteCaptureState> SetSqliteCapture(const std::string& path,
                                            const SqliteCaptureChange& change);

}  // namespace ch
