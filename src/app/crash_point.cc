#include "app/crash_point.h"

#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <memory>
#include <string>

namespace ch {

Result<CrashPointHook> MakeCrashPointHook(std::string_view spec) {
  std::string_view point = spec.substr(0, spec.find(':'));
  int n = 1;
  if (point.size() < spec.size()) {
    std::string_view count = spec.substr(point.size() + 1);
    auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
    if (ec != std::errc() || end != count.data() + count.size() || n < 1) {
      return InvalidArgumentError(fmt::format(
          "CH_TEST_CRASH_AT: '{}' must be <point>[:<n>] with n >= 1", spec.substr(0, 200)));
    }
  }
  if (point.empty()) {
    return InvalidArgumentError(
        fmt::format("CH_TEST_CRASH_AT: '{}' names no crash point", spec.substr(0, 200)));
  }
  auto remaining = std::make_shared<std::atomic<int>>(n);
  return CrashPointHook([point = std::string(point), remaining](std::string_view at) {
    if (at == point && remaining->fetch_sub(1) <= 1) ::_exit(kCrashPointExitCode);
  });
}

}  // namespace ch
