#include "campaign/sqlite_outbox.h"

#include <fmt/format.h>

#include <charconv>
#include <string_view>

#include "campaign/sqlite_schema_internal.h"

namespace ch {

using sqlite_schema::StmtReset;

namespace {

constexpr char kSelectColumns[] =
    "SELECT seq, txn_id, commit_us, op, actor, version, " CH_OUTBOX_IMAGE_COLUMNS " FROM outbox ";

Status ShiftRowError(int64_t seq, int64_t customer_id, std::string_view what) {
  return DataLossError(
      fmt::format("outbox row {} (a priority shift of customer {}): {}", seq, customer_id, what));
}

Result<int64_t> ParseListNumber(std::string_view text, int64_t seq, int64_t customer_id) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0) {
    return ShiftRowError(seq, customer_id,
                         fmt::format("'{}' in its campaign list is not a positive number", text));
  }
  return v;
}

// Expand a shift row (format 3) into one change per shifted campaign, in list order: only the
// ids, the version, updated_at/by and the shift are known; the rest is the previous version's.
Status ReadShiftRow(const SqliteStmt& st, std::vector<CapturedChange>& out) {
  const int64_t seq = st.ColumnInt64(0);
  const int64_t count = st.ColumnInt64(5);
  const int64_t customer_id = st.ColumnInt64(7);
  const int64_t delta = st.ColumnInt64(10);
  const std::string_view list = st.ColumnText(16);
  if (count <= 0) {
    return ShiftRowError(seq, customer_id,
                         count == -1 ? "it was never closed (its writer did not finish)"
                                     : fmt::format("it says it shifted {} campaigns", count));
  }
  if (delta == 0) return ShiftRowError(seq, customer_id, "its shift is 0");
  CapturedChange base;
  base.seq = seq;
  base.transaction_id = std::to_string(st.ColumnInt64(1));
  base.commit_time = FromUnixMicros(st.ColumnInt64(2));
  base.op = ChangeOp::kUpdated;
  base.actor = st.ColumnString(4);
  base.image_omitted = true;
  base.priority_shift = delta;
  base.row.customer_id = customer_id;
  base.row.content.clear();  // omitted, as for an unchanged content
  base.row.updated_at = FromUnixMicros(st.ColumnInt64(19));
  base.row.updated_by = st.ColumnString(20);
  const size_t first = out.size();
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view entry = list.substr(at, comma - at);
    size_t colon = entry.find(':');
    if (colon == std::string_view::npos) {
      return ShiftRowError(seq, customer_id,
                           fmt::format("'{}' in its campaign list is not id:version", entry));
    }
    CapturedChange c = base;
    ASSIGN_OR_RETURN(c.row.id, ParseListNumber(entry.substr(0, colon), seq, customer_id));
    ASSIGN_OR_RETURN(c.version, ParseListNumber(entry.substr(colon + 1), seq, customer_id));
    if (c.version < 2) {
      return ShiftRowError(
          seq, customer_id,
          fmt::format("campaign {} cannot be shifted to version {}", c.row.id, c.version));
    }
    c.row.version = c.version;
    out.push_back(std::move(c));
    at = comma + 1;
  }
  if (static_cast<int64_t>(out.size() - first) != count) {
    return ShiftRowError(
        seq, customer_id,
        fmt::format("it says it shifted {} campaigns but lists {}", count, out.size() - first));
  }
  return Status::OK();
}

Result<CapturedChange> ReadRow(const SqliteStmt& st) {
  CapturedChange c;
  c.seq = st.ColumnInt64(0);
  c.transaction_id = std::to_string(st.ColumnInt64(1));
  c.commit_time = FromUnixMicros(st.ColumnInt64(2));
  auto op = ParseChangeOp(st.ColumnText(3));
  if (!op.ok())
    return DataLossError(fmt::format("outbox row {}: {}", c.seq, op.status().message()));
  c.op = *op;
  c.actor = st.ColumnString(4);
  c.version = st.ColumnInt64(5);
  ASSIGN_OR_RETURN(c.row, sqlite_schema::ReadCampaignColumns(st, 6));
  return c;
}

