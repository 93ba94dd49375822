// Test-only crash points of `campaign-history serve`: CH_TEST_CRASH_AT=<point>[:<n>] ends the
// process the n-th time (default: the first) one of its roles reaches <point>: the publisher's
// after_poll (embedded) or after_append (history written, source not confirmed / messages not
// acknowledged), the capture relay's after_publish (on the bus, source not confirmed). Never set in
// production.
//
// The process ends at once (_exit: no destructor, no flush, every thread gone, as with SIGKILL)
// with kCrashPointExitCode, so that a crash test can tell a crash point that fired from a kill of
// its own, and can prove that its crash points were reached.
#pragma once

#include <functional>
#include <string_view>

#include "common/status.h"

namespace ch {

// The exit code of a process ended by its crash point. No other exit of the binary uses it.
inline constexpr int kCrashPointExitCode = 86;

using CrashPointHook = std::function<void(std::string_view point)>;

// Return the hook for `spec` ("<point>[:<n>]", n >= 1), for RuntimeOptions::TEST_publisher_hook
// and TEST_capture_hook. Fails with InvalidArgument naming a malformed spec.
Result<CrashPointHook> MakeCrashPointHook(std::string_view spec);

}  // namespace ch
