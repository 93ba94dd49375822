#include "query/query_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "common/text.h"
#include "common/time_util.h"
#include "history/snapshot_codec.h"
#include "query/cursor.h"

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

Result<VersionRef> VersionRef::Parse(std::string_view text, const Clock& clock) {
  if (!IsRelativeTime(text)) return Parse(text);
  ASSIGN_OR_RETURN(Timestamp t, ParseTimeExpression(text, clock));
  VersionRef r = At(t);
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

namespace {

// ---- helpers of causes ----------------------------------------------------------------------

// True when the two snapshots differ at most in the fields a shift changes (priority and the
// bookkeeping fields): their bodies without those values are equal (history/snapshot_codec.h).
bool SameBody(std::string_view a, std::string_view b) {
  if (a.empty() || b.empty()) return false;
  return SplitSnapshotText(a, SnapshotColumns{}).body ==
         SplitSnapshotText(b, SnapshotColumns{}).body;
}

std::string NameOf(std::string_view snapshot) {
  Json j = Json::parse(snapshot, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  auto it = j.find("name");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

TxnChange MakeTxnChange(const HistoryRecord& r, const std::optional<HistoryRecord>& prev) {
  TxnChange c;
  c.campaign_id = r.campaign_id;
  c.version = r.version;
  c.op = r.event_type;
  c.priority = r.priority;
  if (prev && prev->event_type != ChangeOp::kDeleted) {
    c.previous_priority = prev->priority;
    c.priority_only = r.event_type == ChangeOp::kUpdated && SameBody(prev->snapshot, r.snapshot);
  }
  return c;
}

// The fields `r` changed against `prev`, cheaply for the common priority shift.
Result<std::vector<std::string>> ChangedFields(const HistoryRecord& r,
                                               const std::optional<HistoryRecord>& prev) {
  std::vector<std::string> out;
  if (r.event_type != ChangeOp::kUpdated || !prev || prev->snapshot.empty()) return out;
  if (SameBody(prev->snapshot, r.snapshot)) {
    if (prev->priority != r.priority) out.push_back("priority");
    return out;
  }
  ASSIGN_OR_RETURN(std::vector<FieldChange> changes, DiffSnapshots(prev->snapshot, r.snapshot));
  for (FieldChange& f : changes) out.push_back(std::move(f.path));
  return out;
}

Result<PrimaryChange> MakePrimary(ChangeKind kind, const HistoryRecord& r,
                                  const std::optional<HistoryRecord>& prev) {
  PrimaryChange p;
  p.kind = kind;
  p.campaign_id = r.campaign_id;
  p.version = r.version;
  p.name = NameOf(r.snapshot);
  bool had = prev && prev->event_type != ChangeOp::kDeleted;
  if (kind == ChangeKind::kCreated) {
    p.priority_to = r.priority;
  } else if (kind == ChangeKind::kDeleted) {
    p.priority_from = r.priority;
  } else if (had && prev->priority != r.priority) {
    p.priority_from = prev->priority;
    p.priority_to = r.priority;
  }
  if (kind == ChangeKind::kEdited) {
    ASSIGN_OR_RETURN(p.fields, ChangedFields(r, prev));
  }
  return p;
}

// The order of CustomerChanges (HistoryStore): (event_time, transaction_id, campaign_id,
// version).
bool TimelineBefore(const HistoryRecord& r, const TimelineCursor& c) {
  if (r.event_time != c.time) return r.event_time < c.time;
  if (r.transaction_id != c.transaction_id) return r.transaction_id < c.transaction_id;
  if (r.campaign_id != c.campaign_id) return r.campaign_id < c.campaign_id;
  return r.version <= c.version;
}

bool SameTransaction(const HistoryRecord& a, const HistoryRecord& b) {
  return !a.transaction_id.empty() && a.transaction_id == b.transaction_id &&
         a.event_time == b.event_time;
}

// ASCII-only lower case: names are compared without case for ASCII letters; other characters
// compare as they are.
std::string Folded(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsStatus(std::string_view s) {
  return s == "draft" || s == "active" || s == "paused" || s == "ended";
}

// The causes memoized by one engine; a long-lived engine forgets them all past this many.
constexpr size_t kMaxMemoizedCauses = 4096;

}  // namespace

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

// ---- causes ---------------------------------------------------------------------------------

namespace {

// One record of a transaction being explained: its full form and previous version once read.
struct TxnMember {
  HistoryRecord record;
  std::optional<HistoryRecord> previous;
  bool read = false;
};

// Build the cause from members whose kinds are known. `assumed_shifts`: members not read are
// shifts by one (the members read already hold the change that explains them).
Result<TransactionCause> BuildCause(const std::vector<TxnMember>& members,
                                    const std::vector<ChangeKind>& kinds) {
  TransactionCause c;
  c.changes = static_cast<int64_t>(members.size());
  int64_t down = 0;
  int64_t up = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const TxnMember& m = members[i];
    if (c.transaction_id.empty()) {
      c.transaction_id = m.record.transaction_id;
      c.time = m.record.event_time;
    }
    if (kinds[i] == ChangeKind::kShifted) {
      ++c.shifted;
      if (m.read && m.previous) {
        (m.record.priority > m.previous->priority ? down : up) += 1;
      }
      continue;
    }
    if (c.actor.empty()) c.actor = m.record.actor;
    ASSIGN_OR_RETURN(PrimaryChange p, MakePrimary(kinds[i], m.record, m.previous));
    c.primaries.push_back(std::move(p));
  }
  if (c.actor.empty() && !members.empty()) c.actor = members.front().record.actor;
  bool all_read =
      std::all_of(members.begin(), members.end(), [](const TxnMember& m) { return m.read; });
  if (all_read) {
    c.shifted_by = down > 0 && up == 0 ? 1 : (up > 0 && down == 0 ? -1 : 0);
  } else if (c.primaries.size() == 1 && c.shifted > 0) {
    // Shifts not read go the way the one primary change sends them.
    const PrimaryChange& p = c.primaries.front();
    if (p.kind == ChangeKind::kCreated) {
      c.shifted_by = 1;
    } else if (p.kind == ChangeKind::kDeleted) {
      c.shifted_by = -1;
    } else if (p.priority_from && p.priority_to) {
      c.shifted_by = *p.priority_to < *p.priority_from ? 1 : -1;
    }
  }
  return c;
}

}  // namespace

Result<TransactionCause> QueryEngine::TransactionCauseOf(const HistoryRecord& r) {
  CauseKey key{r.customer_id, r.event_time, r.transaction_id};
  if (!r.transaction_id.empty()) {
    if (auto it = causes_.find(key); it != causes_.end()) return it->second;
  }
  std::vector<TxnMember> members;
  if (!r.transaction_id.empty()) {
    ASSIGN_OR_RETURN(std::vector<HistoryRecord> headers,
                     store_.TransactionChanges(r.customer_id, r.event_time, r.transaction_id,
                                               /*with_snapshots=*/false));
    for (HistoryRecord& h : headers) members.push_back({std::move(h), std::nullopt, false});
  }
  if (members.empty()) members.push_back({r, std::nullopt, false});

  // Read one member in full, with its previous version.
  auto read = [&](TxnMember& m) -> Status {
    if (m.read) return Status::OK();
    if (m.record.campaign_id == r.campaign_id && m.record.version == r.version &&
        !r.snapshot.empty()) {
      m.record = r;
    } else {
      ASSIGN_OR_RETURN(std::optional<HistoryRecord> full,
                       store_.GetVersion(m.record.campaign_id, m.record.version));
      if (full) m.record = std::move(*full);
    }
    ASSIGN_OR_RETURN(m.previous, Previous(m.record));
    m.read = true;
    return Status::OK();
  };
  auto classify = [&]() {
    std::vector<TxnChange> changes;
    changes.reserve(members.size());
    for (const TxnMember& m : members) {
      if (m.read) {
        changes.push_back(MakeTxnChange(m.record, m.previous));
      } else {
        // Not read: taken for a shift by one until the members read say otherwise.
        TxnChange c;
        c.campaign_id = m.record.campaign_id;
        c.version = m.record.version;
        c.priority = m.record.priority;
        c.previous_priority = m.record.priority - 1;
        c.priority_only = true;
        changes.push_back(c);
      }
    }
    return ClassifyTransaction(changes);
  };

  // Where the primary change can be: a create or delete record, or -- for a move -- the moved
  // campaign, which lands at one end of the block of priorities the transaction touched.
  size_t lo = 0;
  size_t hi = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const HistoryRecord& h = members[i].record;
    if (h.event_type != ChangeOp::kUpdated) RETURN_IF_ERROR(read(members[i]));
    if (h.priority < members[lo].record.priority) lo = i;
    if (h.priority > members[hi].record.priority) hi = i;
  }
  RETURN_IF_ERROR(read(members[lo]));
  RETURN_IF_ERROR(read(members[hi]));
  std::vector<ChangeKind> kinds = classify();
  bool explained = false;
  for (size_t i = 0; i < members.size(); ++i) {
    if (members[i].read && kinds[i] != ChangeKind::kShifted && kinds[i] != ChangeKind::kMoved) {
      explained = true;
    }
    if (members[i].read && kinds[i] == ChangeKind::kMoved) {
      const TxnMember& m = members[i];
      int64_t delta = m.previous ? m.record.priority - m.previous->priority : 0;
      if (delta > 1 || delta < -1) explained = true;
    }
  }
  bool all_read =
      std::all_of(members.begin(), members.end(), [](const TxnMember& m) { return m.read; });
  if (!explained && !all_read) {
    // Nothing read explains the transaction: read all of it.
    for (TxnMember& m : members) RETURN_IF_ERROR(read(m));
    kinds = classify();
  }
  ASSIGN_OR_RETURN(TransactionCause cause, BuildCause(members, kinds));
  if (!r.transaction_id.empty()) {
    if (causes_.size() >= kMaxMemoizedCauses) causes_.clear();
    causes_.emplace(std::move(key), cause);
  }
  return cause;
}

Result<std::pair<ChangeKind, std::optional<TransactionCause>>> QueryEngine::KindOf(
    const HistoryRecord& r, const std::optional<HistoryRecord>& previous) {
  std::pair<ChangeKind, std::optional<TransactionCause>> out{ChangeKind::kEdited, std::nullopt};
  TxnChange c = MakeTxnChange(r, previous);
  std::vector<ChangeKind> alone = ClassifyTransaction(std::span<const TxnChange>(&c, 1));
  out.first = alone.front();
  int64_t delta = c.previous_priority ? c.priority - *c.previous_priority : 0;
  if (c.op == ChangeOp::kUpdated && c.priority_only && (delta == 1 || delta == -1)) {
    // Shifted, or one of two neighbours that swapped: the transaction decides.
    ASSIGN_OR_RETURN(TransactionCause cause, TransactionCauseOf(r));
    bool primary =
        std::any_of(cause.primaries.begin(), cause.primaries.end(),
                    [&](const PrimaryChange& p) { return p.campaign_id == r.campaign_id; });
    out.first = primary ? ChangeKind::kMoved : ChangeKind::kShifted;
    if (!primary || cause.primaries.size() > 1) out.second = std::move(cause);
  }
  return out;
}

// ---- notes on empty answers -----------------------------------------------------------------

Result<std::string> QueryEngine::CustomerNote(int64_t customer_id, std::optional<Timestamp> until,
                                              std::optional<Timestamp> since) {
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> first, store_.CustomerChanges(customer_id, {}, 1));
  if (first.empty()) return fmt::format("no customer {} in the history", customer_id);
  Timestamp start = first.front().event_time;
  if (until && *until < start) {
    return fmt::format("the history of customer {} starts at {}", customer_id,
                       FormatTimestamp(start));
  }
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> latest, store_.CustomerCampaigns(customer_id));
  Timestamp end = start;
  for (const HistoryRecord& x : latest) end = std::max(end, x.event_time);
  if (since && *since > end) {
    return fmt::format("the last change of customer {} was at {}", customer_id,
                       FormatTimestamp(end));
  }
  return fmt::format("the history of customer {} runs from {} to {}", customer_id,
                     FormatTimestamp(start), FormatTimestamp(end));
}

