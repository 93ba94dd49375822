#include "history/asof_checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <new>
#include <tuple>

#include "history/snapshot_codec.h"

namespace ch {
namespace {

// The blob's first varint: 1 the body as it is (read only), 2 deflated. DO NOT CHANGE (stored).
constexpr uint64_t kPlainFormat = 1;
constexpr uint64_t kDeflatedFormat = 2;
// A body larger than this is refused when decoding (corruption, not a checkpoint: 2,000
// campaigns take ~40 KiB).
constexpr uint64_t kMaxBodyBytes = uint64_t{1} << 30;

bool DecodeBody(std::string_view body, std::vector<CheckpointEntry>& out) {
  uint64_t count = 0;
  if (!GetVarint(body, count)) return false;
  if (count > body.size()) return false;  // every entry takes at least two bytes
  out.reserve(count);
  int64_t id = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t step = 0, size = 0;
    if (!GetVarint(body, step) || !GetVarint(body, size) || size > body.size()) return false;
    id = static_cast<int64_t>(static_cast<uint64_t>(id) + step);
    out.push_back({id, body.substr(0, size)});
    body.remove_prefix(size);
  }
  return body.empty();
}

// Replace `blob` (the bytes after the format varint of a deflated blob) by its body.
bool Inflate(std::string& blob, size_t header) {
  std::string_view rest(blob);
  rest.remove_prefix(header);
  uint64_t size = 0;
  if (!GetVarint(rest, size) || size > kMaxBodyBytes) return false;
  std::string body(size, '\0');
  uLongf got = static_cast<uLongf>(size);
  uLong used = static_cast<uLong>(rest.size());
  // uncompress2 says how much of the input it used: bytes after the stream are not ours.
  if (uncompress2(reinterpret_cast<Bytef*>(body.data()), &got,
                  reinterpret_cast<const Bytef*>(rest.data()), &used) != Z_OK ||
      got != size || used != rest.size()) {
    return false;
  }
  blob = std::move(body);
  return true;
}

}  // namespace

void EncodeCheckpoint(std::span<const CheckpointEntry> entries, std::string& out) {
  std::string body;
  PutVarint(body, entries.size());
  int64_t prev = 0;
  for (const CheckpointEntry& e : entries) {
    PutVarint(body, static_cast<uint64_t>(WrappingSub(e.campaign_id, prev)));
    PutVarint(body, e.row.size());
    body.append(e.row);
    prev = e.campaign_id;
  }
  PutVarint(out, kDeflatedFormat);
  PutVarint(out, body.size());
  const size_t at = out.size();
  uLongf room = compressBound(static_cast<uLong>(body.size()));
  out.resize(at + room);
  // compress2 fails only for lack of memory or room; compressBound gives the room.
  const int rc =
      compress2(reinterpret_cast<Bytef*>(out.data() + at), &room,
                reinterpret_cast<const Bytef*>(body.data()), static_cast<uLong>(body.size()), 1);
  if (rc != Z_OK) throw std::bad_alloc();
  out.resize(at + room);
}

bool DecodeCheckpoint(std::string& blob, std::vector<CheckpointEntry>& out) {
  out.clear();
  std::string_view rest(blob);
  uint64_t format = 0;
  if (!GetVarint(rest, format)) return false;
  const size_t header = blob.size() - rest.size();
  if (format == kPlainFormat) return DecodeBody(rest, out);
  if (format != kDeflatedFormat || !Inflate(blob, header)) return false;
  return DecodeBody(blob, out);
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
