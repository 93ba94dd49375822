#include "query/render.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <limits>
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
  return EllipsizeWidth(Plain(v), max);
}

// Cut `s` to a valid UTF-8 boundary at or before `n` bytes.
size_t BackToBoundary(std::string_view s, size_t n) {
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

// Show an edit of a long string as its changed region with a little context.
std::string ShowEdit(const std::string& a, const std::string& b, size_t max) {
  if (DisplayWidth(a) + DisplayWidth(b) + 3 <= max) return a + kArrow + b;
  size_t prefix = 0;
  while (prefix < a.size() && prefix < b.size() && a[prefix] == b[prefix]) ++prefix;
  size_t suffix = 0;
  while (suffix < a.size() - prefix && suffix < b.size() - prefix &&
         a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
    ++suffix;
  }
  // Widen the changed region to whole words ("[jumps → leaps]", not "[jum → lea]ps"), which
  // also keeps it on UTF-8 boundaries. A URL's words end at its punctuation:
  // "…banner-large-[2x → 3x].png".
  auto boundary = [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x80 && !std::isalnum(u);
  };
  while (prefix > 0 && !boundary(a[prefix - 1])) --prefix;
  while (suffix > 0 && !boundary(a[a.size() - suffix])) --suffix;
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
  std::string old_mid = EllipsizeWidth(a.substr(prefix, a_end - prefix), budget);
  std::string new_mid = EllipsizeWidth(b.substr(prefix, b_end - prefix), budget);
  return fmt::format("{}{}[{}{}{}]{}{}", cut_before ? "…" : "", before_ctx, old_mid, kArrow,
                     new_mid, after_ctx, cut_after ? "…" : "");
}

// An aligned text table: columns separated by two spaces, widths in terminal columns.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> headers) : rows_{std::move(headers)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render(const std::string& indent = "") const {
    std::vector<size_t> width;
    for (const auto& row : rows_) {
      if (width.size() < row.size()) width.resize(row.size(), 0);
      for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], DisplayWidth(row[i]));
    }
    std::string out;
    for (const auto& row : rows_) {
      std::string line = indent;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - DisplayWidth(row[i]) + 2, ' ');
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

