#include "workload/workload.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <streambuf>

#include "common/text.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::testing::HasSubstr;
using Json = nlohmann::json;

Json Row(int64_t id, int64_t customer, int64_t priority) {
  return Json{{"id", id},
              {"customer_id", customer},
              {"name", "Banner: Café 🎉 #" + std::to_string(id)},
              {"status", "draft"},
              {"priority", priority},
              {"trigger_event", "app_open"},
              {"audience_segment", "vip"},
              {"start_at", "2024-01-02T03:00:00Z"},
              {"end_at", nullptr},
              {"frequency_cap", 3},
              {"content",
               {{"title", "Hi \"there\""},
                {"body", "Body text"},
                {"button_text", "Go"},
                {"image_url", "https://cdn.example.com/img/0000abcd.png"}}},
              {"updated_by", "user:201"}};
}

Json Shift(int64_t delta, int64_t lo, Json hi, int64_t n) {
  return Json{{"delta", delta}, {"lo", lo}, {"hi", std::move(hi)}, {"n", n}};
}

// One valid line of every op.
Json Header() {
  return Json{{"op", "header"},
              {"seq", 0},
              {"at", "2024-01-01T00:00:00Z"},
              {"format", "campaign-history-workload/1"},
              {"params", {{"seed", 1}}},
              {"big_customers", {1}}};
}
Json SeedLine() {
  return Json{{"op", "seed"},
              {"seq", 1},
              {"at", "2024-01-01T00:00:00Z"},
              {"customer_id", 2},
              {"rows", {Row(1, 2, 1), Row(2, 2, 2)}},
              {"versions", 2}};
}
Json CreateLine() {
  return Json{{"op", "create"},
              {"seq", 5},
              {"at", "2024-01-01T00:00:20Z"},
              {"customer_id", 2},
              {"row", Row(11, 2, 1)},
              {"shift", Shift(1, 1, nullptr, 2)},
              {"actor", "user:201"},
              {"versions", 3}};
}
Json UpdateLine() {
  return Json{
      {"op", "update"},
      {"seq", 5},
      {"at", "2024-01-01T00:00:20Z"},
      {"customer_id", 2},
      {"id", 11},
      {"set", {{"status", "active"}, {"end_at", nullptr}, {"updated_by", "worker:scheduler"}}},
      {"actor", "worker:scheduler"},
      {"versions", 1}};
}
Json BurstLine() {
  Json j = UpdateLine();
  j["op"] = "burst";
  j["set"] = Json{{"content", {{"title", "x"}, {"body", "ü"}}}, {"updated_by", "worker:scheduler"}};
  j["burst_id"] = 4;
  j["burst_pos"] = 2;
  j["burst_len"] = 7;
  return j;
}
Json ReorderLine() {
  return Json{{"op", "reorder"},
              {"seq", 5},
              {"at", "2024-01-01T00:00:20Z"},
              {"customer_id", 2},
              {"id", 11},
              {"from", 4},
              {"to", 1},
              {"shift", Shift(1, 1, 3, 3)},
              {"updated_by", "user:205"},
              {"actor", "user:205"},
              {"versions", 4}};
}
Json DeleteLine() {
  return Json{
      {"op", "delete"}, {"seq", 5},      {"at", "2024-01-01T00:00:20Z"},      {"customer_id", 2},
      {"id", 11},       {"priority", 2}, {"shift", Shift(-1, 3, nullptr, 4)}, {"actor", "user:201"},
      {"versions", 5}};
}
Json FooterLine() {
  return Json{{"op", "footer"},
              {"seq", 9},
              {"at", "2024-01-01T00:01:00Z"},
              {"ops", 7},
              {"counts", {{"seed", 1}, {"update", 7}}},
              {"seed_rows", 2},
              {"expected_versions", 9},
              {"campaigns_final", 2},
              {"max_op_versions", 1},
              {"campaigns_ever", 2},
              {"something_new", {1, 2}}};
}

Result<WorkloadLine> Parse(const Json& j, int64_t line_no = 7) {
  return ParseWorkloadLine(j.dump(), line_no);
}

