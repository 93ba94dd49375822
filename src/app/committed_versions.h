// CommittedVersions: a CommitObserver that remembers, per campaign, the lowest and highest version
// committed through one service -- what `replay --wait` (Runtime::WaitForVersions) waits for.
//
// Thread-safety: OnCommit and ranges() from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>

#include "campaign/campaign_service.h"

namespace ch {

// Versions first..last of one campaign (inclusive).
struct VersionRange {
  int64_t first = 0;
  int64_t last = 0;
  // The campaign's customer (0 when unknown).
  int64_t customer_id = 0;
  friend bool operator==(const VersionRange&, const VersionRange&) = default;
};

class CommittedVersions : public CommitObserver {
 public:
  void OnCommit(const CommitInfo& info) override;
  // campaign id -> the versions committed since this observer was registered.
  std::map<int64_t, VersionRange> ranges() const;

 private:
  mutable std::mutex mu_;
  std::map<int64_t, VersionRange> ranges_;  // guarded by mu_
};

}  // namespace ch
