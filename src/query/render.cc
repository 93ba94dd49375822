#include "query/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/text.h"
#include "common/time_util.h"

namespace ch {
namespace {

using Json = nlohmann::json;
using OJson = nlohmann::ordered_json;

constexpr char kArrow[] = " → ";

std::string Human(Timestamp t) { return FormatTimestampHuman(t); }

std::string OpName(ChangeOp op) {
  switch (op) {
    case ChangeOp::kCreated:
      return "created";
    case ChangeOp::kUpdated:
      return "updated";
    case ChangeOp::kDeleted:
      return "deleted";
  }
  return "updated";
}

std::string DumpJson(const OJson& j, int indent = 2) {
  return j.dump(indent, ' ', false, OJson::error_handler_t::replace);
}

// Parse JSON text we produced ourselves; on the impossible failure keep the text as a string.
OJson ParseOwn(std::string_view text) {
  try {
    return OJson::parse(text);
  } catch (const OJson::exception&) {
    return OJson(std::string(text));
  }
}

// Control characters would break a table's lines: show them as JSON escapes.
std::string Printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += fmt::format("\\u{:04x}", u);
    }
  }
  return out;
}

// A JSON value for a table: strings without quotes, everything else as compact JSON.
std::string Plain(const OJson& v) {
  if (v.is_string()) return Printable(v.get_ref<const std::string&>());
  return v.dump(-1, ' ', false, OJson::error_handler_t::replace);
}

std::string ShowValue(const std::optional<std::string>& json, size_t max) {
  if (!json) return "(absent)";
  OJson v = ParseOwn(*json);
  if (v.is_string() && v.get_ref<const std::string&>().empty()) return "\"\"";
  return Ellipsize(Plain(v), max);
}

// Cut `s` to a valid UTF-8 boundary at or before `n` bytes.
size_t BackToBoundary(std::string_view s, size_t n) {
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

// Show an edit of a long string as its changed region with a little context.
std::string ShowEdit(const std::string& a, const std::string& b, size_t max) {
  if (Utf8Length(a) + Utf8Length(b) + 3 <= max) return a + kArrow + b;
  size_t prefix = 0;
  while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
         a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
    ++suffix;
  }
  // Widen the changed region to whole words ("[jumps → leaps]", not "[jum → lea]ps"), which
  // also keeps it on UTF-8 boundaries.
  while (prefix > 0 && a[prefix - 1] != ' ') --prefix;
  while (suffix > 0 && a[a.size() - suffix] != ' ') --suffix;
  size_t a_end = std::max(prefix, a.size() - suffix);
  size_t b_end = std::max(prefix, b.size() - suffix);
  constexpr size_t kContext = 12;
  std::string before_ctx = a.substr(0, prefix);
  bool cut_before = Utf8Length(before_ctx) > kContext;
  if (cut_before) {
    size_t cut = BackToBoundary(before_ctx, before_ctx.size() - kContext);
    before_ctx = before_ctx.substr(cut);
  }
  std::string after_ctx = a.substr(a_end);
  bool cut_after = Utf8Length(after_ctx) > kContext;
  if (cut_after) after_ctx = after_ctx.substr(0, BackToBoundary(after_ctx, kContext));
  size_t budget = std::max<size_t>(16, max > 2 * kContext ? (max - 2 * kContext) / 2 : 0);
  std::string old_mid = Ellipsize(a.substr(prefix, a_end - prefix), budget);
  std::string new_mid = Ellipsize(b.substr(prefix, b_end - prefix), budget);
  return fmt::format("{}{}[{}{}{}]{}{}", cut_before ? "…" : "", before_ctx, old_mid, kArrow,
                     new_mid, after_ctx, cut_after ? "…" : "");
}

