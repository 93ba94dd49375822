#include "workload/workload.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "common/text.h"
#include "common/time_util.h"

namespace ch {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kOpNames[] = {"header", "seed",    "create", "update",
                                         "burst",  "reorder", "delete", "footer"};

// Where a line is, for messages; seq and op are filled in as soon as they are known.
struct Ctx {
  int64_t line_no = 0;
  std::optional<int64_t> seq;
  std::string op;

  std::string Prefix() const {
    std::string s = fmt::format("workload line {}", line_no);
    if (seq && !op.empty()) return s + fmt::format(" (seq {}, {})", *seq, op);
    if (seq) return s + fmt::format(" (seq {})", *seq);
    if (!op.empty()) return s + fmt::format(" ({})", op);
    return s;
  }
  Status Bad(std::string_view field, std::string_view what) const {
    return InvalidArgumentError(fmt::format("{}: field '{}': {}", Prefix(), Excerpt(field), what));
  }
  Status BadLine(std::string_view what) const {
    return InvalidArgumentError(fmt::format("{}: {}", Prefix(), what));
  }
};

std::string Path(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  return fmt::format("{}.{}", prefix, key);
}

// Reject keys of `obj` outside `allowed` (applied lines are strict, so a typo is not silently
// ignored).
Status CheckKeys(const Ctx& ctx, const Json& obj, std::initializer_list<std::string_view> allowed,
                 std::string_view prefix) {
  for (const auto& [key, value] : obj.items()) {
    bool known = false;
    for (std::string_view a : allowed) known = known || key == a;
    if (!known) return ctx.Bad(Path(prefix, key), "unknown field");
  }
  return Status::OK();
}

Result<const Json*> Need(const Ctx& ctx, const Json& obj, std::string_view key,
                         std::string_view prefix) {
  auto it = obj.find(key);
  if (it == obj.end()) return ctx.Bad(Path(prefix, key), "missing");
  return &*it;
}

Result<int64_t> AsInt(const Ctx& ctx, const Json& v, std::string_view path) {
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return ctx.Bad(path, "integer out of range");
    }
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return ctx.Bad(path, fmt::format("expected an integer, got {}", Excerpt(v.dump())));
}

Result<int64_t> Int(const Ctx& ctx, const Json& obj, std::string_view key, std::string_view prefix,
                    int64_t min = std::numeric_limits<int64_t>::min()) {
  ASSIGN_OR_RETURN(const Json* v, Need(ctx, obj, key, prefix));
  ASSIGN_OR_RETURN(int64_t x, AsInt(ctx, *v, Path(prefix, key)));
  if (x < min) return ctx.Bad(Path(prefix, key), fmt::format("{} is less than {}", x, min));
  return x;
}

Result<std::optional<int64_t>> OptInt(const Ctx& ctx, const Json& obj, std::string_view key,
                                      std::string_view prefix) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  ASSIGN_OR_RETURN(int64_t x, AsInt(ctx, *it, Path(prefix, key)));
  return std::optional<int64_t>(x);
}

Result<std::string> Str(const Ctx& ctx, const Json& obj, std::string_view key,
                        std::string_view prefix) {
  ASSIGN_OR_RETURN(const Json* v, Need(ctx, obj, key, prefix));
  if (!v->is_string()) {
    return ctx.Bad(Path(prefix, key), fmt::format("expected a string, got {}", Excerpt(v->dump())));
  }
  return v->get<std::string>();
}

Result<std::string> Actor(const Ctx& ctx, const Json& obj) {
  ASSIGN_OR_RETURN(std::string actor, Str(ctx, obj, "actor", ""));
  Status st = ValidateActor(actor);
  if (!st.ok()) return ctx.Bad("actor", st.message());
  return actor;
}

Result<WorkloadShift> ParseShift(const Ctx& ctx, const Json& obj) {
  ASSIGN_OR_RETURN(const Json* s, Need(ctx, obj, "shift", ""));
  if (!s->is_object()) return ctx.Bad("shift", "expected an object {delta, lo, hi, n}");
  RETURN_IF_ERROR(CheckKeys(ctx, *s, {"delta", "lo", "hi", "n"}, "shift"));
  WorkloadShift shift;
  ASSIGN_OR_RETURN(shift.delta, Int(ctx, *s, "delta", "shift"));
  if (shift.delta != 1 && shift.delta != -1) return ctx.Bad("shift.delta", "must be 1 or -1");
  ASSIGN_OR_RETURN(shift.lo, Int(ctx, *s, "lo", "shift", 1));
  if (s->find("hi") == s->end()) return ctx.Bad("shift.hi", "missing (use null for no bound)");
  ASSIGN_OR_RETURN(shift.hi, OptInt(ctx, *s, "hi", "shift"));
  if (shift.hi && *shift.hi < shift.lo) {
    return ctx.Bad("shift.hi", fmt::format("{} is less than lo {}", *shift.hi, shift.lo));
  }
  ASSIGN_OR_RETURN(shift.n, Int(ctx, *s, "n", "shift", 0));
  return shift;
}