// ---- as-of ----------------------------------------------------------------------------------

Result<AsOfResult> QueryEngine::AsOf(int64_t customer_id, Timestamp at,
                                     const AsOfOptions& options) {
  if (options.limit < 0 || options.limit > kMaxAsOfLimit) {
    return InvalidArgumentError(
        fmt::format("limit: must be 1..{} (or 0 for all), got {}", kMaxAsOfLimit, options.limit));
  }
  for (const std::string& st : options.statuses) {
    if (!IsStatus(st)) {
      return InvalidArgumentError(fmt::format(
          "status: '{}' is not a status (draft, active, paused, ended)", Excerpt(st, 40)));
    }
  }
  std::optional<AsOfCursor> cursor;
  if (!options.cursor.empty()) {
    ASSIGN_OR_RETURN(cursor, DecodeAsOfCursor(options.cursor));
    if (cursor->at != at) {
      return InvalidArgumentError(fmt::format(
          "cursor: it continues the answer at {}, not at {} (ask for that moment, or start "
          "again without a cursor)",
          FormatTimestamp(cursor->at), FormatTimestamp(at)));
    }
  }
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
  if (cursor) out.answered_at = cursor->answered_at;
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> all, store_.AsOf(customer_id, out.answered_at));
  out.existing = static_cast<int64_t>(all.size());

  const bool filtered = !options.statuses.empty() || !options.name.empty();
  const std::string needle = Folded(options.name);
  auto matches = [&](const HistoryRecord& rec) {
    if (!filtered) return true;
    Json s = Json::parse(rec.snapshot, nullptr, /*allow_exceptions=*/false);
    if (!s.is_object()) return false;
    if (!options.statuses.empty()) {
      auto st = s.find("status");
      if (st == s.end() || !st->is_string()) return false;
      if (std::find(options.statuses.begin(), options.statuses.end(),
                    st->get_ref<const std::string&>()) == options.statuses.end()) {
        return false;
      }
    }
    if (!needle.empty()) {
      auto n = s.find("name");
      if (n == s.end() || !n->is_string()) return false;
      if (Folded(n->get_ref<const std::string&>()).find(needle) == std::string::npos) return false;
    }
    return true;
  };
  const size_t limit = options.limit > 0 ? static_cast<size_t>(options.limit) : all.size();
  for (HistoryRecord& rec : all) {
    if (!matches(rec)) continue;
    ++out.matching;
    if (cursor && std::pair(rec.priority, rec.campaign_id) <=
                      std::pair(cursor->priority, cursor->campaign_id)) {
      ++out.offset;
      continue;
    }
    if (out.campaigns.size() < limit) {
      out.campaigns.push_back(std::move(rec));
    } else if (out.next_cursor.empty()) {
      const HistoryRecord& last = out.campaigns.back();
      out.next_cursor =
          EncodeCursor(AsOfCursor{at, out.answered_at, last.priority, last.campaign_id});
    }
  }
  if (out.campaigns.empty()) {
    if (out.existing == 0) {
      ASSIGN_OR_RETURN(out.note, CustomerNote(customer_id, out.answered_at, std::nullopt));
      if (out.note.find("runs from") != std::string::npos) {
        out.note = fmt::format("customer {} had no campaigns at {} ({})", customer_id,
                               FormatTimestamp(out.answered_at), out.note);
      }
    } else if (out.matching == 0) {
      std::string what;
      if (!options.statuses.empty()) {
        std::string list;
        for (const std::string& st : options.statuses) list += (list.empty() ? "" : " or ") + st;
        what = "status " + list;
      }
      if (!options.name.empty()) {
        what += (what.empty() ? "" : " and ") +
                fmt::format("a name containing '{}'", Excerpt(options.name, 60));
      }
      out.note = fmt::format("none of the {} campaigns of customer {} at {} has {}", out.existing,
                             customer_id, FormatTimestamp(out.answered_at), what);
    } else {
      out.note = fmt::format("no campaigns after the cursor ({} in all)", out.matching);
    }
  }
  return out;
}

