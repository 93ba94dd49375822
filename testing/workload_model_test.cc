// Tests of the independent workload model (testing/workload_model.h), and the cross-check of
// this project's parser and model against the reference generator (gen_workload.py): the
// ReferenceWorkloadTest suite, run as its own ctest entry (testing/reference_generator.h).
#include "testing/workload_model.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "common/time_util.h"
#include "testing/reference_generator.h"
#include "testing/test_util.h"
#include "workload/replayer.h"
#include "workload/workload.h"

namespace ch::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

Json Row(int64_t id, int64_t customer, int64_t priority, const std::string& name,
         const std::string& by) {
  return Json{{"id", id},
              {"customer_id", customer},
              {"name", name},
              {"status", "draft"},
              {"priority", priority},
              {"trigger_event", "app_open"},
              {"audience_segment", "vip"},
              {"start_at", nullptr},
              {"end_at", nullptr},
              {"frequency_cap", 2},
              {"content", {{"title", "T" + std::to_string(id)}, {"body", "b"}}},
              {"updated_by", by}};
}

Json ShiftJ(int64_t delta, int64_t lo, Json hi, int64_t n) {
  return Json{{"delta", delta}, {"lo", lo}, {"hi", std::move(hi)}, {"n", n}};
}

WorkloadLine Line(Json j, int64_t seq) {
  j["seq"] = seq;
  j["at"] = "2024-01-01T00:00:00Z";
  Result<WorkloadLine> l = ParseWorkloadLine(j.dump(), seq + 1);
  EXPECT_OK(l) << j.dump();
  return std::move(l).value();
}

// A tiny workload for customer 3, written out by hand so each expected state can be derived
// from the format's text.
std::vector<WorkloadLine> Tiny() {
  std::vector<WorkloadLine> v;
  v.push_back(Line({{"op", "header"},
                    {"format", "campaign-history-workload/1"},
                    {"params", Json::object()},
                    {"big_customers", Json::array()}},
                   0));
  v.push_back(Line({{"op", "seed"},
                    {"customer_id", 3},
                    {"rows",
                     {Row(1, 3, 1, "Row 1", "user:301"), Row(2, 3, 2, "Row 2", "user:301"),
                      Row(3, 3, 3, "Row 3", "user:302")}},
                    {"versions", 3}},
                   1));
  v.push_back(Line({{"op", "create"},
                    {"customer_id", 3},
                    {"row", Row(4, 3, 1, "New 4", "user:305")},
                    {"shift", ShiftJ(1, 1, nullptr, 3)},
                    {"actor", "user:305"},
                    {"versions", 4}},
                   2));
  v.push_back(Line({{"op", "reorder"},
                    {"customer_id", 3},
                    {"id", 3},
                    {"from", 4},
                    {"to", 2},
                    {"shift", ShiftJ(1, 2, 3, 2)},
                    {"actor", "worker:ab-test"},
                    {"versions", 3}},
                   3));
  v.push_back(
      Line({{"op", "update"},
            {"customer_id", 3},
            {"id", 1},
            {"set",
             {{"status", "active"}, {"name", "Neu: Grüße 👋"}, {"updated_by", "worker:scheduler"}}},
            {"actor", "worker:scheduler"},
            {"versions", 1}},
           4));
  v.push_back(Line({{"op", "delete"},
                    {"customer_id", 3},
                    {"id", 4},
                    {"priority", 1},
                    {"shift", ShiftJ(-1, 2, nullptr, 3)},
                    {"actor", "user:304"},
                    {"versions", 4}},
                   5));
  v.push_back(
      Line({{"op", "footer"},
            {"ops", 4},
            {"counts", {{"seed", 1}, {"create", 1}, {"reorder", 1}, {"update", 1}, {"delete", 1}}},
            {"seed_rows", 3},
            {"expected_versions", 15},
            {"campaigns_final", 3}},
           6));
  return v;
}

constexpr const char* kAfterSeed =
    "c1@v1 p1 draft 'Row 1' by user:301; c2@v1 p2 draft 'Row 2' by user:301; "
    "c3@v1 p3 draft 'Row 3' by user:302";
constexpr const char* kAfterCreate =
    "c4@v1 p1 draft 'New 4' by user:305; c1@v2 p2 draft 'Row 1' by user:305; "
    "c2@v2 p3 draft 'Row 2' by user:305; c3@v2 p4 draft 'Row 3' by user:305";
constexpr const char* kAfterReorder =
    "c4@v1 p1 draft 'New 4' by user:305; c3@v3 p2 draft 'Row 3' by worker:ab-test; "
    "c1@v3 p3 draft 'Row 1' by worker:ab-test; c2@v3 p4 draft 'Row 2' by worker:ab-test";
