#include "campaign/captured_change.h"

#include <fmt/format.h>

#include <unordered_map>

namespace ch {

std::string DebugString(const CapturedChange& c) {
  return fmt::format("#{} tx {} c{}@v{} {} p{} by {}", c.seq, c.transaction_id, c.row.id, c.version,
                     ChangeOpName(c.op), c.row.priority, c.actor);
}

Status ResolveOmittedContent(std::vector<CapturedChange>& changes) {
  std::unordered_map<int64_t, const std::string*> latest;
  for (CapturedChange& c : changes) {
    if (c.row.content.empty()) {
      auto it = latest.find(c.row.id);
      if (it == latest.end()) {
        return NotFoundError(fmt::format(
            "campaign {} version {}: its content is the previous version's, which is not here",
            c.row.id, c.row.version));
      }
      c.row.content = *it->second;
    }
    latest[c.row.id] = &c.row.content;
  }
  return Status::OK();
}

}  // namespace ch
