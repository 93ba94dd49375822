#include "testing/workload_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "common/time_util.h"

namespace ch::testing {
namespace {

// Compact JSON with sorted keys; invalid text is kept visibly so a comparison shows it.
std::string CanonicalJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return "!invalid-json:" + text;
  return j.dump();
}

std::string ShiftText(const WorkloadShift& s) {
  return fmt::format("{{delta {}, lo {}, hi {}, n {}}}", s.delta, s.lo,
                     s.hi ? std::to_string(*s.hi) : "null", s.n);
}

Status Mismatch(const WorkloadLine& line, std::string_view field, std::string_view what) {
  return FailedPreconditionError(fmt::format("{}: field '{}': {}", line.Where(), field, what));
}

bool InShift(int64_t priority, const WorkloadShift& s) {
  return priority >= s.lo && (!s.hi || priority <= *s.hi);
}

std::string TimeText(const std::optional<Timestamp>& t, std::string_view absent) {
  return t ? FormatTimestamp(*t) : std::string(absent);
}

void SortByPriority(std::vector<ModelCampaign>& v) {
  std::sort(v.begin(), v.end(), [](const ModelCampaign& a, const ModelCampaign& b) {
    return a.priority != b.priority ? a.priority < b.priority : a.id < b.id;
  });
}

}  // namespace

std::vector<RowChange> ModelOpResult::changes() const {
  std::vector<RowChange> out;
  out.reserve(versions.size());
  for (const ModelVersion& v : versions) {
    out.push_back(RowChange{v.op, v.campaign_id, v.customer_id, v.version});
  }
  return out;
}

ModelCampaign ToModelCampaign(const Campaign& c) {
  ModelCampaign m;
  m.id = c.id;
  m.customer_id = c.customer_id;
  m.name = c.name;
  m.status = std::string(CampaignStatusName(c.status));
  m.priority = c.priority;
  m.trigger_event = c.trigger_event;
  m.audience_segment = c.audience_segment;
  m.start_at = c.start_at;
  m.end_at = c.end_at;
  m.frequency_cap = c.frequency_cap;
  m.content = CanonicalJson(c.content);
  m.version = c.version;
  m.updated_by = c.updated_by;
  m.created_at = c.created_at;
  m.updated_at = c.updated_at;
  return m;
}

std::string RenderModelCampaigns(const std::vector<ModelCampaign>& campaigns,
                                 const RenderOptions& options) {
  std::string out;
  for (const ModelCampaign& c : campaigns) {
    if (!out.empty()) out += options.all_fields ? "\n" : "; ";
    out += fmt::format("c{}@v{} p{} {} '{}' by {}", c.id, c.version, c.priority, c.status, c.name,
                       c.updated_by);
    if (options.all_fields) {
      out += fmt::format(" trigger={} segment={} start={} end={} cap={} content={}",
                         c.trigger_event, c.audience_segment, TimeText(c.start_at, "-"),
                         TimeText(c.end_at, "-"), c.frequency_cap, c.content);
    }
    if (options.times) {
      out += fmt::format(" created={} updated={}", TimeText(c.created_at, "?"),
                         TimeText(c.updated_at, "?"));
    }
  }
  return out;
}

std::string RenderCampaigns(const std::vector<Campaign>& campaigns, const RenderOptions& options) {
  std::vector<ModelCampaign> m;
  m.reserve(campaigns.size());
  for (const Campaign& c : campaigns) m.push_back(ToModelCampaign(c));
  return RenderModelCampaigns(m, options);
}

std::string FirstRenderingDifference(const std::string& got, const std::string& want,
                                     const std::string& got_label, size_t cut) {
  std::istringstream g(got), w(want);
  std::string gl, wl;
  for (int i = 0;; ++i) {
    bool hg = static_cast<bool>(std::getline(g, gl));
    bool hw = static_cast<bool>(std::getline(w, wl));
    if (!hg && !hw) return "";
    if (!hg) gl = "(missing)";
    if (!hw) wl = "(extra)";
    if (gl != wl || !hg || !hw) {
      const std::string pad(got_label.size() > 5 ? got_label.size() - 5 : 0, ' ');
      return fmt::format("entry {}:\n  {}: {}\n  model:{} {}", i, got_label, gl.substr(0, cut), pad,
                         wl.substr(0, cut));
    }
  }
}

