#include "workload/generator.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/text.h"
#include "testing/test_util.h"
#include "testing/workload_model.h"
#include "workload/workload.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::ch::testing::WorkloadModel;

std::string Generate(const GeneratorOptions& o) {
  std::ostringstream out;
  Result<GeneratorStats> stats = GenerateWorkload(o, out);
  EXPECT_OK(stats);
  return out.str();
}

GeneratorOptions Small(uint64_t seed = 1) {
  GeneratorOptions o = *GeneratorPreset("small");
  o.seed = seed;
  return o;
}

std::vector<WorkloadLine> ParseAll(const std::string& text) {
  Result<std::vector<WorkloadLine>> lines = ParseWorkloadText(text, "generated");
  EXPECT_OK(lines);
  return lines.ok() ? std::move(lines).value() : std::vector<WorkloadLine>();
}

TEST(GeneratorTest, SameSeedSameBytes) {
  std::string a = Generate(Small(7));
  std::string b = Generate(Small(7));
  EXPECT_FALSE(a.empty());
  EXPECT_TRUE(a == b) << "two runs with seed 7 differ";
}

TEST(GeneratorTest, DifferentSeedDifferentBytes) {
  EXPECT_NE(Generate(Small(1)), Generate(Small(2)));
}

TEST(GeneratorTest, Presets) {
  ASSERT_OK_AND_ASSIGN(GeneratorOptions small, GeneratorPreset("small"));
  EXPECT_EQ(small.customers, 19);
  EXPECT_EQ(small.campaigns_per_customer, 5);
  EXPECT_EQ(small.big_customers, 1);
  EXPECT_EQ(small.big_campaigns, 100);
  EXPECT_DOUBLE_EQ(small.big_op_share, 0.2);
  EXPECT_EQ(small.ops, 2000);
  ASSERT_OK_AND_ASSIGN(GeneratorOptions large, GeneratorPreset("large"));
  EXPECT_EQ(large.customers, 200);
  EXPECT_EQ(large.campaigns_per_customer, 10);
  EXPECT_EQ(large.big_customers, 1);
  EXPECT_EQ(large.big_campaigns, 2000);
  EXPECT_DOUBLE_EQ(large.big_op_share, 0.02);
  EXPECT_EQ(large.ops, 200000);
  EXPECT_THAT(GeneratorPreset("huge"), StatusIsWith(StatusCode::kInvalidArgument, "huge"));
}

TEST(GeneratorTest, RejectsInvalidOptionsNamingTheField) {
  std::ostringstream out;
  GeneratorOptions o = Small();
  o.big_op_share = 1.5;
  EXPECT_THAT(GenerateWorkload(o, out), StatusIsWith(StatusCode::kInvalidArgument, "big_op_share"));
  o = Small();
  o.customers = 0;
  o.big_customers = 0;
  EXPECT_THAT(GenerateWorkload(o, out), StatusIsWith(StatusCode::kInvalidArgument, "customers"));
  o = Small();
  o.campaigns_per_customer = 0;
  EXPECT_THAT(GenerateWorkload(o, out),
              StatusIsWith(StatusCode::kInvalidArgument, "campaigns_per_customer"));
  o = Small();
  o.ops = -1;
  EXPECT_THAT(GenerateWorkload(o, out), StatusIsWith(StatusCode::kInvalidArgument, "ops"));
  EXPECT_TRUE(out.str().empty());
}

TEST(GeneratorTest, UnwritableFileIsUnavailable) {
  EXPECT_THAT(GenerateWorkloadFile(Small(), "/nonexistent-dir/w.jsonl"),
              StatusIsWith(StatusCode::kUnavailable, "/nonexistent-dir/w.jsonl"));
}