// The fields of a workload campaign row (all required).
constexpr std::string_view kRowFields[] = {"id",
                                           "customer_id",
                                           "name",
                                           "status",
                                           "priority",
                                           "trigger_event",
                                           "audience_segment",
                                           "start_at",
                                           "end_at",
                                           "frequency_cap",
                                           "content",
                                           "updated_by"};

// Check the values a patch sets against the campaign limits by applying it to a valid campaign
// (end_at after start_at can only be checked when the patch sets both).
Status ValidatePatchValues(const CampaignPatch& patch) {
  Campaign probe;
  probe.id = 1;
  probe.customer_id = 1;
  probe.name = "probe";
  probe.updated_by = "user:1";
  ApplyPatch(patch, probe);
  return ValidateCampaign(probe);
}

// Parse a full campaign row through the campaign module (which owns the limits).
Result<Campaign> ParseRow(const Ctx& ctx, const Json& row, std::string_view path,
                          int64_t customer_id) {
  if (!row.is_object()) return ctx.Bad(path, "expected a campaign row object");
  // The format's rows are complete; version and timestamps belong to the system under test.
  for (std::string_view key : kRowFields) {
    if (!row.contains(key)) return ctx.Bad(Path(path, key), "missing");
  }
  for (std::string_view key : {"version", "created_at", "updated_at"}) {
    if (row.contains(key)) {
      return ctx.Bad(Path(path, key), "not part of a workload row (the system sets it)");
    }
  }
  Result<Campaign> c = ParseCampaignRow(row.dump());
  if (!c.ok()) return ctx.Bad(path, c.status().message());
  Status valid = ValidateCampaign(*c);
  if (!valid.ok()) return ctx.Bad(path, valid.message());
  if (c->id <= 0) return ctx.Bad(Path(path, "id"), "must be a positive explicit id");
  if (c->customer_id != customer_id) {
    return ctx.Bad(
        Path(path, "customer_id"),
        fmt::format("{} differs from the line's customer_id {}", c->customer_id, customer_id));
  }
  return c;
}

Result<WorkloadHeader> ParseHeader(const Ctx& ctx, const Json& j) {
  WorkloadHeader h;
  ASSIGN_OR_RETURN(h.format, Str(ctx, j, "format", ""));
  if (h.format != kWorkloadFormat) {
    return ctx.Bad("format", fmt::format("unsupported format '{}' (this build reads '{}')",
                                         Excerpt(h.format), kWorkloadFormat));
  }
  ASSIGN_OR_RETURN(const Json* params, Need(ctx, j, "params", ""));
  if (!params->is_object()) return ctx.Bad("params", "expected an object");
  h.params_json = params->dump();
  ASSIGN_OR_RETURN(const Json* big, Need(ctx, j, "big_customers", ""));
  if (!big->is_array()) return ctx.Bad("big_customers", "expected an array of customer ids");
  for (size_t i = 0; i < big->size(); ++i) {
    std::string path = fmt::format("big_customers[{}]", i);
    ASSIGN_OR_RETURN(int64_t c, AsInt(ctx, (*big)[i], path));
    if (c <= 0) return ctx.Bad(path, "customer ids are positive");
    h.big_customers.push_back(c);
  }
  return h;
}

