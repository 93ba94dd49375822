#include "history/asof_checkpoint.h"

#include <algorithm>
#include <tuple>

#include "history/snapshot_codec.h"

namespace ch {
namespace {

// The blob's first varint. DO NOT CHANGE (stored).
constexpr uint64_t kCheckpointFormat = 1;

}  // namespace

void EncodeCheckpoint(std::span<const CheckpointEntry> entries, std::string& out) {
  PutVarint(out, kCheckpointFormat);
  PutVarint(out, entries.size());
  int64_t prev = 0;
  for (const CheckpointEntry& e : entries) {
    PutVarint(out, static_cast<uint64_t>(WrappingSub(e.campaign_id, prev)));
    PutVarint(out, e.row.size());
    out.append(e.row);
    prev = e.campaign_id;
  }
}

bool DecodeCheckpoint(std::string_view blob, std::vector<CheckpointEntry>& out) {
  out.clear();
  uint64_t format = 0, count = 0;
  if (!GetVarint(blob, format) || format != kCheckpointFormat || !GetVarint(blob, count)) {
    return false;
  }
  if (count > blob.size()) return false;  // every entry takes at least two bytes
  out.reserve(count);
  int64_t id = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t step = 0, size = 0;
    if (!GetVarint(blob, step) || !GetVarint(blob, size) || size > blob.size()) return false;
    id = static_cast<int64_t>(static_cast<uint64_t>(id) + step);
    out.push_back({id, blob.substr(0, size)});
    blob.remove_prefix(size);
  }
  return blob.empty();
}

std::vector<CheckpointEntry> ApplyCheckpointChanges(std::span<const CheckpointEntry> base,
                                                    std::vector<CheckpointChange>& changes) {
  std::sort(
      changes.begin(), changes.end(), [](const CheckpointChange& a, const CheckpointChange& b) {
        return std::tie(a.campaign_id, a.t, a.version) < std::tie(b.campaign_id, b.t, b.version);
      });
  std::vector<CheckpointEntry> out;
  out.reserve(base.size() + changes.size());
  size_t i = 0;
  size_t k = 0;
  while (i < base.size() || k < changes.size()) {
    if (k == changes.size() || (i < base.size() && base[i].campaign_id < changes[k].campaign_id)) {
      out.push_back(base[i++]);
      continue;
    }
    // The last change of this campaign is its latest; it replaces the base entry, if any.
    const int64_t id = changes[k].campaign_id;
    while (k + 1 < changes.size() && changes[k + 1].campaign_id == id) ++k;
    if (!changes[k].deleted) out.push_back({id, changes[k].row});
    ++k;
    if (i < base.size() && base[i].campaign_id == id) ++i;
  }
  return out;
}

}  // namespace ch