// The small preset parses, means what it says (the independent model accepts every op: every
// shift.n, from, priority and versions agrees), keeps priorities dense after every op, and its
// footer adds up.
TEST(GeneratorTest, SmallPresetIsConsistentWithTheModel) {
  std::ostringstream out;
  ASSERT_OK_AND_ASSIGN(GeneratorStats stats, GenerateWorkload(Small(), out));
  std::vector<WorkloadLine> lines = ParseAll(out.str());
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(static_cast<int64_t>(lines.size()), stats.lines);
  EXPECT_EQ(static_cast<int64_t>(out.str().size()), stats.bytes);
  ASSERT_EQ(lines.front().op, WorkloadOp::kHeader);
  EXPECT_EQ(lines.front().header().format, kWorkloadFormat);
  EXPECT_EQ(lines.front().header().big_customers, std::vector<int64_t>{1});
  ASSERT_EQ(lines.back().op, WorkloadOp::kFooter);
  const WorkloadFooter& footer = lines.back().footer();

  WorkloadModel model({.keep_history = false});
  int64_t sum = 0, ops = 0, seed_rows = 0;
  std::map<WorkloadOp, int64_t> per_op;
  for (size_t i = 0; i < lines.size(); ++i) {
    const WorkloadLine& line = lines[i];
    EXPECT_EQ(line.seq, static_cast<int64_t>(i));
    if (i > 0) {
      EXPECT_GE(line.at, lines[i - 1].at) << line.Where();
    }
    sum += line.versions;
    if (line.applied()) {
      ++per_op[line.op];
      if (line.op == WorkloadOp::kSeed) {
        seed_rows += static_cast<int64_t>(line.seed().rows.size());
      } else {
        ++ops;
      }
    }
    Result<std::optional<testing::ModelOpResult>> r = model.Apply(line);
    ASSERT_OK(r) << line.Where();
    if (line.applied()) {
      ASSERT_TRUE(r->has_value());
      EXPECT_EQ(static_cast<int64_t>((*r)->versions.size()), line.versions) << line.Where();
      ASSERT_OK(model.CheckInvariants()) << "after " << line.Where();
    }
  }
  EXPECT_EQ(footer.expected_versions, sum);
  EXPECT_EQ(footer.expected_versions, model.TotalVersions());
  EXPECT_EQ(footer.expected_versions, stats.expected_versions);
  EXPECT_EQ(footer.ops, 2000);
  EXPECT_EQ(footer.ops, ops);
  EXPECT_EQ(footer.seed_rows, 19 * 5 + 100);
  EXPECT_EQ(footer.seed_rows, seed_rows);
  EXPECT_EQ(footer.campaigns_final, model.CampaignCount());
  EXPECT_EQ(footer.counts.at("update"), per_op[WorkloadOp::kUpdate]);
  EXPECT_EQ(footer.counts.at("burst"), per_op[WorkloadOp::kBurst]);
  EXPECT_EQ(footer.counts.at("reorder"), per_op[WorkloadOp::kReorder]);
  EXPECT_EQ(footer.counts.at("create"), per_op[WorkloadOp::kCreate]);
  EXPECT_EQ(footer.counts.at("delete"), per_op[WorkloadOp::kDelete]);
  EXPECT_EQ(footer.counts.at("seed"), per_op[WorkloadOp::kSeed]);
}

