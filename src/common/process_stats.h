// Process resource readings (Linux /proc), for benchmarks and the metrics endpoint.
//
// Thread-safety: pure functions reading /proc/self.
#pragma once

#include <cstdint>

namespace ch {

// Return the peak resident set size of this process in bytes (VmHWM), or 0 when unknown.
int64_t PeakRssBytes();
// Return the current resident set size in bytes (VmRSS), or 0 when unknown.
int64_t CurrentRssBytes();

}  // namespace ch