constexpr const char* kAfterUpdate =
    "c4@v1 p1 draft 'New 4' by user:305; c3@v3 p2 draft 'Row 3' by worker:ab-test; "
    "c1@v4 p3 active 'Neu: Grüße 👋' by worker:scheduler; "
    "c2@v3 p4 draft 'Row 2' by worker:ab-test";
constexpr const char* kAfterDelete =
    "c3@v4 p1 draft 'Row 3' by user:304; c1@v5 p2 active 'Neu: Grüße 👋' by user:304; "
    "c2@v4 p3 draft 'Row 2' by user:304";

Timestamp T(int64_t seconds) {
  return *ParseTimestamp("2026-01-01T00:00:00Z") + Micros(seconds * 1000000);
}

TEST(WorkloadModelTest, AppliesTheFormatsMeaning) {
  std::vector<WorkloadLine> lines = Tiny();
  WorkloadModel model;
  const char* expected[] = {"",           kAfterSeed,   kAfterCreate, kAfterReorder,
                            kAfterUpdate, kAfterDelete, kAfterDelete};
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_OK(model.Apply(lines[i])) << lines[i].Where();
    EXPECT_EQ(model.RenderState(3), expected[i]) << "after " << lines[i].Where();
    ASSERT_OK(model.CheckInvariants());
  }
  EXPECT_EQ(model.TotalVersions(), 15);
  EXPECT_EQ(model.CampaignCount(), 3);
  EXPECT_EQ(model.Customers(), std::vector<int64_t>{3});
}

TEST(WorkloadModelTest, ReportsTheVersionsOfEachOp) {
  std::vector<WorkloadLine> lines = Tiny();
  WorkloadModel model;
  for (size_t i = 0; i < 5; ++i) ASSERT_OK(model.Apply(lines[i]));
  ASSERT_OK_AND_ASSIGN(std::optional<ModelOpResult> del, model.Apply(lines[5]));
  ASSERT_TRUE(del.has_value());
  EXPECT_EQ(del->seq, 5);
  EXPECT_EQ(del->shifted, 3);
  // The op's own row first (the tombstone: last version + 1), then shifted rows by id.
  EXPECT_EQ(del->changes(), (std::vector<RowChange>{{ChangeOp::kDeleted, 4, 3, 2},
                                                    {ChangeOp::kUpdated, 1, 3, 5},
                                                    {ChangeOp::kUpdated, 2, 3, 4},
                                                    {ChangeOp::kUpdated, 3, 3, 4}}));
  EXPECT_EQ(del->versions[0].actor, "user:304");
  EXPECT_EQ(del->versions[0].snapshot.name, "New 4");  // the row before the delete
  EXPECT_EQ(del->versions[0].snapshot.version, 1);
  const std::vector<ModelOpResult>& h = model.History();
  ASSERT_EQ(h.size(), 5u);
  EXPECT_EQ(h[1].changes(), (std::vector<RowChange>{{ChangeOp::kCreated, 4, 3, 1},
                                                    {ChangeOp::kUpdated, 1, 3, 2},
                                                    {ChangeOp::kUpdated, 2, 3, 2},
                                                    {ChangeOp::kUpdated, 3, 3, 2}}));
  EXPECT_EQ(h[2].changes(), (std::vector<RowChange>{{ChangeOp::kUpdated, 3, 3, 3},
                                                    {ChangeOp::kUpdated, 1, 3, 3},
                                                    {ChangeOp::kUpdated, 2, 3, 3}}));
  EXPECT_EQ(h[0].versions.size(), 3u);
  EXPECT_EQ(h[0].versions[2].actor, "user:302");  // seed rows keep their own updated_by
}

