#include "query/query_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "common/time_util.h"

namespace ch {
namespace {

using OJson = nlohmann::ordered_json;
using Json = nlohmann::json;

// Top-level fields that change with every version; reported in headers, not as changes.
bool IsBookkeeping(std::string_view key) {
  return key == "version" || key == "updated_at" || key == "updated_by";
}

std::string Dump(const OJson& v) { return v.dump(-1, ' ', false, OJson::error_handler_t::replace); }

Result<OJson> ParseOrdered(std::string_view text) {
  if (text.empty()) return OJson();  // absent
  try {
    return OJson::parse(text);
  } catch (const OJson::exception& e) {
    return InvalidArgumentError(fmt::format("snapshot is not JSON: {}", e.what()));
  }
}

// The leaves of a snapshot: top-level fields (bookkeeping excluded) with object values expanded
// into dotted sub-paths ("content.body"); arrays and scalars are leaves, as are empty objects.
using Leaves = std::vector<std::pair<std::string, const OJson*>>;

void Expand(const OJson& v, const std::string& prefix, Leaves& out) {
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (prefix.empty() && IsBookkeeping(it.key())) continue;
    std::string path = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object() && !it->empty()) {
      Expand(*it, path, out);
    } else {
      out.emplace_back(std::move(path), &*it);
    }
  }
}

Leaves Flatten(const OJson& snapshot) {
  Leaves out;
  if (snapshot.is_null()) return out;
  if (!snapshot.is_object()) {
    out.emplace_back("(snapshot)", &snapshot);
    return out;
  }
  Expand(snapshot, "", out);
  return out;
}

std::vector<FieldChange> DiffLeaves(const Leaves& before, const Leaves& after) {
  std::map<std::string_view, const OJson*> old_values;
  for (const auto& [path, v] : before) old_values.emplace(path, v);
  std::map<std::string_view, bool> seen;
  std::vector<FieldChange> out;
  for (const auto& [path, v] : after) {
    seen[path] = true;
    auto it = old_values.find(path);
    if (it == old_values.end()) {
      out.push_back({path, std::nullopt, Dump(*v)});
    } else if (*it->second != *v) {
      out.push_back({path, Dump(*it->second), Dump(*v)});
    }
  }
  for (const auto& [path, v] : before) {
    if (!seen.count(path)) out.push_back({path, Dump(*v), std::nullopt});
  }
  return out;
}

Status RangeCheck(const TimeRange& range) {
  if (range.from && range.to && *range.from > *range.to) {
    return InvalidArgumentError(fmt::format("time range starts ({}) after it ends ({})",
                                            FormatTimestamp(*range.from),
                                            FormatTimestamp(*range.to)));
  }
  return Status::OK();
}

bool Later(const HistoryRecord& a, const HistoryRecord& b) {
  if (a.event_time != b.event_time) return a.event_time > b.event_time;
  return a.version > b.version;
}

}  // namespace

Result<std::vector<FieldChange>> DiffSnapshots(std::string_view before, std::string_view after) {
  ASSIGN_OR_RETURN(OJson a, ParseOrdered(before));
  ASSIGN_OR_RETURN(OJson b, ParseOrdered(after));
  return DiffLeaves(Flatten(a), Flatten(b));
}

Result<std::string> SnapshotPatch(std::string_view before, std::string_view after) {
  try {
    Json a = before.empty() ? Json() : Json::parse(before);
    Json b = after.empty() ? Json() : Json::parse(after);
    return Json::diff(a, b).dump(-1, ' ', false, Json::error_handler_t::replace);
  } catch (const Json::exception& e) {
    return InvalidArgumentError(fmt::format("snapshot is not JSON: {}", e.what()));
  }
}

Result<VersionRef> VersionRef::Parse(std::string_view text) {
  std::string_view digits = text;
  if (!digits.empty() && (digits.front() == 'v' || digits.front() == 'V')) digits.remove_prefix(1);
  if (!digits.empty() &&
      std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
    if (ec != std::errc() || p != digits.data() + digits.size() || v < 1) {
      return InvalidArgumentError(
          fmt::format("'{}' is not a version (versions are 1, 2, 3, ...)", text));
    }
    VersionRef r = Version(v);
    r.text = std::string(text);
    return r;
  }
  auto t = ParseTimestamp(text);
  if (!t.ok()) {
    return InvalidArgumentError(
        fmt::format("'{}' is neither a version (e.g. 12 or v12) nor a moment ({})", text,
                    t.status().message()));
  }
  VersionRef r = At(*t);
  r.text = std::string(text);
  return r;
}

VersionRef VersionRef::Version(int64_t v) {
  VersionRef r;
  r.version = v;
  r.text = fmt::format("v{}", v);
  return r;
}