// ---- log ------------------------------------------------------------------------------------

Result<LogResult> QueryEngine::Log(int64_t campaign_id, const TimeRange& range,
                                   const LogOptions& options) {
  RETURN_IF_ERROR(RangeCheck(range));
  RETURN_IF_ERROR(RequireCampaign(campaign_id));
  LogResult out;
  out.campaign_id = campaign_id;
  out.range = range;
  ASSIGN_OR_RETURN(out.completeness, store_.GetCompleteness());
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> records, store_.CampaignLog(campaign_id, range));
  std::optional<HistoryRecord> prev;
  if (!records.empty()) {
    out.customer_id = records.front().customer_id;
    ASSIGN_OR_RETURN(prev, Previous(records.front()));
  }
  for (HistoryRecord& r : records) {
    LogEntry e;
    ASSIGN_OR_RETURN(auto kind, KindOf(r, prev));
    e.kind = kind.first;
    e.cause = std::move(kind.second);
    if (e.kind == ChangeKind::kShifted && options.shifts == ShiftDisplay::kHide) {
      ++out.hidden_shifts;
      prev = std::move(r);
      continue;
    }
    std::string_view before = prev ? std::string_view(prev->snapshot) : std::string_view();
    if (prev) e.previous_version = prev->version;
    ASSIGN_OR_RETURN(e.changes, DiffSnapshots(before, r.snapshot));
    ASSIGN_OR_RETURN(e.patch, SnapshotPatch(before, r.snapshot));
    e.record = std::move(r);
    prev = e.record;
    out.entries.push_back(std::move(e));
  }
  if (out.entries.empty()) {
    if (out.hidden_shifts > 0) {
      out.note =
          fmt::format("all {} versions in the range are shift-only (hidden)", out.hidden_shifts);
    } else {
      ASSIGN_OR_RETURN(std::vector<HistoryRecord> all, store_.CampaignLog(campaign_id, {}));
      if (!all.empty()) {
        out.customer_id = all.front().customer_id;
        out.note = fmt::format(
            "campaign {} has no versions in this range (its history runs from {} (v{}) to {} "
            "(v{}))",
            campaign_id, FormatTimestamp(all.front().event_time), all.front().version,
            FormatTimestamp(all.back().event_time), all.back().version);
      }
    }
  }
  return out;
}