TEST(WorkloadOpTest, NamesRoundTrip) {
  for (WorkloadOp op :
       {WorkloadOp::kHeader, WorkloadOp::kSeed, WorkloadOp::kCreate, WorkloadOp::kUpdate,
        WorkloadOp::kBurst, WorkloadOp::kReorder, WorkloadOp::kDelete, WorkloadOp::kFooter}) {
    ASSERT_OK_AND_ASSIGN(WorkloadOp back, ParseWorkloadOp(WorkloadOpName(op)));
    EXPECT_EQ(back, op);
  }
  EXPECT_THAT(ParseWorkloadOp("upsert"), StatusIsWith(StatusCode::kInvalidArgument, "upsert"));
}

TEST(WorkloadParseTest, Header) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(Header(), 1));
  EXPECT_EQ(l.op, WorkloadOp::kHeader);
  EXPECT_FALSE(l.applied());
  EXPECT_EQ(l.line_no, 1);
  EXPECT_EQ(l.versions, 0);
  EXPECT_EQ(l.header().format, "campaign-history-workload/1");
  EXPECT_EQ(l.header().params_json, R"({"seed":1})");
  EXPECT_EQ(l.header().big_customers, std::vector<int64_t>{1});
  EXPECT_EQ(l.at, *ParseTimestamp("2024-01-01T00:00:00Z"));
}

TEST(WorkloadParseTest, Seed) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(SeedLine()));
  EXPECT_EQ(l.op, WorkloadOp::kSeed);
  EXPECT_EQ(l.seq, 1);
  EXPECT_EQ(l.versions, 2);
  EXPECT_EQ(l.customer_id(), 2);
  ASSERT_EQ(l.seed().rows.size(), 2u);
  const Campaign& r = l.seed().rows[1];
  EXPECT_EQ(r.id, 2);
  EXPECT_EQ(r.priority, 2);
  EXPECT_EQ(r.name, "Banner: Café 🎉 #2");
  EXPECT_EQ(r.start_at, *ParseTimestamp("2024-01-02T03:00:00Z"));
  EXPECT_FALSE(r.end_at.has_value());
  EXPECT_EQ(r.updated_by, "user:201");
  EXPECT_THAT(r.content, HasSubstr(R"("title":"Hi \"there\"")"));
}

TEST(WorkloadParseTest, Create) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(CreateLine()));
  EXPECT_EQ(l.op, WorkloadOp::kCreate);
  EXPECT_TRUE(l.applied());
  EXPECT_EQ(l.versions, 3);
  EXPECT_EQ(l.create().row.id, 11);
  EXPECT_EQ(l.create().actor, "user:201");
  EXPECT_EQ(l.create().shift, (WorkloadShift{1, 1, std::nullopt, 2}));
  EXPECT_EQ(l.Where(), "workload line 7 (seq 5, create)");
}

TEST(WorkloadParseTest, Update) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(UpdateLine()));
  EXPECT_EQ(l.op, WorkloadOp::kUpdate);
  const WorkloadUpdate& u = l.update();
  EXPECT_EQ(u.id, 11);
  EXPECT_EQ(u.actor, "worker:scheduler");
  EXPECT_EQ(u.set.status, CampaignStatus::kActive);
  ASSERT_TRUE(u.set.end_at.has_value());  // set to null, not left alone
  EXPECT_FALSE(u.set.end_at->has_value());
  EXPECT_FALSE(u.set.start_at.has_value());
  EXPECT_FALSE(u.burst.has_value());
}

TEST(WorkloadParseTest, Burst) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(BurstLine()));
  EXPECT_EQ(l.op, WorkloadOp::kBurst);
  ASSERT_TRUE(l.update().burst.has_value());
  EXPECT_EQ(l.update().burst->burst_id, 4);
  EXPECT_EQ(l.update().burst->burst_pos, 2);
  EXPECT_EQ(l.update().burst->burst_len, 7);
  EXPECT_EQ(l.update().set.content, R"({"body":"ü","title":"x"})");
}

TEST(WorkloadParseTest, Reorder) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(ReorderLine()));
  const WorkloadReorder& r = l.reorder();
  EXPECT_EQ(r.from, 4);
  EXPECT_EQ(r.to, 1);
  EXPECT_EQ(r.shift, (WorkloadShift{1, 1, 3, 3}));
  EXPECT_EQ(r.actor, "user:205");
  EXPECT_EQ(l.versions, 4);
}