VersionRef VersionRef::At(Timestamp t) {
  VersionRef r;
  r.at = t;
  r.text = FormatTimestamp(t);
  return r;
}

Status QueryEngine::RequireCampaign(int64_t campaign_id) {
  ASSIGN_OR_RETURN(std::optional<int64_t> latest, store_.LatestVersion(campaign_id));
  if (!latest) return NotFoundError(fmt::format("campaign {} has no history", campaign_id));
  return Status::OK();
}

Result<std::optional<HistoryRecord>> QueryEngine::Previous(const HistoryRecord& r) {
  if (r.version <= 1) return std::optional<HistoryRecord>();
  ASSIGN_OR_RETURN(std::optional<HistoryRecord> p, store_.GetVersion(r.campaign_id, r.version - 1));
  if (p) return p;
  // A gap (notify capture skipped versions): the highest stored version below.
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> all, store_.CampaignLog(r.campaign_id, {}));
  std::optional<HistoryRecord> best;
  for (auto& x : all) {
    if (x.version < r.version && (!best || x.version > best->version)) best = std::move(x);
  }
  return best;
}

Result<AsOfResult> QueryEngine::AsOf(int64_t customer_id, Timestamp at) {
  AsOfResult out;
  out.customer_id = customer_id;
  out.at = at;
  ASSIGN_OR_RETURN(bool erased, store_.Erased(customer_id));
  if (erased) {
    return NotFoundError(fmt::format(
        "the history of customer {} was erased (the audit log in `status` says when and by "
        "whom)",
        customer_id));
  }
  ASSIGN_OR_RETURN(std::optional<Timestamp> purged, store_.PurgedBefore(customer_id));
  if (purged && at < *purged) {
    return FailedPreconditionError(fmt::format(
        "the history of customer {} before {} was purged: the earliest moment it answers for is "
        "{}",
        customer_id, FormatTimestamp(*purged), FormatTimestamp(*purged)));
  }
  ASSIGN_OR_RETURN(out.completeness, store_.GetCompleteness());
  const std::optional<Timestamp>& complete = out.completeness.complete_through;
  out.answered_at = complete && at > *complete ? *complete : at;
  ASSIGN_OR_RETURN(out.campaigns, store_.AsOf(customer_id, out.answered_at));
  return out;
}

Result<LogResult> QueryEngine::Log(int64_t campaign_id, const TimeRange& range) {
  RETURN_IF_ERROR(RangeCheck(range));
  RETURN_IF_ERROR(RequireCampaign(campaign_id));
  LogResult out;
  out.campaign_id = campaign_id;
  out.range = range;
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> records, store_.CampaignLog(campaign_id, range));
  std::optional<HistoryRecord> prev;
  if (!records.empty()) {
    out.customer_id = records.front().customer_id;
    ASSIGN_OR_RETURN(prev, Previous(records.front()));
  }
  for (HistoryRecord& r : records) {
    LogEntry e;
    std::string_view before = prev ? std::string_view(prev->snapshot) : std::string_view();
    if (prev) e.previous_version = prev->version;
    ASSIGN_OR_RETURN(e.changes, DiffSnapshots(before, r.snapshot));
    ASSIGN_OR_RETURN(e.patch, SnapshotPatch(before, r.snapshot));
    e.record = std::move(r);
    prev = e.record;
    out.entries.push_back(std::move(e));
  }
  return out;
}

Result<ResolvedState> QueryEngine::Resolve(int64_t campaign_id, const VersionRef& ref) {
  ResolvedState s;
  s.ref = ref;
  if (ref.version) {
    ASSIGN_OR_RETURN(s.record, store_.GetVersion(campaign_id, *ref.version));
    if (!s.record) {
      ASSIGN_OR_RETURN(std::optional<int64_t> latest, store_.LatestVersion(campaign_id));
      return NotFoundError(fmt::format("campaign {} has no version {} (latest stored: {})",
                                       campaign_id, *ref.version,
                                       latest ? fmt::format("v{}", *latest) : "none"));
    }
  } else if (ref.at) {
    ASSIGN_OR_RETURN(s.record, store_.LatestAt(campaign_id, *ref.at));
  } else {
    return InvalidArgumentError("empty version reference");
  }
  s.exists = s.record && s.record->event_type != ChangeOp::kDeleted;
  return s;
}

Result<DiffResult> QueryEngine::Diff(int64_t campaign_id, const VersionRef& from,
                                     const VersionRef& to) {
  RETURN_IF_ERROR(RequireCampaign(campaign_id));
  DiffResult out;
  out.campaign_id = campaign_id;
  ASSIGN_OR_RETURN(out.from, Resolve(campaign_id, from));
  ASSIGN_OR_RETURN(out.to, Resolve(campaign_id, to));
  for (const ResolvedState* s : {&out.from, &out.to}) {
    if (s->record) out.customer_id = s->record->customer_id;
  }
  std::string_view before = out.from.exists ? std::string_view(out.from.record->snapshot) : "";
  std::string_view after = out.to.exists ? std::string_view(out.to.record->snapshot) : "";
  ASSIGN_OR_RETURN(out.changes, DiffSnapshots(before, after));
  ASSIGN_OR_RETURN(out.patch, SnapshotPatch(before, after));
  return out;
}

