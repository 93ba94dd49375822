#include "workload/replayer.h"

#include <fmt/format.h>

#include <utility>

#include "common/time_util.h"

namespace ch {
namespace {

Status Precondition(const WorkloadLine& line, std::string_view what) {
  return FailedPreconditionError(fmt::format("{}: {}", line.Where(), what));
}

Status BadShape(const WorkloadLine& line, std::string_view field, std::string_view what) {
  return InvalidArgumentError(fmt::format("{}: field '{}': {}", line.Where(), field, what));
}

std::string ShiftText(const WorkloadShift& s) {
  return fmt::format("{{delta {}, lo {}, hi {}}}", s.delta, s.lo,
                     s.hi ? std::to_string(*s.hi) : "null");
}

// Check that the line's shift has the shape its op implies (independent of the database).
Status CheckShiftShape(const WorkloadLine& line, const WorkloadShift& s,
                       const WorkloadShift& want) {
  if (s.delta != want.delta || s.lo != want.lo || s.hi != want.hi) {
    return BadShape(
        line, "shift",
        fmt::format("{} does not match the op (expected {})", ShiftText(s), ShiftText(want)));
  }
  return Status::OK();
}

Status CheckVersions(const WorkloadLine& line, int64_t implied, std::string_view why) {
  if (line.versions != implied) {
    return Precondition(line,
                        fmt::format("versions {} but {} implies {}", line.versions, why, implied));
  }
  return Status::OK();
}

// The recorded position as a phrase: "seq 41 (committed 2026-...Z, read from 'a.jsonl')".
std::string Describe(const ReplayPosition& p) {
  return fmt::format("seq {} (committed {}, read from '{}')", p.seq, FormatTimestamp(p.recorded_at),
                     p.source);
}

Status NotTheAppliedWorkload(const ReplayPosition& at, std::string_view why) {
  return FailedPreconditionError(fmt::format(
      "not the workload applied to this campaign database: a workload with the same first line "
      "was applied through {}, and {}; nothing was applied",
      Describe(at), why));
}

Status AlreadyApplied(const ReplayPosition& at, int64_t lines) {
  return FailedPreconditionError(fmt::format(
      "this workload was already applied to this campaign database through {}: those {} ops "
      "are applied, and nothing was applied now; to apply only what follows them, resume the "
      "replay (replay --resume)",
      Describe(at), lines));
}

}  // namespace

std::string FormatReplayLine(const ReplayedOp& op) {
  return fmt::format(R"({{"seq":{},"committed_at":"{}","versions":{}}})", op.seq,
                     FormatTimestamp(op.committed_at), op.versions);
}

Replayer::Replayer(CampaignService& service, ReplayerOptions options)
    : service_(service), options_(options) {}

Result<CommitInfo> Replayer::Call(const WorkloadLine& line) {
  switch (line.op) {
    case WorkloadOp::kSeed: {
      const WorkloadSeed& s = line.seed();
      RETURN_IF_ERROR(CheckVersions(line, static_cast<int64_t>(s.rows.size()), "the row count"));
      return service_.Import(s.customer_id, s.rows, Advance(line));
    }
    case WorkloadOp::kCreate: {
      const WorkloadCreate& c = line.create();
      RETURN_IF_ERROR(CheckShiftShape(line, c.shift, {1, 1, std::nullopt, 0}));
      RETURN_IF_ERROR(CheckVersions(line, c.shift.n + 1, "shift.n + 1"));
      WriteContext ctx;
      ctx.actor = c.actor;
      ctx.replay = Advance(line);
      ctx.expect_shifted = c.shift.n;
      return service_.Create(c.row, ctx);
    }
    case WorkloadOp::kUpdate:
    case WorkloadOp::kBurst: {
      const WorkloadUpdate& u = line.update();
      RETURN_IF_ERROR(CheckVersions(line, 1, "an update"));
      WriteContext ctx;
      ctx.actor = u.actor;
      ctx.replay = Advance(line);
      ctx.expect_customer = u.customer_id;
      return service_.Update(u.id, u.set, ctx);
    }
    case WorkloadOp::kReorder: {
      const WorkloadReorder& r = line.reorder();
      WorkloadShift want = r.to < r.from ? WorkloadShift{1, r.to, r.from - 1, 0}
                                         : WorkloadShift{-1, r.from + 1, r.to, 0};
      RETURN_IF_ERROR(CheckShiftShape(line, r.shift, want));
      RETURN_IF_ERROR(CheckVersions(line, r.shift.n + 1, "shift.n + 1"));
      WriteContext ctx;
      ctx.actor = r.actor;
      ctx.replay = Advance(line);
      ctx.expect_customer = r.customer_id;
      ctx.expect_priority = r.from;
      ctx.expect_shifted = r.shift.n;
      return service_.Move(r.id, r.to, ctx);
    }
    case WorkloadOp::kDelete: {
      const WorkloadDelete& d = line.del();
      RETURN_IF_ERROR(CheckShiftShape(line, d.shift, {-1, d.priority + 1, std::nullopt, 0}));
      RETURN_IF_ERROR(CheckVersions(line, d.shift.n + 1, "shift.n + 1"));
      WriteContext ctx;
      ctx.actor = d.actor;
      ctx.replay = Advance(line);
      ctx.expect_customer = d.customer_id;
      // The service checks expect_priority on every row it acts on (not only on Move).
      ctx.expect_priority = d.priority;
      ctx.expect_shifted = d.shift.n;
      return service_.Delete(d.id, ctx);
    }
    case WorkloadOp::kHeader:
    case WorkloadOp::kFooter:
      break;
  }
  return InternalError(fmt::format("{}: not an applied line", line.Where()));
}

std::optional<ReplayAdvance> Replayer::Advance(const WorkloadLine& line) const {
  if (!tracking_) return std::nullopt;
  ReplayAdvance a;
  a.to.workload = tracking_->workload;
  a.to.seq = line.seq;
  a.to.digest = digest_.Hex();  // through this line
  a.to.source = tracking_->source;
  a.from_seq = tracking_->recorded_seq;
  return a;
}

void Replayer::FollowChain(const WorkloadLine& line) {
  bool first = !last_seq_.has_value();
  if (line.op == WorkloadOp::kHeader) {
    complete_ = first;
  } else if (first || line.seq != *last_seq_ + 1) {
    complete_ = false;
  }
  last_seq_ = line.seq;
}

void Replayer::Count(const WorkloadLine& line, int64_t versions) {
  customers_.insert(line.customer_id());
  totals_.versions += versions;
  ++totals_.counts[std::string(WorkloadOpName(line.op))];
  if (line.op != WorkloadOp::kSeed) ++totals_.ops;
}

Result<std::optional<ReplayedOp>> Replayer::Apply(const WorkloadLine& line) {
  ++summary_.lines;
  // Track whether the whole file is being applied, so that the footer's totals can be checked.
  FollowChain(line);

  if (line.op == WorkloadOp::kHeader) return std::optional<ReplayedOp>();
  if (line.op == WorkloadOp::kFooter) {
    RETURN_IF_ERROR(VerifyFooter(line));
    return std::optional<ReplayedOp>();
  }

  Result<CommitInfo> info = Call(line);
  if (!info.ok()) {
    // A failed line breaks the chain: the footer's totals can no longer match.
    complete_ = false;
    const Status& st = info.status();
    if (st.message().starts_with("workload line")) return st;  // already names the line
    return st.WithContext(line.Where());
  }
  if (tracking_) tracking_->recorded_seq = line.seq;
  auto produced = static_cast<int64_t>(info->changes.size());
  if (line.op == WorkloadOp::kSeed && produced == 0) {
    produced = static_cast<int64_t>(info->imported.size());
  }
  Count(line, produced);
  summary_.versions += produced;
  ++summary_.counts[std::string(WorkloadOpName(line.op))];
  if (line.op == WorkloadOp::kSeed) {
    ++summary_.seed_lines;
  } else {
    ++summary_.ops;
  }
  if (produced != line.versions) {
    complete_ = false;
    return InternalError(fmt::format(
        "{}: the commit produced {} versions but the line expects {} (the op was committed)",
        line.Where(), produced, line.versions));
  }
  return std::optional<ReplayedOp>(ReplayedOp{line.seq, info->committed_at, produced});
}

Status Replayer::VerifyFooter(const WorkloadLine& line) {
  if (!options_.verify_footer || !complete_) return Status::OK();
  const WorkloadFooter& f = line.footer();
  auto bad = [&](std::string_view field, int64_t want, int64_t got) {
    return InvalidArgumentError(
        fmt::format("{}: field '{}': footer says {} but the applied lines "
                    "give {}",
                    line.Where(), field, want, got));
  };
  if (f.expected_versions != totals_.versions) {
    return bad("expected_versions", f.expected_versions, totals_.versions);
  }
  if (f.ops != totals_.ops) return bad("ops", f.ops, totals_.ops);
  for (const auto& [name, count] : f.counts) {
    auto it = totals_.counts.find(name);
    int64_t got = it == totals_.counts.end() ? 0 : it->second;
    if (got != count) return bad("counts." + name, count, got);
  }
  int64_t campaigns = 0;
  for (int64_t c : customers_) {
    ASSIGN_OR_RETURN(std::vector<Campaign> rows, service_.List(c));
    campaigns += static_cast<int64_t>(rows.size());
  }
  if (f.campaigns_final != campaigns) return bad("campaigns_final", f.campaigns_final, campaigns);
  summary_.footer_verified = true;
  return Status::OK();
}

Status Replayer::StartTracking(const WorkloadReader& reader) {
  Tracking t;
  t.workload = WorkloadIdentity(reader.text());
  t.source = reader.name();
  ASSIGN_OR_RETURN(std::optional<ReplayPosition> recorded,
                   service_.store().GetReplayPosition(t.workload));
  if (recorded) {
    t.recorded_seq = recorded->seq;
    t.skip_to = std::move(recorded);
  }
  tracking_ = std::move(t);
  return Status::OK();
}

Status Replayer::Skip(const WorkloadLine& line) {
  const ReplayPosition& at = *tracking_->skip_to;
  if (line.seq > at.seq) {
    return NotTheAppliedWorkload(
        at, fmt::format("this file has no line with seq {} (its line {} has seq {})", at.seq,
                        line.line_no, line.seq));
  }
  ++summary_.lines;
  FollowChain(line);
  if (line.applied()) {
    ++summary_.skipped;
    summary_.skipped_versions += line.versions;
    Count(line, line.versions);
  }
  if (line.seq < at.seq) return Status::OK();
  if (digest_.Hex() != at.digest) {
    return NotTheAppliedWorkload(
        at, fmt::format("this file's lines through seq {} differ from the applied ones", at.seq));
  }
  if (!options_.resume) return AlreadyApplied(at, summary_.skipped);
  ResumeInfo info{at, summary_.skipped};
  tracking_->skip_to.reset();
  if (options_.on_resume) options_.on_resume(info);
  return Status::OK();
}

Result<ReplaySummary> Replayer::ReplayAll(WorkloadReader& reader,
                                          const std::function<Status(const ReplayedOp&)>& on_op) {
  while (true) {
    ASSIGN_OR_RETURN(std::optional<WorkloadLine> line, reader.Next());
    if (!line) break;
    digest_.Add(reader.text());
    if (!tracking_) RETURN_IF_ERROR(StartTracking(reader).WithContext(reader.name()));
    if (tracking_->skip_to) {
      RETURN_IF_ERROR(Skip(*line).WithContext(reader.name()));
      continue;
    }
    Result<std::optional<ReplayedOp>> op = Apply(*line);
    if (!op.ok()) return op.status().WithContext(reader.name());
    if (*op && on_op) RETURN_IF_ERROR(on_op(**op));
  }
  if (tracking_ && tracking_->skip_to) {
    return NotTheAppliedWorkload(*tracking_->skip_to,
                                 fmt::format("this file ends at seq {}", last_seq_.value_or(0)))
        .WithContext(reader.name());
  }
  return summary_;
}

Result<ReplaySummary> Replayer::ReplayFile(const std::string& path,
                                           const std::function<Status(const ReplayedOp&)>& on_op) {
  ASSIGN_OR_RETURN(std::unique_ptr<WorkloadReader> reader, WorkloadReader::Open(path));
  return ReplayAll(*reader, on_op);
}

}  // namespace ch