TEST(WorkloadModelTest, AsOfAndStateAfterSeq) {
  std::vector<WorkloadLine> lines = Tiny();
  WorkloadModel model;
  for (size_t i = 0; i < lines.size(); ++i) {
    ASSERT_OK(model.Apply(lines[i], T(static_cast<int64_t>(i) * 10)));
  }
  EXPECT_EQ(RenderModelCampaigns(model.StateAfterSeq(3, 2)), kAfterCreate);
  EXPECT_EQ(RenderModelCampaigns(model.StateAfterSeq(3, 4)), kAfterUpdate);
  EXPECT_EQ(RenderModelCampaigns(model.AsOf(3, T(5))), "");  // before the seed's commit at T(10)
  EXPECT_EQ(RenderModelCampaigns(model.AsOf(3, T(10))), kAfterSeed);  // inclusive
  EXPECT_EQ(RenderModelCampaigns(model.AsOf(3, T(35))), kAfterReorder);
  EXPECT_EQ(RenderModelCampaigns(model.AsOf(3, T(50))), kAfterDelete);
  EXPECT_EQ(RenderModelCampaigns(model.AsOf(4, T(50))), "");
  // Commit times stamp created_at / updated_at.
  std::vector<ModelCampaign> now = model.State(3);
  ASSERT_EQ(now.size(), 3u);
  EXPECT_EQ(now[0].created_at, T(10));  // c3, seeded
  EXPECT_EQ(now[0].updated_at, T(50));  // shifted by the delete
  EXPECT_THAT(model.RenderState(3, {.times = true}),
              HasSubstr("c3@v4 p1 draft 'Row 3' by user:304 created=2026-01-01T00:00:10.000000Z "
                        "updated=2026-01-01T00:00:50.000000Z"));
  WorkloadModel untimed;
  ASSERT_OK(untimed.Apply(lines[1]));
  EXPECT_THAT(untimed.RenderState(3, {.times = true}), HasSubstr("created=? updated=?"));
}

TEST(WorkloadModelTest, RejectsLinesThatDoNotMatchAndChangesNothing) {
  std::vector<WorkloadLine> lines = Tiny();
  WorkloadModel model;
  ASSERT_OK(model.Apply(lines[0]));
  ASSERT_OK(model.Apply(lines[1]));

  WorkloadLine bad = lines[2];
  std::get<WorkloadCreate>(bad.body).shift.n = 2;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kFailedPrecondition,
                                             "workload line 3 (seq 2, create): field 'shift'"));
  bad = lines[2];
  bad.versions = 3;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kFailedPrecondition, "field 'versions'"));
  bad = lines[2];
  std::get<WorkloadCreate>(bad.body).row.id = 2;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kAlreadyExists, "seq 2"));
  EXPECT_EQ(model.RenderState(3), kAfterSeed);

  ASSERT_OK(model.Apply(lines[2]));
  bad = lines[3];
  std::get<WorkloadReorder>(bad.body).from = 3;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kFailedPrecondition, "field 'from'"));
  bad = lines[3];
  std::get<WorkloadReorder>(bad.body).shift.hi = 4;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kFailedPrecondition, "field 'shift'"));
  bad = lines[4];
  std::get<WorkloadUpdate>(bad.body).id = 99;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kNotFound, "seq 4"));
  bad = lines[4];
  std::get<WorkloadUpdate>(bad.body).customer_id = 8;
  EXPECT_THAT(model.Apply(bad),
              StatusIsWith(StatusCode::kFailedPrecondition, "field 'customer_id'"));
  bad = lines[5];
  std::get<WorkloadDelete>(bad.body).priority = 2;
  EXPECT_THAT(model.Apply(bad), StatusIsWith(StatusCode::kFailedPrecondition, "field 'priority'"));
  EXPECT_EQ(model.RenderState(3), kAfterCreate);
  EXPECT_EQ(model.TotalVersions(), 7);
}

TEST(WorkloadModelTest, FooterIsCheckedWhenEverythingWasApplied) {
  std::vector<WorkloadLine> lines = Tiny();
  WorkloadModel model;
  for (size_t i = 0; i + 1 < lines.size(); ++i) ASSERT_OK(model.Apply(lines[i]));
  WorkloadLine footer = lines.back();
  std::get<WorkloadFooter>(footer.body).campaigns_final = 4;
  EXPECT_THAT(model.Apply(footer),
              StatusIsWith(StatusCode::kFailedPrecondition, "field 'campaigns_final'"));
  EXPECT_OK(model.Apply(lines.back()));
}

TEST(WorkloadModelTest, RendersSystemCampaignsTheSameWay) {
  std::vector<WorkloadLine> lines = Tiny();
  WorkloadModel model;
  ASSERT_OK(model.Apply(lines[1], T(1)));
  std::vector<Campaign> system;
  for (const Campaign& row : lines[1].seed().rows) {
    Campaign c = row;
    c.version = 1;
    c.created_at = T(1);
    c.updated_at = T(1);
    // Content bytes may differ in key order or spacing: rendering compares the JSON value.
    c.content = fmt::format(R"({{ "title": "T{}", "body": "b" }})", c.id);
    system.push_back(c);
  }
  RenderOptions all{.all_fields = true, .times = true};
  EXPECT_EQ(RenderCampaigns(system), model.RenderState(3));
  EXPECT_EQ(RenderCampaigns(system, all), model.RenderState(3, all));
  EXPECT_THAT(RenderCampaigns(system, all),
              HasSubstr("c1@v1 p1 draft 'Row 1' by user:301 trigger=app_open segment=vip start=- "
                        "end=- cap=2 content={\"body\":\"b\",\"title\":\"T1\"} "
                        "created=2026-01-01T00:00:01.000000Z"));
  // Any user field that differs shows up.
  system[1].audience_segment = "ios";
  EXPECT_EQ(RenderCampaigns(system), model.RenderState(3));  // not in the summary
  EXPECT_NE(RenderCampaigns(system, all), model.RenderState(3, all));
}