// Append the changes of the current row of `st` to `out`.
Status ReadRowInto(const SqliteStmt& st, std::vector<CapturedChange>& out) {
  if (st.ColumnText(3) == sqlite_schema::kShiftedOp) return ReadShiftRow(st, out);
  ASSIGN_OR_RETURN(CapturedChange c, ReadRow(st));
  out.push_back(std::move(c));
  return Status::OK();
}

}  // namespace

Status CheckOutbox(SqliteDb& db) {
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare("SELECT value FROM meta WHERE key = 'outbox_version'"));
  StmtReset reset(st);
  auto row = st->Step();
  if (!row.ok() || !*row) {
    return FailedPreconditionError(fmt::format(
        "'{}' has no outbox: open the campaign store with capture 'log' first", db.path()));
  }
  int64_t version = st->ColumnInt64(0);
  if (version > kOutboxFormatVersion) {
    return FailedPreconditionError(
        fmt::format("'{}' has outbox format {}, newer than the supported {}", db.path(), version,
                    kOutboxFormatVersion));
  }
  return Status::OK();
}

Result<std::vector<CapturedChange>> ReadOutbox(SqliteDb& db, int64_t after_seq, size_t max_rows) {
  std::vector<CapturedChange> out;
  if (max_rows == 0) max_rows = 1;
  // The first `max_rows` changes (a shift row counts as the changes it stands for), then on to
  // the end of the last transaction. Its rows are contiguous in seq (writers are serialized) and
  // were committed together, so they are all visible now. Stop at the first row of the next
  // transaction rather than filtering: the backlog behind it may be long.
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare(std::string(kSelectColumns) + "WHERE seq > ?1 ORDER BY seq"));
  st->Bind(1, after_seq);
  StmtReset reset(st);
  int64_t last_txn = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) break;
    const int64_t txn = st->ColumnInt64(1);
    if (out.size() >= max_rows && txn != last_txn) break;
    RETURN_IF_ERROR(ReadRowInto(*st, out));
    last_txn = txn;
  }
  return out;
}

Status UpgradeOutboxState(SqliteDb& db) {
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare("SELECT count(*) FROM pragma_table_info('outbox_state') "
                              "WHERE name = 'confirmed_txns'"));
  bool has = false;
  {
    StmtReset reset(st);
    ASSIGN_OR_RETURN(bool row, st->Step());
    has = row && st->ColumnInt64(0) > 0;
  }
  if (has) return Status::OK();
  // Concurrent upgraders: the loser's ALTER fails with "duplicate column"; check again.
  Status s =
      db.Exec("ALTER TABLE outbox_state ADD COLUMN confirmed_txns INTEGER NOT NULL DEFAULT 0");
  if (s.ok()) return s;
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  return row && st->ColumnInt64(0) > 0 ? Status::OK() : s;
}

Result<OutboxPosition> ReadConfirmedPosition(SqliteDb& db) {
  ASSIGN_OR_RETURN(SqliteStmt * st, db.Prepare("SELECT confirmed_seq, confirmed_txns FROM "
                                               "outbox_state WHERE id = 1"));
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  if (!row) return OutboxPosition{};
  return OutboxPosition{st->ColumnInt64(0), st->ColumnInt64(1)};
}