Result<WorkloadFooter> ParseFooter(const Ctx& ctx, const Json& j) {
  WorkloadFooter f;
  ASSIGN_OR_RETURN(f.ops, Int(ctx, j, "ops", "", 0));
  ASSIGN_OR_RETURN(const Json* counts, Need(ctx, j, "counts", ""));
  if (!counts->is_object()) return ctx.Bad("counts", "expected an object of op name -> count");
  for (const auto& [key, value] : counts->items()) {
    std::string path = Path("counts", key);
    ASSIGN_OR_RETURN(int64_t n, AsInt(ctx, value, path));
    if (n < 0) return ctx.Bad(path, "negative count");
    f.counts[key] = n;
  }
  ASSIGN_OR_RETURN(f.expected_versions, Int(ctx, j, "expected_versions", "", 0));
  ASSIGN_OR_RETURN(f.seed_rows, Int(ctx, j, "seed_rows", "", 0));
  ASSIGN_OR_RETURN(f.campaigns_final, Int(ctx, j, "campaigns_final", "", 0));
  ASSIGN_OR_RETURN(f.max_op_versions, OptInt(ctx, j, "max_op_versions", ""));
  ASSIGN_OR_RETURN(f.campaigns_ever, OptInt(ctx, j, "campaigns_ever", ""));
  f.raw_json = j.dump();
  return f;
}

