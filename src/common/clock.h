// Clock: the one source of "now" for every module (injected, never read from the OS directly).
//
// Timestamps are absolute UTC instants with microsecond precision. Time zones are a display
// concern only (see time_util.h).
//
// Thread-safety: every Clock implementation is safe to call from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace ch {

// An absolute instant: microseconds since 1970-01-01T00:00:00Z.
using Timestamp = std::chrono::sys_time<std::chrono::microseconds>;
using Micros = std::chrono::microseconds;

// Return the instant `micros` microseconds after the Unix epoch.
inline Timestamp FromUnixMicros(int64_t micros) { return Timestamp(Micros(micros)); }
// Return the microseconds since the Unix epoch.
inline int64_t ToUnixMicros(Timestamp t) { return t.time_since_epoch().count(); }

class Clock {
 public:
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  // Return the current instant.
  virtual Timestamp Now() const = 0;
};

// The operating system's real-time clock. Stateless.
class SystemClock final : public Clock {
 public:
  Timestamp Now() const override;
  // Return a process-wide instance (never destroyed).
  static SystemClock& Default();
};

// A clock for tests: starts at a fixed instant and moves only when told to.
class FakeClock final : public Clock {
 public:
  // Default start: 2026-01-01T00:00:00Z.
  FakeClock();
  explicit FakeClock(Timestamp start);

  Timestamp Now() const override { return FromUnixMicros(now_.load()); }
  void Advance(Micros d) { now_.fetch_add(d.count()); }
  void Set(Timestamp t) { now_.store(ToUnixMicros(t)); }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace ch