// ---- cross-check against the reference generator (testing/reference_generator.h) -------------

// A generator that fails must fail the test that uses it, never make it skip or pass.
TEST(RunReferenceGeneratorTest, AFailingGeneratorIsAnErrorWithItsExitStatusAndStderr) {
  TempDir dir;
  std::string script = dir.File("gen.sh");
  std::ofstream(script) << "echo 'no such preset: small' >&2\nexit 3\n";
  Status s = RunReferenceGenerator({.generator = script, .interpreter = "sh"}, dir.File("out"));
  EXPECT_THAT(s, StatusIsWith(StatusCode::kInternal, "exited 3"));
  EXPECT_THAT(s.message(), ::testing::HasSubstr("no such preset: small"));
}

TEST(RunReferenceGeneratorTest, AGeneratorThatWritesNothingIsAnError) {
  TempDir dir;
  std::string script = dir.File("gen.sh");
  std::ofstream(script) << "exit 0\n";
  EXPECT_THAT(RunReferenceGenerator({.generator = script, .interpreter = "sh"}, dir.File("out")),
              StatusIsWith(StatusCode::kInternal, "wrote nothing"));
}

TEST(RunReferenceGeneratorTest, AGeneratorThatCannotStartIsAnError) {
  TempDir dir;
  EXPECT_THAT(RunReferenceGenerator({.generator = dir.File("missing.py")}, dir.File("out")),
              StatusIsWith(StatusCode::kInternal, "reference generator failed"));
}

// Runs as the workload_model_reference_test ctest entry (cmake/ChHelpers.cmake).
TEST(ReferenceWorkloadTest, ParsesAppliesAndReplaysTheReferenceSmallPreset) {
  std::string gen = ReferenceGeneratorPath();
  if (gen.empty()) GTEST_SKIP() << kNoReferenceGenerator;
  TempDir dir;
  std::string out = dir.File("reference-small.jsonl");
  ASSERT_OK(RunReferenceGenerator({.generator = gen}, out));

  // Every line parses with this project's strict parser, and the model accepts every op.
  ASSERT_OK_AND_ASSIGN(auto reader, WorkloadReader::Open(out));
  WorkloadModel model({.keep_history = false});
  std::vector<WorkloadLine> lines;
  int64_t sum = 0;
  while (true) {
    ASSERT_OK_AND_ASSIGN(std::optional<WorkloadLine> line, reader->Next());
    if (!line) break;
    ASSERT_OK(model.Apply(*line)) << line->Where();  // the footer is checked here too
    sum += line->versions;
    lines.push_back(std::move(*line));
  }
  ASSERT_TRUE(reader->header().has_value());
  EXPECT_EQ(reader->header()->format, kWorkloadFormat);
  ASSERT_TRUE(reader->footer().has_value());
  const WorkloadFooter& footer = *reader->footer();
  EXPECT_EQ(footer.expected_versions, sum);
  EXPECT_EQ(footer.expected_versions, model.TotalVersions());
  EXPECT_EQ(footer.campaigns_final, model.CampaignCount());
  EXPECT_EQ(footer.ops, 2000);
  ASSERT_OK(model.CheckInvariants());

  // And it replays through the service with the same final state as the model.
  FakeClock clock;
  InMemoryCampaignStore store(clock);
  CampaignService service(store);
  Replayer replayer(service);
  for (const WorkloadLine& line : lines) {
    clock.Advance(std::chrono::milliseconds(1));
    ASSERT_OK(replayer.Apply(line)) << line.Where();
  }
  EXPECT_TRUE(replayer.summary().footer_verified);
  RenderOptions all{.all_fields = true};
  for (int64_t c : model.Customers()) {
    ASSERT_OK_AND_ASSIGN(std::vector<Campaign> actual, service.List(c));
    EXPECT_EQ(RenderCampaigns(actual, all), model.RenderState(c, all)) << "customer " << c;
  }
}

}  // namespace
}  // namespace ch::testing