Status ConfirmOutboxThrough(SqliteDb& db, const OutboxPosition& through) {
  const int64_t through_seq = through.seq;
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
  ASSIGN_OR_RETURN(SqliteStmt * mark,
                   db.Prepare("UPDATE outbox_state SET confirmed_seq = ?1, confirmed_txns = ?2 "
                              "WHERE id = 1 AND confirmed_seq < ?1"));
  mark->Bind(1, through_seq).Bind(2, through.txns);
  RETURN_IF_ERROR(mark->Run());
  if (db.Changes() == 0) return Status::OK();  // at or below the confirmed seq: nothing to do
  // Campaigns listed in capture_baseline (they existed before capture started) need one captured
  // version with content; once such a version is confirmed, later ones may omit it. Done here,
  // off the request path, rather than by a per-row DELETE in the update trigger.
  ASSIGN_OR_RETURN(SqliteStmt * pending,
                   db.Prepare("SELECT EXISTS (SELECT 1 FROM capture_baseline)"));
  bool any_pending = false;
  {
    sqlite_schema::StmtReset reset(pending);
    ASSIGN_OR_RETURN(bool row, pending->Step());
    any_pending = row && pending->ColumnInt64(0) != 0;
  }
  if (any_pending) {
    ASSIGN_OR_RETURN(SqliteStmt * done,
                     db.Prepare("DELETE FROM capture_baseline WHERE id IN (SELECT campaign_id "
                                "FROM outbox WHERE seq <= ?1 AND content <> '')"));
    done->Bind(1, through_seq);
    RETURN_IF_ERROR(done->Run());
  }
  // The outbox_keep_newest trigger skips the newest row.
  ASSIGN_OR_RETURN(SqliteStmt * del, db.Prepare("DELETE FROM outbox WHERE seq <= ?1"));
  del->Bind(1, through_seq);
  RETURN_IF_ERROR(del->Run());
  return tx->Commit();
}

Result<int64_t> CountUnconfirmed(SqliteDb& db) {
  ASSIGN_OR_RETURN(SqliteStmt * st,
                   db.Prepare("SELECT coalesce(sum(CASE WHEN op = 'shifted' THEN max(version, 1) "
                              "ELSE 1 END), 0) FROM outbox WHERE seq > "
                              "(SELECT confirmed_seq FROM outbox_state WHERE id = 1)"));
  StmtReset reset(st);
  ASSIGN_OR_RETURN(bool row, st->Step());
  return row ? st->ColumnInt64(0) : 0;
}

Result<int64_t> EraseConfirmedOutboxRows(SqliteDb& db, int64_t customer_id) {
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
  constexpr char kConfirmed[] =
      " WHERE customer_id = ?1 AND seq <= (SELECT confirmed_seq FROM outbox_state WHERE id = 1)";
  ASSIGN_OR_RETURN(SqliteStmt * del, db.Prepare(std::string("DELETE FROM outbox") + kConfirmed));
  del->Bind(1, customer_id);
  RETURN_IF_ERROR(del->Run());
  int64_t removed = db.Changes();
  // What the outbox_keep_newest trigger kept: keep the row, not the customer's data.
  ASSIGN_OR_RETURN(SqliteStmt * blank,
                   db.Prepare(std::string("UPDATE outbox SET actor = '', name = '', "
                                          "trigger_event = '', audience_segment = '', content = "
                                          "'', updated_by = ''") +
                              kConfirmed));
  blank->Bind(1, customer_id);
  RETURN_IF_ERROR(blank->Run());
  removed += db.Changes();
  RETURN_IF_ERROR(tx->Commit());
  return removed;
}

Result<std::optional<Timestamp>> OutboxHeartbeat(SqliteDb& db, int64_t polled_seq, Timestamp now) {
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
  ASSIGN_OR_RETURN(SqliteStmt * unread,
                   db.Prepare("SELECT EXISTS (SELECT 1 FROM outbox WHERE seq > ?1)"));
  {
    StmtReset reset(unread);
    unread->Bind(1, polled_seq);
    ASSIGN_OR_RETURN(bool row, unread->Step());
    if (row && unread->ColumnInt64(0) != 0) return std::optional<Timestamp>();
  }
  ASSIGN_OR_RETURN(SqliteStmt * floor,
                   db.Prepare("UPDATE txn_context SET commit_us = max(commit_us, ?1) WHERE id = 1 "
                              "RETURNING commit_us"));
  int64_t at = 0;
  {
    StmtReset reset(floor);
    floor->Bind(1, ToUnixMicros(now));
    ASSIGN_OR_RETURN(bool row, floor->Step());
    if (!row) return DataLossError(fmt::format("'{}' has no txn_context row", db.path()));
    at = floor->ColumnInt64(0);
  }
  RETURN_IF_ERROR(tx->Commit());
  return std::optional<Timestamp>(FromUnixMicros(at));
}

}  // namespace ch
