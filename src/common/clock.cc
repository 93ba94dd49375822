#include "common/clock.h"

namespace ch {

Timestamp SystemClock::Now() const {
  return std::chrono::time_point_cast<Micros>(std::chrono::system_clock::now());
}

SystemClock& SystemClock::Default() {
  static SystemClock* clock = new SystemClock();  // intentionally leaked: used until exit
  return *clock;
}

// 2026-01-01T00:00:00Z
FakeClock::FakeClock() : now_(int64_t{1767225600} * 1000000) {}
FakeClock::FakeClock(Timestamp start) : now_(ToUnixMicros(start)) {}

}  // namespace ch
