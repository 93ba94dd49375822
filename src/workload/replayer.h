// Replayer: applies a workload (workload.h) through the CampaignService, one transaction per line,
// and reports each op's commit time — the engine behind `campaign-history replay --ops FILE`.
//
// Line -> service call (every expectation the line carries is checked inside the transaction
// through WriteContext, so a failed check commits nothing of that op):
//   seed     Import(customer_id, rows)
//   create   Create(row with its explicit id)            expect_shifted = shift.n
//   update   Update(id, set)                             expect_customer
//   burst    Update(id, set)                             expect_customer
//   reorder  Move(id, to)     expect_customer, expect_priority = from, expect_shifted = shift.n
//   delete   Delete(id)       expect_customer, expect_priority = priority, expect_shifted = shift.n
// header and footer lines are not applied. The actor of every write is the line's `actor`.
//
// Before the call the replayer checks what it can without the database: the line's `versions`
// agrees with its shift (n + 1; 1 for updates; the row count for seeds) and the shift has the
// shape its op implies (create {+1, 1, null}, delete {-1, priority + 1, null}, reorder between
// from and to). After the commit it checks that the number of versions the commit produced equals
// the line's `versions`.
//
// Errors name the line and the seq ("workload line 17 (seq 16, reorder): ..."):
//   InvalidArgument     a line whose shift has the wrong shape for its op; a footer whose totals
//                       disagree with the applied lines;
//   FailedPrecondition  an expectation failed (shift.n, from, customer, versions); nothing of
//                       that op was committed;
//   NotFound            the line names a campaign that does not exist;
//   Internal            the commit produced a different number of versions than the line says
//                       (the op WAS committed: the service disagrees with the format);
//   anything else       as returned by the service or the reader.
//
// Re-running a workload (ReplayAll / ReplayFile): every line ReplayAll applies also advances the
// workload's replay position in the campaign database, in the line's own transaction
// (CampaignStore replay positions; identity and digest: workload/workload_digest.h). So after a
// crash, a rejected line or a finished run, the database knows exactly which lines are applied.
// When it records a position for the workload being read, ReplayAll reads the lines up to it
// without applying them and checks that they are the ones applied (the digest); then
//   without ReplayerOptions::resume  it fails with FailedPrecondition ("already applied through
//                                    seq N ... resume"), having changed nothing;
//   with resume                      it reports the position (on_resume) and applies the rest.
// A file that is not the one applied (same first line, other lines) fails with
// FailedPrecondition and changes nothing; a file with another first line is another workload.
// Two replays of one workload at once cannot both apply a line: the position is advanced by a
// compare-and-set, and the loser's line fails (FailedPrecondition) without being applied.
// Apply() alone records no position.
//
// Thread-safety: a Replayer is used by one thread; the service may be shared.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "campaign/campaign_service.h"
#include "common/clock.h"
#include "common/status.h"
#include "workload/workload.h"
#include "workload/workload_digest.h"

namespace ch {

// Where a resumed replay picked up (ReplayerOptions::on_resume).
struct ResumeInfo {
  // The position the database records: the last applied line.
  ReplayPosition position;
  // Lines skipped because they were applied (seed lines included).
  int64_t applied_lines = 0;
};

// One applied op, as `replay` prints it.
struct ReplayedOp {
  int64_t seq = 0;
  // The transaction's commit time (the service's clock, not the line's `at`).
  Timestamp committed_at{};
  // Versions the commit produced (== the line's `versions`).
  int64_t versions = 0;