TEST(WorkloadParseTest, Delete) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(DeleteLine()));
  EXPECT_EQ(l.del().id, 11);
  EXPECT_EQ(l.del().priority, 2);
  EXPECT_EQ(l.del().shift, (WorkloadShift{-1, 3, std::nullopt, 4}));
  EXPECT_EQ(l.versions, 5);
}

TEST(WorkloadParseTest, FooterKeepsUnknownStatistics) {
  ASSERT_OK_AND_ASSIGN(WorkloadLine l, Parse(FooterLine()));
  const WorkloadFooter& f = l.footer();
  EXPECT_EQ(f.ops, 7);
  EXPECT_EQ(f.expected_versions, 9);
  EXPECT_EQ(f.seed_rows, 2);
  EXPECT_EQ(f.campaigns_final, 2);
  EXPECT_EQ(f.counts.at("update"), 7);
  EXPECT_EQ(f.max_op_versions, 1);
  EXPECT_EQ(f.campaigns_ever, 2);
  EXPECT_THAT(f.raw_json, HasSubstr(R"("something_new":[1,2])"));
  EXPECT_EQ(l.versions, 0);
}

TEST(WorkloadParseTest, ToleratesCarriageReturn) {
  EXPECT_OK(ParseWorkloadLine(UpdateLine().dump() + "\r", 1));
}

// A malformed variant of a valid line, and what the message must name besides the line number.
struct BadCase {
  std::string name;
  std::function<Json()> make;
  // Substrings the InvalidArgument message must contain (besides "workload line 7").
  std::vector<std::string> names;
};

class WorkloadParseErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(WorkloadParseErrorTest, NamesLineSeqAndField) {
  const BadCase& c = GetParam();
  Result<WorkloadLine> r = Parse(c.make(), 7);
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(r.status().message(), HasSubstr("workload line 7"));
  for (const std::string& s : c.names) EXPECT_THAT(r.status().message(), HasSubstr(s));
}

template <typename F>
std::function<Json()> Mutate(Json (*base)(), F f) {
  return [base, f]() {
    Json j = base();
    f(j);
    return j;
  };
}

