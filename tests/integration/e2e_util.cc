#include "tests/integration/e2e_util.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "campaign/campaign.h"
#include "testing/reference_generator.h"
#include "testing/test_util.h"
#include "workload/generator.h"

namespace ch::testing {

CommandOutcome RunCommand(const std::string& command) {
  CommandOutcome o;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.output.append(buf, n);
  int status = pclose(p);
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return o;
}

std::vector<WorkloadLine> SmallWorkload(uint64_t seed) {
  auto options = GeneratorPreset("small");
  EXPECT_TRUE(options.ok());
  options->seed = seed;
  std::ostringstream out;
  auto stats = GenerateWorkload(*options, out);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  auto lines = ParseWorkloadText(out.str(), "small");
  EXPECT_TRUE(lines.ok()) << lines.status().ToString();
  return lines.ok() ? *lines : std::vector<WorkloadLine>{};
}

void WriteSmallWorkloadFile(const std::string& path, uint64_t seed) {
  auto options = GeneratorPreset("small");
  ASSERT_TRUE(options.ok());
  options->seed = seed;
  ASSERT_OK(GenerateWorkloadFile(*options, path).status());
}

Result<std::vector<WorkloadLine>> ReferenceSmallWorkload(const std::string& generator) {
  TempDir dir;
  std::string out = dir.File("ref.jsonl");
  RETURN_IF_ERROR(RunReferenceGenerator({.generator = generator}, out));
  return ReadWorkloadFile(out);
}

std::string RenderAsOf(const std::vector<HistoryRecord>& records) {
  std::vector<Campaign> campaigns;
  for (const HistoryRecord& r : records) {
    auto c = CampaignFromJson(r.snapshot);
    if (!c.ok()) return "unparseable snapshot: " + c.status().ToString();
    campaigns.push_back(*c);
  }
  return RenderCampaigns(campaigns, {.all_fields = true});
}

std::string CompareHistoryWithModel(HistoryStore& history, const WorkloadModel& model,
                                    const std::vector<WorkloadLine>& lines,
                                    const std::vector<ReplayedOp>& ops, int all_customers_every) {
  std::map<int64_t, const WorkloadLine*> by_seq;
  for (const WorkloadLine& l : lines) by_seq[l.seq] = &l;
  std::set<int64_t> customers;
  for (const WorkloadLine& l : lines) {
    if (l.applied()) customers.insert(l.customer_id());
  }
  std::optional<int64_t> previous_seq;
  int n = 0;
  for (const ReplayedOp& op : ops) {
    const WorkloadLine& line = *by_seq.at(op.seq);
    std::vector<int64_t> check = {line.customer_id()};
    if (all_customers_every > 0 && ++n % all_customers_every == 0) {
      check.assign(customers.begin(), customers.end());
    }
    for (int64_t c : check) {
      auto at = history.AsOf(c, op.committed_at);
      if (!at.ok()) return at.status().ToString();
      std::string want = RenderModelCampaigns(model.StateAfterSeq(c, op.seq), {.all_fields = true});
      std::string got = RenderAsOf(*at);
      if (got != want) {
        return fmt::format("as-of customer {} right after seq {}: {}", c, op.seq,
                           testing::FirstRenderingDifference(got, want, "history", 300));
      }
      auto before = history.AsOf(c, op.committed_at - Micros(1));
      if (!before.ok()) return before.status().ToString();
      std::string want_before =
          previous_seq
              ? RenderModelCampaigns(model.StateAfterSeq(c, *previous_seq), {.all_fields = true})
              : RenderModelCampaigns({}, {.all_fields = true});
      std::string got_before = RenderAsOf(*before);
      if (got_before != want_before) {
        return fmt::format(
            "as-of customer {} 1us before seq {}: {}", c, op.seq,
            testing::FirstRenderingDifference(got_before, want_before, "history", 300));
      }
    }
    previous_seq = op.seq;
  }
  // Every campaign's versions exactly 1..n, once each.
  int64_t records = 0;
  std::set<int64_t> campaigns;
  for (const ModelOpResult& r : model.History()) {
    for (const ModelVersion& v : r.versions) campaigns.insert(v.campaign_id);
  }
  for (int64_t id : campaigns) {
    auto log = history.CampaignLog(id, {});
    if (!log.ok()) return log.status().ToString();
    for (size_t i = 0; i < log->size(); ++i) {
      if ((*log)[i].version != static_cast<int64_t>(i) + 1) {
        return fmt::format("campaign {}: record {} has version {} (expected {})", id, i,
                           (*log)[i].version, i + 1);
      }
    }
    records += static_cast<int64_t>(log->size());
  }
  if (records != model.TotalVersions()) {
    return fmt::format("history holds {} records, the model {} versions", records,
                       model.TotalVersions());
  }
  auto stats = history.Stats();
  if (!stats.ok()) return stats.status().ToString();
  if (stats->records != model.TotalVersions()) {
    return fmt::format("Stats() counts {} records, the model {} versions", stats->records,
                       model.TotalVersions());
  }
  return "";
}

}  // namespace ch::testing