WorkloadModel::WorkloadModel(ModelOptions options) : options_(options) {}

std::vector<ModelCampaign> WorkloadModel::State(int64_t customer_id) const {
  std::vector<ModelCampaign> out;
  auto it = by_customer_.find(customer_id);
  if (it == by_customer_.end()) return out;
  for (int64_t id : it->second) out.push_back(campaigns_.at(id));
  SortByPriority(out);
  return out;
}

std::vector<int64_t> WorkloadModel::Customers() const {
  std::vector<int64_t> out;
  for (const auto& [c, ids] : by_customer_) out.push_back(c);
  return out;
}

std::string WorkloadModel::RenderState(int64_t customer_id, const RenderOptions& options) const {
  return RenderModelCampaigns(State(customer_id), options);
}

Status WorkloadModel::CheckInvariants() const {
  for (const auto& [c, ids] : by_customer_) {
    std::vector<int64_t> priorities;
    for (int64_t id : ids) priorities.push_back(campaigns_.at(id).priority);
    std::sort(priorities.begin(), priorities.end());
    for (size_t i = 0; i < priorities.size(); ++i) {
      if (priorities[i] != static_cast<int64_t>(i) + 1) {
        return FailedPreconditionError(
            fmt::format("customer {}: priorities are not dense 1..{} (position {} holds {})", c,
                        priorities.size(), i + 1, priorities[i]));
      }
    }
  }
  return Status::OK();
}

Status WorkloadModel::CheckDense(const WorkloadLine& line, int64_t customer_id) const {
  std::vector<int64_t> priorities;
  auto it = by_customer_.find(customer_id);
  if (it != by_customer_.end()) {
    for (int64_t id : it->second) priorities.push_back(campaigns_.at(id).priority);
  }
  std::sort(priorities.begin(), priorities.end());
  for (size_t i = 0; i < priorities.size(); ++i) {
    if (priorities[i] != static_cast<int64_t>(i) + 1) {
      return InternalError(fmt::format("{}: model bug: customer {} priorities not dense",
                                       line.Where(), customer_id));
    }
  }
  return Status::OK();
}

Result<ModelCampaign*> WorkloadModel::Find(const WorkloadLine& line, int64_t id,
                                           int64_t customer_id) {
  auto it = campaigns_.find(id);
  if (it == campaigns_.end()) {
    return NotFoundError(
        fmt::format("{}: field 'id': campaign {} does not exist", line.Where(), id));
  }
  if (it->second.customer_id != customer_id) {
    return Mismatch(line, "customer_id",
                    fmt::format("campaign {} belongs to customer {}, not {}", id,
                                it->second.customer_id, customer_id));
  }
  return &it->second;
}

std::vector<int64_t> WorkloadModel::Shift(int64_t customer_id, const WorkloadShift& shift,
                                          int64_t skip_id, const std::string& actor,
                                          std::optional<Timestamp> at) {
  std::vector<int64_t> touched;
  for (int64_t id : by_customer_[customer_id]) {  // ascending ids
    if (id == skip_id) continue;
    ModelCampaign& c = campaigns_.at(id);
    if (!InShift(c.priority, shift)) continue;
    c.priority += shift.delta;
    ++c.version;
    c.updated_by = actor;
    if (at) c.updated_at = at;
    touched.push_back(id);
  }
  return touched;
}

// ---- ops ---------------------------------------------------------------------------------------

