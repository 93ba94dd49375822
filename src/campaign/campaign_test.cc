#include "campaign/campaign.h"

#include <nlohmann/json.hpp>

#include "campaign/campaign_json.h"
#include "campaign/change.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

Timestamp T(const char* text) { return ParseTimestamp(text).value(); }

Campaign Sample() {
  Campaign c;
  c.id = 7;
  c.customer_id = 3;
  c.name = "Spring sale";
  c.status = CampaignStatus::kActive;
  c.priority = 2;
  c.trigger_event = "app_open";
  c.audience_segment = "ios";
  c.start_at = T("2026-03-01T00:00:00Z");
  c.end_at = T("2026-03-31T23:59:59.5Z");
  c.frequency_cap = 3;
  c.content = R"({"body":"Hi","title":"Sale"})";
  c.version = 4;
  c.created_at = T("2026-02-01T10:00:00.000001Z");
  c.updated_at = T("2026-02-02T11:30:00.123456Z");
  c.updated_by = "user:1";
  return c;
}

TEST(CampaignTest, StatusNamesRoundTrip) {
  for (auto s : {CampaignStatus::kDraft, CampaignStatus::kActive, CampaignStatus::kPaused,
                 CampaignStatus::kEnded}) {
    ASSERT_OK_AND_ASSIGN(auto parsed, ParseCampaignStatus(CampaignStatusName(s)));
    EXPECT_EQ(parsed, s);
  }
  EXPECT_EQ(CampaignStatusName(CampaignStatus::kPaused), "paused");
  EXPECT_THAT(ParseCampaignStatus("archived"),
              StatusIsWith(StatusCode::kInvalidArgument,
                           "status: unknown value 'archived' (expected draft, active, paused, "
                           "ended)"));
}