// An aligned text table: columns separated by two spaces, widths in code points.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> headers) : rows_{std::move(headers)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render(const std::string& indent = "") const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], Utf8Length(row[i]));
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line = indent;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - Utf8Length(row[i]) + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out += line + "\n";
    }
    return out;
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Field(const Json& snapshot, const char* key) {
  auto it = snapshot.find(key);
  if (it == snapshot.end() || it->is_null()) return "";
  if (it->is_string()) return Printable(it->get_ref<const std::string&>());
  return it->dump();
}

// An RFC 3339 field shown as a human time; other text as is.
std::string TimeField(const Json& snapshot, const char* key) {
  std::string raw = Field(snapshot, key);
  if (raw.empty()) return raw;
  auto t = ParseTimestamp(raw);
  return t.ok() ? Human(*t) : raw;
}

std::string Schedule(const Json& snapshot) {
  std::string start = Field(snapshot, "start_at");
  std::string end = Field(snapshot, "end_at");
  auto day = [](const std::string& s) { return s.substr(0, 10); };
  if (start.empty() && end.empty()) return "-";
  if (end.empty()) return "from " + day(start);
  if (start.empty()) return "until " + day(end);
  return day(start) + ".." + day(end);
}

OJson RangeJson(const TimeRange& range) {
  OJson j;
  j["from"] = range.from ? OJson(FormatTimestamp(*range.from)) : OJson();
  j["to"] = range.to ? OJson(FormatTimestamp(*range.to)) : OJson();
  return j;
}

std::string RangeText(const TimeRange& range) {
  if (!range.from && !range.to) return "all time";
  return fmt::format("{} .. {}", range.from ? Human(*range.from) : "beginning",
                     range.to ? Human(*range.to) : "now");
}

OJson ChangesJson(const std::vector<FieldChange>& changes) {
  OJson arr = OJson::array();
  for (const FieldChange& c : changes) {
    OJson j;
    j["path"] = c.path;
    if (c.before) j["before"] = ParseOwn(*c.before);
    if (c.after) j["after"] = ParseOwn(*c.after);
    arr.push_back(std::move(j));
  }
  return arr;
}

OJson RecordHeaderJson(const HistoryRecord& r) {
  OJson j;
  j["version"] = r.version;
  j["event_time"] = FormatTimestamp(r.event_time);
  j["event_type"] = OpName(r.event_type);
  j["actor"] = r.actor;
  j["transaction_id"] = r.transaction_id;
  j["capture"] = r.capture == CaptureMode::kNotify ? "notify" : "log";
  j["missed_versions"] = r.missed_versions;
  return j;
}

std::string RecordLine(const HistoryRecord& r) {
  std::string s = fmt::format("v{}  {}  {}  by {}", r.version, Human(r.event_time),
                              OpName(r.event_type), r.actor);
  if (!r.transaction_id.empty()) s += "  tx " + r.transaction_id;
  if (r.missed_versions > 0) {
    s += fmt::format("  ({} earlier version{} not captured)", r.missed_versions,
                     r.missed_versions == 1 ? "" : "s");
  }
  return s;
}

std::string WithThousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace

std::string DescribeChange(const FieldChange& c, const RenderOptions& options) {
  if (c.before && c.after) {
    OJson a = ParseOwn(*c.before);
    OJson b = ParseOwn(*c.after);
    if (a.is_string() && b.is_string() && !a.get_ref<const std::string&>().empty() &&
        !b.get_ref<const std::string&>().empty()) {
      return c.path + ": " +
             ShowEdit(Printable(a.get_ref<const std::string&>()),
                      Printable(b.get_ref<const std::string&>()), options.max_value_chars);
    }
  }
  return c.path + ": " + ShowValue(c.before, options.max_value_chars) + kArrow +
         ShowValue(c.after, options.max_value_chars);
}

// ---- as-of ----------------------------------------------------------------------------------