Result<TimelineResult> QueryEngine::Timeline(int64_t customer_id, const TimeRange& range,
                                             int64_t limit) {
  RETURN_IF_ERROR(RangeCheck(range));
  if (limit < 1 || limit > kMaxTimelineLimit) {
    return InvalidArgumentError(
        fmt::format("timeline limit must be 1..{}, got {}", kMaxTimelineLimit, limit));
  }
  TimelineResult out;
  out.customer_id = customer_id;
  out.range = range;
  out.limit = limit;
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> records,
                   store_.CustomerChanges(customer_id, range, limit + 1));
  if (static_cast<int64_t>(records.size()) > limit) {
    out.truncated = true;
    records.resize(static_cast<size_t>(limit));
  }
  // Previous versions are often in the answer itself (a campaign edited twice in the window).
  std::map<std::pair<int64_t, int64_t>, const HistoryRecord*> by_key;
  for (const HistoryRecord& r : records) by_key[{r.campaign_id, r.version}] = &r;
  for (const HistoryRecord& r : records) {
    TimelineChange c;
    c.campaign_id = r.campaign_id;
    c.version = r.version;
    c.event_type = r.event_type;
    c.event_time = r.event_time;
    c.actor = r.actor;
    c.missed_versions = r.missed_versions;
    if (r.event_type == ChangeOp::kUpdated) {
      std::string prev_snapshot;
      if (auto it = by_key.find({r.campaign_id, r.version - 1}); it != by_key.end()) {
        prev_snapshot = it->second->snapshot;
      } else {
        ASSIGN_OR_RETURN(std::optional<HistoryRecord> prev, Previous(r));
        if (prev) prev_snapshot = std::move(prev->snapshot);
      }
      if (!prev_snapshot.empty()) {
        ASSIGN_OR_RETURN(std::vector<FieldChange> changes,
                         DiffSnapshots(prev_snapshot, r.snapshot));
        for (auto& f : changes) c.fields.push_back(std::move(f.path));
      }
    }
    bool same_group = !out.groups.empty() && !r.transaction_id.empty() &&
                      out.groups.back().transaction_id == r.transaction_id;
    if (!same_group) {
      TimelineGroup g;
      g.transaction_id = r.transaction_id;
      g.time = r.event_time;
      out.groups.push_back(std::move(g));
    }
    TimelineGroup& g = out.groups.back();
    if (std::find(g.actors.begin(), g.actors.end(), r.actor) == g.actors.end()) {
      g.actors.push_back(r.actor);
    }
    g.changes.push_back(std::move(c));
  }
  return out;
}

Result<BlameResult> QueryEngine::Blame(int64_t campaign_id, Timestamp at) {
  RETURN_IF_ERROR(RequireCampaign(campaign_id));
  BlameResult out;
  out.campaign_id = campaign_id;
  out.at = at;
  ASSIGN_OR_RETURN(out.state, store_.LatestAt(campaign_id, at));
  if (!out.state) return out;
  out.customer_id = out.state->customer_id;
  out.exists = out.state->event_type != ChangeOp::kDeleted;
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> records,
                   store_.CampaignLog(campaign_id, {std::nullopt, at}));
  std::sort(records.begin(), records.end(),
            [](const HistoryRecord& a, const HistoryRecord& b) { return Later(b, a); });
  // Walk forward; a leaf whose value differs from the previous version's is blamed on the
  // record that brought the difference.
  std::map<std::string, const HistoryRecord*> blame;
  OJson prev_doc;
  Leaves prev;
  OJson doc;
  for (const HistoryRecord& r : records) {
    ASSIGN_OR_RETURN(doc, ParseOrdered(r.snapshot));
    Leaves cur = Flatten(doc);
    for (const FieldChange& c : DiffLeaves(prev, cur)) {
      if (c.after) {
        blame[c.path] = &r;
      } else {
        blame.erase(c.path);
      }
    }
    prev_doc = std::move(doc);
    prev = Flatten(prev_doc);
  }
  for (const auto& [path, value] : prev) {
    const HistoryRecord* r = blame.count(path) ? blame[path] : nullptr;
    if (r == nullptr) continue;
    out.entries.push_back(
        {path, Dump(*value), r->version, r->event_time, r->actor, r->transaction_id});
  }
  return out;
}

}  // namespace ch