TEST(CampaignTest, ChangeAndCaptureNames) {
  EXPECT_EQ(ChangeOpName(ChangeOp::kCreated), "created");
  EXPECT_EQ(ChangeOpName(ChangeOp::kUpdated), "updated");
  EXPECT_EQ(ChangeOpName(ChangeOp::kDeleted), "deleted");
  EXPECT_EQ(*ParseChangeOp("deleted"), ChangeOp::kDeleted);
  EXPECT_THAT(ParseChangeOp("removed"), StatusIsWith(StatusCode::kInvalidArgument, "removed"));
  EXPECT_EQ(CaptureModeName(CaptureMode::kNotify), "notify");
  EXPECT_EQ(*ParseCaptureMode("log"), CaptureMode::kLog);
  EXPECT_THAT(ParseCaptureMode("cdc"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(CampaignTest, SnapshotHasFieldsInContractOrder) {
  EXPECT_EQ(CampaignToJson(Sample()),
            R"({"id":7,"customer_id":3,"name":"Spring sale","status":"active","priority":2,)"
            R"("trigger_event":"app_open","audience_segment":"ios",)"
            R"("start_at":"2026-03-01T00:00:00.000000Z","end_at":"2026-03-31T23:59:59.500000Z",)"
            R"("frequency_cap":3,"version":4,"created_at":"2026-02-01T10:00:00.000001Z",)"
            R"("updated_at":"2026-02-02T11:30:00.123456Z","updated_by":"user:1",)"
            R"("content":{"body":"Hi","title":"Sale"}})");
  Campaign c = Sample();
  c.start_at.reset();
  c.end_at.reset();
  std::string json = CampaignToJson(c);
  EXPECT_NE(json.find(R"("start_at":null,"end_at":null)"), std::string::npos) << json;
}

TEST(CampaignTest, SnapshotRoundTripsByteForByte) {
  Campaign c = Sample();
  // Quotes, backslashes, control characters, accents, CJK and an emoji.
  c.name = "Say \"hi\" \\ back\tnow\n\x01 caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89";
  c.trigger_event = "/path/with/slashes";
  ASSERT_OK_AND_ASSIGN(c.content,
                       CanonicalContent(R"({"title":"\ud83c\udf89 \"x\"","body":"a\\b"})"));
  std::string json = CampaignToJson(c);
  ASSERT_OK_AND_ASSIGN(Campaign back, CampaignFromJson(json));
  EXPECT_EQ(back, c);
  EXPECT_EQ(CampaignToJson(back), json);
  // The writer escapes exactly as nlohmann does, so a re-serialization is identical.
  EXPECT_EQ(nlohmann::ordered_json::parse(json).dump(), json);
}

TEST(CampaignTest, StringWriterEscapesExactlyLikeNlohmann) {
  for (int c = 0; c < 0x80; ++c) {
    std::string s = "a" + std::string(1, static_cast<char>(c)) + "b";
    std::string ours;
    AppendJsonString(ours, s);
    EXPECT_EQ(ours, nlohmann::json(s).dump()) << "byte " << c;
  }
  std::string utf8 = "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x8e\x89";
  std::string ours;
  AppendJsonString(ours, utf8);
  EXPECT_EQ(ours, nlohmann::json(utf8).dump());
}

TEST(CampaignTest, TimestampWriterMatchesFormatTimestamp) {
  for (const char* t :
       {"1970-01-01T00:00:00Z", "1969-12-31T23:59:59.999999Z", "2000-02-29T12:00:00.5Z",
        "2026-11-03T14:05:00.123456Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z"}) {
    std::string out;
    AppendJsonTimestamp(out, T(t));
    EXPECT_EQ(out, "\"" + FormatTimestamp(T(t)) + "\"") << t;
  }
}

TEST(CampaignTest, SnapshotParserNamesTheField) {
  std::string json = CampaignToJson(Sample());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = json;
    s.replace(s.find(from), from.size(), to);
    return s;
  };
  EXPECT_THAT(CampaignFromJson(with("\"priority\":2", "\"priority\":\"2\"")),
              StatusIsWith(StatusCode::kInvalidArgument, "priority: must be an integer"));
  EXPECT_THAT(CampaignFromJson(with("\"status\":\"active\"", "\"status\":\"archived\"")),
              StatusIsWith(StatusCode::kInvalidArgument, "status: unknown value 'archived'"));
  EXPECT_THAT(CampaignFromJson(with("\"id\":7,", "\"id\":7,\"color\":1,")),
              StatusIsWith(StatusCode::kInvalidArgument, "color: unknown field"));
  EXPECT_THAT(CampaignFromJson(with("\"id\":7,", "")),
              StatusIsWith(StatusCode::kInvalidArgument, "id: missing"));
  EXPECT_THAT(CampaignFromJson(with("\"content\":{", "\"content\":[{")),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(CampaignFromJson(with("2026-03-01T00:00:00.000000Z", "yesterday")),
              StatusIsWith(StatusCode::kInvalidArgument, "start_at"));
  EXPECT_THAT(CampaignFromJson("{\"id\":"),
              StatusIsWith(StatusCode::kInvalidArgument, "malformed"));
  EXPECT_THAT(CampaignFromJson("[]"), StatusIsWith(StatusCode::kInvalidArgument, "JSON object"));
}

TEST(CampaignTest, ValidationNamesFieldAndProblem) {
  EXPECT_OK(ValidateCampaign(Sample()));
  Campaign c = Sample();
  c.name = "";
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "name: must be 1-200 characters (got 0)"));
  c.name = std::string(200, 'x');
  EXPECT_OK(ValidateCampaign(c));
  // 200 characters of 4 bytes each are fine: the limit counts characters, not bytes.
  c.name.clear();
  for (int i = 0; i < 200; ++i) c.name += "\xf0\x9f\x8e\x89";
  EXPECT_OK(ValidateCampaign(c));
  c.name += "x";
  EXPECT_THAT(ValidateCampaign(c), StatusIsWith(StatusCode::kInvalidArgument, "(got 201)"));
  c.name = "bad \xc3";
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "name: not valid UTF-8"));

  c = Sample();
  c.status = static_cast<CampaignStatus>(9);
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "status: unknown value"));
  c = Sample();
  c.content = "[1,2]";
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "content: must be a JSON object"));
  c.content = "{\"a\":";
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "content: must be a JSON object"));
  c.content = "{\"a\":\"" + std::string(69990, 'x') + "\"}";
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument,
                           "content: 69998 bytes exceeds the 65536-byte limit"));
  c = Sample();
  c.end_at = c.start_at;
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "end_at: must be after start_at"));
  c.start_at.reset();
  EXPECT_OK(ValidateCampaign(c));
  c = Sample();
  c.frequency_cap = -1;
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "frequency_cap: must be 0..1000000"));
  c.frequency_cap = 1'000'001;
  EXPECT_THAT(ValidateCampaign(c), StatusIs(StatusCode::kInvalidArgument));
  c = Sample();
  c.customer_id = 0;
  EXPECT_THAT(ValidateCampaign(c), StatusIsWith(StatusCode::kInvalidArgument, "customer_id"));
  c = Sample();
  c.trigger_event = std::string(201, 'e');
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument, "trigger_event: must be at most 200"));

  EXPECT_OK(ValidateActor("worker:scheduler"));
  EXPECT_THAT(ValidateActor(""), StatusIsWith(StatusCode::kInvalidArgument,
                                              "actor: must be 1-128 characters (got 0)"));
  EXPECT_THAT(ValidateActor(std::string(129, 'a')), StatusIs(StatusCode::kInvalidArgument));
}

