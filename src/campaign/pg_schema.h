// The PostgreSQL campaign database's schema and row codec, shared by PgCampaignStore (which
// writes it) and PgLogicalSource (capture/, which decodes the same rows from the WAL). See
// docs/formats/pg-capture.md.
//
// Tables (in the connection's current schema, normally `public`):
//   campaigns             the tracked records; REPLICA IDENTITY FULL when captured (a delete's WAL
//                         record then carries the whole old row)
//   ch_meta               key/value: schema_version
//   ch_customer_txn       one row per customer that was ever written: the stamp of its newest
//                         write transaction, txn_id (txid_current()) and commit_us (µs since the
//                         Unix epoch). A write transaction upserts its customer's row before it
//                         touches the customer's campaigns, which takes that row's lock and so
//                         serializes the writers of one customer (and only those); the upsert is
//                         also how the stamp reaches the WAL (the table is in the capture
//                         publication). Schema version 2.
//   ch_txn                schema version 1's single stamp row (id = 1), which serialized every
//                         writer of the database. Kept (empty) so that WAL written before the
//                         upgrade still decodes; the upgrade deletes its row, so a writer of an
//                         older build that is still running fails instead of writing unserialized.
//   ch_campaign_ids       a sequence for AllocateId (ids of campaigns created without one)
//   ch_deleted_campaigns  every deleted id (ids are never reused)
//   ch_replay_positions   per workload, the last line a replay applied (CampaignStore replay
//                         positions), written in that line's transaction; not captured
//   ch_capture_progress   per replication slot: the last commit LSN confirmed downstream, the
//                         number of confirmed transactions, and the transaction handed out in
//                         parts that is confirmed in part (partial_lsn, partial_changes)
//
// Values travel as text both ways (query results and pgoutput): integers in decimal,
// timestamptz in ISO form with TimeZone UTC ("2026-01-01 00:00:00.25+00", " BC" for years <= 0),
// status as its persisted name.
//
// Thread-safety: constants and pure functions, except EnsurePgSchema (uses the given connection).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "campaign/campaign.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

class PgConn;

// Version of the tables above (ch_meta key "schema_version"). DO NOT CHANGE the meaning.
// 1: ch_txn serializes every writer. 2: ch_customer_txn serializes the writers of each customer
// (EnsurePgSchema upgrades 1 to 2).
inline constexpr int kPgSchemaVersion = 2;

// Table names. DO NOT CHANGE: publications and operators' queries name them.
inline constexpr char kPgCampaignsTable[] = "campaigns";
inline constexpr char kPgTxnTable[] = "ch_txn";
inline constexpr char kPgCustomerTxnTable[] = "ch_customer_txn";
inline constexpr char kPgProgressTable[] = "ch_capture_progress";

// Add the columns that ch_capture_progress of older builds lacks (safe to run again).
inline constexpr char kPgUpgradeProgressTable[] =
    "ALTER TABLE ch_capture_progress ADD COLUMN IF NOT EXISTS confirmed_txns bigint NOT NULL "
    "DEFAULT 0, ADD COLUMN IF NOT EXISTS partial_lsn pg_lsn, ADD COLUMN IF NOT EXISTS "
    "partial_changes bigint NOT NULL DEFAULT 0, ADD COLUMN IF NOT EXISTS confirmed_event_us bigint";

// The prefix of the transactional logical decoding message that carries a delete's actor
// (pg_logical_emit_message(true, prefix, actor)). DO NOT CHANGE: it is in the WAL.
inline constexpr char kPgActorMessagePrefix[] = "campaign-history.actor";

// The campaigns table's columns, in the order CampaignFromPgValues/CampaignToPgValues use.
// DO NOT CHANGE the names.
inline constexpr std::array<std::string_view, 15> kPgCampaignColumns = {"id",
                                                                        "customer_id",
                                                                        "name",
                                                                        "status",
                                                                        "priority",
                                                                        "trigger_event",
                                                                        "audience_segment",
                                                                        "start_at",
                                                                        "end_at",
                                                                        "frequency_cap",
                                                                        "content",
                                                                        "version",
                                                                        "created_at",
                                                                        "updated_at",
                                                                        "updated_by"};
// The same, comma-separated, for SQL.
inline constexpr char kPgCampaignColumnList[] =
    "id, customer_id, name, status, priority, trigger_event, audience_segment, start_at, end_at, "
    "frequency_cap, content, version, created_at, updated_at, updated_by";

// Decode a campaign from its 15 column values in kPgCampaignColumns order (nullopt = NULL).
// Fails with DataLoss naming the column when a value cannot be decoded.
Result<Campaign> CampaignFromPgValues(std::span<const std::optional<std::string_view>> values);

// Return OK when PostgreSQL can store every text field of `c` as given: text cannot hold the NUL
// character (U+0000), which SQLite and the model accept. Fails with InvalidArgument naming the
// field. Writers check this first: libpq would silently cut such a value at the NUL.
Status CheckPgText(const Campaign& c);
// The same for one value, named `field` in the error.
Status CheckPgText(std::string_view field, std::string_view value);

// Encode `c` as 15 text values in kPgCampaignColumns order (nullopt = NULL).
std::vector<std::optional<std::string>> CampaignToPgValues(const Campaign& c);

// Return `t` as timestamptz input/output text in UTC: "YYYY-MM-DD hh:mm:ss.ffffff+00", years
// <= 0 as "... BC" (PostgreSQL has no year 0: astronomical year 0 is 1 BC).
std::string FormatPgTimestamp(Timestamp t);
// Parse timestamptz text as PostgreSQL prints it with DateStyle ISO (any UTC offset, optional
// fraction of up to 6 digits, optional " BC"). Fails with InvalidArgument naming the text
// ("infinity" included: it is not an instant).
Result<Timestamp> ParsePgTimestamp(std::string_view text);

// Create the tables above when missing, under an advisory lock (several processes may open the
// same database at once), and check the schema version. A version-1 database is upgraded to 2 in
// one transaction: ch_customer_txn and ch_campaign_ids are created, ch_customer_txn is added to
// every publication that publishes campaigns (so log capture keeps seeing stamps), the newest
// version-1 stamp is kept in ch_meta ('v1_commit_us', a floor for the new stamps) and ch_txn's row
// is deleted (a writer of an older build then fails with "the ch_txn row is missing" instead of
// writing without the customer lock; stop older writers before upgrading). When
// `replica_identity_full`, also make campaigns REPLICA IDENTITY FULL (an ALTER TABLE, only when
// it is not already). Fails with FailedPrecondition when the database has a newer schema
// version, or with the server's error.
Status EnsurePgSchema(PgConn& conn, bool replica_identity_full);

}  // namespace ch
