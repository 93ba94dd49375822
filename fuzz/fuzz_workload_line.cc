// libFuzzer target: a workload file (docs/formats/workload.md) read by WorkloadReader, which parses
// each line with ParseWorkloadLine and checks the file's structure. The input is the whole file.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "workload/workload.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  ch::Result<std::vector<ch::WorkloadLine>> lines = ch::ParseWorkloadText(text, "fuzz.jsonl");
  ch::fuzz::CheckErrorIsBounded(lines.status());
  if (!lines.ok()) return 0;
  for (const ch::WorkloadLine& line : *lines) {
    // Every accessor of a parsed line must work on what the parser accepted.
    ch::fuzz::Check(!line.Where().empty(), "Where() is empty");
    ch::fuzz::Check(line.applied() == (line.customer_id() > 0), "customer_id() of an applied line");
    ch::fuzz::Check(!line.applied() || line.versions >= 1, "an applied line without versions");
  }
  return 0;
}