INSTANTIATE_TEST_SUITE_P(
    Cases, WorkloadParseErrorTest,
    ::testing::Values(
        BadCase{"UnknownOp",
                Mutate(UpdateLine, [](Json& j) { j["op"] = "upsert"; }),
                {"seq 5", "field 'op'", "upsert"}},
        BadCase{"OpNotString",
                Mutate(UpdateLine, [](Json& j) { j["op"] = 3; }),
                {"seq 5", "field 'op'"}},
        BadCase{"MissingOp",
                Mutate(UpdateLine, [](Json& j) { j.erase("op"); }),
                {"seq 5", "field 'op'", "missing"}},
        BadCase{"MissingSeq",
                Mutate(UpdateLine, [](Json& j) { j.erase("seq"); }),
                {"update", "field 'seq'", "missing"}},
        BadCase{"NegativeSeq", Mutate(UpdateLine, [](Json& j) { j["seq"] = -1; }), {"field 'seq'"}},
        BadCase{"MissingAt",
                Mutate(UpdateLine, [](Json& j) { j.erase("at"); }),
                {"seq 5", "field 'at'"}},
        BadCase{"BadAt",
                Mutate(UpdateLine, [](Json& j) { j["at"] = "yesterday"; }),
                {"seq 5", "field 'at'", "yesterday"}},
        BadCase{"MissingId",
                Mutate(UpdateLine, [](Json& j) { j.erase("id"); }),
                {"seq 5", "field 'id'", "missing"}},
        BadCase{"IdIsString",
                Mutate(UpdateLine, [](Json& j) { j["id"] = "11"; }),
                {"seq 5", "field 'id'", "integer"}},
        BadCase{"IdIsFloat",
                Mutate(UpdateLine, [](Json& j) { j["id"] = 11.5; }),
                {"seq 5", "field 'id'", "integer"}},
        BadCase{"IdTooLarge",
                Mutate(UpdateLine, [](Json& j) { j["id"] = 18446744073709551615ULL; }),
                {"seq 5", "field 'id'", "range"}},
        BadCase{"CustomerZero",
                Mutate(UpdateLine, [](Json& j) { j["customer_id"] = 0; }),
                {"seq 5", "field 'customer_id'"}},
        BadCase{"UnknownField",
                Mutate(UpdateLine, [](Json& j) { j["colour"] = "red"; }),
                {"seq 5", "field 'colour'", "unknown"}},
        BadCase{"BadStatus",
                Mutate(UpdateLine, [](Json& j) { j["set"]["status"] = "on"; }),
                {"seq 5", "field 'set'", "status"}},
        BadCase{"ReadOnlyInSet",
                Mutate(UpdateLine, [](Json& j) { j["set"]["priority"] = 2; }),
                {"seq 5", "field 'set'", "priority"}},
        BadCase{"EmptyName",
                Mutate(UpdateLine, [](Json& j) { j["set"]["name"] = ""; }),
                {"seq 5", "field 'set'", "name"}},
        BadCase{"NegativeCap",
                Mutate(UpdateLine, [](Json& j) { j["set"]["frequency_cap"] = -1; }),
                {"seq 5", "field 'set'", "frequency_cap"}},
        BadCase{"SetNotObject",
                Mutate(UpdateLine, [](Json& j) { j["set"] = "x"; }),
                {"seq 5", "field 'set'"}},
        BadCase{"NothingToSet",
                Mutate(UpdateLine,
                       [](Json& j) {
                         j["set"] = {{"updated_by", "worker:scheduler"}};
                       }),
                {"seq 5", "field 'set'", "no field"}},
        BadCase{"SetActorDiffers",
                Mutate(UpdateLine, [](Json& j) { j["set"]["updated_by"] = "user:9"; }),
                {"seq 5", "field 'set.updated_by'"}},
        BadCase{"EmptyActor",
                Mutate(UpdateLine, [](Json& j) { j["actor"] = ""; }),
                {"seq 5", "field 'actor'"}},
        BadCase{"ZeroVersions",
                Mutate(UpdateLine, [](Json& j) { j["versions"] = 0; }),
                {"seq 5", "field 'versions'"}},
        BadCase{"MissingVersions",
                Mutate(UpdateLine, [](Json& j) { j.erase("versions"); }),
                {"seq 5", "field 'versions'", "missing"}},
        BadCase{"BurstWithoutPos",
                Mutate(BurstLine, [](Json& j) { j.erase("burst_pos"); }),
                {"seq 5", "burst", "field 'burst_pos'"}},
        BadCase{"BurstPosPastLen",
                Mutate(BurstLine, [](Json& j) { j["burst_pos"] = 7; }),
                {"seq 5", "field 'burst_pos'"}},
        BadCase{"BurstFieldsOnUpdate",
                Mutate(UpdateLine, [](Json& j) { j["burst_id"] = 1; }),
                {"seq 5", "field 'burst_id'", "unknown"}},
        BadCase{"RowMissingName",
                Mutate(CreateLine, [](Json& j) { j["row"].erase("name"); }),
                {"seq 5", "field 'row.name'", "missing"}},
        BadCase{"RowNameTooLong",
                Mutate(CreateLine, [](Json& j) { j["row"]["name"] = std::string(201, 'n'); }),
                {"seq 5", "field 'row'", "name"}},
        BadCase{"RowBadTime",
                Mutate(CreateLine, [](Json& j) { j["row"]["start_at"] = "2024-13-01"; }),
                {"seq 5", "field 'row'", "start_at"}},
        BadCase{"RowEndBeforeStart",
                Mutate(CreateLine, [](Json& j) { j["row"]["end_at"] = "2024-01-01T00:00:00Z"; }),
                {"seq 5", "field 'row'", "end_at"}},
        BadCase{"RowContentNotObject",
                Mutate(CreateLine, [](Json& j) { j["row"]["content"] = "hello"; }),
                {"seq 5", "field 'row'", "content"}},
        BadCase{"RowWithVersion",
                Mutate(CreateLine, [](Json& j) { j["row"]["version"] = 1; }),
                {"seq 5", "field 'row.version'"}},
        BadCase{"RowOtherCustomer",
                Mutate(CreateLine, [](Json& j) { j["row"]["customer_id"] = 3; }),
                {"seq 5", "field 'row.customer_id'"}},
        BadCase{"RowIdZero",
                Mutate(CreateLine, [](Json& j) { j["row"]["id"] = 0; }),
                {"seq 5", "field 'row.id'"}},
        BadCase{"RowActorDiffers",
                Mutate(CreateLine, [](Json& j) { j["row"]["updated_by"] = "user:9"; }),
                {"seq 5", "field 'row.updated_by'"}},
        BadCase{"MissingShift",
                Mutate(CreateLine, [](Json& j) { j.erase("shift"); }),
                {"seq 5", "field 'shift'", "missing"}},
        BadCase{"ShiftDelta",
                Mutate(CreateLine, [](Json& j) { j["shift"]["delta"] = 2; }),
                {"seq 5", "field 'shift.delta'"}},
        BadCase{"ShiftNoHi",
                Mutate(CreateLine, [](Json& j) { j["shift"].erase("hi"); }),
                {"seq 5", "field 'shift.hi'"}},
        BadCase{"ShiftHiBelowLo",
                Mutate(ReorderLine, [](Json& j) { j["shift"]["hi"] = 0; }),
                {"seq 5", "field 'shift.hi'"}},
        BadCase{"ShiftNegativeN",
                Mutate(CreateLine, [](Json& j) { j["shift"]["n"] = -1; }),
                {"seq 5", "field 'shift.n'"}},
        BadCase{"ShiftUnknownKey",
                Mutate(CreateLine, [](Json& j) { j["shift"]["step"] = 1; }),
                {"seq 5", "field 'shift.step'"}},
        BadCase{"ReorderToEqualsFrom",
                Mutate(ReorderLine, [](Json& j) { j["to"] = 4; }),
                {"seq 5", "field 'to'"}},
        BadCase{"ReorderUpdatedByDiffers",
                Mutate(ReorderLine, [](Json& j) { j["updated_by"] = "user:1"; }),
                {"seq 5", "field 'updated_by'"}},
        BadCase{"DeletePriorityZero",
                Mutate(DeleteLine, [](Json& j) { j["priority"] = 0; }),
                {"seq 5", "field 'priority'"}},
        BadCase{"SeedRowsEmpty",
                Mutate(SeedLine, [](Json& j) { j["rows"] = Json::array(); }),
                {"seq 1", "field 'rows'"}},
        BadCase{"SeedRowBadStatus",
                Mutate(SeedLine, [](Json& j) { j["rows"][1]["status"] = "gone"; }),
                {"seq 1", "field 'rows[1]'", "status"}},
        BadCase{"SeedRowPriorityZero",
                Mutate(SeedLine, [](Json& j) { j["rows"][0]["priority"] = 0; }),
                {"seq 1", "field 'rows[0].priority'"}},
        BadCase{"HeaderOtherFormat",
                Mutate(Header, [](Json& j) { j["format"] = "campaign-history-workload/2"; }),
                {"seq 0", "field 'format'", "/2"}},
        BadCase{"HeaderBigNotArray",
                Mutate(Header, [](Json& j) { j["big_customers"] = 1; }),
                {"seq 0", "field 'big_customers'"}},
        BadCase{"FooterMissingExpected",
                Mutate(FooterLine, [](Json& j) { j.erase("expected_versions"); }),
                {"seq 9", "field 'expected_versions'", "missing"}},
        BadCase{"FooterCountNotInt",
                Mutate(FooterLine, [](Json& j) { j["counts"]["update"] = "7"; }),
                {"seq 9", "field 'counts.update'"}},
        BadCase{"NotAnObject", []() { return Json::array({1, 2}); }, {"JSON object"}}),
    [](const ::testing::TestParamInfo<BadCase>& info) { return info.param.name; });

