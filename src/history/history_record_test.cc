#include "history/history_record.h"

#include <nlohmann/json.hpp>

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

HistoryRecord Sample() {
  HistoryRecord r;
  r.customer_id = 7;
  r.campaign_id = 42;
  r.version = 3;
  r.event_time = *ParseTimestamp("2026-11-03T14:05:00.123456Z");
  r.event_type = ChangeOp::kUpdated;
  r.actor = "user:701";
  r.transaction_id = "981";
  r.capture = CaptureMode::kLog;
  r.snapshot = R"({"id":42,"priority":2,"name":"caf\u00e9 \"quoted\" \\ 🎉","content":{}})";
  r.priority = 2;
  r.ingested_at = *ParseTimestamp("2026-11-03T14:05:01Z");
  r.txn_seq = 4711;
  r.txn_changes = 2;
  return r;
}

TEST(HistoryRecordTest, DebugStringIsCompact) {
  HistoryRecord r = Sample();
  EXPECT_EQ(DebugString(r), "c42@v3 updated p2 by user:701 tx 981");
  r.capture = CaptureMode::kNotify;
  r.missed_versions = 2;
  r.event_type = ChangeOp::kDeleted;
  EXPECT_EQ(DebugString(r), "c42@v3 deleted p2 by user:701 tx 981 notify missed 2");
}

TEST(HistoryRecordTest, JsonRowRoundTrips) {
  HistoryRecord r = Sample();
  std::string row = HistoryRecordToJson(r);
  ASSERT_OK_AND_ASSIGN(HistoryRecord back, HistoryRecordFromJson(row));
  EXPECT_EQ(back, r);
  EXPECT_EQ(back.snapshot, r.snapshot);  // byte for byte
}

TEST(HistoryRecordTest, HeartbeatRowsAreNotRecords) {
  CaptureHeartbeat h{.seq = 12, .at = *ParseTimestamp("2026-11-03T14:05:00Z")};
  std::string row = CaptureHeartbeatToJson(h);
  EXPECT_EQ(
      row, R"({"heartbeat":{"txn_seq":12,"at":"2026-11-03T14:05:00.000000Z"},"schema_version":2})");
  ASSERT_OK_AND_ASSIGN(HistoryMessage m, DecodeHistoryMessage(row));
  EXPECT_FALSE(m.record.has_value());
  ASSERT_TRUE(m.heartbeat.has_value());
  EXPECT_EQ(*m.heartbeat, h);
  ASSERT_OK_AND_ASSIGN(m, DecodeHistoryMessage(HistoryRecordToJson(Sample())));
  ASSERT_TRUE(m.record.has_value());
  EXPECT_EQ(*m.record, Sample());
  EXPECT_THAT(DecodeHistoryMessage(R"({"heartbeat":{"txn_seq":-1,"at":"2026-11-03T14:05:00Z"}})"),
              StatusIsWith(StatusCode::kInvalidArgument, "heartbeat.txn_seq"));
  EXPECT_THAT(DecodeHistoryMessage(R"({"heartbeat":3})"),
              StatusIsWith(StatusCode::kInvalidArgument, "heartbeat"));
}

TEST(HistoryRecordTest, JsonRowHasTheBigQueryColumnsInOrder) {
  std::string row = HistoryRecordToJson(Sample());
  auto j = nlohmann::ordered_json::parse(row);
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  EXPECT_THAT(keys, ::testing::ElementsAre("customer_id", "campaign_id", "version", "event_time",
                                           "event_type", "actor", "transaction_id", "capture",
                                           "missed_versions", "snapshot", "ingested_at", "txn_seq",
                                           "txn_changes", "schema_version"));
  EXPECT_EQ(j["event_time"], "2026-11-03T14:05:00.123456Z");
  EXPECT_TRUE(j["snapshot"].is_string());
  EXPECT_EQ(j["schema_version"], kHistoryRecordSchemaVersion);
}

TEST(HistoryRecordTest, UnsetIngestedAtIsNull) {
  HistoryRecord r = Sample();
  r.ingested_at = Timestamp{};
  auto j = nlohmann::json::parse(HistoryRecordToJson(r));
  EXPECT_TRUE(j["ingested_at"].is_null());
  ASSERT_OK_AND_ASSIGN(HistoryRecord back, HistoryRecordFromJson(j.dump()));
  EXPECT_EQ(back.ingested_at, Timestamp{});
}

TEST(HistoryRecordTest, AcceptsBigQueryExportShapes) {
  // BigQuery exports INT64 as strings and a JSON column as an object.
  auto j = nlohmann::json::parse(HistoryRecordToJson(Sample()));
  j["campaign_id"] = "42";
  j["snapshot"] = nlohmann::json::parse(R"({"id":42,"priority":5})");
  ASSERT_OK_AND_ASSIGN(HistoryRecord back, HistoryRecordFromJson(j.dump()));
  EXPECT_EQ(back.campaign_id, 42);
  EXPECT_EQ(back.priority, 5);
  EXPECT_EQ(back.snapshot, R"({"id":42,"priority":5})");
}

