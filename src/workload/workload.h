// Workload lines: the campaign-operation workload format (`campaign-history-workload/1`, JSON
// Lines; see docs/formats/workload.md) parsed into typed values, and a streaming reader.
//
// A workload is one JSON object per line: a `header`, then `seed` lines (initial population),
// then operations (`create`, `update`, `burst`, `reorder`, `delete`), then a `footer`. Every line
// between header and footer is one transaction. The generator (generator.h) writes it, the
// replayer (replayer.h) applies it through the CampaignService, and the test model
// (testing/workload_model.h) re-implements its meaning independently.
//
// Parsing is strict: malformed JSON, an unknown `op`, a missing or mistyped field, an unknown
// field on an applied line, or a campaign value outside the limits of campaign.h fails with
// InvalidArgument whose message names the line number, the seq when known, and the field, e.g.
//   "workload line 12 (seq 11, update): field 'set.status': ..."
// Header and footer lines are informational: their unknown fields are accepted (and kept as raw
// JSON) so that generators may add statistics without a format change.
//
// Thread-safety: WorkloadLine and the Parse* functions are plain values and pure functions. A
// WorkloadReader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "campaign/campaign.h"
#include "common/clock.h"
#include "common/status.h"

namespace ch {

// The value of the header's `format` field this project reads and writes. DO NOT CHANGE: files
// in the wild carry it; a new incompatible format gets a new number.
inline constexpr std::string_view kWorkloadFormat = "campaign-history-workload/1";

// The longest line a workload may have, in bytes (its newline excluded). The largest lines are
// seed lines (at most 500 rows, docs/formats/workload.md): ~0.5 MB for typical campaigns, and 16
// MiB leaves room for rows of ~32 KiB each; a workload with rows near the 64 KiB content limit
// splits a customer's seed into several seed lines. A longer line -- or input that is not line
// based at all, such as /dev/zero -- is refused after reading at most this much of it, so a
// reader holds at most one line of this size in memory.
inline constexpr size_t kMaxWorkloadLineBytes = size_t{16} * 1024 * 1024;

// The `op` of a line. Persisted as "header", "seed", "create", "update", "burst", "reorder",
// "delete", "footer". DO NOT CHANGE the names.
enum class WorkloadOp { kHeader, kSeed, kCreate, kUpdate, kBurst, kReorder, kDelete, kFooter };

// Return the persisted name of `op`.
std::string_view WorkloadOpName(WorkloadOp op);
// Parse a persisted name. Fails with InvalidArgument naming the value and the allowed ones.
Result<WorkloadOp> ParseWorkloadOp(std::string_view name);

// A priority shift, for the line's customer:
//   priority += delta  where priority >= lo and (hi unset or priority <= *hi);
// `n` is the exact number of rows it must touch.
struct WorkloadShift {
  // -1 or +1.
  int64_t delta = 0;
  // >= 1.
  int64_t lo = 1;
  // >= lo when set; unset = no upper bound (JSON null).
  std::optional<int64_t> hi;
  // >= 0.
  int64_t n = 0;

  bool operator==(const WorkloadShift&) const = default;
};

// `header`: the first line; not applied.
struct WorkloadHeader {
  // Always kWorkloadFormat (anything else is rejected).
  std::string format;
  // The generator's parameters, as compact JSON text of an object (informational).
  std::string params_json;
  // Ids of the customers generated as "big" (skew).
  std::vector<int64_t> big_customers;
};

// `seed`: initial population of one customer; one transaction; each row starts at version 1
// with its own priority and updated_by.
struct WorkloadSeed {
  int64_t customer_id = 0;
  // Every row has id > 0, customer_id == this customer_id and priority >= 1.
  std::vector<Campaign> rows;
};

// `create`: shift the customer's campaigns down by one, then insert `row` at priority 1.
struct WorkloadCreate {
  int64_t customer_id = 0;
  // The full new row: id > 0 (explicit, never reused), customer_id == customer_id above,
  // updated_by == actor. version/created_at/updated_at are not part of the format.
  Campaign row;
  WorkloadShift shift;
  std::string actor;
};

// Burst fields: one save of a user hammering Save (5-20 consecutive lines on one campaign).
struct WorkloadBurst {
  int64_t burst_id = 0;
  // 0 <= burst_pos < burst_len.
  int64_t burst_pos = 0;
  int64_t burst_len = 0;
};

// `update` and `burst`: set the fields in `set` (whole values; content replaced as a whole).
struct WorkloadUpdate {
  int64_t customer_id = 0;
  int64_t id = 0;
  // Never empty (at least one user field). When set.updated_by is present it equals `actor`.
  CampaignPatch set;
  std::string actor;
  // Present exactly when the line's op is kBurst.
  std::optional<WorkloadBurst> burst;
};

// `reorder`: apply `shift` (the campaigns between `from` and `to`), then give campaign `id`
// priority `to`.
struct WorkloadReorder {
  int64_t customer_id = 0;
  int64_t id = 0;
  int64_t from = 0;
  int64_t to = 0;
  WorkloadShift shift;
  std::string actor;
};

// `delete`: delete campaign `id` (currently at `priority`), then apply `shift` so priorities
// stay dense. Produces one tombstone version plus one version per shifted row.
struct WorkloadDelete {
  int64_t customer_id = 0;
  int64_t id = 0;
  int64_t priority = 0;
  WorkloadShift shift;
  std::string actor;
};

// `footer`: the last line; not applied. Totals of the whole workload.
struct WorkloadFooter {
  // Number of workload ops (transactions), seed lines excluded; every burst line counts.
  int64_t ops = 0;
  // Lines per op name: "seed", "create", "update", "burst", "reorder", "delete".
  std::map<std::string, int64_t> counts;
  // Sum of every line's `versions`, seed rows included.
  int64_t expected_versions = 0;
  // Rows in all seed lines.
  int64_t seed_rows = 0;
  // Campaigns that exist after the last op.
  int64_t campaigns_final = 0;
  // Optional statistics (absent in hand-written files).
  std::optional<int64_t> max_op_versions;
  std::optional<int64_t> campaigns_ever;
  // The whole footer as compact JSON text (other statistics live only here).
  std::string raw_json;
};

// One parsed line.
struct WorkloadLine {
  WorkloadOp op = WorkloadOp::kHeader;
  // 0, 1, 2, ... in file order (a reader checks it only increases).
  int64_t seq = 0;
  // 1-based line number in the file (as passed to ParseWorkloadLine).
  int64_t line_no = 0;
  // Simulated application time (informational; the system uses its own commit time).
  Timestamp at{};
  // Number of history records the op produces; 0 for header and footer.
  int64_t versions = 0;
  // Which alternative is held follows `op` (kUpdate and kBurst both hold WorkloadUpdate).
  std::variant<WorkloadHeader, WorkloadSeed, WorkloadCreate, WorkloadUpdate, WorkloadReorder,
               WorkloadDelete, WorkloadFooter>
      body;

