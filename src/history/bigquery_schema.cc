#include "history/bigquery_schema.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "common/time_util.h"

namespace ch {
namespace {

using Json = nlohmann::json;

Status Bad(std::string_view field, std::string_view why) {
  return InvalidArgumentError(fmt::format("BigQuery row: field '{}' {}", field, why));
}

// True when `s` is a decimal integer within INT64 (how BigQuery reads an INT64 from a string).
bool IsInt64Text(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

Status CheckValue(const BigQueryField& f, const Json& v) {
  if (f.type == "INT64") {
    if (v.is_number_integer()) {
      if (v.is_number_unsigned() &&
          v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Bad(f.name, "is out of the INT64 range");
      }
      return Status::OK();
    }
    if (v.is_string() && IsInt64Text(v.get_ref<const std::string&>())) return Status::OK();
    return Bad(f.name, fmt::format("must be an INT64 (got {})", v.type_name()));
  }
  if (f.type == "STRING") {
    if (v.is_string()) return Status::OK();
    return Bad(f.name, fmt::format("must be a STRING (got {})", v.type_name()));
  }
  if (f.type == "TIMESTAMP") {
    if (!v.is_string())
      return Bad(f.name, fmt::format("must be a TIMESTAMP (got {})", v.type_name()));
    if (!ParseTimestamp(v.get_ref<const std::string&>()).ok()) {
      return Bad(f.name, "is not an RFC 3339 timestamp");
    }
    return Status::OK();
  }
  if (f.type == "JSON") {
    if (v.is_object()) return Status::OK();
    if (v.is_string()) {
      Json inner =
          Json::parse(v.get_ref<const std::string&>(), nullptr, /*allow_exceptions=*/false);
      if (!inner.is_discarded()) return Status::OK();
    }
    return Bad(f.name, "must be JSON text (a string holding JSON, or an object)");
  }
  return InternalError(fmt::format("BigQuery schema: unknown type {}", f.type));
}

}  // namespace

std::string BigQueryTable::Quoted() const {
  return project.empty() ? fmt::format("`{}.{}`", dataset, table)
                         : fmt::format("`{}.{}.{}`", project, dataset, table);
}

const std::vector<BigQueryField>& HistoryTableSchema() {
  // The history record's JSON row (docs/formats/history-record.md), in its order. DO NOT CHANGE
  // a released column; a new column is NULLABLE (rows of older versions lack it).
  static const std::vector<BigQueryField> kSchema = {
      {"customer_id", "INT64", "REQUIRED", "tenant"},
      {"campaign_id", "INT64", "REQUIRED", "the campaign"},
      {"version", "INT64", "REQUIRED",
       "the campaign's version after this change (deletes: the last version + 1)"},
      {"event_time", "TIMESTAMP", "REQUIRED", "commit time of the change"},
      {"event_type", "STRING", "REQUIRED", "created, updated or deleted"},
      {"actor", "STRING", "REQUIRED", "who made the change: user:<id>, api:<key>, worker:<name>"},
      {"transaction_id", "STRING", "NULLABLE", "groups the changes of one action"},
      {"capture", "STRING", "REQUIRED", "log (every committed version) or notify"},
      {"missed_versions", "INT64", "REQUIRED",
       "versions known to exist but not captured before this one (notify only)"},
      {"snapshot", "JSON", "REQUIRED",
       "the whole campaign after the change (deletes: the last content)"},
      {"ingested_at", "TIMESTAMP", "NULLABLE", "when a history store got it"},
      {"txn_seq", "INT64", "NULLABLE",
       "log capture: the transaction's number in the capture stream (1, 2, 3, ...)"},
      {"txn_changes", "INT64", "NULLABLE", "how many changes that transaction made"},
      {"schema_version", "INT64", "REQUIRED", "the history record format version"},
  };
  return kSchema;
}

std::string BigQuerySchemaJson() {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const BigQueryField& f : HistoryTableSchema()) {
    out.push_back(
        {{"name", f.name}, {"type", f.type}, {"mode", f.mode}, {"description", f.description}});
  }
  return out.dump(2) + "\n";
}

std::string BigQueryDdl(const BigQueryTable& t) {
  std::string columns;
  for (const BigQueryField& f : HistoryTableSchema()) {
    // Double-quoted: descriptions may hold apostrophes (and never hold double quotes).
    columns += fmt::format("  {:<16}{:<10}{}OPTIONS (description = \"{}\"),\n", f.name, f.type,
                           f.mode == "REQUIRED" ? "NOT NULL " : "", f.description);
  }
  columns.resize(columns.size() - 2);  // the last ",\n"
  return fmt::format(
      "CREATE TABLE IF NOT EXISTS {} (\n{}\n)\nPARTITION BY DATE(event_time)\n"
      "CLUSTER BY customer_id, campaign_id\n"
      "OPTIONS (description = \"campaign-history records (docs/formats/history-record.md)\");\n",
      t.Quoted(), columns);
}

namespace {

// The rows of the table, one per (campaign_id, version): Pub/Sub delivers at least once.
std::string Deduplicated(const BigQueryTable& t, std::string_view where) {
  return fmt::format(
      "SELECT * FROM {} WHERE {}\n"
      "  QUALIFY ROW_NUMBER() OVER (PARTITION BY campaign_id, version ORDER BY ingested_at) = 1",
      t.Quoted(), where);
}

}  // namespace

std::string BigQueryAsOfSql(const BigQueryTable& t) {
  return fmt::format(
      "-- as-of(@customer, @at): each campaign's latest record at or before @at; deleted ones "
      "left\n"
      "-- out; by priority. Exact for @at <= complete_through (docs/bigquery.md).\n"
      "WITH records AS (\n  {}\n)\n"
      "SELECT * FROM records\n"
      "QUALIFY ROW_NUMBER() OVER (PARTITION BY campaign_id ORDER BY event_time DESC, version DESC) "
      "= 1\n"
      "  AND event_type != 'deleted'\n"
      "ORDER BY INT64(snapshot.priority), campaign_id;\n",
      Deduplicated(t, "customer_id = @customer AND event_time <= @at"));
}

std::string BigQueryLogSql(const BigQueryTable& t) {
  return fmt::format(
      "-- log(@campaign, @from, @to): one campaign's versions in order.\n"
      "WITH records AS (\n  {}\n)\n"
      "SELECT version, event_time, event_type, actor, transaction_id, missed_versions, snapshot\n"
      "FROM records ORDER BY version;\n",
      Deduplicated(t, "campaign_id = @campaign AND event_time BETWEEN @from AND @to"));
}

std::string BigQueryTimelineSql(const BigQueryTable& t) {
  return fmt::format(
      "-- timeline(@customer, @from, @to): the changes of a window, grouped by transaction.\n"
      "WITH records AS (\n  {}\n)\n"
      "SELECT transaction_id, MIN(event_time) AS time,\n"
      "  ARRAY_AGG(DISTINCT actor) AS actors,\n"
      "  ARRAY_AGG(STRUCT(campaign_id, version, event_type, event_time)\n"
      "            ORDER BY campaign_id, version) AS changes\n"
      "FROM records GROUP BY transaction_id ORDER BY time, transaction_id;\n",
      Deduplicated(t, "customer_id = @customer AND event_time BETWEEN @from AND @to"));
}

std::string BigQueryCompleteThroughSql(const BigQueryTable& t) {
  return fmt::format(
      "-- complete_through: every transaction committed at or before it is in the table.\n"
      "WITH txns AS (\n"
      "  SELECT txn_seq, MAX(event_time) AS t, MAX(txn_changes) AS expected,\n"
      "    COUNT(DISTINCT FORMAT('%d/%d', campaign_id, version)) AS received\n"
      "  FROM {} WHERE txn_seq > 0 GROUP BY txn_seq),\n"
      "complete AS (\n"
      "  SELECT txn_seq, t, ROW_NUMBER() OVER (ORDER BY txn_seq) AS n FROM txns\n"
      "  WHERE expected > 0 AND received >= expected)\n"
      "-- 1..S all complete exactly when the S-th complete transaction is number S.\n"
      "SELECT MAX(txn_seq) AS through_txn_seq, MAX(t) AS complete_through FROM complete\n"
      "WHERE txn_seq = n;\n",
      t.Quoted());
}

Status ValidateBigQueryRow(std::string_view json_row) {
  Json j = Json::parse(json_row, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgumentError("BigQuery row: not valid JSON");
  if (!j.is_object()) return InvalidArgumentError("BigQuery row: not a JSON object");
  std::map<std::string, const BigQueryField*> by_name;
  for (const BigQueryField& f : HistoryTableSchema()) by_name[f.name] = &f;
  for (auto it = j.begin(); it != j.end(); ++it) {
    auto f = by_name.find(it.key());
    if (f == by_name.end()) return Bad(it.key(), "is not a column of the table");
    if (it->is_null()) {
      if (f->second->mode == "REQUIRED") return Bad(it.key(), "is REQUIRED but null");
      continue;
    }
    RETURN_IF_ERROR(CheckValue(*f->second, *it));
  }
  for (const BigQueryField& f : HistoryTableSchema()) {
    if (f.mode == "REQUIRED" && !j.contains(f.name)) return Bad(f.name, "is REQUIRED but missing");
  }
  return Status::OK();
}

}  // namespace ch