// ---- diff -----------------------------------------------------------------------------------

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
  ASSIGN_OR_RETURN(out.completeness, store_.GetCompleteness());
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

// ---- timeline -------------------------------------------------------------------------------

namespace {

// Split records (in timeline order) into transactions: consecutive records of one transaction;
// a record without a transaction id is a transaction of its own.
std::vector<std::vector<HistoryRecord>> SplitTransactions(std::vector<HistoryRecord> records) {
  std::vector<std::vector<HistoryRecord>> out;
  for (HistoryRecord& r : records) {
    if (out.empty() || !SameTransaction(out.back().back(), r)) out.emplace_back();
    out.back().push_back(std::move(r));
  }
  return out;
}

TimelineCursor CursorAfter(const HistoryRecord& r) {
  return TimelineCursor{r.event_time, r.transaction_id, r.campaign_id, r.version};
}

}  // namespace

Result<TimelineResult> QueryEngine::Timeline(int64_t customer_id, const TimeRange& range,
                                             const TimelineOptions& options) {
  RETURN_IF_ERROR(RangeCheck(range));
  const int64_t limit = options.limit;
  if (limit < 1 || limit > kMaxTimelineLimit) {
    return InvalidArgumentError(
        fmt::format("limit: must be 1..{} transactions, got {}", kMaxTimelineLimit, limit));
  }
  TimelineResult out;
  out.customer_id = customer_id;
  out.range = range;
  out.limit = limit;
  ASSIGN_OR_RETURN(out.completeness, store_.GetCompleteness());
  std::optional<TimelineCursor> position;
  if (!options.cursor.empty()) {
    ASSIGN_OR_RETURN(position, DecodeTimelineCursor(options.cursor));
  }

  // Read whole transactions, a chunk of records at a time, until `limit` of them are in hand.
  std::vector<std::vector<HistoryRecord>> txns;
  int64_t chunk = std::clamp<int64_t>(limit * 16, 256, 20000);
  bool more = false;
  while (true) {
    TimeRange window = range;
    if (position && (!window.from || *window.from < position->time)) window.from = position->time;
    if (window.from && window.to && *window.from > *window.to) break;
    ASSIGN_OR_RETURN(std::vector<HistoryRecord> records,
                     store_.CustomerChanges(customer_id, window, chunk + 1));
    const bool exhausted = static_cast<int64_t>(records.size()) <= chunk;
    if (position) {
      std::erase_if(records, [&](const HistoryRecord& r) { return TimelineBefore(r, *position); });
    }
    std::vector<std::vector<HistoryRecord>> got = SplitTransactions(std::move(records));
    if (!exhausted && !got.empty()) {
      // The chunk may end inside its last transaction: leave it for the next read.
      std::vector<HistoryRecord> last = std::move(got.back());
      got.pop_back();
      if (got.empty()) {
        if (last.front().transaction_id.empty()) {
          got.push_back(std::move(last));
        } else {
          // One transaction bigger than the chunk: read it whole.
          const HistoryRecord& h = last.front();
          ASSIGN_OR_RETURN(std::vector<HistoryRecord> whole,
                           store_.TransactionChanges(customer_id, h.event_time, h.transaction_id,
                                                     /*with_snapshots=*/true));
          got.push_back(std::move(whole));
        }
      }
    }
    if (got.empty()) {
      if (exhausted) break;
      chunk *= 2;  // every record read was at or before the position: read further
      continue;
    }
    for (size_t i = 0; i < got.size(); ++i) {
      if (static_cast<int64_t>(txns.size()) == limit) {
        more = true;
        break;
      }
      position = CursorAfter(got[i].back());
      txns.push_back(std::move(got[i]));
    }
    if (more) break;
    if (static_cast<int64_t>(txns.size()) == limit) {
      more = !exhausted;
      break;
    }
    if (exhausted) break;
  }

  // Previous versions: often in the page itself (a campaign changed twice), else one read each.
  std::map<std::pair<int64_t, int64_t>, const HistoryRecord*> by_key;
  for (const auto& t : txns) {
    for (const HistoryRecord& r : t) by_key[{r.campaign_id, r.version}] = &r;
  }
  for (const auto& t : txns) {
    std::vector<TxnMember> members;
    members.reserve(t.size());
    for (const HistoryRecord& r : t) {
      TxnMember m{r, std::nullopt, true};
      if (r.event_type != ChangeOp::kCreated && r.version > 1) {
        if (auto it = by_key.find({r.campaign_id, r.version - 1}); it != by_key.end()) {
          m.previous = *it->second;
        } else {
          ASSIGN_OR_RETURN(m.previous, Previous(r));
        }
      }
      members.push_back(std::move(m));
    }
    std::vector<TxnChange> changes;
    for (const TxnMember& m : members) changes.push_back(MakeTxnChange(m.record, m.previous));
    std::vector<ChangeKind> kinds = ClassifyTransaction(changes);
    TimelineGroup g;
    g.transaction_id = t.front().transaction_id;
    g.time = t.front().event_time;
    ASSIGN_OR_RETURN(g.cause, BuildCause(members, kinds));
    for (const HistoryRecord& r : t) {
      if (std::find(g.actors.begin(), g.actors.end(), r.actor) == g.actors.end()) {
        g.actors.push_back(r.actor);
      }
    }
    // Primary changes first, then (when asked for) the shift-only ones.
    for (int pass = 0; pass < 2; ++pass) {
      for (size_t i = 0; i < members.size(); ++i) {
        bool shift = kinds[i] == ChangeKind::kShifted;
        if (shift != (pass == 1) || (shift && !options.show_shifts)) continue;
        const HistoryRecord& r = members[i].record;
        const std::optional<HistoryRecord>& p = members[i].previous;
        TimelineChange c;
        c.campaign_id = r.campaign_id;
        c.version = r.version;
        c.event_type = r.event_type;
        c.kind = kinds[i];
        c.event_time = r.event_time;
        c.actor = r.actor;
        c.missed_versions = r.missed_versions;
        if (p && p->event_type != ChangeOp::kDeleted && r.event_type != ChangeOp::kCreated) {
          c.priority_from = p->priority;
        }
        if (r.event_type != ChangeOp::kDeleted) c.priority_to = r.priority;
        if (r.event_type == ChangeOp::kDeleted) c.priority_from = r.priority;
        ASSIGN_OR_RETURN(c.fields, ChangedFields(r, p));
        g.changes.push_back(std::move(c));
      }
    }
    out.groups.push_back(std::move(g));
  }
  out.truncated = more;
  if (more && position) out.next_cursor = EncodeCursor(*position);
  if (out.groups.empty() && options.cursor.empty()) {
    ASSIGN_OR_RETURN(std::string span, CustomerNote(customer_id, range.to, range.from));
    if (span.find("starts at") != std::string::npos) {
      out.note = span + ", after this window";
    } else if (span.find("last change") != std::string::npos) {
      out.note = span + ", before this window";
    } else if (span.find("runs from") != std::string::npos) {
      out.note = fmt::format("no changes of customer {} in this window ({})", customer_id, span);
    } else {
      out.note = span;
    }
  }
  return out;
}

