#include "history/bigquery_schema.h"

#include <nlohmann/json.hpp>

#include "common/time_util.h"
#include "history/history_record.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIsWith;

HistoryRecord Sample() {
  HistoryRecord r;
  r.customer_id = 7;
  r.campaign_id = 42;
  r.version = 3;
  r.event_time = *ParseTimestamp("2026-11-03T14:05:00.123456Z");
  r.actor = "user:701";
  r.transaction_id = "981";
  r.snapshot = R"({"id":42,"priority":2,"name":"Zoë 🎉","content":{}})";
  r.txn_seq = 12;
  r.txn_changes = 2;
  return r;
}

TEST(BigQuerySchemaTest, TheSchemaIsTheRecordsJsonRowColumnForColumn) {
  auto row = nlohmann::ordered_json::parse(HistoryRecordToJson(Sample()));
  std::vector<std::string> keys, columns;
  for (auto it = row.begin(); it != row.end(); ++it) keys.push_back(it.key());
  for (const BigQueryField& f : HistoryTableSchema()) columns.push_back(f.name);
  EXPECT_EQ(keys, columns);
  auto schema = nlohmann::json::parse(BigQuerySchemaJson());
  ASSERT_TRUE(schema.is_array());
  EXPECT_EQ(schema[0], (nlohmann::json{{"name", "customer_id"},
                                       {"type", "INT64"},
                                       {"mode", "REQUIRED"},
                                       {"description", "tenant"}}));
}

TEST(BigQuerySchemaTest, DdlAndQueriesNameTheTable) {
  BigQueryTable t{.project = "acme-prod"};
  std::string ddl = BigQueryDdl(t);
  EXPECT_NE(ddl.find("CREATE TABLE IF NOT EXISTS `acme-prod.inapp_campaigns.campaign_history`"),
            std::string::npos);
  EXPECT_NE(ddl.find("PARTITION BY DATE(event_time)"), std::string::npos);
  EXPECT_NE(ddl.find("CLUSTER BY customer_id, campaign_id"), std::string::npos);
  EXPECT_NE(ddl.find("snapshot        JSON      NOT NULL"), std::string::npos) << ddl;
  for (const BigQueryField& f : HistoryTableSchema()) {
    EXPECT_EQ(f.description.find('"'), std::string::npos) << f.name << ": quoted with \" in DDL";
  }
  for (const std::string& sql : {BigQueryAsOfSql(t), BigQueryLogSql(t), BigQueryTimelineSql(t)}) {
    EXPECT_NE(sql.find("PARTITION BY campaign_id, version"), std::string::npos)
        << "deduplicates on (campaign_id, version): " << sql;
  }
  EXPECT_NE(BigQueryTable{}.Quoted().find("`inapp_campaigns.campaign_history`"), std::string::npos);
}

TEST(BigQuerySchemaTest, RowsAreCheckedAsASubscriptionWithTheTableSchemaWould) {
  EXPECT_OK(ValidateBigQueryRow(HistoryRecordToJson(Sample())));
  auto with = [](const char* field, nlohmann::json v) {
    auto j = nlohmann::json::parse(HistoryRecordToJson(Sample()));
    if (v.is_discarded()) {
      j.erase(field);
    } else {
      j[field] = v;
    }
    return ValidateBigQueryRow(j.dump());
  };
  EXPECT_OK(with("customer_id", "7"));  // INT64 from a decimal string
  EXPECT_OK(with("ingested_at", nullptr));
  EXPECT_OK(with("snapshot", nlohmann::json::object({{"id", 1}})));
  EXPECT_THAT(with("customer_id", "seven"), StatusIsWith(StatusCode::kInvalidArgument, "INT64"));
  EXPECT_THAT(with("customer_id", 18446744073709551615ull),
              StatusIsWith(StatusCode::kInvalidArgument, "range"));
  EXPECT_THAT(with("event_time", "yesterday"),
              StatusIsWith(StatusCode::kInvalidArgument, "RFC 3339"));
  EXPECT_THAT(with("snapshot", "{not json"), StatusIsWith(StatusCode::kInvalidArgument, "JSON"));
  EXPECT_THAT(with("actor", nullptr), StatusIsWith(StatusCode::kInvalidArgument, "REQUIRED"));
  EXPECT_THAT(with("version", nlohmann::json(nlohmann::json::value_t::discarded)),
              StatusIsWith(StatusCode::kInvalidArgument, "missing"));
  EXPECT_THAT(with("priority", 3), StatusIsWith(StatusCode::kInvalidArgument, "not a column"));
  // Heartbeat rows are not records: a subscription must filter them out.
  EXPECT_THAT(ValidateBigQueryRow(CaptureHeartbeatToJson({.seq = 1, .at = Sample().event_time})),
              StatusIsWith(StatusCode::kInvalidArgument, "heartbeat"));
  EXPECT_THAT(ValidateBigQueryRow("[1]"), StatusIsWith(StatusCode::kInvalidArgument, "object"));
}

}  // namespace
}  // namespace ch