Result<WorkloadLine> ParseJsonLine(const Json& j, Ctx& ctx) {
  if (!j.is_object()) return ctx.BadLine("expected a JSON object");
  WorkloadLine line;
  line.line_no = ctx.line_no;
  // seq first, so that every later message can name it.
  if (auto it = j.find("seq"); it != j.end() && (it->is_number_integer())) {
    Result<int64_t> seq = AsInt(ctx, *it, "seq");
    if (seq.ok() && *seq >= 0) ctx.seq = *seq;
  }
  ASSIGN_OR_RETURN(std::string op_name, Str(ctx, j, "op", ""));
  Result<WorkloadOp> op = ParseWorkloadOp(op_name);
  if (!op.ok()) return ctx.Bad("op", op.status().message());
  line.op = *op;
  ctx.op = op_name;
  ASSIGN_OR_RETURN(line.seq, Int(ctx, j, "seq", "", 0));
  ASSIGN_OR_RETURN(std::string at, Str(ctx, j, "at", ""));
  Result<Timestamp> at_ts = ParseTimestamp(at);
  if (!at_ts.ok()) return ctx.Bad("at", at_ts.status().message());
  line.at = *at_ts;

  switch (line.op) {
    case WorkloadOp::kHeader: {
      ASSIGN_OR_RETURN(line.body, ParseHeader(ctx, j));
      return line;
    }
    case WorkloadOp::kFooter: {
      ASSIGN_OR_RETURN(line.body, ParseFooter(ctx, j));
      return line;
    }
    case WorkloadOp::kSeed: {
      RETURN_IF_ERROR(
          CheckKeys(ctx, j, {"op", "seq", "at", "customer_id", "rows", "versions"}, ""));
      WorkloadSeed s;
      ASSIGN_OR_RETURN(s.customer_id, Int(ctx, j, "customer_id", "", 1));
      ASSIGN_OR_RETURN(const Json* rows, Need(ctx, j, "rows", ""));
      if (!rows->is_array()) return ctx.Bad("rows", "expected an array of campaign rows");
      if (rows->empty()) return ctx.Bad("rows", "empty");
      s.rows.reserve(rows->size());
      for (size_t i = 0; i < rows->size(); ++i) {
        std::string path = fmt::format("rows[{}]", i);
        ASSIGN_OR_RETURN(Campaign c, ParseRow(ctx, (*rows)[i], path, s.customer_id));
        if (c.priority < 1) return ctx.Bad(Path(path, "priority"), "must be >= 1");
        s.rows.push_back(std::move(c));
      }
      line.body = std::move(s);
      break;
    }
    case WorkloadOp::kCreate: {
      RETURN_IF_ERROR(CheckKeys(
          ctx, j, {"op", "seq", "at", "customer_id", "row", "shift", "actor", "versions"}, ""));
      WorkloadCreate c;
      ASSIGN_OR_RETURN(c.customer_id, Int(ctx, j, "customer_id", "", 1));
      ASSIGN_OR_RETURN(c.actor, Actor(ctx, j));
      ASSIGN_OR_RETURN(const Json* row, Need(ctx, j, "row", ""));
      ASSIGN_OR_RETURN(c.row, ParseRow(ctx, *row, "row", c.customer_id));
      if (c.row.updated_by != c.actor) {
        return ctx.Bad("row.updated_by", fmt::format("'{}' differs from actor '{}'",
                                                     Excerpt(c.row.updated_by), Excerpt(c.actor)));
      }
      ASSIGN_OR_RETURN(c.shift, ParseShift(ctx, j));
      line.body = std::move(c);
      break;
    }
    case WorkloadOp::kUpdate:
    case WorkloadOp::kBurst: {
      bool burst = line.op == WorkloadOp::kBurst;
      if (burst) {
        RETURN_IF_ERROR(CheckKeys(ctx, j,
                                  {"op", "seq", "at", "customer_id", "id", "set", "actor",
                                   "versions", "burst_id", "burst_pos", "burst_len"},
                                  ""));
      } else {
        RETURN_IF_ERROR(CheckKeys(
            ctx, j, {"op", "seq", "at", "customer_id", "id", "set", "actor", "versions"}, ""));
      }
      WorkloadUpdate u;
      ASSIGN_OR_RETURN(u.customer_id, Int(ctx, j, "customer_id", "", 1));
      ASSIGN_OR_RETURN(u.id, Int(ctx, j, "id", "", 1));
      ASSIGN_OR_RETURN(u.actor, Actor(ctx, j));
      ASSIGN_OR_RETURN(const Json* set, Need(ctx, j, "set", ""));
      if (!set->is_object()) return ctx.Bad("set", "expected an object of fields to set");
      Result<CampaignPatch> patch = ParseCampaignPatch(set->dump());
      if (!patch.ok()) return ctx.Bad("set", patch.status().message());
      u.set = std::move(patch).value();
      Status valid = ValidatePatchValues(u.set);
      if (!valid.ok()) return ctx.Bad("set", valid.message());
      if (u.set.empty()) return ctx.Bad("set", "no field to change");
      if (u.set.updated_by && *u.set.updated_by != u.actor) {
        return ctx.Bad("set.updated_by", fmt::format("'{}' differs from actor '{}'",
                                                     Excerpt(*u.set.updated_by), Excerpt(u.actor)));
      }
      if (burst) {
        WorkloadBurst b;
        ASSIGN_OR_RETURN(b.burst_id, Int(ctx, j, "burst_id", "", 0));
        ASSIGN_OR_RETURN(b.burst_len, Int(ctx, j, "burst_len", "", 1));
        ASSIGN_OR_RETURN(b.burst_pos, Int(ctx, j, "burst_pos", "", 0));
        if (b.burst_pos >= b.burst_len) {
          return ctx.Bad("burst_pos",
                         fmt::format("{} is not below burst_len {}", b.burst_pos, b.burst_len));
        }
        u.burst = b;
      }
      line.body = std::move(u);
      break;
    }
    case WorkloadOp::kReorder: {
      RETURN_IF_ERROR(CheckKeys(ctx, j,
                                {"op", "seq", "at", "customer_id", "id", "from", "to", "shift",
                                 "actor", "updated_by", "versions"},
                                ""));
      WorkloadReorder r;
      ASSIGN_OR_RETURN(r.customer_id, Int(ctx, j, "customer_id", "", 1));
      ASSIGN_OR_RETURN(r.id, Int(ctx, j, "id", "", 1));
      ASSIGN_OR_RETURN(r.from, Int(ctx, j, "from", "", 1));
      ASSIGN_OR_RETURN(r.to, Int(ctx, j, "to", "", 1));
      if (r.from == r.to) return ctx.Bad("to", "equals from (a reorder must move)");
      ASSIGN_OR_RETURN(r.actor, Actor(ctx, j));
      // The reference generator also writes updated_by (the moved row's new updated_by).
      if (j.contains("updated_by")) {
        ASSIGN_OR_RETURN(std::string upd, Str(ctx, j, "updated_by", ""));
        if (upd != r.actor) {
          return ctx.Bad("updated_by", fmt::format("'{}' differs from actor '{}'", Excerpt(upd),
                                                   Excerpt(r.actor)));
        }
      }
      ASSIGN_OR_RETURN(r.shift, ParseShift(ctx, j));
      line.body = std::move(r);
      break;
    }
    case WorkloadOp::kDelete: {
      RETURN_IF_ERROR(CheckKeys(
          ctx, j,
          {"op", "seq", "at", "customer_id", "id", "priority", "shift", "actor", "versions"}, ""));
      WorkloadDelete d;
      ASSIGN_OR_RETURN(d.customer_id, Int(ctx, j, "customer_id", "", 1));
      ASSIGN_OR_RETURN(d.id, Int(ctx, j, "id", "", 1));
      ASSIGN_OR_RETURN(d.priority, Int(ctx, j, "priority", "", 1));
      ASSIGN_OR_RETURN(d.actor, Actor(ctx, j));
      ASSIGN_OR_RETURN(d.shift, ParseShift(ctx, j));
      line.body = std::move(d);
      break;
    }
  }
  ASSIGN_OR_RETURN(line.versions, Int(ctx, j, "versions", "", 1));
  return line;
}

}  // namespace