TEST(WorkloadParseTest, MalformedJsonNamesLine) {
  EXPECT_THAT(ParseWorkloadLine(R"({"op":"update","seq":5,)", 12),
              StatusIsWith(StatusCode::kInvalidArgument, "workload line 12: malformed JSON"));
  EXPECT_THAT(ParseWorkloadLine("", 3),
              StatusIsWith(StatusCode::kInvalidArgument, "workload line 3: empty line"));
  // Invalid UTF-8 inside a string is malformed JSON.
  EXPECT_THAT(ParseWorkloadLine("{\"op\":\"\xff\"}", 4),
              StatusIsWith(StatusCode::kInvalidArgument, "workload line 4: malformed JSON"));
}

// ---- bounded input -----------------------------------------------------------------------------

// An error about a bad line quotes at most an excerpt of it: a few hundred bytes, whatever the
// line's size.
constexpr size_t kMaxMessageBytes = 1024;

TEST(WorkloadBoundedInputTest, UnterminatedHugeStringQuotesAnExcerpt) {
  std::string line = R"({"op":"update","seq":5,"at":"2024-01-01T00:00:20Z","actor":")" +
                     std::string(10 * 1024 * 1024, 'a');
  Result<WorkloadLine> r = ParseWorkloadLine(line, 3);
  ASSERT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument, "workload line 3: malformed JSON"));
  EXPECT_LE(r.status().message().size(), kMaxMessageBytes) << r.status().message().substr(0, 2000);
  EXPECT_THAT(r.status().message(), HasSubstr("aaaa"));
}