// Content nested deeper than a message can carry it is refused where it enters; deeper input
// still (a line of nested brackets) used to overflow the stack when the parsed value was
// serialized.
TEST(CampaignTest, ContentNestsAtMostTheLimit) {
  auto nested = [](size_t levels) {
    // The content object is level 1.
    return "{\"a\":" + std::string(levels - 1, '[') + std::string(levels - 1, ']') + "}";
  };
  Campaign c = Sample();
  c.content = nested(kMaxContentNesting);
  EXPECT_OK(ValidateCampaign(c));
  c.content = nested(kMaxContentNesting + 1);
  EXPECT_THAT(ValidateCampaign(c),
              StatusIsWith(StatusCode::kInvalidArgument,
                           "content: nests arrays and objects more than 32 levels deep"));
  EXPECT_OK(CanonicalContent(nested(kMaxContentNesting)));
  EXPECT_THAT(CanonicalContent(nested(kMaxContentNesting + 1)),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseCampaignPatch(R"({"content":)" + nested(kMaxContentNesting + 1) + "}"),
              StatusIsWith(StatusCode::kInvalidArgument, "content: nests arrays and objects"));
  EXPECT_THAT(ParseCampaignPatch(R"({"content":)" + nested(500000) + "}"),
              StatusIsWith(StatusCode::kInvalidArgument, "nest more than 64 levels deep"));
}

TEST(CampaignTest, CanonicalContentSortsKeysAndKeepsBytes) {
  ASSERT_OK_AND_ASSIGN(auto c,
                       CanonicalContent(" { \"b\" : 1, \"a\" : [true, null, \"\xc3\xa9\"] } "));
  EXPECT_EQ(c, "{\"a\":[true,null,\"\xc3\xa9\"],\"b\":1}");
  ASSERT_OK_AND_ASSIGN(auto e, CanonicalContent("{}"));
  EXPECT_EQ(e, "{}");
  EXPECT_THAT(CanonicalContent("\"text\""),
              StatusIsWith(StatusCode::kInvalidArgument, "content: must be a JSON object"));
  EXPECT_THAT(CanonicalContent("{"), StatusIsWith(StatusCode::kInvalidArgument, "content"));
  std::string big = "{\"a\":\"" + std::string(70000 - 8, 'x') + "\"}";
  EXPECT_THAT(CanonicalContent(big),
              StatusIsWith(StatusCode::kInvalidArgument,
                           "content: 70000 bytes exceeds the 65536-byte limit"));
}