std::string_view WorkloadOpName(WorkloadOp op) { return kOpNames[static_cast<int>(op)]; }

Result<WorkloadOp> ParseWorkloadOp(std::string_view name) {
  for (size_t i = 0; i < std::size(kOpNames); ++i) {
    if (kOpNames[i] == name) return static_cast<WorkloadOp>(i);
  }
  return InvalidArgumentError(fmt::format(
      "unknown op '{}' (expected header, seed, create, update, burst, reorder, delete or footer)",
      Excerpt(name)));
}

int64_t WorkloadLine::customer_id() const {
  switch (op) {
    case WorkloadOp::kSeed:
      return seed().customer_id;
    case WorkloadOp::kCreate:
      return create().customer_id;
    case WorkloadOp::kUpdate:
    case WorkloadOp::kBurst:
      return update().customer_id;
    case WorkloadOp::kReorder:
      return reorder().customer_id;
    case WorkloadOp::kDelete:
      return del().customer_id;
    case WorkloadOp::kHeader:
    case WorkloadOp::kFooter:
      return 0;
  }
  return 0;
}

std::string WorkloadLine::Where() const {
  return fmt::format("workload line {} (seq {}, {})", line_no, seq, WorkloadOpName(op));
}

namespace {
// Return `text` without the trailing whitespace a line may carry ("\r" of a CRLF file).
std::string_view TrimLineEnd(std::string_view text) {
  while (!text.empty() && (text.back() == '\r' || text.back() == '\n' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}
}  // namespace

Result<WorkloadLine> ParseWorkloadLine(std::string_view text, int64_t line_no) {
  Ctx ctx;
  ctx.line_no = line_no;
  text = TrimLineEnd(text);
  if (text.empty()) return ctx.BadLine("empty line (expected one JSON object per line)");
  if (text.size() > kMaxWorkloadLineBytes) {
    return ctx.BadLine(fmt::format("{} bytes, longer than the limit of {} bytes per line",
                                   text.size(), kMaxWorkloadLineBytes));
  }
  if (JsonNestingDepth(text) > kMaxJsonNesting) {
    return ctx.BadLine(
        fmt::format("arrays and objects nest more than {} levels deep", kMaxJsonNesting));
  }
  // nlohmann-json reports errors by exception; translate them here, once.
  try {
    Json j = Json::parse(text);
    return ParseJsonLine(j, ctx);
  } catch (const Json::parse_error& e) {
    return ctx.BadLine(fmt::format("malformed JSON: {}", BriefJsonError(e.what())));
  } catch (const std::exception& e) {
    return ctx.BadLine(fmt::format("invalid line: {}", BriefJsonError(e.what())));
  }
}

// ---- WorkloadReader ------------------------------------------------------------------------

namespace {

// Standard input through a file stream of its own (/dev/stdin): buffered reads, unlike std::cin
// synchronized with stdio, and a pipe's lines are returned as they arrive.
Result<std::unique_ptr<WorkloadReader>> OpenStandardInput() {
  auto in = std::make_unique<std::ifstream>("/dev/stdin", std::ios::binary);
  if (!in->is_open()) {
    return UnavailableError(
        fmt::format("cannot read the workload from standard input: {}", std::strerror(errno)));
  }
  return WorkloadReader::FromStream(std::move(in), "standard input");
}

}  // namespace

WorkloadReader::WorkloadReader(std::unique_ptr<std::istream> in, std::string name)
    : in_(std::move(in)), name_(std::move(name)) {}

WorkloadReader::~WorkloadReader() = default;

Result<std::unique_ptr<WorkloadReader>> WorkloadReader::Open(const std::string& path) {
  if (path == "-") return OpenStandardInput();
  std::error_code ec;
  auto status = std::filesystem::status(path, ec);
  if (status.type() == std::filesystem::file_type::not_found) {
    return NotFoundError(fmt::format("workload file '{}' does not exist", path));
  }
  if (status.type() == std::filesystem::file_type::directory) {
    return InvalidArgumentError(fmt::format("workload file '{}' is a directory", path));
  }
  auto in = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!in->is_open()) {
    return UnavailableError(fmt::format("cannot open workload file '{}' for reading", path));
  }
  return std::unique_ptr<WorkloadReader>(new WorkloadReader(std::move(in), path));
}

std::unique_ptr<WorkloadReader> WorkloadReader::FromStream(std::unique_ptr<std::istream> in,
                                                           std::string name) {
  return std::unique_ptr<WorkloadReader>(new WorkloadReader(std::move(in), std::move(name)));
}

namespace {

enum class LineRead { kLine, kEnd, kTooLong, kError };

// Read one line of `in` into `out`, without its newline. Stop with kTooLong as soon as the line
// is known to pass `max` bytes (`out` then holds its first bytes): memory stays bounded whatever
// the input. The last line may lack its newline.
LineRead ReadBoundedLine(std::istream& in, std::string& out, size_t max) {
  out.clear();
  // istream::getline into a fixed buffer finds the newline as fast as std::getline does, and
  // stops at the buffer's end, which is where the limit is checked.
  char chunk[64 * 1024];
  while (true) {
    in.getline(chunk, sizeof chunk);
    auto n = static_cast<size_t>(in.gcount());
    if (in.bad()) return LineRead::kError;
    if (in.fail() && in.eof()) return out.empty() ? LineRead::kEnd : LineRead::kLine;  // n == 0
    if (in.fail()) {
      // The buffer filled up before the newline: keep going.
      out.append(chunk, n);
      if (out.size() > max) return LineRead::kTooLong;
      in.clear();
      continue;
    }
    // A newline was extracted (counted in n), or the input ended after the last byte.
    out.append(chunk, in.eof() ? n : n - 1);
    return out.size() > max ? LineRead::kTooLong : LineRead::kLine;
  }
}

}  // namespace

Result<std::optional<WorkloadLine>> WorkloadReader::Next() {
  if (!failed_.ok()) return failed_;
  std::string& text = text_;  // the buffer is reused from line to line
  switch (ReadBoundedLine(*in_, text, kMaxWorkloadLineBytes)) {
    case LineRead::kEnd:
      return std::optional<WorkloadLine>();
    case LineRead::kError:
      failed_ = UnavailableError(fmt::format("{}: read error after line {}", name_, line_no_));
      return failed_;
    case LineRead::kTooLong:
      failed_ = InvalidArgumentError(
          fmt::format("{}: workload line {}: longer than the limit of {} bytes per line (is "
                      "this a workload file?); it starts with '{}…'",
                      name_, line_no_ + 1, kMaxWorkloadLineBytes,
                      Excerpt(std::string_view(text).substr(0, kMaxExcerptBytes))));
      return failed_;
    case LineRead::kLine:
      break;
  }
  ++line_no_;
  Result<WorkloadLine> line = ParseWorkloadLine(text, line_no_);
  text.resize(TrimLineEnd(text).size());  // as parsed
  if (!line.ok()) {
    failed_ = line.status().WithContext(name_);
    return failed_;
  }
  auto fail = [&](std::string what) -> Status {
    failed_ = InvalidArgumentError(fmt::format("{}: {}: {}", name_, line->Where(), what));
    return failed_;
  };
  if (footer_) return fail("line after the footer (the footer must be the last line)");
  if (line->op == WorkloadOp::kHeader && line_no_ != 1) {
    return fail("a header may only be the first line");
  }
  if (last_seq_ && line->seq <= *last_seq_) {
    return fail(fmt::format("seq does not increase (previous seq {})", *last_seq_));
  }
  last_seq_ = line->seq;
  if (line->op == WorkloadOp::kHeader) header_ = line->header();
  if (line->op == WorkloadOp::kFooter) footer_ = line->footer();
  return std::optional<WorkloadLine>(std::move(line).value());
}

namespace {
Result<std::vector<WorkloadLine>> ReadAll(WorkloadReader& reader) {
  std::vector<WorkloadLine> lines;
  while (true) {
    ASSIGN_OR_RETURN(std::optional<WorkloadLine> line, reader.Next());
    if (!line) return lines;
    lines.push_back(std::move(*line));
  }
}
}  // namespace

Result<std::vector<WorkloadLine>> ReadWorkloadFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<WorkloadReader> reader, WorkloadReader::Open(path));
  return ReadAll(*reader);
}

Result<std::vector<WorkloadLine>> ParseWorkloadText(std::string_view text, std::string name) {
  auto reader = WorkloadReader::FromStream(std::make_unique<std::istringstream>(std::string(text)),
                                           std::move(name));
  return ReadAll(*reader);
}

}  // namespace ch