std::string RenderAsOfTable(const AsOfResult& r, const RenderOptions& options) {
  std::string out =
      fmt::format("customer {} as of {}: {} campaign{}\n", r.customer_id, Human(r.answered_at),
                  r.campaigns.size(), r.campaigns.size() == 1 ? "" : "s");
  if (r.campaigns.empty()) return out;
  TextTable t({"PRIO", "ID", "NAME", "STATUS", "VER", "UPDATED_AT", "UPDATED_BY", "TRIGGER",
               "SEGMENT", "SCHEDULE"});
  for (const HistoryRecord& rec : r.campaigns) {
    Json s = Json::parse(rec.snapshot, nullptr, /*allow_exceptions=*/false);
    if (!s.is_object()) s = Json::object();
    t.Add({std::to_string(rec.priority), std::to_string(rec.campaign_id),
           Ellipsize(Field(s, "name"), options.max_value_chars), Field(s, "status"),
           std::to_string(rec.version), TimeField(s, "updated_at"), Field(s, "updated_by"),
           Field(s, "trigger_event"), Field(s, "audience_segment"), Schedule(s)});
  }
  return out + t.Render();
}

std::string RenderAsOfJson(const AsOfResult& r) {
  // The snapshots exactly as stored: not re-serialized, so byte for byte what was captured.
  if (r.campaigns.empty()) return "[]\n";
  std::string out = "[\n";
  for (size_t i = 0; i < r.campaigns.size(); ++i) {
    out += r.campaigns[i].snapshot;
    out += i + 1 < r.campaigns.size() ? ",\n" : "\n";
  }
  return out + "]\n";
}

// ---- log ------------------------------------------------------------------------------------

std::string RenderLogTable(const LogResult& r, const RenderOptions& options) {
  std::string out =
      fmt::format("campaign {} (customer {}), {}: {} version{}\n", r.campaign_id, r.customer_id,
                  RangeText(r.range), r.entries.size(), r.entries.size() == 1 ? "" : "s");
  for (const LogEntry& e : r.entries) {
    out += RecordLine(e.record) + "\n";
    if (e.record.event_type == ChangeOp::kDeleted) {
      out += "    (campaign deleted; last content kept)\n";
    }
    if (!e.previous_version) {
      // The first version: its main fields, not a wall of additions.
      size_t shown = 0;
      for (const FieldChange& c : e.changes) {
        if (c.path == "name" || c.path == "status" || c.path == "priority") {
          out += "    " + c.path + ": " + ShowValue(c.after, options.max_value_chars) + "\n";
          ++shown;
        }
      }
      if (e.changes.size() > shown) {
        out += fmt::format("    … {} more field{} (--json has them all)\n",
                           e.changes.size() - shown, e.changes.size() - shown == 1 ? "" : "s");
      }
      continue;
    }
    for (const FieldChange& c : e.changes) out += "    " + DescribeChange(c, options) + "\n";
  }
  return out;
}

std::string RenderLogJson(const LogResult& r) {
  OJson j;
  j["campaign_id"] = r.campaign_id;
  j["customer_id"] = r.customer_id;
  j["range"] = RangeJson(r.range);
  OJson versions = OJson::array();
  for (const LogEntry& e : r.entries) {
    OJson v = RecordHeaderJson(e.record);
    v["previous_version"] = e.previous_version ? OJson(*e.previous_version) : OJson();
    v["changes"] = ChangesJson(e.changes);
    v["patch"] = ParseOwn(e.patch);
    versions.push_back(std::move(v));
  }
  j["versions"] = std::move(versions);
  return DumpJson(j) + "\n";
}

// ---- diff -----------------------------------------------------------------------------------