// "v7  2026-11-05 09:11:00.000Z  shifted  by user:501  tx 2011"; `what` is the version's kind.
std::string RecordLine(const HistoryRecord& r, std::string_view what) {
  std::string s = fmt::format("v{}  {}  {}  by {}", r.version, Human(r.event_time), what, r.actor);
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

size_t MaxChars(const RenderOptions& o) {
  return o.full ? std::numeric_limits<size_t>::max() : o.max_value_chars;
}

// A campaign's name for a sentence: quoted, printable, not too long.
std::string QuotedName(const std::string& name, const RenderOptions& o) {
  return "'" + EllipsizeWidth(Printable(name), o.full ? std::numeric_limits<size_t>::max() : 40) +
         "'";
}

std::string Plural(int64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", WithThousands(n), n == 1 ? one : many);
}

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

// "created c2019 'Spring sale'", "moved c12 'Cart' 9 → 2", ... (no actor).
std::string DescribePrimary(const PrimaryChange& p, const RenderOptions& o) {
  std::string who = fmt::format("c{} {}", p.campaign_id, QuotedName(p.name, o));
  switch (p.kind) {
    case ChangeKind::kCreated:
      return "created " + who;
    case ChangeKind::kDeleted:
      return "deleted " + who;
    case ChangeKind::kMoved:
      if (p.priority_from && p.priority_to) {
        return fmt::format("moved {} {}{}{}", who, *p.priority_from, kArrow, *p.priority_to);
      }
      return "moved " + who;
    case ChangeKind::kEdited:
      if (p.fields.empty()) return "saved " + who + " without changes";
      return "edited " + who + ": " + Join(p.fields, ", ");
    case ChangeKind::kShifted:
      break;
  }
  return "changed " + who;
}

// The completeness fields every JSON answer carries, for the moment asked (nullopt: open-ended).
void CompletenessJson(OJson& j, const Completeness& c, std::optional<Timestamp> asked) {
  j["complete_through"] =
      c.complete_through ? OJson(FormatTimestamp(*c.complete_through)) : OJson();
  if (!asked || !c.complete_through) {
    j["complete"] = nullptr;
  } else {
    j["complete"] = *asked <= *c.complete_through;
  }
}

OJson NoteJson(const std::string& note) { return note.empty() ? OJson() : OJson(note); }

OJson CauseJson(const TransactionCause& c, const RenderOptions& o) {
  OJson j;
  j["summary"] = DescribeCause(c, o);
  j["transaction_id"] = c.transaction_id;
  j["time"] = FormatTimestamp(c.time);
  j["actor"] = c.actor;
  OJson primaries = OJson::array();
  for (const PrimaryChange& p : c.primaries) {
    OJson pj;
    pj["kind"] = ChangeKindName(p.kind);
    pj["campaign_id"] = p.campaign_id;
    pj["version"] = p.version;
    pj["name"] = p.name;
    pj["priority_from"] = p.priority_from ? OJson(*p.priority_from) : OJson();
    pj["priority_to"] = p.priority_to ? OJson(*p.priority_to) : OJson();
    pj["fields"] = p.fields;
    primaries.push_back(std::move(pj));
  }
  j["primary"] = std::move(primaries);
  j["changes"] = c.changes;
  j["shifted"] = c.shifted;
  j["shifted_by"] = c.shifted_by;
  return j;
}

// The full rendering options of JSON sentences (JSON carries names in full).
const RenderOptions kJsonOptions{.full = true};

}  // namespace

std::string DescribeCause(const TransactionCause& c, const RenderOptions& o) {
  std::vector<std::string> parts;
  constexpr size_t kShown = 3;
  for (size_t i = 0; i < c.primaries.size() && i < kShown; ++i) {
    parts.push_back(DescribePrimary(c.primaries[i], o));
  }
  // "moved c12 'A' 3 → 4 and moved c40 'B' 4 → 3" reads better without the repeated verb.
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    if (i > 0) {
      std::string verb = parts[i - 1].substr(0, parts[i - 1].find(' ') + 1);
      if (part.rfind(verb, 0) == 0 && verb != "saved ") part = part.substr(verb.size());
      text += i + 1 == parts.size() && c.primaries.size() <= kShown ? " and " : ", ";
    }
    text += part;
  }
  if (c.primaries.size() > kShown) {
    text += fmt::format(" and {} more",
                        WithThousands(static_cast<int64_t>(c.primaries.size() - kShown)));
  }
  if (text.empty()) text = "changed nothing";
  return c.actor + " " + text;
}

std::string DescribeShift(int64_t from, int64_t to, const TransactionCause& cause,
                          const RenderOptions& o) {
  return fmt::format("moved {}{}{} because {}", from, kArrow, to, DescribeCause(cause, o));
}

std::string DescribeChange(const FieldChange& c, const RenderOptions& options) {
  const size_t max = MaxChars(options);
  if (c.before && c.after) {
    OJson a = ParseOwn(*c.before);
    OJson b = ParseOwn(*c.after);
    if (a.is_string() && b.is_string() && !a.get_ref<const std::string&>().empty() &&
        !b.get_ref<const std::string&>().empty()) {
      return c.path + ": " +
             ShowEdit(Printable(a.get_ref<const std::string&>()),
                      Printable(b.get_ref<const std::string&>()), max);
    }
  }
  return c.path + ": " + ShowValue(c.before, max) + kArrow + ShowValue(c.after, max);
}

// ---- as-of ----------------------------------------------------------------------------------