TEST(WorkloadBoundedInputTest, HugeValuesAndKeysQuoteAnExcerpt) {
  std::string huge(4 * 1024 * 1024, 'k');
  std::vector<std::function<void(Json&)>> mutations = {
      [&](Json& j) { j[huge] = 1; },     // unknown key
      [&](Json& j) { j["id"] = huge; },  // mistyped value
      [&](Json& j) { j["op"] = huge; },  // unknown op
      [&](Json& j) { j["at"] = huge; },  // bad time
      [&](Json& j) {
        j["set"] = Json{{"status", huge}};
      },  // bad enum value
      [&](Json& j) {
        j["set"] = Json{{huge, 1}};
      },                                                         // unknown campaign field
      [&](Json& j) { j["customer_id"] = Json::array({huge}); },  // dumped value
      [&](Json& j) {
        j["set"] = Json{{"updated_by", huge}};
      },  // differs from actor
      [&](Json& j) {
        j["set"] = Json{{"start_at", huge + "Z"}};
      },  // nested bad time
  };
  for (size_t i = 0; i < mutations.size(); ++i) {
    Json j = UpdateLine();
    mutations[i](j);
    Result<WorkloadLine> r = Parse(j);
    ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << i;
    EXPECT_LE(r.status().message().size(), kMaxMessageBytes)
        << i << ": " << r.status().message().substr(0, 2000);
  }
  Json reorder = ReorderLine();
  reorder["updated_by"] = huge;
  Result<WorkloadLine> r = Parse(reorder);
  ASSERT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument, "differs from actor"));
  EXPECT_LE(r.status().message().size(), kMaxMessageBytes);
  Json header = Header();
  header["format"] = huge;
  r = Parse(header);
  ASSERT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument, "unsupported format"));
  EXPECT_LE(r.status().message().size(), kMaxMessageBytes);
}

TEST(WorkloadBoundedInputTest, LineLongerThanTheLimitIsRefused) {
  Json update = UpdateLine();
  update["set"] = Json{{"name", std::string(kMaxWorkloadLineBytes, 'n')}};
  std::string text = Header().dump() + "\n" + update.dump() + "\n";
  auto reader = WorkloadReader::FromStream(std::make_unique<std::istringstream>(text), "big.jsonl");
  ASSERT_OK(reader->Next());
  Result<std::optional<WorkloadLine>> r = reader->Next();
  EXPECT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument,
                              "big.jsonl: workload line 2: longer "
                              "than the limit of 16777216 bytes"));
  EXPECT_LE(r.status().message().size(), kMaxMessageBytes);
  EXPECT_THAT(reader->Next(), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseWorkloadLine(update.dump(), 1),
              StatusIsWith(StatusCode::kInvalidArgument, "longer than the limit"));
}

