#include "campaign/sqlite_capture.h"

#include <fmt/format.h>

#include <filesystem>
#include <unordered_map>
#include <utility>
#include <vector>

#include "campaign/sqlite_capture_internal.h"
#include "campaign/sqlite_schema_internal.h"

namespace ch {

using sqlite_schema::StmtReset;

std::string_view OutboxRowsName(OutboxRows rows) {
  return rows == OutboxRows::kFull ? "full" : "compact";
}

Result<OutboxRows> ParseOutboxRows(std::string_view text) {
  if (text == "compact") return OutboxRows::kCompact;
  if (text == "full") return OutboxRows::kFull;
  return InvalidArgumentError(
      fmt::format("unknown outbox row format '{}' (expected compact or full)", text));
}

namespace sqlite_capture {
namespace {

Result<std::optional<std::string>> QueryText(SqliteDb& db, const std::string& sql) {
  ASSIGN_OR_RETURN(SqliteStmt * st, db.Prepare(sql));
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row || st->ColumnIsNull(0)) return std::optional<std::string>();
  return std::optional<std::string>(st->ColumnString(0));
}

Result<int64_t> QueryCount(SqliteDb& db, const std::string& sql) {
  ASSIGN_OR_RETURN(std::optional<std::string> v, QueryText(db, sql));
  return v ? std::stoll(*v) : int64_t{0};
}

Result<std::optional<std::string>> MetaValue(SqliteDb& db, std::string_view key) {
  ASSIGN_OR_RETURN(SqliteStmt * st, db.Prepare("SELECT value FROM meta WHERE key = ?1"));
  StmtReset reset(st);
  st->Bind(1, key);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st->ColumnString(0));
}

Status SetMeta(SqliteDb& db, std::string_view key, std::string_view value) {
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"));
  st->Bind(1, key).Bind(2, value);
  return st->Run();
}

Result<int> SchemaVersion(SqliteDb& db) {
  ASSIGN_OR_RETURN(std::optional<std::string> v, MetaValue(db, "schema_version"));
  return v ? std::atoi(v->c_str()) : 0;
}

Status Record(SqliteDb& db, CaptureSetting mode, OutboxRows rows) {
  RETURN_IF_ERROR(SetMeta(db, kModeKey, CaptureSettingName(mode)));
  RETURN_IF_ERROR(SetMeta(db, kRowsKey, OutboxRowsName(rows)));
  return SetMeta(db, "schema_version", std::to_string(sqlite_schema::kSchemaVersion));
}

Status ReplaceOnce(std::string& text, std::string_view what, std::string_view with) {
  size_t at = text.find(what);
  if (at == std::string::npos) return InternalError("outbox trigger template changed");
  text.replace(at, what.size(), with);
  return Status::OK();
}

// Give txn_context the shift_seq column (outbox format 3) when it lacks it.
Status AddShiftSeq(SqliteDb& db) {
  ASSIGN_OR_RETURN(int64_t has, QueryCount(db,
                                           "SELECT count(*) FROM pragma_table_info('txn_context') "
                                           "WHERE name = 'shift_seq'"));
  if (has > 0) return Status::OK();
  return db.Exec(sqlite_schema::kAddShiftSeq);
}

// Install (or re-create in the current format) the outbox and the capture triggers.
Status InstallTriggers(SqliteDb& db, const Recorded& before, OutboxRows rows) {
  RETURN_IF_ERROR(db.Exec(sqlite_schema::kDropCaptureTriggers));
  RETURN_IF_ERROR(AddShiftSeq(db));
  std::string create = sqlite_schema::kCreateOutbox;
  const bool full = rows == OutboxRows::kFull;
  RETURN_IF_ERROR(ReplaceOnce(create, sqlite_schema::kShiftSkipPlaceholder,
                              full ? "" : sqlite_schema::kShiftSkip));
  if (full) {
    RETURN_IF_ERROR(
        ReplaceOnce(create, sqlite_schema::kCompactContent, sqlite_schema::kFullContent));
  }
  RETURN_IF_ERROR(db.Exec(create));
  // Format 2 -> 3 keeps the chain of captured versions intact; only a start (or a restart after
  // a gap, or a version-1 file) lists the existing campaigns.
  if (!before.triggers || before.outbox_version < 2) {
    // Capture starts now (or restarts after a gap): the previous versions of the existing
    // campaigns are not in the outbox chain, so their next captured update carries the content.
    RETURN_IF_ERROR(
        db.Exec("INSERT OR IGNORE INTO capture_baseline (id) SELECT id FROM campaigns"));
  }
  return Status::OK();
}

// Fill in every omitted content in the outbox (compact rows), so that every row is
// self-contained. A row's content is its campaign's previous row's, found earlier in the outbox
// (seq order is commit order) or, when that row was confirmed and deleted, by `previous`.
// Confirmed rows (the newest one is kept) are filled in when possible and otherwise left alone:
// nobody reads them again.
Status FillOmittedContent(SqliteDb& db, const PreviousContentFn& previous) {
  ASSIGN_OR_RETURN(int64_t confirmed,
                   QueryCount(db, "SELECT confirmed_seq FROM outbox_state WHERE id = 1"));
  ASSIGN_OR_RETURN(SqliteStmt * scan,
                   db.Prepare("SELECT seq, campaign_id, version, content, op, customer_id FROM "
                              "outbox ORDER BY seq"));
  std::unordered_map<int64_t, std::string> latest;
  // (seq, content) to write once the scan is done (SQLite does not define what a scan sees of
  // rows updated under it).
  std::vector<std::pair<int64_t, std::string>> fills;
  {
    StmtReset reset(scan);
    while (true) {
      ASSIGN_OR_RETURN(bool row, scan->Step());
      if (!row) break;
      const int64_t seq = scan->ColumnInt64(0), id = scan->ColumnInt64(1);
      const int64_t version = scan->ColumnInt64(2);
      std::string content = scan->ColumnString(3);
      if (scan->ColumnText(4) == sqlite_schema::kShiftedOp) {
        if (seq <= confirmed) continue;  // nobody reads it again
        // Its images are the previous versions' with the shift applied: only the history (or
        // the embedded publisher) can expand it.
        return FailedPreconditionError(fmt::format(
            "outbox row {} is a priority shift of customer {} (outbox format 3), which only the "
            "embedded publisher expands: drain the outbox into the history first (any query "
            "command on the embedded setup does), then try again",
            seq, scan->ColumnInt64(5)));
      }
      if (!content.empty()) {
        latest[id] = std::move(content);
        continue;
      }
      auto it = latest.find(id);
      if (it != latest.end()) {
        content = it->second;
      } else if (previous) {
        ASSIGN_OR_RETURN(std::optional<std::string> p, previous(id, version - 1));
        if (p) content = std::move(*p);
      }
      if (content.empty() && seq > confirmed) {
        return FailedPreconditionError(fmt::format(
            "outbox row {} (campaign {} version {}) omits its content, and version {} is "
            "neither in the outbox nor in the history: drain the outbox into the history first "
            "(any query command on the embedded setup does), then try again",
            seq, id, version, version - 1));
      }
      if (content.empty()) continue;  // confirmed and unresolvable: nobody reads it again
      latest[id] = content;
      fills.emplace_back(seq, std::move(content));
    }
  }
  ASSIGN_OR_RETURN(SqliteStmt * fill, db.Prepare("UPDATE outbox SET content = ?2 WHERE seq = ?1"));
  for (const auto& [seq, content] : fills) {
    fill->Bind(1, seq).Bind(2, content);
    RETURN_IF_ERROR(fill->Run());
  }
  return Status::OK();
}

Result<SqliteCaptureState> ReadState(SqliteDb& db) {
  SqliteCaptureState s;
  ASSIGN_OR_RETURN(s.schema_version, SchemaVersion(db));
  ASSIGN_OR_RETURN(Recorded r, ReadRecorded(db));
  s.recorded = r.mode.has_value();
  s.mode = r.mode.value_or(r.triggers ? CaptureSetting::kLog : CaptureSetting::kNone);
  s.rows =
      r.rows.value_or(r.triggers && !r.compact_triggers ? OutboxRows::kFull : OutboxRows::kCompact);
  s.triggers = r.triggers;
  if (r.has_outbox) {
    ASSIGN_OR_RETURN(s.confirmed_seq,
                     QueryCount(db, "SELECT confirmed_seq FROM outbox_state WHERE id = 1"));
    ASSIGN_OR_RETURN(SqliteStmt * st,
                     db.Prepare("SELECT count(*), coalesce(sum(content = ''), 0) FROM outbox "
                                "WHERE seq > ?1"));
    StmtReset reset(st);
    st->Bind(1, s.confirmed_seq);
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (row) {
      s.backlog = st->ColumnInt64(0);
      s.omitted_content = st->ColumnInt64(1);
    }
  }
  return s;
}

Status CheckSchemaVersion(SqliteDb& db) {
  ASSIGN_OR_RETURN(int version, SchemaVersion(db));
  if (version > sqlite_schema::kSchemaVersion) {
    return FailedPreconditionError(fmt::format(
        "'{}' has campaign schema version {}, newer than the supported {}: upgrade the binary",
        db.path(), version, sqlite_schema::kSchemaVersion));
  }
  return Status::OK();
}

std::string Quoted(const std::string& s) {
  if (s.find_first_of(" '\"\\$`") == std::string::npos) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

Result<Recorded> ReadRecorded(SqliteDb& db) {
  Recorded r;
  ASSIGN_OR_RETURN(std::optional<std::string> mode, MetaValue(db, kModeKey));
  if (mode) {
    Result<CaptureSetting> m = ParseCaptureSetting(*mode);
    if (!m.ok())
      return DataLossError(
          fmt::format("'{}': meta {}: {}", db.path(), kModeKey, m.status().message()));
    r.mode = *m;
  }
  ASSIGN_OR_RETURN(std::optional<std::string> rows, MetaValue(db, kRowsKey));
  if (rows) {
    Result<OutboxRows> o = ParseOutboxRows(*rows);
    if (!o.ok())
      return DataLossError(
          fmt::format("'{}': meta {}: {}", db.path(), kRowsKey, o.status().message()));
    r.rows = *o;
  }
  ASSIGN_OR_RETURN(int64_t triggers,
                   QueryCount(db,
                              "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND "
                              "name LIKE 'campaigns_capture_%'"));
  r.triggers = triggers > 0;
  ASSIGN_OR_RETURN(std::optional<std::string> update_sql,
                   QueryText(db,
                             "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND "
                             "name = 'campaigns_capture_update'"));
  r.compact_triggers = update_sql && update_sql->find("THEN ''") != std::string::npos;
  ASSIGN_OR_RETURN(int64_t outbox, QueryCount(db,
                                              "SELECT count(*) FROM sqlite_master WHERE type = "
                                              "'table' AND name = 'outbox'"));
  r.has_outbox = outbox > 0;
  ASSIGN_OR_RETURN(std::optional<std::string> version, MetaValue(db, "outbox_version"));
  r.outbox_version = version ? std::atoi(version->c_str()) : 0;
  return r;
}

std::string CaptureCommand(const std::string& path, CaptureSetting mode) {
  std::string db = Quoted("sqlite:" + path);
  if (mode == CaptureSetting::kNone) {
    return fmt::format("campaign-history --campaign-db {} capture drop", db);
  }
  return fmt::format("campaign-history --campaign-db {} --capture {} capture setup", db,
                     CaptureSettingName(mode));
}

Status CheckOnOpen(SqliteDb& db, const OpenCheck& check) {
  ASSIGN_OR_RETURN(Recorded r, ReadRecorded(db));
  CaptureSetting mode;
  OutboxRows rows;
  if (check.fresh) {
    mode = check.configured;
    rows = check.rows_if_new;
  } else if (!r.mode) {
    // Schema 1 recorded nothing: installed triggers mean log; without them the file was written
    // in notify or none mode, which cannot be told apart: take the opener's word unless it says
    // log (then it was none, and turning capture on is the admin's decision).
    mode = r.triggers                                 ? CaptureSetting::kLog
           : check.configured == CaptureSetting::kLog ? CaptureSetting::kNone
                                                      : check.configured;
    rows = r.triggers ? (r.compact_triggers ? OutboxRows::kCompact : OutboxRows::kFull)
                      : check.rows_if_new;
  } else {
    mode = *r.mode;
    rows = r.rows.value_or(check.rows_if_new);
  }
  if (mode != check.configured) {
    return FailedPreconditionError(fmt::format(
        "campaign database '{}' captures in mode '{}', but this process is configured for "
        "'{}' (--capture, or 'capture =' in a config file). Run it with --capture {}, or change "
        "the database's mode first: {}",
        db.path(), CaptureSettingName(mode), CaptureSettingName(check.configured),
        CaptureSettingName(mode), CaptureCommand(db.path(), check.configured)));
  }
  if (mode == CaptureSetting::kLog) {
    RETURN_IF_ERROR(InstallTriggers(db, r, rows));
  } else if (r.triggers) {
    RETURN_IF_ERROR(db.Exec(sqlite_schema::kDropCaptureTriggers));
  }
  if (r.mode != mode || r.rows != rows) RETURN_IF_ERROR(Record(db, mode, rows));
  return Status::OK();
}

}  // namespace sqlite_capture

Result<SqliteCaptureState> ReadSqliteCaptureState(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return NotFoundError(fmt::format("no campaign database at '{}'", path));
  }
  SqliteOptions o;
  o.read_only = true;
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path, o));
  ASSIGN_OR_RETURN(int64_t tables,
                   sqlite_capture::QueryCount(*db,
                                              "SELECT count(*) FROM sqlite_master WHERE type = "
                                              "'table' AND name IN ('meta', 'campaigns')"));
  if (tables < 2) return NotFoundError(fmt::format("'{}' is not a campaign database", path));
  RETURN_IF_ERROR(sqlite_capture::CheckSchemaVersion(*db));
  return sqlite_capture::ReadState(*db);
}

