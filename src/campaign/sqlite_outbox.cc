#include "campaign/sqlite_outbox.h"

#include <fmt/format.h>

#include "campaign/sqlite_schema_internal.h"

namespace ch {

using sqlite_schema::StmtReset;

namespace {

constexpr char kSelectColumns[] =
    "SELECT seq, txn_id, commit_us, op, actor, version, " CH_OUTBOX_IMAGE_COLUMNS " FROM outbox ";

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

Status ReadAll(SqliteStmt* st, std::vector<CapturedChange>& out) {
  StmtReset reset(st);
  while (true) {
    ASSIGN_OR_RETURN(bool row, st->Step());
    if (!row) return Status::OK();
    ASSIGN_OR_RETURN(CapturedChange c, ReadRow(*st));
    out.push_back(std::move(c));
  }
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
  ASSIGN_OR_RETURN(SqliteStmt * first, db.Prepare(std::string(kSelectColumns) +
                                                  "WHERE seq > ?1 ORDER BY seq LIMIT ?2"));
  first->Bind(1, after_seq).Bind(2, static_cast<int64_t>(max_rows));
  RETURN_IF_ERROR(ReadAll(first, out));
  if (out.size() < max_rows) return out;
  // Read on to the end of the last transaction. Its rows are contiguous in seq (writers are
  // serialized) and were committed together, so they are all visible now. Stop at the first row
  // of the next transaction rather than filtering: the backlog behind it may be long.
  ASSIGN_OR_RETURN(SqliteStmt * rest,
                   db.Prepare(std::string(kSelectColumns) + "WHERE seq > ?1 ORDER BY seq"));
  const std::string last_txn = out.back().transaction_id;
  rest->Bind(1, out.back().seq);
  StmtReset reset(rest);
  while (true) {
    ASSIGN_OR_RETURN(bool row, rest->Step());
    if (!row) break;
    ASSIGN_OR_RETURN(CapturedChange c, ReadRow(*rest));
    if (c.transaction_id != last_txn) break;
    out.push_back(std::move(c));
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
                   db.Prepare("SELECT count(*) FROM outbox WHERE seq > "
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
