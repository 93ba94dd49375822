// Checks shared by the libFuzzer targets in this directory: a failed check aborts, which libFuzzer
// reports as a crash and saves the input that caused it.
//
// Besides "no crash, no undefined behaviour, no leak" (the sanitizers' part), every target checks
// what its parser promises: an error quotes at most an excerpt of the bad input (never the input
// itself), and whatever it accepts survives a round trip through the matching writer.
//
// Thread-safety: functions for one fuzzing thread.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "common/status.h"

namespace ch::fuzz {

// The longest error message a parser may return for any input: a few excerpts of at most
// kMaxExcerptBytes (common/text.h, up to 4 bytes each once escaped) plus the words around them.
inline constexpr size_t kMaxErrorMessageBytes = 4096;

// Abort with `what` when `ok` is false.
inline void Check(bool ok, std::string_view what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::abort();
}

// Abort when `s` failed with a message longer than kMaxErrorMessageBytes.
inline void CheckErrorIsBounded(const Status& s) {
  if (s.ok() || s.message().size() <= kMaxErrorMessageBytes) return;
  std::fprintf(stderr, "fuzz check failed: an error message of %zu bytes: %.300s...\n",
               s.message().size(), std::string(s.message()).c_str());
  std::abort();
}

}  // namespace ch::fuzz