Result<SqliteCaptureState> SetSqliteCapture(const std::string& path,
                                            const SqliteCaptureChange& change) {
  using namespace sqlite_capture;
  SqliteOptions o;
  o.busy_timeout_ms = change.busy_timeout_ms;
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(path, o));
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*db, /*immediate=*/true));
  RETURN_IF_ERROR(db->Exec(sqlite_schema::kCreateTables));
  RETURN_IF_ERROR(CheckSchemaVersion(*db));
  ASSIGN_OR_RETURN(Recorded r, ReadRecorded(*db));
  OutboxRows rows = change.rows.value_or(r.rows.value_or(
      r.triggers && !r.compact_triggers ? OutboxRows::kFull : OutboxRows::kCompact));
  if (change.mode == CaptureSetting::kLog) {
    if (rows == OutboxRows::kFull && r.has_outbox) {
      RETURN_IF_ERROR(FillOmittedContent(*db, change.previous_content));
    }
    RETURN_IF_ERROR(InstallTriggers(*db, r, rows));
  } else {
    RETURN_IF_ERROR(db->Exec(sqlite_schema::kDropCaptureTriggers));
  }
  RETURN_IF_ERROR(Record(*db, change.mode, rows));
  ASSIGN_OR_RETURN(SqliteCaptureState state, ReadState(*db));
  RETURN_IF_ERROR(tx->Commit());
  return state;
}

}  // namespace ch
