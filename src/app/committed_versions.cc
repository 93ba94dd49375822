#include "app/committed_versions.h"

#include <algorithm>

namespace ch {

void CommittedVersions::OnCommit(const CommitInfo& info) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const RowChange& c : info.changes) {
    auto [it, added] =
        ranges_.try_emplace(c.campaign_id, VersionRange{c.version, c.version, c.customer_id});
    if (added) continue;
    it->second.first = std::min(it->second.first, c.version);
    it->second.last = std::max(it->second.last, c.version);
  }
}

std::map<int64_t, VersionRange> CommittedVersions::ranges() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ranges_;
}

}  // namespace ch