Status WorkloadModel::ApplySeed(const WorkloadLine& line, ModelOpResult& out) {
  const WorkloadSeed& s = line.seed();
  auto& ids = by_customer_[s.customer_id];
  std::vector<int64_t> priorities;
  for (int64_t id : ids) priorities.push_back(campaigns_.at(id).priority);
  std::set<int64_t> new_ids;
  for (const Campaign& row : s.rows) {
    if (ids_ever_.count(row.id) || !new_ids.insert(row.id).second) {
      return AlreadyExistsError(
          fmt::format("{}: field 'rows': campaign id {} is already used", line.Where(), row.id));
    }
    priorities.push_back(row.priority);
  }
  std::sort(priorities.begin(), priorities.end());
  for (size_t i = 0; i < priorities.size(); ++i) {
    if (priorities[i] != static_cast<int64_t>(i) + 1) {
      return Mismatch(
          line, "rows",
          fmt::format("the customer's priorities would not be dense 1..{}", priorities.size()));
    }
  }
  if (line.versions != static_cast<int64_t>(s.rows.size())) {
    return Mismatch(line, "versions",
                    fmt::format("{} but the line has {} rows", line.versions, s.rows.size()));
  }
  for (const Campaign& row : s.rows) {
    ModelCampaign m = ToModelCampaign(row);
    m.version = 1;
    m.created_at = out.committed_at;
    m.updated_at = out.committed_at;
    ids_ever_.insert(m.id);
    ids.insert(m.id);
    out.versions.push_back(
        ModelVersion{ChangeOp::kCreated, m.id, m.customer_id, 1, m.updated_by, m});
    campaigns_[m.id] = std::move(m);
  }
  return Status::OK();
}

Status WorkloadModel::ApplyCreate(const WorkloadLine& line, ModelOpResult& out) {
  const WorkloadCreate& c = line.create();
  if (ids_ever_.count(c.row.id)) {
    return AlreadyExistsError(
        fmt::format("{}: field 'row.id': campaign id {} is already used", line.Where(), c.row.id));
  }
  if (c.row.priority != 1) {
    return Mismatch(line, "row.priority",
                    fmt::format("{} but a created campaign goes to priority 1", c.row.priority));
  }
  auto n = static_cast<int64_t>(by_customer_[c.customer_id].size());
  WorkloadShift want{1, 1, std::nullopt, n};
  if (c.shift != want) {
    return Mismatch(
        line, "shift",
        fmt::format("{} but the model expects {}", ShiftText(c.shift), ShiftText(want)));
  }
  if (line.versions != n + 1) {
    return Mismatch(line, "versions",
                    fmt::format("{} but the model expects {}", line.versions, n + 1));
  }
  // The format's order: shift, then insert at priority 1.
  std::vector<int64_t> touched = Shift(c.customer_id, c.shift, 0, c.actor, out.committed_at);
  ModelCampaign m = ToModelCampaign(c.row);
  m.priority = 1;
  m.version = 1;
  m.created_at = out.committed_at;
  m.updated_at = out.committed_at;
  ids_ever_.insert(m.id);
  by_customer_[c.customer_id].insert(m.id);
  out.versions.push_back(ModelVersion{ChangeOp::kCreated, m.id, m.customer_id, 1, c.actor, m});
  campaigns_[m.id] = std::move(m);
  for (int64_t id : touched) {
    const ModelCampaign& s = campaigns_.at(id);
    out.versions.push_back(
        ModelVersion{ChangeOp::kUpdated, id, s.customer_id, s.version, c.actor, s});
  }
  out.shifted = static_cast<int64_t>(touched.size());
  return Status::OK();
}

Status WorkloadModel::ApplyUpdate(const WorkloadLine& line, ModelOpResult& out) {
  const WorkloadUpdate& u = line.update();
  ASSIGN_OR_RETURN(ModelCampaign * row, Find(line, u.id, u.customer_id));
  if (line.versions != 1) {
    return Mismatch(line, "versions", fmt::format("{} but an update produces 1", line.versions));
  }
  ModelCampaign next = *row;
  const CampaignPatch& p = u.set;
  if (p.name) next.name = *p.name;
  if (p.status) next.status = std::string(CampaignStatusName(*p.status));
  if (p.trigger_event) next.trigger_event = *p.trigger_event;
  if (p.audience_segment) next.audience_segment = *p.audience_segment;
  if (p.start_at) next.start_at = *p.start_at;
  if (p.end_at) next.end_at = *p.end_at;
  if (p.frequency_cap) next.frequency_cap = *p.frequency_cap;
  if (p.content) next.content = CanonicalJson(*p.content);
  if (next.start_at && next.end_at && *next.end_at <= *next.start_at) {
    return Mismatch(line, "set", "end_at would not be after start_at");
  }
  next.updated_by = u.actor;
  ++next.version;
  if (out.committed_at) next.updated_at = out.committed_at;
  *row = next;
  out.versions.push_back(
      ModelVersion{ChangeOp::kUpdated, next.id, next.customer_id, next.version, u.actor, next});
  return Status::OK();
}