TEST(HistoryRecordTest, RejectsBadRowsNamingTheField) {
  auto with = [](const char* field, nlohmann::json v) {
    auto j = nlohmann::json::parse(HistoryRecordToJson(Sample()));
    if (v.is_discarded()) {
      j.erase(field);
    } else {
      j[field] = v;
    }
    return HistoryRecordFromJson(j.dump());
  };
  EXPECT_THAT(HistoryRecordFromJson("not json"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(HistoryRecordFromJson("[1]"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(with("schema_version", 3),
              StatusIsWith(StatusCode::kInvalidArgument, "schema_version"));
  EXPECT_THAT(with("txn_seq", -4), StatusIsWith(StatusCode::kInvalidArgument, "txn_seq"));
  EXPECT_THAT(with("txn_changes", "x"), StatusIsWith(StatusCode::kInvalidArgument, "txn_changes"));
  EXPECT_THAT(with("schema_version", nlohmann::json(nlohmann::json::value_t::discarded)),
              StatusIsWith(StatusCode::kInvalidArgument, "schema_version"));
  EXPECT_THAT(with("event_type", "renamed"),
              StatusIsWith(StatusCode::kInvalidArgument, "event_type"));
  EXPECT_THAT(with("capture", "poll"), StatusIsWith(StatusCode::kInvalidArgument, "capture"));
  EXPECT_THAT(with("event_time", "yesterday"),
              StatusIsWith(StatusCode::kInvalidArgument, "event_time"));
  EXPECT_THAT(with("version", 1.5), StatusIsWith(StatusCode::kInvalidArgument, "version"));
  EXPECT_THAT(with("snapshot", "{oops"), StatusIsWith(StatusCode::kInvalidArgument, "snapshot"));
  EXPECT_THAT(with("snapshot", "[]"), StatusIsWith(StatusCode::kInvalidArgument, "snapshot"));
  EXPECT_THAT(with("actor", nlohmann::json(nlohmann::json::value_t::discarded)),
              StatusIsWith(StatusCode::kInvalidArgument, "actor"));
}

TEST(HistoryRecordTest, ParsesTheDocumentedExampleRow) {
  // The example in docs/formats/history-record.md; keep them in sync.
  const char* row =
      R"({"customer_id":7,"campaign_id":42,"version":3,"event_time":"2026-11-03T14:05:00.123456Z",)"
      R"("event_type":"updated","actor":"user:701","transaction_id":"981","capture":"log",)"
      R"("missed_versions":0,"snapshot":"{\"id\":42,\"customer_id\":7,\"priority\":2}",)"
      R"("ingested_at":"2026-11-03T14:05:01.002000Z","schema_version":1})";
  ASSERT_OK_AND_ASSIGN(HistoryRecord r, HistoryRecordFromJson(row));
  EXPECT_EQ(DebugString(r), "c42@v3 updated p2 by user:701 tx 981");
  EXPECT_EQ(FormatTimestamp(r.ingested_at), "2026-11-03T14:05:01.002000Z");
}

TEST(HistoryRecordTest, BoundedInput) {
  constexpr size_t kMaxMessageBytes = 1024;
  std::string row = HistoryRecordToJson(Sample());
  std::string big = row;
  big.insert(big.size() - 1, ",\"padding\":\"" + std::string(kMaxHistoryRecordBytes, 'p') + "\"");
  Result<HistoryRecord> r = HistoryRecordFromJson(big);
  EXPECT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument, "more than the limit of 1048576"));
  EXPECT_LE(r.status().message().size(), kMaxMessageBytes);
  EXPECT_THAT(DecodeHistoryMessage(big), StatusIs(StatusCode::kInvalidArgument));

  std::string huge(512 * 1024, 'x');
  std::vector<std::string> bad = {R"({"customer_id":")" + huge};
  for (const char* field : {"event_type", "capture", "event_time"}) {
    nlohmann::json j = nlohmann::json::parse(row);
    j[field] = huge;
    bad.push_back(j.dump());
  }
  for (size_t i = 0; i < bad.size(); ++i) {
    r = HistoryRecordFromJson(bad[i]);
    ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << i;
    EXPECT_LE(r.status().message().size(), kMaxMessageBytes)
        << i << ": " << r.status().message().substr(0, 2000);
  }
}

// A row of deeply nested brackets crashed the reader: serializing the parsed value recursed once
// per level and overflowed the stack.
TEST(HistoryRecordTest, DeeplyNestedRowsAreRefusedWithoutCrashing) {
  std::string deep = std::string(200000, '[') + std::string(200000, ']');
  std::string row = HistoryRecordToJson(Sample());
  row.insert(row.size() - 1, ",\"extra\":" + deep);
  EXPECT_THAT(HistoryRecordFromJson(row),
              StatusIsWith(StatusCode::kInvalidArgument, "nest more than 64 levels"));
  nlohmann::json j = nlohmann::json::parse(HistoryRecordToJson(Sample()));
  j["snapshot"] = R"({"id":42,"content":)" + deep + "}";
  EXPECT_THAT(HistoryRecordFromJson(j.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "snapshot' nests more than 64"));
}

}  // namespace
}  // namespace ch
