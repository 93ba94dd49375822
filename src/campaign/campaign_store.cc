#include "campaign/campaign_store.h"

#include <fmt/format.h>

namespace ch {

Status ValidateReplayPosition(const ReplayPosition& p) {
  if (p.workload.empty() || p.workload.size() > 128) {
    return InvalidArgumentError(fmt::format(
        "replay position: workload: must be 1..128 characters (got {})", p.workload.size()));
  }
  if (p.digest.size() > 128) {
    return InvalidArgumentError(fmt::format(
        "replay position: digest: must be at most 128 characters (got {})", p.digest.size()));
  }
  if (p.source.size() > 1024) {
    return InvalidArgumentError(fmt::format(
        "replay position: source: must be at most 1024 bytes (got {})", p.source.size()));
  }
  return Status::OK();
}

Status ReplayPositionConflict(const ReplayAdvance& advance, std::optional<int64_t> recorded) {
  auto seq = [](std::optional<int64_t> s) {
    return s ? fmt::format("seq {}", *s) : std::string("none");
  };
  return FailedPreconditionError(fmt::format(
      "workload {}: its replay position in this database is {}, not {} as this replay read it: "
      "another replay of the same workload applied ops meanwhile; the op was not applied",
      advance.to.workload, seq(recorded), seq(advance.from_seq)));
}

}  // namespace ch