TEST(CampaignTest, ParsesPatch) {
  ASSERT_OK_AND_ASSIGN(
      CampaignPatch p,
      ParseCampaignPatch(R"({"name":"x","status":"paused","end_at":null,"start_at":"2026-01-02",)"
                         R"("frequency_cap":5,"content":{"z":1,"a":2},"updated_by":"user:1"})"));
  EXPECT_EQ(p.name, "x");
  EXPECT_EQ(p.status, CampaignStatus::kPaused);
  ASSERT_TRUE(p.end_at.has_value());
  EXPECT_FALSE(p.end_at->has_value());
  EXPECT_EQ(**p.start_at, T("2026-01-02T00:00:00Z"));
  EXPECT_EQ(p.frequency_cap, 5);
  EXPECT_EQ(p.content, R"({"a":2,"z":1})");
  EXPECT_EQ(p.updated_by, "user:1");
  EXPECT_FALSE(p.trigger_event.has_value());
  EXPECT_FALSE(p.empty());

  Campaign c = Sample();
  ApplyPatch(p, c);
  EXPECT_EQ(c.name, "x");
  EXPECT_FALSE(c.end_at.has_value());
  EXPECT_EQ(c.trigger_event, "app_open");

  EXPECT_THAT(ParseCampaignPatch(R"({"priority":1})"),
              StatusIsWith(StatusCode::kInvalidArgument, "priority: read-only"));
  EXPECT_THAT(ParseCampaignPatch(R"({"version":1})"),
              StatusIsWith(StatusCode::kInvalidArgument, "version: read-only"));
  EXPECT_THAT(ParseCampaignPatch(R"({"colour":1})"),
              StatusIsWith(StatusCode::kInvalidArgument, "colour: unknown field"));
  EXPECT_THAT(ParseCampaignPatch(R"({"name":5})"),
              StatusIsWith(StatusCode::kInvalidArgument, "name: must be a string (got number)"));
  EXPECT_THAT(ParseCampaignPatch(R"({"status":"archived"})"),
              StatusIsWith(StatusCode::kInvalidArgument, "status: unknown value 'archived'"));
  EXPECT_THAT(ParseCampaignPatch(R"({"content":"{}"})"),
              StatusIsWith(StatusCode::kInvalidArgument, "content: must be a JSON object"));
  EXPECT_THAT(ParseCampaignPatch(R"([1])"), StatusIsWith(StatusCode::kInvalidArgument, "patch"));
  ASSERT_OK_AND_ASSIGN(CampaignPatch only_actor, ParseCampaignPatch(R"({"updated_by":"user:1"})"));
  EXPECT_TRUE(only_actor.empty());
}

TEST(CampaignTest, ParsesWorkloadRow) {
  ASSERT_OK_AND_ASSIGN(
      Campaign c,
      ParseCampaignRow(
          R"({"audience_segment":"ios","content":{"title":"T","body":"B"},"customer_id":1,)"
          R"("end_at":null,"frequency_cap":3,"id":12,"name":"Banner","priority":4,)"
          R"("start_at":"2024-01-01T01:00:00Z","status":"draft","trigger_event":"signup",)"
          R"("updated_by":"user:107"})"));
  EXPECT_EQ(c.id, 12);
  EXPECT_EQ(c.customer_id, 1);
  EXPECT_EQ(c.priority, 4);
  EXPECT_EQ(c.content, R"({"body":"B","title":"T"})");
  EXPECT_EQ(c.start_at, T("2024-01-01T01:00:00Z"));
  EXPECT_FALSE(c.end_at.has_value());
  EXPECT_EQ(c.version, 0);
  EXPECT_EQ(c.updated_by, "user:107");

  ASSERT_OK_AND_ASSIGN(Campaign minimal, ParseCampaignRow(R"({"customer_id":2,"name":"n"})"));
  EXPECT_EQ(minimal.id, 0);
  EXPECT_EQ(minimal.content, "{}");
  EXPECT_THAT(ParseCampaignRow(R"({"customer_id":2,"nmae":"n"})"),
              StatusIsWith(StatusCode::kInvalidArgument, "nmae: unknown field"));
  EXPECT_THAT(ParseCampaignRow(R"({"customer_id":2,"frequency_cap":1.5})"),
              StatusIsWith(StatusCode::kInvalidArgument, "frequency_cap: must be an integer"));
}

}  // namespace
}  // namespace ch
