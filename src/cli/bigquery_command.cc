// `bigquery-schema`: what a Google Cloud project needs to load the history topic into BigQuery
// with a Pub/Sub BigQuery subscription, and to query it (docs/bigquery.md).
#include <fmt/format.h>

#include <iostream>

#include "cli/cli.h"
#include "history/bigquery_schema.h"

namespace ch::cli {
namespace {

// BigQuery's naming rules, narrowed: datasets and tables letters, digits and underscores;
// projects lowercase letters, digits, hyphens (and a domain prefix with ':' and '.').
Status CheckName(std::string_view flag, const std::string& v, bool project) {
  bool ok = !v.empty() && v.size() <= 1024;
  for (char c : v) {
    bool letter = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  (!project && ((c >= 'A' && c <= 'Z') || c == '_'));
    ok = ok && (letter || (project && (c == '-' || c == ':' || c == '.')));
  }
  if (ok) return Status::OK();
  return InvalidArgumentError(fmt::format(
      "{}: '{}' is not a valid BigQuery {} name (use {})", flag, v.substr(0, 80),
      project               ? "project"
      : flag == "--dataset" ? "dataset"
                            : "table",
      project ? "lowercase letters, digits and hyphens" : "letters, digits and underscores"));
}

}  // namespace

void RegisterBigQuery(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "bigquery-schema",
      "Print the BigQuery table (JSON schema and DDL) the history topic loads into, and the SQL "
      "of as-of, log, timeline and complete_through there (docs/bigquery.md)");
  auto table = std::make_shared<BigQueryTable>();
  auto json = std::make_shared<bool>(false);
  auto ddl = std::make_shared<bool>(false);
  cmd->add_option("--project", table->project, "Google Cloud project (default: bq's default)");
  cmd->add_option("--dataset", table->dataset, "Dataset")->capture_default_str();
  cmd->add_option("--table", table->table, "Table")->capture_default_str();
  cmd->add_flag("--json", *json,
                "Only the table's JSON schema (the list of {name, type, mode} that bq mk takes)");
  cmd->add_flag("--ddl", *ddl, "Only the CREATE TABLE statement (for bq query)")
      ->excludes("--json");
  cmd->callback([&ctx, table, json, ddl] {
    ctx.action = [table, json, ddl]() -> Status {
      if (!table->project.empty()) RETURN_IF_ERROR(CheckName("--project", table->project, true));
      RETURN_IF_ERROR(CheckName("--dataset", table->dataset, false));
      RETURN_IF_ERROR(CheckName("--table", table->table, false));
      if (*json || *ddl) {
        std::cout << (*json ? BigQuerySchemaJson() : BigQueryDdl(*table));
        return Status::OK();
      }
      std::cout << "-- The table's JSON schema (save it as schema.json for `bq mk --table "
                   "--schema schema.json`):\n";
      std::string schema = BigQuerySchemaJson();
      for (size_t start = 0; start < schema.size();) {
        size_t end = schema.find('\n', start);
        std::cout << "-- " << schema.substr(start, end - start) << "\n";
        start = end + 1;
      }
      std::cout << "\n"
                << BigQueryDdl(*table) << "\n"
                << BigQueryAsOfSql(*table) << "\n"
                << BigQueryLogSql(*table) << "\n"
                << BigQueryTimelineSql(*table) << "\n"
                << BigQueryCompleteThroughSql(*table);
      std::cout.flush();
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