namespace {
std::string SideLine(const char* label, const ResolvedState& s) {
  // "from: v3  2026-11-03 14:00:00.000Z  by user:101", plus the moment when a moment was asked.
  std::string asked = s.ref.at ? fmt::format("  (state at {})", Human(*s.ref.at)) : "";
  if (!s.record) return fmt::format("{}: (absent: no history yet){}", label, asked);
  const HistoryRecord& r = *s.record;
  if (!s.exists) {
    return fmt::format("{}: (absent: deleted as v{} at {} by {}){}", label, r.version,
                       Human(r.event_time), r.actor, asked);
  }
  return fmt::format("{}: v{}  {}  by {}{}", label, r.version, Human(r.event_time), r.actor, asked);
}

OJson SideJson(const ResolvedState& s) {
  OJson j;
  j["ref"] = s.ref.text;
  j["exists"] = s.exists;
  if (s.record) {
    OJson rec = RecordHeaderJson(*s.record);
    for (auto it = rec.begin(); it != rec.end(); ++it) j[it.key()] = it.value();
  } else {
    j["version"] = nullptr;
  }
  return j;
}
}  // namespace

std::string RenderDiffTable(const DiffResult& r, const RenderOptions& options) {
  std::string out = fmt::format("campaign {} (customer {})\n", r.campaign_id, r.customer_id);
  out += SideLine("from", r.from) + "\n";
  out += SideLine("to", r.to) + "\n";
  if (r.changes.empty()) return out + "no field changed\n";
  out += fmt::format("{} field{} changed:\n", r.changes.size(), r.changes.size() == 1 ? "" : "s");
  for (const FieldChange& c : r.changes) out += "  " + DescribeChange(c, options) + "\n";
  return out;
}

std::string RenderDiffJson(const DiffResult& r) {
  OJson j;
  j["campaign_id"] = r.campaign_id;
  j["customer_id"] = r.customer_id;
  j["from"] = SideJson(r.from);
  j["to"] = SideJson(r.to);
  j["changes"] = ChangesJson(r.changes);
  j["patch"] = ParseOwn(r.patch);
  return DumpJson(j) + "\n";
}

// ---- timeline -------------------------------------------------------------------------------

namespace {
std::string ChangeLine(const TimelineChange& c) {
  std::string s = fmt::format("c{} v{} {}", c.campaign_id, c.version, OpName(c.event_type));
  if (!c.fields.empty()) {
    s += ": ";
    for (size_t i = 0; i < c.fields.size(); ++i) s += (i ? ", " : "") + c.fields[i];
  }
  if (c.missed_versions > 0) s += fmt::format(" (+{} not captured)", c.missed_versions);
  return s;
}

std::string FieldsKey(const TimelineChange& c) {
  if (c.event_type != ChangeOp::kUpdated) return OpName(c.event_type);
  if (c.fields.empty()) return "no field";
  std::string s;
  for (size_t i = 0; i < c.fields.size(); ++i) s += (i ? "+" : "") + c.fields[i];
  return s;
}
}  // namespace

std::string RenderTimelineTable(const TimelineResult& r, const RenderOptions& options) {
  size_t total = 0;
  for (const auto& g : r.groups) total += g.changes.size();
  std::string out = fmt::format(
      "customer {}, {}: {} change{} in {} transaction{}{}\n", r.customer_id, RangeText(r.range),
      WithThousands(total), total == 1 ? "" : "s", r.groups.size(), r.groups.size() == 1 ? "" : "s",
      r.truncated ? fmt::format(" (limit {} reached; more exist)", r.limit) : "");
  for (const TimelineGroup& g : r.groups) {
    std::string actors;
    for (size_t i = 0; i < g.actors.size(); ++i) actors += (i ? ", " : "") + g.actors[i];
    out += fmt::format("{}  {}  {}  ({} change{})\n", Human(g.time),
                       g.transaction_id.empty() ? "(no tx)" : "tx " + g.transaction_id, actors,
                       WithThousands(static_cast<int64_t>(g.changes.size())),
                       g.changes.size() == 1 ? "" : "s");
    size_t shown = std::min(g.changes.size(), g.changes.size() > options.max_changes_per_group
                                                  ? options.max_changes_per_group / 2
                                                  : g.changes.size());
    for (size_t i = 0; i < shown; ++i) out += "    " + ChangeLine(g.changes[i]) + "\n";
    if (shown < g.changes.size()) {
      // Summarize the rest by what they changed: "1,995× priority, 1× created".
      std::vector<std::pair<std::string, int64_t>> counts;
      for (size_t i = shown; i < g.changes.size(); ++i) {
        std::string key = FieldsKey(g.changes[i]);
        auto it = std::find_if(counts.begin(), counts.end(),
                               [&](const auto& p) { return p.first == key; });
        if (it == counts.end()) {
          counts.emplace_back(key, 1);
        } else {
          ++it->second;
        }
      }
      std::string summary;
      for (size_t i = 0; i < counts.size(); ++i) {
        summary += (i ? ", " : "") + WithThousands(counts[i].second) + "× " + counts[i].first;
      }
      out += fmt::format("    … {} more: {}\n",
                         WithThousands(static_cast<int64_t>(g.changes.size() - shown)), summary);
    }
  }
  return out;
}

