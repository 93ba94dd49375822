#include "campaign/captured_change.h"

#include <fmt/format.h>

#include <unordered_map>

namespace ch {

std::string DebugString(const CapturedChange& c) {
  return fmt::format("#{} tx {} c{}@v{} {} p{} by {}", c.seq, c.transaction_id, c.row.id, c.version,
                     ChangeOpName(c.op), c.row.priority, c.actor);
}

Result<Campaign> ApplyShift(const Campaign& previous, int64_t campaign_id, int64_t customer_id,
                            int64_t version, int64_t priority_shift, Timestamp updated_at,
                            const std::string& updated_by) {
  if (previous.id != campaign_id || previous.customer_id != customer_id ||
      previous.version != version - 1) {
    return DataLossError(fmt::format(
        "campaign {} (customer {}) version {} is a priority shift of version {}, but that image is "
        "campaign {} (customer {}) version {}",
        campaign_id, customer_id, version, version - 1, previous.id, previous.customer_id,
        previous.version));
  }
  Campaign next = previous;
  next.priority += priority_shift;
  next.version = version;
  next.updated_at = updated_at;
  next.updated_by = updated_by;
  return next;
}

Status ResolveOmittedContent(std::vector<CapturedChange>& changes) {
  std::unordered_map<int64_t, const Campaign*> latest;
  for (CapturedChange& c : changes) {
    if (c.image_omitted) {
      auto it = latest.find(c.row.id);
      if (it == latest.end()) {
        return NotFoundError(fmt::format(
            "campaign {} version {}: its image is the previous version's, which is not here",
            c.row.id, c.row.version));
      }
      ASSIGN_OR_RETURN(Campaign next,
                       ApplyShift(*it->second, c.row.id, c.row.customer_id, c.row.version,
                                  c.priority_shift, c.row.updated_at, c.row.updated_by));
      c.row = std::move(next);
      c.image_omitted = false;
      c.priority_shift = 0;
    } else if (c.row.content.empty()) {
      auto it = latest.find(c.row.id);
      if (it == latest.end()) {
        return NotFoundError(fmt::format(
            "campaign {} version {}: its content is the previous version's, which is not here",
            c.row.id, c.row.version));
      }
      c.row.content = it->second->content;
    }
    latest[c.row.id] = &c.row;
  }
  return Status::OK();
}

}  // namespace ch