// ---- blame ----------------------------------------------------------------------------------

Result<BlameResult> QueryEngine::Blame(int64_t campaign_id, Timestamp at) {
  RETURN_IF_ERROR(RequireCampaign(campaign_id));
  BlameResult out;
  out.campaign_id = campaign_id;
  out.at = at;
  ASSIGN_OR_RETURN(out.completeness, store_.GetCompleteness());
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
  std::map<std::string, size_t> blame;
  OJson prev_doc;
  Leaves prev;
  OJson doc;
  for (size_t i = 0; i < records.size(); ++i) {
    ASSIGN_OR_RETURN(doc, ParseOrdered(records[i].snapshot));
    Leaves cur = Flatten(doc);
    for (const FieldChange& c : DiffLeaves(prev, cur)) {
      if (c.after) {
        blame[c.path] = i;
      } else {
        blame.erase(c.path);
      }
    }
    prev_doc = std::move(doc);
    prev = Flatten(prev_doc);
  }
  for (const auto& [path, value] : prev) {
    auto it = blame.find(path);
    if (it == blame.end()) continue;
    const HistoryRecord& r = records[it->second];
    BlameEntry e{path, Dump(*value), r.version, r.event_time, r.actor, r.transaction_id};
    if (path == "priority" && r.event_type == ChangeOp::kUpdated) {
      // A priority is often set by another campaign's create, move or delete: say so.
      std::optional<HistoryRecord> before;
      if (it->second > 0) before = records[it->second - 1];
      ASSIGN_OR_RETURN(auto kind, KindOf(r, before));
      e.kind = kind.first;
      if (e.kind == ChangeKind::kShifted) e.cause = std::move(kind.second);
    } else if (r.event_type == ChangeOp::kCreated) {
      e.kind = ChangeKind::kCreated;
    }
    out.entries.push_back(std::move(e));
  }
  return out;
}

