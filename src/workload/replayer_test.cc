#include "workload/replayer.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "common/time_util.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "workload/generator.h"
#include "workload/workload.h"
#include "workload/workload_digest.h"

namespace ch {
namespace {

using ::ch::testing::RenderCampaigns;
using ::ch::testing::RenderOptions;
using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::ch::testing::WorkloadModel;
using ::testing::HasSubstr;

std::vector<WorkloadLine> SmallWorkload(uint64_t seed = 1, int64_t ops = 2000) {
  GeneratorOptions o = *GeneratorPreset("small");
  o.seed = seed;
  o.ops = ops;
  std::ostringstream out;
  EXPECT_OK(GenerateWorkload(o, out));
  Result<std::vector<WorkloadLine>> lines = ParseWorkloadText(out.str(), "small");
  EXPECT_OK(lines);
  return lines.ok() ? std::move(lines).value() : std::vector<WorkloadLine>();
}

// A service over an in-memory store with a fake clock that moves 1 ms per op.
class ReplayerTest : public ::testing::Test {
 protected:
  ReplayerTest() : store_(clock_, StoreCapture::kLog), service_(store_) {}

  Result<std::optional<ReplayedOp>> Apply(Replayer& r, const WorkloadLine& line) {
    clock_.Advance(std::chrono::milliseconds(1));
    return r.Apply(line);
  }

  // Apply lines[0..n) and return them; the model follows.
  void ApplyPrefix(Replayer& r, const std::vector<WorkloadLine>& lines, size_t n,
                   WorkloadModel* model = nullptr) {
    for (size_t i = 0; i < n; ++i) {
      ASSERT_OK(Apply(r, lines[i])) << lines[i].Where();
      if (model) {
        ASSERT_OK(model->Apply(lines[i])) << lines[i].Where();
      }
    }
  }

