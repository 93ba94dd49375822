// The SQLite campaign database's schema (docs/formats/outbox.md), shared by the store and the
// outbox reader of this module. Never include from outside src/campaign/.
//
// Times are stored as INTEGER microseconds since the Unix epoch (UTC); status and op as their
// persisted names.
#pragma once

#include <cstdint>

#include "campaign/campaign.h"
#include "common/sqlite.h"
#include "common/status.h"

namespace ch::sqlite_schema {

// Version of the campaign tables (meta key "schema_version"). DO NOT CHANGE the meaning.
//   1  the tables below.
//   2  meta also records the database's capture mode ("capture_mode") and outbox row format
//      ("outbox_rows"), which every writer checks (campaign/sqlite_capture.h). A binary that
//      knows only version 1 refuses the file, so it cannot change the capture behind the
//      recorded mode's back. Opening a version-1 file upgrades it in place.
inline constexpr int kSchemaVersion = 2;

// The tables every database has. `txn_context` is the one-row context table: the stamp of the
// newest write transaction (also the persisted "last commit time" and "last transaction id")
// and the highest campaign id ever used. `replay_positions` holds, per workload, the last line a
// replay applied (CampaignStore replay positions), written in that line's transaction; no
// trigger captures it. Added without a schema version change: an older binary ignores it.
inline constexpr char kCreateTables[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS campaigns (
  id               INTEGER PRIMARY KEY,
  customer_id      INTEGER NOT NULL,
  name             TEXT NOT NULL,
  status           TEXT NOT NULL,
  priority         INTEGER NOT NULL,
  trigger_event    TEXT NOT NULL,
  audience_segment TEXT NOT NULL,
  start_at         INTEGER,
  end_at           INTEGER,
  frequency_cap    INTEGER NOT NULL,
  content          TEXT NOT NULL,
  version          INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  updated_by       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS campaigns_by_customer_priority ON campaigns (customer_id, priority);
CREATE INDEX IF NOT EXISTS campaigns_active_by_end ON campaigns (end_at)
  WHERE status = 'active' AND end_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS deleted_campaigns (id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS txn_context (
  id        INTEGER PRIMARY KEY CHECK (id = 1),
  txn_id    INTEGER NOT NULL,
  commit_us INTEGER NOT NULL,
  actor     TEXT NOT NULL,
  max_id    INTEGER NOT NULL
);
INSERT OR IGNORE INTO txn_context (id, txn_id, commit_us, actor, max_id) VALUES (1, 0, 0, '', 0);
CREATE TABLE IF NOT EXISTS replay_positions (
  workload  TEXT PRIMARY KEY,
  seq       INTEGER NOT NULL,
  digest    TEXT NOT NULL,
  source    TEXT NOT NULL,
  commit_us INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', '1');
)sql";

// The outbox and its triggers (capture "log"). Format version: meta key "outbox_version".
//
// Version 2: an update that leaves `content` unchanged stores '' (never a valid content, which is
// a JSON object) instead of repeating it: 87 % of versions are priority shifts, and the content
// (~600 bytes) is most of a row, so this halves what capture writes. The content of such a version
// is the previous version's; consumers resolve it (the embedded publisher from the history).
// Inserts and deletes always carry the content. So do the captured updates of a campaign that
// existed before capture was (re)enabled, until one of them is confirmed: such campaigns are
// listed in capture_baseline when the triggers are created (their previous version was never
// captured), and ConfirmOutboxThrough removes them (sqlite_outbox.cc).
//
// seq is a plain INTEGER PRIMARY KEY (rowid): a new row gets max(seq) + 1. It is never reused
// because the newest row is never deleted (the outbox_keep_newest trigger skips it), so max(seq)
// never goes down. That is AUTOINCREMENT's guarantee without its cost: AUTOINCREMENT rewrites
// the sqlite_sequence page in every transaction, one more page per commit (measured: ~10% of the
// throughput of single-row updates). The relay's confirmed position is kept in outbox_state, so
// the retained (already confirmed) newest row is not delivered again after a restart.
//
// Version 3: a priority shift (one UPDATE that moves a range of a customer's campaigns by the same
// delta: 88 % of versions) is captured as ONE row, op 'shifted', instead of one row per shifted
// campaign: SqliteCampaignStore's Shift writes it (WriteShiftRow in sqlite_campaign_store.cc)
// and, while its statement runs, names it in txn_context.shift_seq; the update trigger skips
// exactly the rows whose new image is the old one with the shift applied (kShiftSkip). Its
// columns: customer_id, priority = the delta, version = how many campaigns it shifted, content =
// their "id:new_version" list (comma-separated), actor = updated_by = the shifting actor,
// updated_at = the new updated_at; the rest is zero or ''. Readers expand it
// (sqlite_outbox.cc); the image of each version is its previous version's with the shift applied.
inline constexpr int kOutboxVersion = 3;
// The op of a shift row (format 3). DO NOT CHANGE.
inline constexpr char kShiftedOp[] = "shifted";
// Added to txn_context by InstallTriggers (format 3): the seq of the shift row whose statement is
// running, 0 otherwise.
inline constexpr char kAddShiftSeq[] =
    "ALTER TABLE txn_context ADD COLUMN shift_seq INTEGER NOT NULL DEFAULT 0";
// The update trigger's condition (format 3): capture the row unless the running statement is a
// shift (txn_context.shift_seq names its open shift row: set by SqliteCampaignStore's Shift only
// around its one UPDATE, in its own write transaction, and 0 at every commit), the row's version
// went up by one, and the campaign's previous version is captured (not in capture_baseline).
// Kept to what costs no lookup but two one-row seeks: the trigger fires for every shifted row, and
// an older condition that also compared every column with the open shift row (three seeks) cost
// ~40 % of a shifted row's update; this one ~10 % (mostly the firing itself). Only the shift's
// own statement runs while shift_seq is set (the write lock is held and the store issues nothing
// else), and that statement sets exactly what its shift row says (priority + delta, version + 1,
// updated_at, updated_by), so the reader's expansion reproduces every row it skips.
// Dropped from the full-row triggers: there every update is captured with its image.
inline constexpr char kShiftSkip[] = R"sql(
WHEN (SELECT t.shift_seq FROM txn_context AS t WHERE t.id = 1) = 0
  OR NEW.version <> OLD.version + 1
  OR EXISTS (SELECT 1 FROM capture_baseline AS b WHERE b.id = NEW.id)
)sql";
// Where kShiftSkip goes in kCreateOutbox (InstallTriggers fills it in).
inline constexpr char kShiftSkipPlaceholder[] = "@SHIFT_SKIP@";
// The content expression of the update trigger; kFullContent replaces it when the outbox is not
// compact (SqliteCampaignStoreOptions::compact_outbox).
inline constexpr char kCompactContent[] = R"sql(CASE WHEN NEW.content IS OLD.content
                   AND NOT EXISTS (SELECT 1 FROM capture_baseline AS b WHERE b.id = NEW.id)
              THEN '' ELSE NEW.content END)sql";
inline constexpr char kFullContent[] = "NEW.content";
inline constexpr char kCreateOutbox[] = R"sql(
CREATE TABLE IF NOT EXISTS outbox (
  seq              INTEGER PRIMARY KEY,
  txn_id           INTEGER NOT NULL,
  commit_us        INTEGER NOT NULL,
  op               TEXT NOT NULL,
  actor            TEXT NOT NULL,
  version          INTEGER NOT NULL,
  campaign_id      INTEGER NOT NULL,
  customer_id      INTEGER NOT NULL,
  name             TEXT NOT NULL,
  status           TEXT NOT NULL,
  priority         INTEGER NOT NULL,
  trigger_event    TEXT NOT NULL,
  audience_segment TEXT NOT NULL,
  start_at         INTEGER,
  end_at           INTEGER,
  frequency_cap    INTEGER NOT NULL,
  content          TEXT NOT NULL,
  row_version      INTEGER NOT NULL,
  created_at       INTEGER NOT NULL,
  updated_at       INTEGER NOT NULL,
  updated_by       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_state (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  confirmed_seq  INTEGER NOT NULL,
  confirmed_txns INTEGER NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO outbox_state (id, confirmed_seq) VALUES (1, 0);
INSERT OR REPLACE INTO meta (key, value) VALUES ('outbox_version', '3');
CREATE TABLE IF NOT EXISTS capture_baseline (id INTEGER PRIMARY KEY);
CREATE TRIGGER IF NOT EXISTS outbox_keep_newest BEFORE DELETE ON outbox
  WHEN OLD.seq >= (SELECT max(seq) FROM outbox)
BEGIN
  SELECT RAISE(IGNORE);
END;
CREATE TRIGGER IF NOT EXISTS campaigns_capture_insert AFTER INSERT ON campaigns
BEGIN
  INSERT INTO outbox (txn_id, commit_us, op, actor, version, campaign_id, customer_id, name,
                      status, priority, trigger_event, audience_segment, start_at, end_at,
                      frequency_cap, content, row_version, created_at, updated_at, updated_by)
  SELECT t.txn_id, t.commit_us, 'created', NEW.updated_by, NEW.version, NEW.id, NEW.customer_id,
         NEW.name, NEW.status, NEW.priority, NEW.trigger_event, NEW.audience_segment,
         NEW.start_at, NEW.end_at, NEW.frequency_cap, NEW.content, NEW.version, NEW.created_at,
         NEW.updated_at, NEW.updated_by
    FROM txn_context AS t WHERE t.id = 1;
END;
CREATE TRIGGER IF NOT EXISTS campaigns_capture_update AFTER UPDATE ON campaigns @SHIFT_SKIP@
BEGIN
  INSERT INTO outbox (txn_id, commit_us, op, actor, version, campaign_id, customer_id, name,
                      status, priority, trigger_event, audience_segment, start_at, end_at,
                      frequency_cap, content, row_version, created_at, updated_at, updated_by)
  SELECT t.txn_id, t.commit_us, 'updated', NEW.updated_by, NEW.version, NEW.id, NEW.customer_id,
         NEW.name, NEW.status, NEW.priority, NEW.trigger_event, NEW.audience_segment,
         NEW.start_at, NEW.end_at, NEW.frequency_cap,
         CASE WHEN NEW.content IS OLD.content
                   AND NOT EXISTS (SELECT 1 FROM capture_baseline AS b WHERE b.id = NEW.id)
              THEN '' ELSE NEW.content END,
         NEW.version, NEW.created_at, NEW.updated_at, NEW.updated_by
    FROM txn_context AS t WHERE t.id = 1;
END;
CREATE TRIGGER IF NOT EXISTS campaigns_capture_delete AFTER DELETE ON campaigns
BEGIN
  INSERT INTO outbox (txn_id, commit_us, op, actor, version, campaign_id, customer_id, name,
                      status, priority, trigger_event, audience_segment, start_at, end_at,
                      frequency_cap, content, row_version, created_at, updated_at, updated_by)
  SELECT t.txn_id, t.commit_us, 'deleted', t.actor, OLD.version + 1, OLD.id, OLD.customer_id,
         OLD.name, OLD.status, OLD.priority, OLD.trigger_event, OLD.audience_segment,
         OLD.start_at, OLD.end_at, OLD.frequency_cap, OLD.content, OLD.version, OLD.created_at,
         OLD.updated_at, OLD.updated_by
    FROM txn_context AS t WHERE t.id = 1;
END;
)sql";

inline constexpr char kDropCaptureTriggers[] = R"sql(
DROP TRIGGER IF EXISTS campaigns_capture_insert;
DROP TRIGGER IF EXISTS campaigns_capture_update;
DROP TRIGGER IF EXISTS campaigns_capture_delete;
DROP TRIGGER IF EXISTS campaigns_capture_baseline_done;
)sql";

// The campaign columns in the order ReadCampaignColumns expects.
#define CH_CAMPAIGN_COLUMNS                                                              \
  "id, customer_id, name, status, priority, trigger_event, audience_segment, start_at, " \
  "end_at, frequency_cap, content, version, created_at, updated_at, updated_by"
// The same columns of an outbox row's image.
#define CH_OUTBOX_IMAGE_COLUMNS                                                         \
  "campaign_id, customer_id, name, status, priority, trigger_event, audience_segment, " \
  "start_at, end_at, frequency_cap, content, row_version, created_at, updated_at, updated_by"
inline constexpr int kCampaignColumnCount = 15;

// Decode the campaign columns starting at column `first`. Fails with DataLoss on an unknown
// status name (the table was written by something else).
Result<Campaign> ReadCampaignColumns(const SqliteStmt& st, int first);

// Bind `c`'s columns, in CH_CAMPAIGN_COLUMNS order, to parameters first, first + 1, ...
void BindCampaignColumns(SqliteStmt& st, int first, const Campaign& c);

// Resets a cached statement when leaving a scope, so no read snapshot stays open.
class StmtReset {
 public:
  explicit StmtReset(SqliteStmt* st) : st_(st) {}
  ~StmtReset() { st_->Reset(); }
  StmtReset(const StmtReset&) = delete;
  StmtReset& operator=(const StmtReset&) = delete;

 private:
  SqliteStmt* st_;
};

}  // namespace ch::sqlite_schema
