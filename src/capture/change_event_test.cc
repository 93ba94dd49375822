#include "capture/change_event.h"

#include <nlohmann/json.hpp>

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

Timestamp T(const char* text) { return ParseTimestamp(text).value(); }

Campaign Row() {
  Campaign c;
  c.id = 7;
  c.customer_id = 3;
  c.name = "Caf\xc3\xa9 \"sale\" \xf0\x9f\x8e\x89";
  c.status = CampaignStatus::kActive;
  c.priority = 1;
  c.trigger_event = "app_open";
  c.content = R"({"body":"a\\b","title":"x"})";
  c.version = 4;
  c.created_at = T("2026-01-01T00:00:00Z");
  c.updated_at = T("2026-01-02T00:00:00.000001Z");
  c.updated_by = "user:1";
  return c;
}

ChangeEvent LogEvent() {
  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  e.op = ChangeOp::kUpdated;
  e.campaign_id = 7;
  e.customer_id = 3;
  e.version = 4;
  e.event_time = T("2026-01-02T00:00:00.000001Z");
  e.actor = "user:1";
  e.transaction_id = "42";
  e.row = Row();
  e.source_position = "1001";
  return e;
}

TEST(ChangeEventTest, EncodesTheDocumentedForm) {
  ChangeEvent e = LogEvent();
  e.row->name = "n";
  EXPECT_EQ(EncodeChangeMessage(e),
            R"({"schema_version":1,"capture":"log","op":"updated","campaign_id":7,)"
            R"("customer_id":3,"version":4,"event_time":"2026-01-02T00:00:00.000001Z",)"
            R"("actor":"user:1","transaction_id":"42","source_position":"1001",)"
            R"("row":{"id":7,"customer_id":3,"name":"n","status":"active","priority":1,)"
            R"("trigger_event":"app_open","audience_segment":"","start_at":null,"end_at":null,)"
            R"("frequency_cap":0,"version":4,"created_at":"2026-01-01T00:00:00.000000Z",)"
            R"("updated_at":"2026-01-02T00:00:00.000001Z","updated_by":"user:1",)"
            R"("content":{"body":"a\\b","title":"x"}}})");
}

TEST(ChangeEventTest, LogAndNotifyMessagesRoundTrip) {
  ChangeEvent log = LogEvent();
  ASSERT_OK_AND_ASSIGN(auto back, DecodeChangeMessage(EncodeChangeMessage(log)));
  EXPECT_EQ(back, log);

  ChangeEvent notify;
  notify.capture = CaptureMode::kNotify;
  notify.op = ChangeOp::kUpdated;
  notify.campaign_id = 7;
  notify.customer_id = 3;
  notify.version = 5;
  notify.event_time = T("2026-01-03");
  ASSERT_OK_AND_ASSIGN(back, DecodeChangeMessage(EncodeChangeMessage(notify)));
  EXPECT_EQ(back, notify);
  EXPECT_FALSE(back.row.has_value());

  ChangeEvent tombstone = notify;
  tombstone.op = ChangeOp::kDeleted;
  tombstone.row = Row();
  tombstone.version = 5;  // the last version (4) + 1
  ASSERT_OK_AND_ASSIGN(back, DecodeChangeMessage(EncodeChangeMessage(tombstone)));
  EXPECT_EQ(back, tombstone);
}

TEST(ChangeEventTest, DecodesHandWrittenMessagesAndIgnoresUnknownFields) {
  ASSERT_OK_AND_ASSIGN(
      auto e, DecodeChangeMessage(R"({"schema_version":1,"capture":"notify","op":"created",)"
                                  R"("campaign_id":9,"customer_id":2,"version":1,)"
                                  R"("event_time":"2026-05-01T10:00:00Z","trace":"abc"})"));
  EXPECT_EQ(e.capture, CaptureMode::kNotify);
  EXPECT_EQ(e.op, ChangeOp::kCreated);
  EXPECT_EQ(e.actor, "");
  EXPECT_EQ(e.source_position, "");
}

TEST(ChangeEventTest, TransactionFieldsRoundTripAsVersion3) {
  ChangeEvent e = LogEvent();
  e.txn_seq = 981;
  e.txn_changes = 2001;
  std::string wire = EncodeChangeMessage(e);
  EXPECT_THAT(wire, ::testing::StartsWith("{\"schema_version\":3,"));
  ASSERT_OK_AND_ASSIGN(ChangeEvent back, DecodeChangeMessage(wire));
  EXPECT_EQ(back, e);
  // Without a transaction number the message stays version 1 (the reference design's notify
  // messages, and readers that predate version 3).
  EXPECT_THAT(EncodeChangeMessage(LogEvent()), ::testing::StartsWith("{\"schema_version\":1,"));
  ASSERT_OK_AND_ASSIGN(std::vector<ChangeEvent> in_batch,
                       DecodeChangeMessages(EncodeChangeBatch(std::vector<ChangeEvent>{e, e})));
  ASSERT_EQ(in_batch.size(), 2u);
  EXPECT_EQ(in_batch[1].txn_changes, 2001);
}