  // Typed access. REQUIRES: the matching op.
  const WorkloadHeader& header() const { return std::get<WorkloadHeader>(body); }
  const WorkloadSeed& seed() const { return std::get<WorkloadSeed>(body); }
  const WorkloadCreate& create() const { return std::get<WorkloadCreate>(body); }
  const WorkloadUpdate& update() const { return std::get<WorkloadUpdate>(body); }
  const WorkloadReorder& reorder() const { return std::get<WorkloadReorder>(body); }
  const WorkloadDelete& del() const { return std::get<WorkloadDelete>(body); }
  const WorkloadFooter& footer() const { return std::get<WorkloadFooter>(body); }

  // Return true for the lines that are transactions (everything but header and footer).
  bool applied() const { return op != WorkloadOp::kHeader && op != WorkloadOp::kFooter; }
  // Return the customer the line applies to; 0 for header and footer.
  int64_t customer_id() const;
  // Return "workload line N (seq S, op)" for error messages.
  std::string Where() const;
};

// Parse one line of a workload. `line_no` (1-based) is only used in messages and copied into the
// result. Trailing whitespace (e.g. "\r") is ignored. Fails with InvalidArgument naming the line,
// the seq when it could be read, and the offending field.
Result<WorkloadLine> ParseWorkloadLine(std::string_view line, int64_t line_no);

// Reads a workload file line by line (memory bounded by kMaxWorkloadLineBytes, files of any size).
//
// Besides parsing each line, the reader checks the file's structure: a header may only be the
// first line, nothing may follow a footer, seq strictly increases, no line is empty, and no line
// is longer than kMaxWorkloadLineBytes.
// A header and a footer are optional (hand-written files may have neither).
class WorkloadReader {
 public:
  // Open `path`; "-" reads standard input (named "standard input" in messages). Fails with
  // NotFound when it does not exist, Unavailable when it cannot be read; both messages name the
  // path. A FIFO is read as it is written.
  static Result<std::unique_ptr<WorkloadReader>> Open(const std::string& path);
  // Read from `in` (owned); `name` is used in messages.
  static std::unique_ptr<WorkloadReader> FromStream(std::unique_ptr<std::istream> in,
                                                    std::string name);

  WorkloadReader(const WorkloadReader&) = delete;
  WorkloadReader& operator=(const WorkloadReader&) = delete;
  ~WorkloadReader();

  // Return the next line, or nullopt at the end of the file. Fails with InvalidArgument on a bad
  // line or structure (the message names the file, line and seq), Unavailable on a read error.
  // After a failure the reader stays failed.
  Result<std::optional<WorkloadLine>> Next();

  // Return the number of lines read so far.
  int64_t lines_read() const { return line_no_; }
  // Return the text of the line Next() returned last, without its newline and trailing
  // whitespace (as it was parsed); empty before the first line and after the end.
  std::string_view text() const { return text_; }
  // Return the header, when the first line was one.
  const std::optional<WorkloadHeader>& header() const { return header_; }
  // Return the footer, once it was read.
  const std::optional<WorkloadFooter>& footer() const { return footer_; }
  const std::string& name() const { return name_; }

 private:
  WorkloadReader(std::unique_ptr<std::istream> in, std::string name);

  std::unique_ptr<std::istream> in_;
  std::string name_;
  int64_t line_no_ = 0;
  std::string text_;
  std::optional<int64_t> last_seq_;
  std::optional<WorkloadHeader> header_;
  std::optional<WorkloadFooter> footer_;
  Status failed_;
};

// Read every line of the workload file at `path` (with the reader's checks). Convenient for
// tests and small files; a workload of the `large` preset holds ~200k lines in memory.
Result<std::vector<WorkloadLine>> ReadWorkloadFile(const std::string& path);

// Parse a whole workload held in memory (`name` is used in messages), with the reader's checks.
Result<std::vector<WorkloadLine>> ParseWorkloadText(std::string_view text,
                                                    std::string name = "workload");

}  // namespace ch
