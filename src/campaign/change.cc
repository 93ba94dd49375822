#include "campaign/change.h"

#include <string>

namespace ch {

std::string_view ChangeOpName(ChangeOp op) {
  switch (op) {
    case ChangeOp::kCreated:
      return "created";
    case ChangeOp::kUpdated:
      return "updated";
    case ChangeOp::kDeleted:
      return "deleted";
  }
  return "unknown";
}

Result<ChangeOp> ParseChangeOp(std::string_view name) {
  if (name == "created") return ChangeOp::kCreated;
  if (name == "updated") return ChangeOp::kUpdated;
  if (name == "deleted") return ChangeOp::kDeleted;
  return InvalidArgumentError("op: unknown value '" + std::string(name) +
                              "' (expected created, updated, deleted)");
}

std::string_view CaptureModeName(CaptureMode m) {
  switch (m) {
    case CaptureMode::kLog:
      return "log";
    case CaptureMode::kNotify:
      return "notify";
  }
  return "unknown";
}

Result<CaptureMode> ParseCaptureMode(std::string_view name) {
  if (name == "log") return CaptureMode::kLog;
  if (name == "notify") return CaptureMode::kNotify;
  return InvalidArgumentError("capture: unknown value '" + std::string(name) +
                              "' (expected log, notify)");
}

}  // namespace ch