std::string RenderTimelineJson(const TimelineResult& r) {
  OJson j;
  j["customer_id"] = r.customer_id;
  j["range"] = RangeJson(r.range);
  j["limit"] = r.limit;
  j["truncated"] = r.truncated;
  OJson groups = OJson::array();
  for (const TimelineGroup& g : r.groups) {
    OJson gj;
    gj["transaction_id"] = g.transaction_id;
    gj["time"] = FormatTimestamp(g.time);
    gj["actors"] = g.actors;
    OJson changes = OJson::array();
    for (const TimelineChange& c : g.changes) {
      OJson cj;
      cj["campaign_id"] = c.campaign_id;
      cj["version"] = c.version;
      cj["event_type"] = OpName(c.event_type);
      cj["event_time"] = FormatTimestamp(c.event_time);
      cj["actor"] = c.actor;
      cj["missed_versions"] = c.missed_versions;
      cj["fields"] = c.fields;
      changes.push_back(std::move(cj));
    }
    gj["changes"] = std::move(changes);
    groups.push_back(std::move(gj));
  }
  j["transactions"] = std::move(groups);
  return DumpJson(j) + "\n";
}

// ---- blame ----------------------------------------------------------------------------------

std::string RenderBlameTable(const BlameResult& r, const RenderOptions& options) {
  std::string out;
  if (!r.state) {
    return fmt::format("campaign {} as of {}: no history yet\n", r.campaign_id, Human(r.at));
  }
  out = fmt::format("campaign {} (customer {}) as of {}: v{}{}\n", r.campaign_id, r.customer_id,
                    Human(r.at), r.state->version,
                    r.exists ? ""
                             : fmt::format(" (deleted at {} by {}; last content below)",
                                           Human(r.state->event_time), r.state->actor));
  TextTable t({"FIELD", "VALUE", "VERSION", "TIME", "ACTOR"});
  for (const BlameEntry& e : r.entries) {
    t.Add({e.path, ShowValue(e.value, options.max_value_chars), fmt::format("v{}", e.version),
           Human(e.event_time), e.actor});
  }
  return out + t.Render();
}

std::string RenderBlameJson(const BlameResult& r) {
  OJson j;
  j["campaign_id"] = r.campaign_id;
  j["customer_id"] = r.customer_id;
  j["at"] = FormatTimestamp(r.at);
  j["exists"] = r.exists;
  j["version"] = r.state ? OJson(r.state->version) : OJson();
  OJson fields = OJson::array();
  for (const BlameEntry& e : r.entries) {
    OJson f;
    f["path"] = e.path;
    f["value"] = ParseOwn(e.value);
    f["version"] = e.version;
    f["event_time"] = FormatTimestamp(e.event_time);
    f["actor"] = e.actor;
    f["transaction_id"] = e.transaction_id;
    fields.push_back(std::move(f));
  }
  j["fields"] = std::move(fields);
  return DumpJson(j) + "\n";
}

}  // namespace ch