  bool operator==(const ReplayedOp&) const = default;
};

// Return exactly {"seq":N,"committed_at":"YYYY-MM-DDThh:mm:ss.uuuuuuZ","versions":N}
// (no newline). DO NOT CHANGE: scripts and benchmarks parse it.
std::string FormatReplayLine(const ReplayedOp& op);

struct ReplayerOptions {
  // When the whole file was applied (a header, then every line with consecutive seq), check the
  // footer's totals against what was applied: expected_versions, ops, counts and
  // campaigns_final (lines skipped by a resumed replay count as applied). Default: true.
  bool verify_footer = true;
  // When the campaign database records lines of the workload as applied, skip them and apply the
  // rest; otherwise fail before applying anything (see the file comment). ReplayAll only.
  // Default: false.
  bool resume = false;
  // Called once, when set, after a resumed replay skipped the applied lines and before it
  // applies the next one.
  std::function<void(const ResumeInfo&)> on_resume;
};

// Totals of what a Replayer applied.
struct ReplaySummary {
  // Lines seen (header and footer included).
  int64_t lines = 0;
  // Applied lines that are workload ops (seed lines excluded; every burst line counts).
  int64_t ops = 0;
  // Applied seed lines.
  int64_t seed_lines = 0;
  // Versions the applied lines produced, seed rows included.
  int64_t versions = 0;
  // Applied lines per op name ("seed", "create", ...).
  std::map<std::string, int64_t> counts;
  // True when a footer was checked against the totals (see ReplayerOptions::verify_footer); the
  // totals then include the lines skipped as applied.
  bool footer_verified = false;
  // Lines skipped because the database records them as applied (resume), seed lines included.
  int64_t skipped = 0;
  // The versions those lines had produced.
  int64_t skipped_versions = 0;
};

class Replayer {
 public:
  // REQUIRES: `service` outlives the replayer.
  explicit Replayer(CampaignService& service, ReplayerOptions options = {});
  Replayer(const Replayer&) = delete;
  Replayer& operator=(const Replayer&) = delete;

  // Apply one line in one transaction. Return the applied op, or nullopt for a header or a
  // footer (whose totals are verified when the whole file was applied). On failure nothing of
  // the line is committed (except for the Internal case described above) and the replayer may
  // continue with other lines.
  Result<std::optional<ReplayedOp>> Apply(const WorkloadLine& line);

  // Read `reader` to the end, applying every line that is not applied yet (see the file comment)
  // and recording the workload's position with each; call `on_op` (when set) after each commit,
  // stopping at its first error. Stops at the first failure, which names the file and line.
  // REQUIRES: a fresh Replayer (one workload per Replayer).
  Result<ReplaySummary> ReplayAll(WorkloadReader& reader,
                                  const std::function<Status(const ReplayedOp&)>& on_op = nullptr);

  // Open `path` and ReplayAll it. Fails with NotFound naming a missing file.
  Result<ReplaySummary> ReplayFile(const std::string& path,
                                   const std::function<Status(const ReplayedOp&)>& on_op = nullptr);

  // Return the totals so far.
  const ReplaySummary& summary() const { return summary_; }

 private:
  // The workload being replayed by ReplayAll, and how far the database has it.
  struct Tracking {
    std::string workload;
    std::string source;
    // The seq the database records now (the compare-and-set's expectation).
    std::optional<int64_t> recorded_seq;
    // The recorded position while the lines up to it are being skipped.
    std::optional<ReplayPosition> skip_to;
  };
  // Totals of the whole file so far, skipped lines included: what a footer is checked against.
  struct Totals {
    int64_t ops = 0;
    int64_t versions = 0;
    std::map<std::string, int64_t> counts;
  };

  Result<CommitInfo> Call(const WorkloadLine& line);
  std::optional<ReplayAdvance> Advance(const WorkloadLine& line) const;
  // Follow whether every line from a header on is handled in order (for the footer).
  void FollowChain(const WorkloadLine& line);
  void Count(const WorkloadLine& line, int64_t versions);
  Status StartTracking(const WorkloadReader& reader);
  Status Skip(const WorkloadLine& line);
  Status VerifyFooter(const WorkloadLine& line);

  CampaignService& service_;
  ReplayerOptions options_;
  ReplaySummary summary_;
  // True while every line so far, from a header on, was applied with consecutive seq.
  bool complete_ = false;
  std::optional<int64_t> last_seq_;
  std::set<int64_t> customers_;
  Totals totals_;
  std::optional<Tracking> tracking_;
  WorkloadDigest digest_;
};

}  // namespace ch