// ---- search ---------------------------------------------------------------------------------

Result<SearchResult> QueryEngine::Search(std::string_view text, int64_t limit) {
  if (limit < 1 || limit > kMaxSearchLimit) {
    return InvalidArgumentError(
        fmt::format("limit: must be 1..{}, got {}", kMaxSearchLimit, limit));
  }
  std::string_view q = text;
  while (!q.empty() && q.front() == ' ') q.remove_prefix(1);
  while (!q.empty() && q.back() == ' ') q.remove_suffix(1);
  if (q.empty()) {
    return InvalidArgumentError(
        "q: say what to look for (a customer id, a campaign id, or part "
        "of a campaign name)");
  }
  SearchResult out;
  out.query = std::string(q);
  ASSIGN_OR_RETURN(out.completeness, store_.GetCompleteness());
  auto add = [&](SearchHit h) {
    if (static_cast<int64_t>(out.hits.size()) >= limit) {
      out.truncated = true;
      return false;
    }
    out.hits.push_back(std::move(h));
    return true;
  };
  auto campaign_hit = [](const HistoryRecord& r, std::string matched) {
    SearchHit h;
    h.kind = "campaign";
    h.matched = std::move(matched);
    h.customer_id = r.customer_id;
    h.campaign_id = r.campaign_id;
    h.version = r.version;
    h.deleted = r.event_type == ChangeOp::kDeleted;
    h.last_change = r.event_time;
    Json s = Json::parse(r.snapshot, nullptr, /*allow_exceptions=*/false);
    if (s.is_object()) {
      h.name = s.value("name", "");
      h.status = s.value("status", "");
    }
    return h;
  };

  // An id: a customer's and a campaign's.
  const bool digits = std::all_of(q.begin(), q.end(), [](char c) { return c >= '0' && c <= '9'; });
  std::set<int64_t> seen;
  if (digits) {
    int64_t id = 0;
    auto [p, ec] = std::from_chars(q.data(), q.data() + q.size(), id);
    if (ec == std::errc::result_out_of_range) {
      return InvalidArgumentError(fmt::format("q: {} is too large for an id (ids are at most {})",
                                              Excerpt(q, 40), std::numeric_limits<int64_t>::max()));
    }
    if (ec == std::errc() && id > 0) {
      ASSIGN_OR_RETURN(std::vector<HistoryRecord> campaigns, store_.CustomerCampaigns(id));
      if (!campaigns.empty()) {
        SearchHit h;
        h.kind = "customer";
        h.matched = "customer id";
        h.customer_id = id;
        h.campaigns = static_cast<int64_t>(campaigns.size());
        for (const HistoryRecord& r : campaigns) {
          if (r.event_type != ChangeOp::kDeleted) ++h.live_campaigns;
          h.last_change = std::max(h.last_change, r.event_time);
        }
        add(std::move(h));
      }
      ASSIGN_OR_RETURN(std::optional<int64_t> latest, store_.LatestVersion(id));
      if (latest) {
        ASSIGN_OR_RETURN(std::optional<HistoryRecord> r, store_.GetVersion(id, *latest));
        if (r) {
          seen.insert(id);
          add(campaign_hit(*r, "campaign id"));
        }
      }
    }
  }
  // Names.
  const std::string needle = Folded(q);
  ASSIGN_OR_RETURN(std::vector<int64_t> customers, store_.ListCustomers());
  int64_t scanned = 0;
  for (int64_t customer : customers) {
    ASSIGN_OR_RETURN(std::vector<HistoryRecord> campaigns, store_.CustomerCampaigns(customer));
    scanned += static_cast<int64_t>(campaigns.size());
    for (const HistoryRecord& r : campaigns) {
      if (seen.count(r.campaign_id)) continue;
      if (Folded(NameOf(r.snapshot)).find(needle) == std::string::npos) continue;
      if (!add(campaign_hit(r, "name"))) break;
    }
    if (out.truncated) break;
  }
  if (out.hits.empty()) {
    out.note = fmt::format(
        "nothing matches '{}': no customer or campaign has that id, and none of the {} campaigns "
        "of {} customers has it in its name",
        Excerpt(q, 60), scanned, customers.size());
  }
  return out;
}

}  // namespace ch