std::string RenderAsOfTable(const AsOfResult& r, const RenderOptions& options) {
  const bool paged = r.offset > 0 || !r.next_cursor.empty();
  const bool filtered = r.matching != r.existing;
  std::string count;
  if (!paged) {
    count = filtered ? fmt::format("{} of {} campaigns match", WithThousands(r.matching),
                                   WithThousands(r.existing))
                     : Plural(static_cast<int64_t>(r.campaigns.size()), "campaign", "campaigns");
  } else {
    std::string of = filtered ? fmt::format("the {} that match (of {})", WithThousands(r.matching),
                                            WithThousands(r.existing))
                              : WithThousands(r.matching);
    count = r.campaigns.empty()
                ? fmt::format("no campaigns after #{} of {}", r.offset, of)
                : fmt::format("campaigns {}–{} of {}", r.offset + 1,
                              r.offset + static_cast<int64_t>(r.campaigns.size()), of);
  }
  std::string out =
      fmt::format("customer {} as of {}: {}\n", r.customer_id, Human(r.answered_at), count);
  if (r.campaigns.empty()) return out;
  const size_t max = MaxChars(options);
  TextTable t({"PRIO", "ID", "NAME", "STATUS", "VER", "UPDATED_AT", "UPDATED_BY", "TRIGGER",
               "SEGMENT", "SCHEDULE"});
  for (const HistoryRecord& rec : r.campaigns) {
    Json s = Json::parse(rec.snapshot, nullptr, /*allow_exceptions=*/false);
    if (!s.is_object()) s = Json::object();
    t.Add({std::to_string(rec.priority), std::to_string(rec.campaign_id),
           EllipsizeWidth(Field(s, "name"), max), Field(s, "status"), std::to_string(rec.version),
           TimeField(s, "updated_at"), Field(s, "updated_by"),
           EllipsizeWidth(Field(s, "trigger_event"), max),
           EllipsizeWidth(Field(s, "audience_segment"), max), Schedule(s)});
  }
  out += t.Render();
  if (!r.next_cursor.empty()) out += "next page: --cursor " + r.next_cursor + "\n";
  return out;
}

std::string RenderAsOfJson(const AsOfResult& r) {
  OJson j;
  j["customer_id"] = r.customer_id;
  j["at"] = FormatTimestamp(r.at);
  j["answered_at"] = FormatTimestamp(r.answered_at);
  CompletenessJson(j, r.completeness, r.at);
  j["existing"] = r.existing;
  j["matching"] = r.matching;
  j["offset"] = r.offset;
  j["count"] = r.campaigns.size();
  j["next_cursor"] = r.next_cursor.empty() ? OJson() : OJson(r.next_cursor);
  j["note"] = NoteJson(r.note);
  // The snapshots exactly as stored: not re-serialized, so byte for byte what was captured.
  std::string head = DumpJson(j);
  head.pop_back();  // the closing brace
  while (!head.empty() && head.back() == '\n') head.pop_back();
  // One buffer of the final size: a 2,000-campaign answer is ~2 MB, and growing it by doubling
  // copied it several times over (and touched twice the fresh memory).
  size_t size = head.size() + 32;
  for (const HistoryRecord& c : r.campaigns) size += c.snapshot.size() + 2;
  std::string out;
  out.reserve(size);
  out += head;
  out += ",\n  \"campaigns\": [";
  for (size_t i = 0; i < r.campaigns.size(); ++i) {
    out += i == 0 ? "\n" : ",\n";
    out += r.campaigns[i].snapshot;
  }
  out += r.campaigns.empty() ? "]\n}\n" : "\n  ]\n}\n";
  return out;
}

// ---- log ------------------------------------------------------------------------------------