TEST(WorkloadBoundedInputTest, LinesUpToTheLimitAndAcrossReadChunksAreRead) {
  // Lines of every length around the reader's 64 KiB read chunk, and a last line without its
  // newline, come back whole.
  std::string text;
  std::vector<size_t> sizes;
  for (size_t n : {size_t{65534}, size_t{65535}, size_t{65536}, size_t{65537}}) {
    Json u = UpdateLine();
    u["seq"] = static_cast<int64_t>(sizes.size() + 1);
    u["set"] = Json{{"content", {{"body", ""}}}};
    size_t base = u.dump().size();
    u["set"]["content"]["body"] = std::string(n - base, 'b');
    ASSERT_EQ(u.dump().size(), n);
    text += u.dump() + "\n";
    sizes.push_back(u["set"]["content"].dump().size());
  }
  text.pop_back();
  auto reader = WorkloadReader::FromStream(std::make_unique<std::istringstream>(text), "mem");
  for (size_t content_size : sizes) {
    ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> line, reader->Next());
    ASSERT_TRUE(line.has_value());
    EXPECT_EQ(line->update().set.content->size(), content_size);
  }
  ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> end, reader->Next());
  EXPECT_FALSE(end.has_value());
}

// An endless stream of one byte that counts what was read from it (like /dev/zero).
class EndlessBuf : public std::streambuf {
 public:
  explicit EndlessBuf(char c) { buffer_.fill(c); }
  size_t consumed() const { return consumed_; }

 protected:
  int_type underflow() override {
    // Stop eventually, so that a reader without a limit fails the test instead of the machine.
    if (consumed_ >= size_t{256} * 1024 * 1024) return traits_type::eof();
    consumed_ += buffer_.size();
    setg(buffer_.data(), buffer_.data(), buffer_.data() + buffer_.size());
    return traits_type::to_int_type(buffer_[0]);
  }

 private:
  std::array<char, 4096> buffer_;
  size_t consumed_ = 0;
};

TEST(WorkloadBoundedInputTest, EndlessInputFailsAfterOneLineLimit) {
  for (char c : {'\0', '{'}) {
    auto buf = std::make_shared<EndlessBuf>(c);
    struct Stream : std::istream {
      explicit Stream(std::shared_ptr<EndlessBuf> b) : std::istream(b.get()), buf(std::move(b)) {}
      std::shared_ptr<EndlessBuf> buf;
    };
    auto reader = WorkloadReader::FromStream(std::make_unique<Stream>(buf), "/dev/zero");
    Result<std::optional<WorkloadLine>> r = reader->Next();
    ASSERT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument,
                                "/dev/zero: workload line 1: longer than the limit"));
    EXPECT_LE(r.status().message().size(), kMaxMessageBytes);
    EXPECT_LE(buf->consumed(), kMaxWorkloadLineBytes + 128 * 1024);
  }
}

// ---- WorkloadReader ----------------------------------------------------------------------------

std::unique_ptr<WorkloadReader> ReaderOf(const std::vector<Json>& lines) {
  std::string text;
  for (const Json& j : lines) text += j.dump() + "\n";
  return WorkloadReader::FromStream(std::make_unique<std::istringstream>(text), "mem.jsonl");
}

TEST(WorkloadReaderTest, ReadsEveryLineThenEnds) {
  Json update = UpdateLine();
  update["seq"] = 2;
  Json footer = FooterLine();
  auto reader = ReaderOf({Header(), SeedLine(), update, footer});
  std::vector<WorkloadOp> ops;
  while (true) {
    ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> line, reader->Next());
    if (!line) break;
    EXPECT_EQ(line->line_no, reader->lines_read());
    ops.push_back(line->op);
  }
  EXPECT_EQ(ops, (std::vector<WorkloadOp>{WorkloadOp::kHeader, WorkloadOp::kSeed,
                                          WorkloadOp::kUpdate, WorkloadOp::kFooter}));
  ASSERT_TRUE(reader->header().has_value());
  ASSERT_TRUE(reader->footer().has_value());
  EXPECT_EQ(reader->footer()->expected_versions, 9);
  // Stays at the end.
  ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> again, reader->Next());
  EXPECT_FALSE(again.has_value());
}