  FakeClock clock_;
  InMemoryCampaignStore store_;
  CampaignService service_;
};

TEST(FormatReplayLineTest, ExactShape) {
  ReplayedOp op{42, *ParseTimestamp("2026-11-03T14:05:00.123456Z"), 7};
  EXPECT_EQ(FormatReplayLine(op),
            R"({"seq":42,"committed_at":"2026-11-03T14:05:00.123456Z","versions":7})");
  ReplayedOp zero{0, *ParseTimestamp("2026-01-01T00:00:00Z"), 1};
  EXPECT_EQ(FormatReplayLine(zero),
            R"({"seq":0,"committed_at":"2026-01-01T00:00:00.000000Z","versions":1})");
}

// The oracle test: after every op of the small preset, the service's state for the op's customer
// equals the independent model's (every user field, versions, actors and commit times), and each
// commit's changes are the ones the model predicts.
TEST_F(ReplayerTest, SmallPresetMatchesTheModelAfterEveryOp) {
  std::vector<WorkloadLine> lines = SmallWorkload();
  Replayer replayer(service_);
  WorkloadModel model;
  RenderOptions all{.all_fields = true, .times = true};
  int64_t applied = 0;
  for (const WorkloadLine& line : lines) {
    ASSERT_OK_AND_ASSIGN(std::optional<ReplayedOp> op, Apply(replayer, line));
    ASSERT_EQ(op.has_value(), line.applied()) << line.Where();
    std::optional<Timestamp> at;
    if (op) at = op->committed_at;
    ASSERT_OK_AND_ASSIGN(std::optional<testing::ModelOpResult> expected, model.Apply(line, at));
    if (!op) continue;
    ++applied;
    EXPECT_EQ(op->seq, line.seq);
    EXPECT_EQ(op->versions, line.versions);
    ASSERT_OK_AND_ASSIGN(std::vector<Campaign> actual, service_.List(line.customer_id()));
    ASSERT_EQ(RenderCampaigns(actual, all), model.RenderState(line.customer_id(), all))
        << "after " << line.Where();
  }
  EXPECT_GT(applied, 2000);
  // Every customer, at the end.
  for (int64_t c : model.Customers()) {
    ASSERT_OK_AND_ASSIGN(std::vector<Campaign> actual, service_.List(c));
    EXPECT_EQ(RenderCampaigns(actual, all), model.RenderState(c, all)) << "customer " << c;
  }
  const ReplaySummary& s = replayer.summary();
  EXPECT_TRUE(s.footer_verified);
  EXPECT_EQ(s.versions, lines.back().footer().expected_versions);
  EXPECT_EQ(s.versions, model.TotalVersions());
  EXPECT_EQ(s.ops, 2000);
  EXPECT_EQ(static_cast<int64_t>(store_.AllChanges().size()), s.versions);
}

// The changes of each commit (ids, versions, op types, order) are the model's.
TEST_F(ReplayerTest, CommitChangesMatchTheModel) {
  std::vector<WorkloadLine> lines = SmallWorkload(5, 400);
  WorkloadModel model;
  int64_t checked = 0;
  for (const WorkloadLine& line : lines) {
    ASSERT_OK_AND_ASSIGN(std::optional<testing::ModelOpResult> expected, model.Apply(line));
    if (!line.applied()) continue;
    Result<CommitInfo> info = [&]() -> Result<CommitInfo> {
      WriteContext ctx;
      switch (line.op) {
        case WorkloadOp::kSeed:
          return service_.Import(line.customer_id(), line.seed().rows);
        case WorkloadOp::kCreate:
          ctx.actor = line.create().actor;
          return service_.Create(line.create().row, ctx);
        case WorkloadOp::kUpdate:
        case WorkloadOp::kBurst:
          ctx.actor = line.update().actor;
          return service_.Update(line.update().id, line.update().set, ctx);
        case WorkloadOp::kReorder:
          ctx.actor = line.reorder().actor;
          return service_.Move(line.reorder().id, line.reorder().to, ctx);
        case WorkloadOp::kDelete:
          ctx.actor = line.del().actor;
          return service_.Delete(line.del().id, ctx);
        default:
          return InternalError("unreachable");
      }
    }();
    ASSERT_OK(info) << line.Where();
    if (line.op != WorkloadOp::kSeed) {
      EXPECT_EQ(info->changes, expected->changes()) << line.Where();
      EXPECT_EQ(info->shifted, expected->shifted) << line.Where();
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
}

TEST_F(ReplayerTest, TamperedShiftIsFailedPreconditionAndCommitsNothing) {
  std::vector<WorkloadLine> lines = SmallWorkload(2, 300);
  // The first create or delete after the seeds, tampered consistently (shift.n and versions).
  size_t k = 0;
  while (k < lines.size() && lines[k].op != WorkloadOp::kCreate &&
         lines[k].op != WorkloadOp::kDelete) {
    ++k;
  }
  ASSERT_LT(k, lines.size());
  Replayer replayer(service_);
  ApplyPrefix(replayer, lines, k);
  auto before = store_.AllCampaigns();
  size_t changes_before = store_.AllChanges().size();

  WorkloadLine tampered = lines[k];
  if (tampered.op == WorkloadOp::kCreate) {
    std::get<WorkloadCreate>(tampered.body).shift.n += 1;
  } else {
    std::get<WorkloadDelete>(tampered.body).shift.n += 1;
  }
  tampered.versions += 1;
  Result<std::optional<ReplayedOp>> r = Apply(replayer, tampered);
  EXPECT_THAT(r, StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(r.status().message(), HasSubstr(fmt::format("seq {}", tampered.seq)));
  EXPECT_THAT(r.status().message(), HasSubstr(fmt::format("line {}", tampered.line_no)));
  EXPECT_EQ(store_.AllCampaigns(), before);
  EXPECT_EQ(store_.AllChanges().size(), changes_before);

  // Only shift.n tampered (versions left alone): caught before the service is called.
  WorkloadLine only_n = lines[k];
  if (only_n.op == WorkloadOp::kCreate) {
    std::get<WorkloadCreate>(only_n.body).shift.n += 1;
  } else {
    std::get<WorkloadDelete>(only_n.body).shift.n += 1;
  }
  EXPECT_THAT(Apply(replayer, only_n),
              StatusIsWith(StatusCode::kFailedPrecondition, fmt::format("seq {}", only_n.seq)));
  EXPECT_EQ(store_.AllCampaigns(), before);

  // The untampered line still applies afterwards.
  ASSERT_OK(Apply(replayer, lines[k]));
  EXPECT_FALSE(replayer.summary().footer_verified);
}

TEST_F(ReplayerTest, TamperedReorderFromIsFailedPrecondition) {
  std::vector<WorkloadLine> lines = SmallWorkload(4, 300);
  size_t k = 0;
  while (k < lines.size() && lines[k].op != WorkloadOp::kReorder) ++k;
  ASSERT_LT(k, lines.size());
  Replayer replayer(service_);
  ApplyPrefix(replayer, lines, k);
  auto before = store_.AllCampaigns();
  // Claim the campaign is somewhere else (keeping the line's shape consistent).
  WorkloadLine tampered = lines[k];
  auto& r = std::get<WorkloadReorder>(tampered.body);
  int64_t other = r.to == 1 ? 2 : 1;
  if (other == r.from) other = r.from + 1 == r.to ? r.from + 2 : r.from + 1;
  r.from = other;
  r.shift = r.to < r.from ? WorkloadShift{1, r.to, r.from - 1, r.from - r.to}
                          : WorkloadShift{-1, r.from + 1, r.to, r.to - r.from};
  tampered.versions = r.shift.n + 1;
  EXPECT_THAT(Apply(replayer, tampered),
              StatusIsWith(StatusCode::kFailedPrecondition, fmt::format("seq {}", tampered.seq)));
  EXPECT_EQ(store_.AllCampaigns(), before);
}

TEST_F(ReplayerTest, UnknownIdIsNotFoundNamingSeq) {
  std::vector<WorkloadLine> lines = SmallWorkload(1, 50);
  size_t k = 0;
  while (k < lines.size() && lines[k].op != WorkloadOp::kUpdate) ++k;
  ASSERT_LT(k, lines.size());
  Replayer replayer(service_);
  ApplyPrefix(replayer, lines, k);
  WorkloadLine bad = lines[k];
  std::get<WorkloadUpdate>(bad.body).id = 987654;
  Result<std::optional<ReplayedOp>> r = Apply(replayer, bad);
  EXPECT_THAT(r, StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(r.status().message(), HasSubstr(fmt::format("seq {}", bad.seq)));
  EXPECT_THAT(r.status().message(), HasSubstr("987654"));
}

TEST_F(ReplayerTest, WrongCustomerIsFailedPrecondition) {
  std::vector<WorkloadLine> lines = SmallWorkload(1, 50);
  size_t k = 0;
  while (k < lines.size() && lines[k].op != WorkloadOp::kUpdate) ++k;
  Replayer replayer(service_);
  ApplyPrefix(replayer, lines, k);
  WorkloadLine bad = lines[k];
  std::get<WorkloadUpdate>(bad.body).customer_id += 1;
  EXPECT_THAT(Apply(replayer, bad),
              StatusIsWith(StatusCode::kFailedPrecondition, fmt::format("seq {}", bad.seq)));
}

TEST_F(ReplayerTest, ShiftOfTheWrongShapeIsInvalidArgument) {
  std::vector<WorkloadLine> lines = SmallWorkload(2, 300);
  size_t k = 0;
  while (k < lines.size() && lines[k].op != WorkloadOp::kCreate) ++k;
  ASSERT_LT(k, lines.size());
  Replayer replayer(service_);
  ApplyPrefix(replayer, lines, k);
  WorkloadLine bad = lines[k];
  std::get<WorkloadCreate>(bad.body).shift.lo = 2;
  EXPECT_THAT(Apply(replayer, bad), StatusIsWith(StatusCode::kInvalidArgument, "field 'shift'"));
}

TEST_F(ReplayerTest, FooterTotalsAreVerified) {
  std::vector<WorkloadLine> lines = SmallWorkload(6, 100);
  Replayer replayer(service_);
  ApplyPrefix(replayer, lines, lines.size() - 1);
  WorkloadLine footer = lines.back();
  std::get<WorkloadFooter>(footer.body).expected_versions += 1;
  EXPECT_THAT(Apply(replayer, footer),
              StatusIsWith(StatusCode::kInvalidArgument, "field 'expected_versions'"));
  EXPECT_FALSE(replayer.summary().footer_verified);
}

TEST_F(ReplayerTest, PartialReplaySkipsFooterCheck) {
  std::vector<WorkloadLine> lines = SmallWorkload(6, 100);
  Replayer replayer(service_);
  // No header: the footer cannot be checked, and is not.
  for (size_t i = 1; i < lines.size(); ++i) ASSERT_OK(Apply(replayer, lines[i]));
  EXPECT_FALSE(replayer.summary().footer_verified);
}

TEST_F(ReplayerTest, ReplayFileReportsEveryOp) {
  ::ch::testing::TempDir dir;
  std::string path = dir.File("w.jsonl");
  GeneratorOptions o = *GeneratorPreset("small");
  o.ops = 200;
  ASSERT_OK_AND_ASSIGN(GeneratorStats stats, GenerateWorkloadFile(o, path));
  Replayer replayer(service_);
  std::vector<std::string> out;
  ASSERT_OK_AND_ASSIGN(ReplaySummary summary, replayer.ReplayFile(path, [&](const ReplayedOp& op) {
    out.push_back(FormatReplayLine(op));
    return Status::OK();
  }));
  EXPECT_TRUE(summary.footer_verified);
  EXPECT_EQ(summary.ops, 200);
  EXPECT_EQ(summary.versions, stats.expected_versions);
  EXPECT_EQ(static_cast<int64_t>(out.size()), stats.lines - 2);
  EXPECT_THAT(out.front(), HasSubstr(R"({"seq":1,"committed_at":")"));

  EXPECT_THAT(replayer.ReplayFile(dir.File("missing.jsonl")),
              StatusIsWith(StatusCode::kNotFound, "missing.jsonl"));
}

TEST_F(ReplayerTest, ReplayAllStopsAtTheFirstFailureNamingFileAndLine) {
  ::ch::testing::TempDir dir;
  std::string path = dir.File("bad.jsonl");
  {
    std::ofstream out(path);
    out << R"({"op":"update","seq":3,"at":"2024-01-01T00:00:00Z","customer_id":1,"id":5,)"
        << R"("set":{"name":"x"},"actor":"user:1","versions":1})"
        << "\n";
  }
  Replayer replayer(service_);
  Result<ReplaySummary> r = replayer.ReplayFile(path);
  EXPECT_THAT(r, StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(r.status().message(), HasSubstr("bad.jsonl"));
  EXPECT_THAT(r.status().message(), HasSubstr("workload line 1 (seq 3, update)"));
}

TEST_F(ReplayerTest, OnOpErrorStopsTheReplay) {
  ::ch::testing::TempDir dir;
  std::string path = dir.File("w.jsonl");
  GeneratorOptions o = *GeneratorPreset("small");
  o.ops = 10;
  ASSERT_OK(GenerateWorkloadFile(o, path));
  Replayer replayer(service_);
  int calls = 0;
  Result<ReplaySummary> r = replayer.ReplayFile(path, [&](const ReplayedOp&) {
    ++calls;
    return UnavailableError("stdout closed");
  });
  EXPECT_THAT(r, StatusIsWith(StatusCode::kUnavailable, "stdout closed"));
  EXPECT_EQ(calls, 1);
}

// ---- re-running a workload (ReplayAll records its position with every op) ----------------------

class ReplayerRerunTest : public ReplayerTest {
 protected:
  void SetUp() override {
    GeneratorOptions o = *GeneratorPreset("small");
    o.ops = 60;
    path_ = dir_.File("w.jsonl");
    ASSERT_OK(GenerateWorkloadFile(o, path_));
    std::ifstream in(path_);
    for (std::string l; std::getline(in, l);) text_.push_back(l);
  }

  // The workload with line `line_no` (1-based) replaced, or cut after it when `replacement` is
  // nullopt.
  std::string Variant(const std::string& name, size_t line_no,
                      std::optional<std::string> replacement) {
    std::string path = dir_.File(name);
    std::ofstream out(path);
    for (size_t i = 0; i < text_.size(); ++i) {
      if (i + 1 == line_no && !replacement) break;
      out << (i + 1 == line_no ? *replacement : text_[i]) << "\n";
    }
    return path;
  }

  Result<ReplaySummary> ReplayAll(const std::string& path, ReplayerOptions options = {}) {
    Replayer r(service_, options);
    return r.ReplayFile(path);
  }

  std::vector<Campaign> Dump() { return store_.AllCampaigns(); }

  ::ch::testing::TempDir dir_;
  std::string path_;
  std::vector<std::string> text_;
};

TEST_F(ReplayerRerunTest, ReRunFailsAndChangesNothing) {
  ASSERT_OK_AND_ASSIGN(ReplaySummary first, ReplayAll(path_));
  EXPECT_TRUE(first.footer_verified);
  std::vector<Campaign> before = Dump();
  size_t changes = store_.AllChanges().size();
  Result<ReplaySummary> again = ReplayAll(path_);
  EXPECT_THAT(again, StatusIsWith(StatusCode::kFailedPrecondition, "already applied"));
  EXPECT_THAT(again.status().message(), HasSubstr("w.jsonl: "));
  EXPECT_THAT(again.status().message(), HasSubstr("replay --resume"));
  EXPECT_EQ(Dump(), before);
  EXPECT_EQ(store_.AllChanges().size(), changes);
}

TEST_F(ReplayerRerunTest, ResumeAppliesWhatARejectedLineLeftOutOnce) {
  // Line 31 is rejected (its version count is wrong) before anything of it is committed.
  const size_t bad_line = 31;
  std::string line = text_[bad_line - 1];
  size_t at = line.find("\"versions\":");
  ASSERT_NE(at, std::string::npos);
  std::string bad =
      Variant("bad.jsonl", bad_line,
              line.substr(0, at) + "\"versions\":999" + line.substr(line.find_first_of(",}", at)));
  EXPECT_THAT(ReplayAll(bad), StatusIs(StatusCode::kFailedPrecondition));

  std::optional<ResumeInfo> resumed;
  ReplayerOptions o;
  o.resume = true;
  o.on_resume = [&](const ResumeInfo& info) { resumed = info; };
  ASSERT_OK_AND_ASSIGN(ReplaySummary s, ReplayAll(path_, o));
  ASSERT_TRUE(resumed);
  EXPECT_EQ(resumed->applied_lines, static_cast<int64_t>(bad_line) - 2);  // the header is line 1
  EXPECT_EQ(resumed->position.source, bad);
  EXPECT_EQ(s.skipped, resumed->applied_lines);
  EXPECT_TRUE(s.footer_verified);  // the footer counts the skipped lines too

  // The same campaigns, versions and actors as one replay in one go.
  FakeClock clock;
  InMemoryCampaignStore clean_store(clock, StoreCapture::kLog);
  CampaignService clean(clean_store);
  ASSERT_OK(Replayer(clean).ReplayFile(path_));
  RenderOptions all{.all_fields = true};
  EXPECT_EQ(RenderCampaigns(Dump(), all), RenderCampaigns(clean_store.AllCampaigns(), all));
  EXPECT_EQ(store_.AllChanges().size(), clean_store.AllChanges().size());
}

TEST_F(ReplayerRerunTest, ResumeOfACompleteReplayAppliesNothing) {
  ASSERT_OK(ReplayAll(path_));
  std::vector<Campaign> before = Dump();
  ReplayerOptions o;
  o.resume = true;
  ASSERT_OK_AND_ASSIGN(ReplaySummary s, ReplayAll(path_, o));
  EXPECT_EQ(s.ops, 0);
  EXPECT_EQ(s.skipped, static_cast<int64_t>(text_.size()) - 2);
  EXPECT_TRUE(s.footer_verified);
  EXPECT_EQ(Dump(), before);
}

TEST_F(ReplayerRerunTest, AnotherFileWithTheSameFirstLineIsRefused) {
  ASSERT_OK(ReplayAll(path_));
  std::vector<Campaign> before = Dump();
  ReplayerOptions resume;
  resume.resume = true;
  // Other content further on.
  std::string line = text_[20];
  size_t at = line.find("\"at\":\"");
  ASSERT_NE(at, std::string::npos);
  line.replace(at + 6, 4, "2031");
  std::string other = Variant("other.jsonl", 21, line);
  for (bool r : {false, true}) {
    Result<ReplaySummary> s = ReplayAll(other, r ? resume : ReplayerOptions{});
    EXPECT_THAT(s, StatusIsWith(StatusCode::kFailedPrecondition,
                                "not the workload applied to this campaign database"));
    EXPECT_THAT(s.status().message(), HasSubstr("differ from the applied ones"));
  }
  // Shorter than what was applied: it cannot be checked.
  EXPECT_THAT(ReplayAll(Variant("short.jsonl", 30, std::nullopt), resume),
              StatusIsWith(StatusCode::kFailedPrecondition, "this file ends at seq"));
  EXPECT_EQ(Dump(), before);
}

// Two replays of one workload at once: the compare-and-set on the position lets only one of them
// apply each line; the other stops at that line, having applied nothing of it.
TEST_F(ReplayerRerunTest, TwoReplaysOfOneWorkloadCannotBothApplyALine) {
  ReplayerOptions resume;
  resume.resume = true;
  Replayer first(service_);
  int ops = 0;
  Result<ReplaySummary> r = first.ReplayFile(path_, [&](const ReplayedOp&) -> Status {
    // After the first replay's first op, a second one replays the rest of the file.
    if (++ops == 1) RETURN_IF_ERROR(Replayer(service_, resume).ReplayFile(path_).status());
    return Status::OK();
  });
  EXPECT_THAT(r, StatusIsWith(StatusCode::kFailedPrecondition, "another replay"));
  EXPECT_EQ(ops, 1);
  FakeClock clock;
  InMemoryCampaignStore clean_store(clock, StoreCapture::kLog);
  CampaignService clean(clean_store);
  ASSERT_OK(Replayer(clean).ReplayFile(path_));
  EXPECT_EQ(store_.AllChanges().size(), clean_store.AllChanges().size());
}

// Apply() on its own records nothing: lines applied that way are not known to a later replay.
TEST_F(ReplayerRerunTest, ApplyAloneRecordsNoPosition) {
  std::vector<WorkloadLine> lines = *ReadWorkloadFile(path_);
  Replayer r(service_);
  ASSERT_OK(Apply(r, lines[0]));
  ASSERT_OK(Apply(r, lines[1]));
  ASSERT_OK_AND_ASSIGN(auto p, store_.GetReplayPosition(WorkloadIdentity(text_[0])));
  EXPECT_FALSE(p);
}

}  // namespace
}  // namespace ch