Status WorkloadModel::ApplyReorder(const WorkloadLine& line, ModelOpResult& out) {
  const WorkloadReorder& r = line.reorder();
  ASSIGN_OR_RETURN(ModelCampaign * row, Find(line, r.id, r.customer_id));
  auto n = static_cast<int64_t>(by_customer_[r.customer_id].size());
  if (row->priority != r.from) {
    return Mismatch(
        line, "from",
        fmt::format("{} but campaign {} is at priority {}", r.from, r.id, row->priority));
  }
  if (r.to < 1 || r.to > n) {
    return Mismatch(line, "to", fmt::format("{} is outside 1..{}", r.to, n));
  }
  WorkloadShift want = r.to < r.from ? WorkloadShift{1, r.to, r.from - 1, r.from - r.to}
                                     : WorkloadShift{-1, r.from + 1, r.to, r.to - r.from};
  if (r.shift != want) {
    return Mismatch(
        line, "shift",
        fmt::format("{} but the model expects {}", ShiftText(r.shift), ShiftText(want)));
  }
  if (line.versions != want.n + 1) {
    return Mismatch(line, "versions",
                    fmt::format("{} but the model expects {}", line.versions, want.n + 1));
  }
  // The format's order: shift, then move.
  std::vector<int64_t> touched = Shift(r.customer_id, r.shift, r.id, r.actor, out.committed_at);
  row->priority = r.to;
  ++row->version;
  row->updated_by = r.actor;
  if (out.committed_at) row->updated_at = out.committed_at;
  out.versions.push_back(
      ModelVersion{ChangeOp::kUpdated, row->id, row->customer_id, row->version, r.actor, *row});
  for (int64_t id : touched) {
    const ModelCampaign& s = campaigns_.at(id);
    out.versions.push_back(
        ModelVersion{ChangeOp::kUpdated, id, s.customer_id, s.version, r.actor, s});
  }
  out.shifted = static_cast<int64_t>(touched.size());
  return Status::OK();
}

Status WorkloadModel::ApplyDelete(const WorkloadLine& line, ModelOpResult& out) {
  const WorkloadDelete& d = line.del();
  ASSIGN_OR_RETURN(ModelCampaign * row, Find(line, d.id, d.customer_id));
  if (row->priority != d.priority) {
    return Mismatch(
        line, "priority",
        fmt::format("{} but campaign {} is at priority {}", d.priority, d.id, row->priority));
  }
  auto below = static_cast<int64_t>(by_customer_[d.customer_id].size()) - d.priority;
  WorkloadShift want{-1, d.priority + 1, std::nullopt, below};
  if (d.shift != want) {
    return Mismatch(
        line, "shift",
        fmt::format("{} but the model expects {}", ShiftText(d.shift), ShiftText(want)));
  }
  if (line.versions != below + 1) {
    return Mismatch(line, "versions",
                    fmt::format("{} but the model expects {}", line.versions, below + 1));
  }
  // The format's order: delete, then shift.
  ModelCampaign last = *row;
  campaigns_.erase(d.id);
  by_customer_[d.customer_id].erase(d.id);
  out.versions.push_back(
      ModelVersion{ChangeOp::kDeleted, d.id, d.customer_id, last.version + 1, d.actor, last});
  std::vector<int64_t> touched = Shift(d.customer_id, d.shift, 0, d.actor, out.committed_at);
  for (int64_t id : touched) {
    const ModelCampaign& s = campaigns_.at(id);
    out.versions.push_back(
        ModelVersion{ChangeOp::kUpdated, id, s.customer_id, s.version, d.actor, s});
  }
  out.shifted = static_cast<int64_t>(touched.size());
  return Status::OK();
}