TEST(WorkloadReaderTest, HeaderAndFooterAreOptional) {
  auto reader = ReaderOf({UpdateLine()});
  ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> line, reader->Next());
  ASSERT_TRUE(line.has_value());
  EXPECT_FALSE(reader->header().has_value());
}

TEST(WorkloadReaderTest, RejectsSeqThatDoesNotIncrease) {
  auto reader = ReaderOf({Header(), SeedLine(), SeedLine()});
  ASSERT_OK(reader->Next());
  ASSERT_OK(reader->Next());
  Result<std::optional<WorkloadLine>> r = reader->Next();
  EXPECT_THAT(r, StatusIsWith(StatusCode::kInvalidArgument, "mem.jsonl: workload line 3 (seq 1"));
  EXPECT_THAT(r.status().message(), HasSubstr("does not increase"));
  // A failed reader stays failed.
  EXPECT_THAT(reader->Next(), StatusIs(StatusCode::kInvalidArgument));
}

TEST(WorkloadReaderTest, RejectsLineAfterFooterAndLateHeader) {
  Json update = UpdateLine();
  update["seq"] = 10;
  auto after_footer = ReaderOf({FooterLine(), update});
  ASSERT_OK(after_footer->Next());
  EXPECT_THAT(after_footer->Next(),
              StatusIsWith(StatusCode::kInvalidArgument, "line after the footer"));

  Json header = Header();
  header["seq"] = 6;
  auto late_header = ReaderOf({UpdateLine(), header});
  ASSERT_OK(late_header->Next());
  EXPECT_THAT(late_header->Next(), StatusIsWith(StatusCode::kInvalidArgument, "first line"));
}

TEST(WorkloadReaderTest, BadLineNamesFileAndLine) {
  std::string text = Header().dump() + "\n" + "{not json\n";
  auto reader = WorkloadReader::FromStream(std::make_unique<std::istringstream>(text), "ops.jsonl");
  ASSERT_OK(reader->Next());
  EXPECT_THAT(reader->Next(),
              StatusIsWith(StatusCode::kInvalidArgument, "ops.jsonl: workload line 2"));
}

TEST(WorkloadReaderTest, OpenMissingFileIsNotFoundNamingIt) {
  ::ch::testing::TempDir dir;
  std::string path = dir.File("nope.jsonl");
  EXPECT_THAT(WorkloadReader::Open(path), StatusIsWith(StatusCode::kNotFound, path));
  EXPECT_THAT(WorkloadReader::Open(dir.path().string()),
              StatusIsWith(StatusCode::kInvalidArgument, "directory"));
}

TEST(WorkloadReaderTest, OpensFile) {
  ::ch::testing::TempDir dir;
  std::string path = dir.File("w.jsonl");
  {
    std::ofstream out(path);
    out << Header().dump() << "\n" << SeedLine().dump() << "\n";
  }
  ASSERT_OK_AND_ASSIGN(auto reader, WorkloadReader::Open(path));
  EXPECT_EQ(reader->name(), path);
  ASSERT_OK(reader->Next());
  ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> seed, reader->Next());
  ASSERT_TRUE(seed.has_value());
  EXPECT_EQ(seed->line_no, 2);
}

TEST(WorkloadReaderTest, WholeFileHelpers) {
  Json update = UpdateLine();
  update["seq"] = 2;
  std::string text = Header().dump() + "\n" + SeedLine().dump() + "\n" + update.dump() + "\n";
  ASSERT_OK_AND_ASSIGN(std::vector<WorkloadLine> lines, ParseWorkloadText(text));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[2].op, WorkloadOp::kUpdate);
  EXPECT_THAT(ParseWorkloadText(text + text, "twice.jsonl"),
              StatusIsWith(StatusCode::kInvalidArgument, "twice.jsonl: workload line 4"));

  ::ch::testing::TempDir dir;
  std::string path = dir.File("w.jsonl");
  {
    std::ofstream out(path);
    out << text;
  }
  ASSERT_OK_AND_ASSIGN(std::vector<WorkloadLine> from_file, ReadWorkloadFile(path));
  EXPECT_EQ(from_file.size(), 3u);
  EXPECT_THAT(ReadWorkloadFile(dir.File("none.jsonl")), StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace ch
