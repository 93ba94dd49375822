// Workload generator: writes a deterministic campaign-operation workload in the
// `campaign-history-workload/1` format (docs/formats/workload.md).
//
// The project ships its own generator so that a clone needs nothing outside the repository. It
// follows the reference generator (gen_workload.py) in format and statistical shape — the same
// op mix (update 60 %, burst 2 %, reorder 12 %, create 7 %, delete 7 % of events, with creates
// and deletes fed back around each customer's steady-state size), bursts of 5-20 saves, shifts
// with exact row counts, 200-800-character bodies edited a few words at a time, actors that are
// users and workers — but not byte for byte: it has its own PRNG and also writes non-ASCII text
// (accented words, CJK, emoji) and quotes/backslashes now and then, so that Unicode and JSON
// escaping are exercised end to end.
//
// Determinism: the output is a pure function of the options (same options, same bytes). The PRNG
// and every distribution are implemented here (std::*_distribution differ between standard
// libraries); the only floating-point library call is std::log for the exponential inter-arrival
// times, whose result is rounded to whole microseconds.
//
// Thread-safety: GenerateWorkload is reentrant (no shared state).
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <string_view>

#include "common/status.h"

namespace ch {

struct GeneratorOptions {
  // PRNG seed. Default: 1.
  uint64_t seed = 1;
  // Preset name, only written into the header's params. Default: "small".
  std::string preset = "small";
  // Number of small customers (ids after the big ones). Default: 19.
  int64_t customers = 19;
  // Steady-state campaign count of a small customer. REQUIRES: >= 1 when customers > 0.
  // Default: 5.
  int64_t campaigns_per_customer = 5;
  // Number of big customers (ids 1..big_customers). Default: 1.
  int64_t big_customers = 1;
  // Steady-state campaign count of a big customer. REQUIRES: >= 1 when big_customers > 0.
  // Default: 100.
  int64_t big_campaigns = 100;
  // Fraction of events that hit a big customer. REQUIRES: 0 <= x <= 1. Default: 0.2.
  double big_op_share = 0.2;
  // Number of workload ops (transactions), seed lines excluded; every burst save counts.
  // REQUIRES: >= 0. Default: 2000.
  int64_t ops = 2000;
  // Probability that a generated title or name carries a non-ASCII word (accents, CJK, emoji)
  // or, for a third of them, characters that need escaping (quotes, a backslash, <, &); a body
  // word is non-ASCII with a tenth of it. 0 = ASCII only. REQUIRES: 0 <= x <= 1. Default: 0.05.
  double unicode_share = 0.05;
};

// Return the options of a named preset:
//   "small": 19 customers x 5 + 1 big x 100, big_op_share 0.2, 2,000 ops (tests; < 1 s).
//   "large": 200 customers x 10 + 1 big x 2,000, big_op_share 0.02, 200,000 ops (benchmarks).
// Fails with InvalidArgument naming the unknown preset.
Result<GeneratorOptions> GeneratorPreset(std::string_view name);

// Return OK when `options` satisfy the REQUIRES above, else InvalidArgument naming the field.
Status ValidateGeneratorOptions(const GeneratorOptions& options);

// What a generated workload contains (the same numbers as its footer).
struct GeneratorStats {
  int64_t lines = 0;
  int64_t ops = 0;
  int64_t expected_versions = 0;
  int64_t seed_rows = 0;
  int64_t campaigns_final = 0;
  int64_t max_op_versions = 0;
  int64_t bytes = 0;
  std::map<std::string, int64_t> counts;
};

// Write the workload for `options` to `out`: header, seed lines, ops, footer.
// Fails with InvalidArgument for invalid options (nothing written), Unavailable when `out` fails.
Result<GeneratorStats> GenerateWorkload(const GeneratorOptions& options, std::ostream& out);

// Write the workload to the file at `path` (created or truncated). Fails as above, and with
// Unavailable naming the path when it cannot be written.
Result<GeneratorStats> GenerateWorkloadFile(const GeneratorOptions& options,
                                            const std::string& path);

}  // namespace ch
