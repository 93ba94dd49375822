#include "campaign/capture_setting.h"

#include <fmt/format.h>

namespace ch {

std::string_view CaptureSettingName(CaptureSetting c) {
  switch (c) {
    case CaptureSetting::kLog:
      return "log";
    case CaptureSetting::kNotify:
      return "notify";
    case CaptureSetting::kNone:
      return "none";
  }
  return "log";
}

Result<CaptureSetting> ParseCaptureSetting(std::string_view text) {
  if (text == "log") return CaptureSetting::kLog;
  if (text == "notify") return CaptureSetting::kNotify;
  if (text == "none") return CaptureSetting::kNone;
  return InvalidArgumentError(
      fmt::format("unknown capture mode '{}' (expected log, notify or none)", text));
}

}  // namespace ch