std::string RenderLogTable(const LogResult& r, const RenderOptions& options) {
  std::string out = fmt::format(
      "campaign {} (customer {}), {}: {}\n", r.campaign_id, r.customer_id, RangeText(r.range),
      Plural(static_cast<int64_t>(r.entries.size()), "version", "versions"));
  const size_t max = MaxChars(options);
  for (const LogEntry& e : r.entries) {
    out += RecordLine(e.record, ChangeKindName(e.kind)) + "\n";
    if (e.record.event_type == ChangeOp::kDeleted) {
      out += "    (campaign deleted; last content kept)\n";
    }
    if (!e.previous_version) {
      // The first version: its main fields, not a wall of additions.
      size_t shown = 0;
      for (const FieldChange& c : e.changes) {
        if (c.path == "name" || c.path == "status" || c.path == "priority") {
          out += "    " + c.path + ": " + ShowValue(c.after, max) + "\n";
          ++shown;
        }
      }
      if (e.changes.size() > shown) {
        out += fmt::format("    … {} more field{} (--json has them all)\n",
                           e.changes.size() - shown, e.changes.size() - shown == 1 ? "" : "s");
      }
      continue;
    }
    if (e.kind == ChangeKind::kShifted && e.cause) {
      std::optional<int64_t> from;
      for (const FieldChange& c : e.changes) {
        if (c.path == "priority" && c.before) from = std::stoll(*c.before);
      }
      out += "    " + DescribeShift(from.value_or(0), e.record.priority, *e.cause, options) + "\n";
      continue;
    }
    for (const FieldChange& c : e.changes) out += "    " + DescribeChange(c, options) + "\n";
    if (e.kind == ChangeKind::kMoved && e.cause && e.cause->primaries.size() > 1) {
      out += "    (" + DescribeCause(*e.cause, options) + ")\n";
    }
  }
  if (r.hidden_shifts > 0) {
    out += fmt::format("({} hidden; --shifts annotate shows them with their causes)\n",
                       Plural(r.hidden_shifts, "shift-only version", "shift-only versions"));
  }
  return out;
}

