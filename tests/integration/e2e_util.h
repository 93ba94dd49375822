// Helpers shared by the end-to-end tests: workloads, and the check of a history store against the
// independent workload model at op boundaries.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "history/history_store.h"
#include "testing/workload_model.h"
#include "workload/replayer.h"
#include "workload/workload.h"

namespace ch::testing {

// Return the small preset (seed 1) of our generator, parsed.
std::vector<WorkloadLine> SmallWorkload(uint64_t seed = 1);

// Return the small preset (seed 1) of the reference generator at `generator`
// (testing/reference_generator.h), parsed. Fails when the generator fails or its output does not
// parse.
Result<std::vector<WorkloadLine>> ReferenceSmallWorkload(const std::string& generator);

// Write `lines`' source text to `path` (re-serialized from the generator, not the parsed form).
void WriteSmallWorkloadFile(const std::string& path, uint64_t seed = 1);

// Compare the history with the model:
//  - for every applied op (seq with its committed_at): the as-of answer for the op's customer at
//    committed_at equals the model's state right after that op, and at committed_at - 1 us it
//    equals the state right before it (all fields, version and updated_by included);
//  - every `all_customers_every` ops, every customer is compared;
//  - every campaign's versions are exactly 1..n once each (no loss, no duplicates);
//  - the record count equals the model's total versions.
// Return a description of the first mismatch, or "" when everything matches.
std::string CompareHistoryWithModel(HistoryStore& history, const WorkloadModel& model,
                                    const std::vector<WorkloadLine>& lines,
                                    const std::vector<ReplayedOp>& ops,
                                    int all_customers_every = 100);

// What a shell command did: its exit code (128 + signal when killed) and its stdout and stderr,
// merged.
struct CommandOutcome {
  int code = -1;
  std::string output;
};

// Run `command` with /bin/sh to completion, stderr merged into stdout.
CommandOutcome RunCommand(const std::string& command);

// Render an as-of answer the way the model renders its state.
std::string RenderAsOf(const std::vector<HistoryRecord>& records);

}  // namespace ch::testing