TEST(ChangeEventTest, DecodeErrorsNameTheField) {
  auto mutate = [](std::function<void(nlohmann::json&)> f) {
    auto j = nlohmann::json::parse(EncodeChangeMessage(LogEvent()));
    f(j);
    return DecodeChangeMessage(j.dump());
  };
  using J = nlohmann::json;
  EXPECT_THAT(mutate([](J& j) { j["schema_version"] = 5; }),
              StatusIsWith(StatusCode::kInvalidArgument,
                           "schema_version: 5 is newer than the supported 4"));
  EXPECT_THAT(mutate([](J& j) { j["schema_version"] = 2; }),
              StatusIsWith(StatusCode::kInvalidArgument, "schema_version: 2 is a change batch"));
  // Version 3 requires the transaction fields.
  EXPECT_THAT(mutate([](J& j) { j["schema_version"] = 3; }),
              StatusIsWith(StatusCode::kInvalidArgument, "txn_seq: missing"));
  EXPECT_THAT(mutate([](J& j) {
                j["schema_version"] = 3;
                j["txn_seq"] = -1;
                j["txn_changes"] = 1;
              }),
              StatusIsWith(StatusCode::kInvalidArgument, "txn_seq: must be >= 0"));
  EXPECT_THAT(mutate([](J& j) {
                j["schema_version"] = 3;
                j["txn_seq"] = 0;
                j["txn_changes"] = 2;
              }),
              StatusIsWith(StatusCode::kInvalidArgument, "txn_changes: is set but txn_seq is 0"));
  EXPECT_THAT(mutate([](J& j) { j.erase("schema_version"); }),
              StatusIsWith(StatusCode::kInvalidArgument, "schema_version: missing"));
  EXPECT_THAT(mutate([](J& j) { j["capture"] = "cdc"; }),
              StatusIsWith(StatusCode::kInvalidArgument, "capture: unknown value 'cdc'"));
  EXPECT_THAT(mutate([](J& j) { j["op"] = "removed"; }),
              StatusIsWith(StatusCode::kInvalidArgument, "op: unknown value 'removed'"));
  EXPECT_THAT(
      mutate([](J& j) { j["campaign_id"] = "7"; }),
      StatusIsWith(StatusCode::kInvalidArgument, "campaign_id: must be an integer (got string)"));
  EXPECT_THAT(mutate([](J& j) { j["version"] = 0; }),
              StatusIsWith(StatusCode::kInvalidArgument, "version: must be positive"));
  EXPECT_THAT(mutate([](J& j) { j["event_time"] = "soon"; }),
              StatusIsWith(StatusCode::kInvalidArgument, "event_time"));
  EXPECT_THAT(mutate([](J& j) { j.erase("actor"); }),
              StatusIsWith(StatusCode::kInvalidArgument, "actor: missing"));
  EXPECT_THAT(mutate([](J& j) { j["row"] = nullptr; }),
              StatusIsWith(StatusCode::kInvalidArgument, "row: missing"));
  EXPECT_THAT(mutate([](J& j) { j["row"]["name"] = 5; }),
              StatusIsWith(StatusCode::kInvalidArgument, "row.name: must be a string"));
  EXPECT_THAT(mutate([](J& j) { j["row"].erase("content"); }),
              StatusIsWith(StatusCode::kInvalidArgument, "row.content: missing"));
  EXPECT_THAT(mutate([](J& j) { j["row"]["id"] = 8; }),
              StatusIsWith(StatusCode::kInvalidArgument, "row.id: 8 differs from campaign_id 7"));
  EXPECT_THAT(mutate([](J& j) { j["row"]["version"] = 3; }),
              StatusIsWith(StatusCode::kInvalidArgument, "row.version"));
  EXPECT_THAT(DecodeChangeMessage("{not json"),
              StatusIsWith(StatusCode::kInvalidArgument, "malformed"));
  EXPECT_THAT(DecodeChangeMessage("[]"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(ChangeEventTest, BuildsLogEventsFromCapturedRows) {
  CapturedChange c;
  c.seq = 12;
  c.transaction_id = "5";
  c.commit_time = T("2026-01-02");
  c.op = ChangeOp::kDeleted;
  c.actor = "user:9";
  c.version = 5;
  c.row = Row();
  ChangeEvent e = ChangeEventFromCapture(c);
  EXPECT_EQ(e.capture, CaptureMode::kLog);
  EXPECT_EQ(e.op, ChangeOp::kDeleted);
  EXPECT_EQ(e.campaign_id, 7);
  EXPECT_EQ(e.customer_id, 3);
  EXPECT_EQ(e.version, 5);
  EXPECT_EQ(e.event_time, c.commit_time);
  EXPECT_EQ(e.actor, "user:9");
  EXPECT_EQ(e.transaction_id, "5");
  EXPECT_EQ(e.source_position, "12");
  EXPECT_EQ(e.row, c.row);
  ASSERT_OK_AND_ASSIGN(auto back, DecodeChangeMessage(EncodeChangeMessage(e)));
  EXPECT_EQ(back, e);
}

TEST(ChangeEventTest, ABatchCarriesSeveralChangesInOrderAndASingleMessageReadsAsOne) {
  ChangeEvent a = LogEvent();
  ChangeEvent b = LogEvent();
  b.campaign_id = 8;
  b.row->id = 8;
  b.version = 2;
  b.row->version = 2;
  std::vector<ChangeEvent> events = {a, b};
  std::string batch = EncodeChangeBatch(events);
  EXPECT_TRUE(batch.starts_with(R"({"schema_version":2,"changes":[{"schema_version":1,)")) << batch;
  EXPECT_EQ(batch, AssembleChangeBatch(
                       std::vector<std::string>{EncodeChangeMessage(a), EncodeChangeMessage(b)}));
  ASSERT_OK_AND_ASSIGN(auto back, DecodeChangeMessages(batch));
  EXPECT_EQ(back, events);
  ASSERT_OK_AND_ASSIGN(back, DecodeChangeMessages(EncodeChangeMessage(a)));
  EXPECT_EQ(back, std::vector<ChangeEvent>{a});
  // The single-change reader does not half-understand a batch.
  EXPECT_THAT(DecodeChangeMessage(batch),
              StatusIsWith(StatusCode::kInvalidArgument, "is a change batch"));
}

TEST(ChangeEventTest, HeartbeatsRoundTripAndAreNoChange) {
  CaptureHeartbeat h{.seq = 4711, .at = *ParseTimestamp("2026-11-03T14:05:00.000001Z")};
  std::string wire = EncodeCaptureHeartbeat(h);
  EXPECT_EQ(
      wire,
      R"({"schema_version":4,"heartbeat":{"txn_seq":4711,"at":"2026-11-03T14:05:00.000001Z"}})");
  ASSERT_OK_AND_ASSIGN(ChangeTopicMessage m, DecodeChangeTopicMessage(wire));
  ASSERT_TRUE(m.heartbeat.has_value());
  EXPECT_EQ(*m.heartbeat, h);
  EXPECT_TRUE(m.events.empty());
  EXPECT_THAT(DecodeChangeMessages(wire), StatusIsWith(StatusCode::kInvalidArgument, "heartbeat"));
  EXPECT_THAT(DecodeChangeTopicMessage(R"({"schema_version":4})"),
              StatusIsWith(StatusCode::kInvalidArgument, "heartbeat: missing"));
  EXPECT_THAT(
      DecodeChangeTopicMessage(R"({"schema_version":4,"heartbeat":{"txn_seq":-1,"at":"x"}})"),
      StatusIsWith(StatusCode::kInvalidArgument, "heartbeat.txn_seq"));
  ASSERT_OK_AND_ASSIGN(m, DecodeChangeTopicMessage(EncodeChangeMessage(LogEvent())));
  EXPECT_FALSE(m.heartbeat.has_value());
  EXPECT_EQ(m.events.size(), 1u);
}

TEST(ChangeEventTest, ABadBatchIsRefusedAsAWholeNamingTheChange) {
  using J = nlohmann::json;
  J good = J::parse(EncodeChangeMessage(LogEvent()));
  J bad = good;
  bad["row"]["id"] = 9;
  EXPECT_THAT(DecodeChangeMessages(J{{"schema_version", 2}, {"changes", {good, bad}}}.dump()),
              StatusIsWith(StatusCode::kInvalidArgument,
                           "change batch: changes[1]: row.id: 9 differs from campaign_id 7"));
  EXPECT_THAT(DecodeChangeMessages(J{{"schema_version", 2}}.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "changes: missing"));
  EXPECT_THAT(DecodeChangeMessages(J{{"schema_version", 2}, {"changes", J::array()}}.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "changes: empty"));
  EXPECT_THAT(DecodeChangeMessages(J{{"schema_version", 2}, {"changes", "x"}}.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "changes: must be an array"));
  EXPECT_THAT(DecodeChangeMessages(J{{"schema_version", 5}, {"changes", {good}}}.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "5 is newer than the supported 4"));
  // A batch inside a batch is not a change.
  J nested = {{"schema_version", 2}, {"changes", {good}}};
  EXPECT_THAT(DecodeChangeMessages(J{{"schema_version", 2}, {"changes", {nested}}}.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "changes[0]"));
  EXPECT_THAT(DecodeChangeMessages("{not json"),
              StatusIsWith(StatusCode::kInvalidArgument, "malformed"));
  EXPECT_THAT(DecodeChangeMessages("[]"), StatusIs(StatusCode::kInvalidArgument));
}

// ---- bounded input -----------------------------------------------------------------------------

constexpr size_t kMaxMessageBytes = 1024;

TEST(ChangeEventBoundedInputTest, DataLargerThanABusMessageIsRefusedUnparsed) {
  std::string big = EncodeChangeMessage(LogEvent());
  big.insert(big.size() - 1, ",\"padding\":\"" + std::string(kMaxChangeMessageBytes, 'p') + "\"");
  for (auto decode : {+[](std::string_view d) { return DecodeChangeMessage(d).status(); },
                      +[](std::string_view d) { return DecodeChangeTopicMessage(d).status(); }}) {
    Status s = decode(big);
    EXPECT_THAT(s, StatusIsWith(StatusCode::kInvalidArgument, "more than the limit of 10485760"));
    EXPECT_LE(s.message().size(), kMaxMessageBytes);
  }
}

TEST(ChangeEventBoundedInputTest, ABatchOfMoreThanTheLimitOfChangesIsRefused) {
  std::string batch = R"({"schema_version":2,"changes":[)";
  for (size_t i = 0; i <= kMaxChangeBatchChanges; ++i) batch += (i ? ",{}" : "{}");
  batch += "]}";
  EXPECT_THAT(DecodeChangeMessages(batch),
              StatusIsWith(StatusCode::kInvalidArgument, "10001 changes, more than the limit"));
}

TEST(ChangeEventBoundedInputTest, ErrorsQuoteAtMostAnExcerpt) {
  std::string huge(4 * 1024 * 1024, 'x');
  nlohmann::json j = nlohmann::json::parse(EncodeChangeMessage(LogEvent()));
  std::vector<std::string> bad;
  bad.push_back(R"({"schema_version":1,"capture":")" + huge);  // unterminated string
  for (const char* field : {"capture", "op", "event_time"}) {
    nlohmann::json m = j;
    m[field] = huge;
    bad.push_back(m.dump());
  }
  nlohmann::json m = j;
  m["row"]["status"] = huge;
  bad.push_back(m.dump());
  m = j;
  m["row"][huge] = 1;
  bad.push_back(m.dump());
  bad.push_back(R"({"schema_version":2,"changes":[)" + m.dump() + "]}");
  for (size_t i = 0; i < bad.size(); ++i) {
    Result<std::vector<ChangeEvent>> r = DecodeChangeMessages(bad[i]);
    ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << i;
    EXPECT_LE(r.status().message().size(), kMaxMessageBytes)
        << i << ": " << r.status().message().substr(0, 2000);
  }
}

// Found by hand while writing the fuzz targets: a message of deeply nested brackets crashed the
// decoder (serializing the parsed value recursed once per level and overflowed the stack).
TEST(ChangeEventBoundedInputTest, DeeplyNestedDataIsRefusedWithoutCrashing) {
  nlohmann::json j = nlohmann::json::parse(EncodeChangeMessage(LogEvent()));
  std::string deep = std::string(200000, '[') + std::string(200000, ']');
  std::string text = j.dump();
  text.insert(text.size() - 1, ",\"extra\":" + deep);
  EXPECT_THAT(DecodeChangeMessages(text),
              StatusIsWith(StatusCode::kInvalidArgument, "nest more than 64 levels"));
  std::string content = R"({"a":)" + std::string(40, '[') + std::string(40, ']') + "}";
  j["row"]["content"] = nlohmann::json::parse(content);
  EXPECT_THAT(DecodeChangeMessages(j.dump()),
              StatusIsWith(StatusCode::kInvalidArgument, "row.content: nests arrays and objects"));
}

}  // namespace
}  // namespace ch