// The statistical shape follows the reference generator: the op mix, bursts of 5-20 saves on
// one campaign, 200-800-character bodies, workers among the actors, and non-ASCII text.
TEST(GeneratorTest, SmallPresetHasTheReferenceShape) {
  std::string text = Generate(Small(3));
  std::vector<WorkloadLine> lines = ParseAll(text);
  std::map<WorkloadOp, int64_t> n;
  int64_t worker_actors = 0, actors = 0, big_ops = 0, ops = 0;
  std::map<int64_t, int64_t> burst_sizes;
  for (const WorkloadLine& line : lines) {
    ++n[line.op];
    if (!line.applied() || line.op == WorkloadOp::kSeed) continue;
    ++ops;
    if (line.customer_id() == 1) ++big_ops;
    std::string actor;
    switch (line.op) {
      case WorkloadOp::kCreate:
        actor = line.create().actor;
        break;
      case WorkloadOp::kUpdate:
      case WorkloadOp::kBurst:
        actor = line.update().actor;
        break;
      case WorkloadOp::kReorder:
        actor = line.reorder().actor;
        break;
      case WorkloadOp::kDelete:
        actor = line.del().actor;
        break;
      default:
        break;
    }
    ++actors;
    if (actor.starts_with("worker:")) ++worker_actors;
    if (line.op == WorkloadOp::kBurst) {
      const WorkloadBurst& b = *line.update().burst;
      burst_sizes[b.burst_id] = b.burst_len;
    }
  }
  // Every op occurs; updates dominate; creates and deletes balance (steady state).
  for (WorkloadOp op : {WorkloadOp::kSeed, WorkloadOp::kCreate, WorkloadOp::kUpdate,
                        WorkloadOp::kBurst, WorkloadOp::kReorder, WorkloadOp::kDelete}) {
    EXPECT_GT(n[op], 0) << WorkloadOpName(op);
  }
  EXPECT_GT(n[WorkloadOp::kUpdate], ops / 2);
  EXPECT_GT(n[WorkloadOp::kReorder], n[WorkloadOp::kCreate]);
  EXPECT_NEAR(n[WorkloadOp::kCreate], n[WorkloadOp::kDelete], 40);
  for (const auto& [id, len] : burst_sizes) {
    EXPECT_GE(len, 5);
    EXPECT_LE(len, 20);
  }
  // ~20 % of events hit the big customer.
  EXPECT_GT(big_ops, ops / 10);
  EXPECT_LT(big_ops, ops * 3 / 10);
  // Some workers among the actors, mostly users.
  EXPECT_GT(worker_actors, 0);
  EXPECT_LT(worker_actors, actors / 3);
  // Bodies are 200-800 characters (code points).
  for (const WorkloadLine& line : lines) {
    std::vector<std::string> contents;
    if (line.op == WorkloadOp::kSeed) {
      for (const Campaign& c : line.seed().rows) contents.push_back(c.content);
    } else if (line.op == WorkloadOp::kCreate) {
      contents.push_back(line.create().row.content);
    } else if ((line.op == WorkloadOp::kUpdate || line.op == WorkloadOp::kBurst) &&
               line.update().set.content) {
      contents.push_back(*line.update().set.content);
    }
    for (const std::string& c : contents) {
      auto j = nlohmann::json::parse(c);
      std::string body = j.at("body").get<std::string>();
      EXPECT_GE(Utf8Length(body), 200u) << line.Where();
      EXPECT_LE(Utf8Length(body), 800u) << line.Where();
      EXPECT_TRUE(j.contains("title") && j.contains("button_text") && j.contains("image_url"));
    }
  }
  // Non-ASCII text and characters that need escaping appear now and then.
  bool non_ascii = false;
  for (unsigned char ch : text) non_ascii = non_ascii || ch >= 0x80;
  EXPECT_TRUE(non_ascii);
  EXPECT_NE(text.find("🎉"), std::string::npos) << "no emoji in the small preset";
  EXPECT_NE(text.find("\\\""), std::string::npos) << "no escaped quote in the small preset";
  EXPECT_TRUE(IsValidUtf8(text));
}

TEST(GeneratorTest, OverridesAndEdgeShapes) {
  // Only small customers.
  GeneratorOptions o = Small();
  o.big_customers = 0;
  o.ops = 300;
  std::vector<WorkloadLine> lines = ParseAll(Generate(o));
  EXPECT_TRUE(lines.front().header().big_customers.empty());
  EXPECT_EQ(lines.back().footer().ops, 300);
  // Only a big customer, with more than 500 campaigns (two seed lines).
  o = Small();
  o.customers = 0;
  o.big_campaigns = 700;
  o.ops = 200;
  lines = ParseAll(Generate(o));
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[1].op, WorkloadOp::kSeed);
  EXPECT_EQ(lines[1].seed().rows.size(), 500u);
  EXPECT_EQ(lines[2].seed().rows.size(), 200u);
  EXPECT_EQ(lines[2].seed().rows.front().priority, 501);
  WorkloadModel model({.keep_history = false});
  for (const WorkloadLine& line : lines) ASSERT_OK(model.Apply(line)) << line.Where();
  // No ops at all.
  o = Small();
  o.ops = 0;
  lines = ParseAll(Generate(o));
  EXPECT_EQ(lines.back().footer().ops, 0);
  EXPECT_EQ(lines.back().footer().expected_versions, 19 * 5 + 100);
  // ASCII only.
  o = Small();
  o.unicode_share = 0;
  std::string text = Generate(o);
  for (unsigned char ch : text) ASSERT_LT(ch, 0x80);
}

}  // namespace
}  // namespace ch