Status WorkloadModel::CheckFooter(const WorkloadLine& line) const {
  const WorkloadFooter& f = line.footer();
  auto bad = [&](std::string_view field, int64_t want, int64_t got) {
    return Mismatch(line, field, fmt::format("footer says {} but the model has {}", want, got));
  };
  if (f.expected_versions != total_versions_) {
    return bad("expected_versions", f.expected_versions, total_versions_);
  }
  if (f.ops != ops_) return bad("ops", f.ops, ops_);
  for (const auto& [name, count] : f.counts) {
    auto it = counts_.find(name);
    int64_t got = it == counts_.end() ? 0 : it->second;
    if (got != count) return bad("counts." + name, count, got);
  }
  if (f.campaigns_final != CampaignCount()) {
    return bad("campaigns_final", f.campaigns_final, CampaignCount());
  }
  return Status::OK();
}

Result<std::optional<ModelOpResult>> WorkloadModel::Apply(const WorkloadLine& line,
                                                          std::optional<Timestamp> committed_at) {
  bool first = !last_seq_.has_value();
  if (line.op == WorkloadOp::kHeader) {
    complete_ = first;
  } else if (first || line.seq != *last_seq_ + 1) {
    complete_ = false;
  }
  last_seq_ = line.seq;
  if (line.op == WorkloadOp::kHeader) return std::optional<ModelOpResult>();
  if (line.op == WorkloadOp::kFooter) {
    if (complete_) RETURN_IF_ERROR(CheckFooter(line));
    return std::optional<ModelOpResult>();
  }

  ModelOpResult out;
  out.seq = line.seq;
  out.op = line.op;
  out.committed_at = committed_at;
  Status st;
  switch (line.op) {
    case WorkloadOp::kSeed:
      st = ApplySeed(line, out);
      break;
    case WorkloadOp::kCreate:
      st = ApplyCreate(line, out);
      break;
    case WorkloadOp::kUpdate:
    case WorkloadOp::kBurst:
      st = ApplyUpdate(line, out);
      break;
    case WorkloadOp::kReorder:
      st = ApplyReorder(line, out);
      break;
    case WorkloadOp::kDelete:
      st = ApplyDelete(line, out);
      break;
    case WorkloadOp::kHeader:
    case WorkloadOp::kFooter:
      break;
  }
  if (!st.ok()) {
    complete_ = false;
    return st;
  }
  RETURN_IF_ERROR(CheckDense(line, line.customer_id()));
  total_versions_ += static_cast<int64_t>(out.versions.size());
  ++counts_[std::string(WorkloadOpName(line.op))];
  if (line.op != WorkloadOp::kSeed) ++ops_;
  if (options_.keep_history) history_.push_back(out);
  return std::optional<ModelOpResult>(std::move(out));
}

std::vector<ModelCampaign> WorkloadModel::StateAfterSeq(int64_t customer_id, int64_t seq) const {
  std::map<int64_t, const ModelVersion*> latest;
  for (const ModelOpResult& op : history_) {
    if (op.seq > seq) break;
    for (const ModelVersion& v : op.versions) {
      if (v.customer_id == customer_id) latest[v.campaign_id] = &v;
    }
  }
  std::vector<ModelCampaign> out;
  for (const auto& [id, v] : latest) {
    if (v->op != ChangeOp::kDeleted) out.push_back(v->snapshot);
  }
  SortByPriority(out);
  return out;
}

std::vector<ModelCampaign> WorkloadModel::AsOf(int64_t customer_id, Timestamp t) const {
  // For each campaign the version with the greatest (committed_at, version) at or before t.
  std::map<int64_t, std::pair<const ModelOpResult*, const ModelVersion*>> latest;
  for (const ModelOpResult& op : history_) {
    if (!op.committed_at || *op.committed_at > t) continue;
    for (const ModelVersion& v : op.versions) {
      if (v.customer_id != customer_id) continue;
      auto it = latest.find(v.campaign_id);
      if (it == latest.end() ||
          std::pair(*op.committed_at, v.version) >
              std::pair(*it->second.first->committed_at, it->second.second->version)) {
        latest[v.campaign_id] = {&op, &v};
      }
    }
  }
  std::vector<ModelCampaign> out;
  for (const auto& [id, pv] : latest) {
    if (pv.second->op != ChangeOp::kDeleted) out.push_back(pv.second->snapshot);
  }
  SortByPriority(out);
  return out;
}

}  // namespace ch::testing
