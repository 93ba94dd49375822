// BigQuery: the table a Pub/Sub BigQuery subscription loads the `campaign-history` topic into,
// and the SQL that answers the support queries there (docs/bigquery.md).
//
// The schema is the history record's JSON row (docs/formats/history-record.md), column for
// column, so a subscription with "use table schema" writes every record the publisher emits
// without code of ours. ValidateBigQueryRow checks a row the way such a subscription converts
// it (every field known, every value convertible to its column's type, required ones present),
// so a test can prove that the topic loads unchanged.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ch {

// One column: BigQuery's JSON schema entry ({"name","type","mode"}).
struct BigQueryField {
  std::string name;
  // INT64, STRING, TIMESTAMP or JSON.
  std::string type;
  // REQUIRED or NULLABLE.
  std::string mode;
  std::string description;
};

// Where the table lives. Defaults: the reference deployment's names.
struct BigQueryTable {
  // Empty: left out of the names (the bq/SQL default project applies).
  std::string project;
  std::string dataset = "inapp_campaigns";
  std::string table = "campaign_history";

  // `project.dataset.table` (or `dataset.table`), back-quoted for SQL.
  std::string Quoted() const;
};

// The history table's columns, in the JSON row's order.
const std::vector<BigQueryField>& HistoryTableSchema();

// The schema as `bq mk --table` takes it: a JSON array of {name, type, mode, description}.
std::string BigQuerySchemaJson();

// CREATE TABLE for `t`: partitioned by DATE(event_time), clustered by customer_id, campaign_id.
std::string BigQueryDdl(const BigQueryTable& t);

// The support queries in BigQuery SQL, with query parameters (@customer, @at, @campaign, @from,
// @to). A subscription delivers at least once and BigQuery enforces no key, so each first keeps
// one row per (campaign_id, version) -- the first ingested.
std::string BigQueryAsOfSql(const BigQueryTable& t);
std::string BigQueryLogSql(const BigQueryTable& t);
std::string BigQueryTimelineSql(const BigQueryTable& t);
// complete_through (history/completeness.h) computed in SQL: the commit time of the newest
// transaction S such that every log-captured transaction 1..S has all its txn_changes rows.
// Scans every txn_seq of the table: run it on a schedule, not per query.
std::string BigQueryCompleteThroughSql(const BigQueryTable& t);

// Check one JSON row (a message of the history topic) the way a BigQuery subscription with "use
// table schema" converts it: a JSON object, no field the table lacks, every REQUIRED field
// present and not null, every value convertible (INT64: an integer or a decimal string in
// range; STRING: a string; TIMESTAMP: an RFC 3339 string; JSON: a string holding JSON, or an
// object). Fails with InvalidArgument naming the field and the problem.
Status ValidateBigQueryRow(std::string_view json_row);

}  // namespace ch
