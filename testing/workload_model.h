// WorkloadModel: an independent, deliberately plain re-implementation of the workload format's
// meaning (docs/formats/workload.md), used by tests as the oracle for the whole system.
//
// It knows nothing of CampaignService or any CampaignStore: it reads parsed workload lines
// (workload/workload.h) and keeps, per customer, the campaigns with their full current fields,
// version and updated_by, plus every version each op produced (campaign id, version, op type,
// actor, snapshot). Shifts are applied literally as the format defines them
// (`priority += delta where lo <= priority [<= hi]`), and every count the line claims (shift.n,
// versions, from, priority) is checked against the model, so a workload that does not mean what
// it says fails here with FailedPrecondition naming the line and seq.
//
// Version semantics (the format's "History semantics"): seed and created rows start at version
// 1 with their own updated_by; every other row an op touches — shifted rows included — gets
// version + 1 and updated_by = the op's actor; a delete produces one tombstone version
// (last version + 1) whose snapshot is the row as it was before the delete.
//
// Commit times are the system's, not the format's: pass each op's committed_at to Apply() (the
// hook) and the model stamps created_at/updated_at and can answer as-of questions by time.
//
// Rendering: RenderState() / RenderCampaigns() produce the same compact text for the model and
// for the system's campaigns (e.g. as-of snapshots parsed with CampaignFromJson), so a single
// ASSERT_EQ reads like a spec:
//   "c7@v3 p1 active 'Banner: Summer Sale #7' by user:101; c9@v1 p2 draft '...' by user:105"
// With RenderOptions::all_fields every user field is compared: name, status, priority,
// trigger_event, audience_segment, start_at, end_at, frequency_cap, content (canonical JSON),
// version and updated_by (one campaign per line); with `times`, created_at and updated_at too.
//
// Thread-safety: not thread-safe; one test thread uses a model.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "campaign/campaign.h"
#include "campaign/change.h"
#include "common/clock.h"
#include "common/status.h"
#include "workload/workload.h"

namespace ch::testing {

// One campaign as the model knows it.
struct ModelCampaign {
  int64_t id = 0;
  int64_t customer_id = 0;
  std::string name;
  // "draft", "active", "paused", "ended".
  std::string status;
  int64_t priority = 0;
  std::string trigger_event;
  std::string audience_segment;
  std::optional<Timestamp> start_at;
  std::optional<Timestamp> end_at;
  int64_t frequency_cap = 0;
  // Content as compact JSON with sorted keys (nlohmann's dump of the parsed object).
  std::string content;
  int64_t version = 0;
  std::string updated_by;
  // Known only when Apply() was given commit times.
  std::optional<Timestamp> created_at;
  std::optional<Timestamp> updated_at;

  bool operator==(const ModelCampaign&) const = default;
};

// One version produced by an op.
struct ModelVersion {
  ChangeOp op = ChangeOp::kUpdated;
  int64_t campaign_id = 0;
  int64_t customer_id = 0;
  // The campaign's version after the change (deletes: last version + 1).
  int64_t version = 0;
  std::string actor;
  // The campaign after the change (deletes: as it was before).
  ModelCampaign snapshot;
};

// What one applied line produced.
struct ModelOpResult {
  int64_t seq = 0;
  WorkloadOp op = WorkloadOp::kSeed;
  std::optional<Timestamp> committed_at;
  // Rows shifted (0 for seed and update).
  int64_t shifted = 0;
  // The op's own row first (for seeds: the rows in line order), then shifted rows by id.
  std::vector<ModelVersion> versions;

  // Return versions as RowChanges (the same order), comparable with CommitInfo::changes.
  std::vector<RowChange> changes() const;
};

struct ModelOptions {
  // Keep every op's result (History(), AsOf*). Costs memory (one snapshot per version); turn off
  // for very large workloads. Default: true.
  bool keep_history = true;
};

struct RenderOptions {
  // Every user field, one campaign per line; otherwise the compact one-line summary.
  bool all_fields = false;
  // Also created_at and updated_at ("?" when unknown).
  bool times = false;
};

class WorkloadModel {
 public:
  explicit WorkloadModel(ModelOptions options = {});