std::string RenderLogJson(const LogResult& r) {
  OJson j;
  j["campaign_id"] = r.campaign_id;
  j["customer_id"] = r.customer_id;
  j["range"] = RangeJson(r.range);
  CompletenessJson(j, r.completeness, r.range.to);
  OJson versions = OJson::array();
  for (const LogEntry& e : r.entries) {
    OJson v = RecordHeaderJson(e.record);
    v["kind"] = ChangeKindName(e.kind);
    v["previous_version"] = e.previous_version ? OJson(*e.previous_version) : OJson();
    v["changes"] = ChangesJson(e.changes);
    v["patch"] = ParseOwn(e.patch);
    v["cause"] = e.cause ? CauseJson(*e.cause, kJsonOptions) : OJson();
    versions.push_back(std::move(v));
  }
  j["versions"] = std::move(versions);
  j["hidden_shifts"] = r.hidden_shifts;
  j["note"] = NoteJson(r.note);
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

// The latest moment a diff looks at: the later side's moment or record.
std::optional<Timestamp> DiffMoment(const DiffResult& r) {
  std::optional<Timestamp> out;
  for (const ResolvedState* s : {&r.from, &r.to}) {
    std::optional<Timestamp> t = s->ref.at;
    if (!t && s->record) t = s->record->event_time;
    if (t && (!out || *t > *out)) out = t;
  }
  return out;
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
  CompletenessJson(j, r.completeness, DiffMoment(r));
  return DumpJson(j) + "\n";
}

// ---- timeline -------------------------------------------------------------------------------

namespace {
std::string ChangeLine(const TimelineChange& c) {
  std::string s = fmt::format("c{} v{} {}", c.campaign_id, c.version, ChangeKindName(c.kind));
  if (c.kind == ChangeKind::kCreated && c.priority_to) {
    s += fmt::format(" at priority {}", *c.priority_to);
  } else if (c.kind == ChangeKind::kDeleted && c.priority_from) {
    s += fmt::format(" (was at priority {})", *c.priority_from);
  } else if ((c.kind == ChangeKind::kMoved || c.kind == ChangeKind::kShifted) && c.priority_from &&
             c.priority_to) {
    s += fmt::format(": priority {}{}{}", *c.priority_from, kArrow, *c.priority_to);
  } else if (!c.fields.empty()) {
    s += ": " + Join(c.fields, ", ");
  }
  if (c.missed_versions > 0) s += fmt::format(" (+{} not captured)", c.missed_versions);
  return s;
}

std::string ShiftedLine(const TransactionCause& c) {
  std::string how = c.shifted_by > 0 ? "down by one" : c.shifted_by < 0 ? "up by one" : "by one";
  return fmt::format("+ {} shifted {}", Plural(c.shifted, "other campaign", "other campaigns"),
                     how);
}
}  // namespace

std::string RenderTimelineTable(const TimelineResult& r, const RenderOptions& options) {
  int64_t total = 0;
  for (const auto& g : r.groups) total += g.cause.changes;
  std::string out =
      fmt::format("customer {}, {}: {}, {}{}\n", r.customer_id, RangeText(r.range),
                  Plural(static_cast<int64_t>(r.groups.size()), "transaction", "transactions"),
                  Plural(total, "change", "changes"),
                  r.truncated ? fmt::format(" (limit {} reached; more follow)", r.limit) : "");
  for (const TimelineGroup& g : r.groups) {
    std::string actors = Join(g.actors, ", ");
    std::string what = DescribeCause(g.cause, options);
    if (g.actors.size() > 1) what = "(" + actors + ") " + what.substr(g.cause.actor.size() + 1);
    out += fmt::format("{}  {}  {}\n", Human(g.time),
                       g.transaction_id.empty() ? "(no tx)" : "tx " + g.transaction_id, what);
    size_t shifts_listed = 0;
    std::vector<const TimelineChange*> rest;
    for (const TimelineChange& c : g.changes) {
      if (c.kind != ChangeKind::kShifted) {
        out += "    " + ChangeLine(c) + "\n";
      } else if (shifts_listed < options.max_changes_per_group) {
        out += "    " + ChangeLine(c) + "\n";
        ++shifts_listed;
      } else {
        rest.push_back(&c);
      }
    }
    if (!rest.empty()) {
      out +=
          fmt::format("    … {} more shifted\n", WithThousands(static_cast<int64_t>(rest.size())));
    } else if (g.cause.shifted > 0 && shifts_listed == 0) {
      out += "    " + ShiftedLine(g.cause) + "\n";
    }
  }
  if (!r.next_cursor.empty()) out += "next page: --cursor " + r.next_cursor + "\n";
  return out;
}

std::string RenderTimelineJson(const TimelineResult& r) {
  OJson j;
  j["customer_id"] = r.customer_id;
  j["range"] = RangeJson(r.range);
  CompletenessJson(j, r.completeness, r.range.to);
  j["limit"] = r.limit;
  j["truncated"] = r.truncated;
  j["next_cursor"] = r.next_cursor.empty() ? OJson() : OJson(r.next_cursor);
  j["note"] = NoteJson(r.note);
  OJson groups = OJson::array();
  for (const TimelineGroup& g : r.groups) {
    OJson gj;
    gj["transaction_id"] = g.transaction_id;
    gj["time"] = FormatTimestamp(g.time);
    gj["actors"] = g.actors;
    gj["cause"] = CauseJson(g.cause, kJsonOptions);
    OJson changes = OJson::array();
    for (const TimelineChange& c : g.changes) {
      OJson cj;
      cj["campaign_id"] = c.campaign_id;
      cj["version"] = c.version;
      cj["event_type"] = OpName(c.event_type);
      cj["kind"] = ChangeKindName(c.kind);
      cj["event_time"] = FormatTimestamp(c.event_time);
      cj["actor"] = c.actor;
      cj["missed_versions"] = c.missed_versions;
      cj["fields"] = c.fields;
      cj["priority_from"] = c.priority_from ? OJson(*c.priority_from) : OJson();
      cj["priority_to"] = c.priority_to ? OJson(*c.priority_to) : OJson();
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
  const bool causes = std::any_of(r.entries.begin(), r.entries.end(),
                                  [](const BlameEntry& e) { return e.cause.has_value(); });
  std::vector<std::string> headers = {"FIELD", "VALUE", "VERSION", "TIME", "ACTOR"};
  if (causes) headers.push_back("WHY");
  TextTable t(headers);
  for (const BlameEntry& e : r.entries) {
    std::vector<std::string> row = {e.path, ShowValue(e.value, MaxChars(options)),
                                    fmt::format("v{}", e.version), Human(e.event_time), e.actor};
    if (e.cause) row.push_back("shifted: " + DescribeCause(*e.cause, options));
    t.Add(std::move(row));
  }
  return out + t.Render();
}

std::string RenderBlameJson(const BlameResult& r) {
  OJson j;
  j["campaign_id"] = r.campaign_id;
  j["customer_id"] = r.customer_id;
  j["at"] = FormatTimestamp(r.at);
  CompletenessJson(j, r.completeness, r.at);
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
    f["kind"] = ChangeKindName(e.kind);
    f["cause"] = e.cause ? CauseJson(*e.cause, kJsonOptions) : OJson();
    fields.push_back(std::move(f));
  }
  j["fields"] = std::move(fields);
  return DumpJson(j) + "\n";
}

// ---- search ---------------------------------------------------------------------------------

std::string RenderSearchTable(const SearchResult& r, const RenderOptions& options) {
  std::string out = fmt::format("search '{}': {}{}\n", Printable(r.query),
                                Plural(static_cast<int64_t>(r.hits.size()), "hit", "hits"),
                                r.truncated ? " (more exist; --limit shows more)" : "");
  if (r.hits.empty()) return out;
  TextTable t({"KIND", "CUSTOMER", "CAMPAIGN", "NAME", "STATUS", "VER", "LAST_CHANGE", "MATCHED"});
  for (const SearchHit& h : r.hits) {
    if (h.kind == "customer") {
      t.Add({h.kind, std::to_string(h.customer_id), "-",
             fmt::format("({} campaigns, {} not deleted)", WithThousands(h.campaigns),
                         WithThousands(h.live_campaigns)),
             "-", "-", Human(h.last_change), h.matched});
    } else {
      t.Add({h.kind, std::to_string(h.customer_id), std::to_string(h.campaign_id),
             EllipsizeWidth(Printable(h.name), MaxChars(options)), h.deleted ? "deleted" : h.status,
             fmt::format("v{}", h.version), Human(h.last_change), h.matched});
    }
  }
  return out + t.Render();
}

std::string RenderSearchJson(const SearchResult& r) {
  OJson j;
  j["query"] = r.query;
  CompletenessJson(j, r.completeness, std::nullopt);
  j["truncated"] = r.truncated;
  j["note"] = NoteJson(r.note);
  OJson hits = OJson::array();
  for (const SearchHit& h : r.hits) {
    OJson hj;
    hj["kind"] = h.kind;
    hj["matched"] = h.matched;
    hj["customer_id"] = h.customer_id;
    if (h.kind == "customer") {
      hj["campaigns"] = h.campaigns;
      hj["live_campaigns"] = h.live_campaigns;
    } else {
      hj["campaign_id"] = h.campaign_id;
      hj["name"] = h.name;
      hj["status"] = h.status;
      hj["version"] = h.version;
      hj["deleted"] = h.deleted;
    }
    hj["last_change"] = FormatTimestamp(h.last_change);
    hits.push_back(std::move(hj));
  }
  j["hits"] = std::move(hits);
  return DumpJson(j) + "\n";
}

}  // namespace ch