  // Apply one line. Header lines are accepted and ignored (nullopt); a footer is checked against
  // the model's totals (FailedPrecondition on a mismatch) when every line from a header on was
  // applied, and yields nullopt. `committed_at`, when given, is the system's commit time of this
  // op (stamps created_at/updated_at and History()).
  // Fails with FailedPrecondition (the line does not match the model), NotFound (unknown id) or
  // AlreadyExists (id reused), each naming the line and seq; a failed line changes nothing.
  Result<std::optional<ModelOpResult>> Apply(const WorkloadLine& line,
                                             std::optional<Timestamp> committed_at = std::nullopt);

  // Return the customer's campaigns in priority order.
  std::vector<ModelCampaign> State(int64_t customer_id) const;
  // Return every customer that has (or had) campaigns, ascending.
  std::vector<int64_t> Customers() const;
  // Return RenderModelCampaigns(State(customer_id), options).
  std::string RenderState(int64_t customer_id, const RenderOptions& options = {}) const;

  // Return the versions produced so far (seed rows included).
  int64_t TotalVersions() const { return total_versions_; }
  // Return the number of campaigns that currently exist.
  int64_t CampaignCount() const { return static_cast<int64_t>(campaigns_.size()); }
  // Return the applied ops' results in order. REQUIRES: keep_history.
  const std::vector<ModelOpResult>& History() const { return history_; }

  // Return the customer's campaigns as they were right after the op with this seq (inclusive),
  // in priority order. REQUIRES: keep_history.
  std::vector<ModelCampaign> StateAfterSeq(int64_t customer_id, int64_t seq) const;
  // Return the customer's campaigns as of `t`: for each campaign the version with the greatest
  // (committed_at, version) at or before t; deleted ones left out; by priority.
  // REQUIRES: keep_history, and every op applied with a committed_at.
  std::vector<ModelCampaign> AsOf(int64_t customer_id, Timestamp t) const;

  // Return OK when every customer's priorities are exactly 1..n, else FailedPrecondition naming
  // the customer.
  Status CheckInvariants() const;

 private:
  Status ApplySeed(const WorkloadLine& line, ModelOpResult& out);
  Status ApplyCreate(const WorkloadLine& line, ModelOpResult& out);
  Status ApplyUpdate(const WorkloadLine& line, ModelOpResult& out);
  Status ApplyReorder(const WorkloadLine& line, ModelOpResult& out);
  Status ApplyDelete(const WorkloadLine& line, ModelOpResult& out);
  Status CheckFooter(const WorkloadLine& line) const;

  // Apply `shift` literally to the customer's campaigns except `skip_id`; stamp the touched rows.
  // Return the touched ids, ascending.
  std::vector<int64_t> Shift(int64_t customer_id, const WorkloadShift& shift, int64_t skip_id,
                             const std::string& actor, std::optional<Timestamp> at);
  // Return the campaign `id` of the line's customer, or NotFound / FailedPrecondition.
  Result<ModelCampaign*> Find(const WorkloadLine& line, int64_t id, int64_t customer_id);
  Status CheckDense(const WorkloadLine& line, int64_t customer_id) const;

  ModelOptions options_;
  // campaign id -> campaign (the ones that currently exist).
  std::map<int64_t, ModelCampaign> campaigns_;
  // customer id -> its campaign ids.
  std::map<int64_t, std::set<int64_t>> by_customer_;
  std::set<int64_t> ids_ever_;
  int64_t total_versions_ = 0;
  std::map<std::string, int64_t> counts_;
  int64_t ops_ = 0;
  bool complete_ = false;
  std::optional<int64_t> last_seq_;
  std::vector<ModelOpResult> history_;
};

// Return the model's view of a system campaign (content re-serialized canonically).
ModelCampaign ToModelCampaign(const Campaign& c);

// Render campaigns (in the given order) as described in the file comment.
std::string RenderModelCampaigns(const std::vector<ModelCampaign>& campaigns,
                                 const RenderOptions& options = {});
// Render the system's campaigns (e.g. an as-of answer or CampaignService::List) the same way.
std::string RenderCampaigns(const std::vector<Campaign>& campaigns,
                            const RenderOptions& options = {});

// The first entry (line) at which two renderings differ, as "entry N:" followed by the line of
// each side (labelled `got_label` and "model", cut to `cut` bytes); "" when they are equal.
std::string FirstRenderingDifference(const std::string& got, const std::string& want,
                                     const std::string& got_label, size_t cut);

}  // namespace ch::testing
