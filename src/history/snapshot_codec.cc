#include "history/snapshot_codec.h"

#include <array>
#include <charconv>
#include <cstring>
#include <optional>
#include <vector>

#include "common/time_util.h"

namespace ch {
namespace {

// Body blob format tag. DO NOT CHANGE (stored in every body row); a new layout gets a new tag.
constexpr char kBodyTag = 'S';

// Hole kinds as stored in the hole table. DO NOT CHANGE.
constexpr char kHolePriority = 'p';
constexpr char kHoleVersion = 'v';
constexpr char kHoleUpdatedAt = 'u';
constexpr char kHoleUpdatedBy = 'b';

// Extras entry tags. DO NOT CHANGE.
constexpr char kExtraRaw = 'r';        // kind byte, varint length, the value's raw text
constexpr char kExtraPriority = 'P';   // zigzag varint: columns.priority - value
constexpr char kExtraVersion = 'V';    // zigzag varint: columns.version - value
constexpr char kExtraUpdatedAt = 'U';  // zigzag varint: event_time - value, in microseconds

// Index of a hole kind in per-kind arrays: priority 0, version 1, updated_at 2, updated_by 3.
constexpr size_t kHoleKinds = 4;
int HoleIndex(char kind) {
  switch (kind) {
    case kHolePriority:
      return 0;
    case kHoleVersion:
      return 1;
    case kHoleUpdatedAt:
      return 2;
    case kHoleUpdatedBy:
      return 3;
  }
  return -1;
}

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

// Advance `i` past a JSON string starting at s[i] == '"'. Return false when unterminated.
bool SkipString(std::string_view s, size_t& i) {
  ++i;
  while (i < s.size()) {
    // Jump to the next quote; it ends the string unless an odd number of backslashes precede it.
    const void* q = std::memchr(s.data() + i, '"', s.size() - i);
    if (q == nullptr) return false;
    size_t end = static_cast<size_t>(static_cast<const char*>(q) - s.data());
    size_t backslashes = 0;
    while (end - backslashes > i && s[end - backslashes - 1] == '\\') ++backslashes;
    i = end + 1;
    if (backslashes % 2 == 0) return true;
  }
  return false;
}

// Advance `i` past one JSON value (string, object, array or scalar). Nested containers are
// skipped by depth counting; strings inside them are skipped with their escapes.
bool SkipValue(std::string_view s, size_t& i) {
  if (i >= s.size()) return false;
  char c = s[i];
  if (c == '"') return SkipString(s, i);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (i < s.size()) {
      c = s[i];
      if (c == '"') {
        if (!SkipString(s, i)) return false;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if (c == '}' || c == ']') {
        if (--depth == 0) {
          ++i;
          return true;
        }
      }
      ++i;
    }
    return false;
  }
  size_t start = i;
  while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ']' && !IsSpace(s[i])) ++i;
  return i > start;
}

struct Hole {
  char kind;
  size_t begin;  // value span in the snapshot
  size_t end;
};

// Find the holes of a top-level JSON object, in text order; return how many. Return 0 for text
// that is not a well-formed object at the top level (the whole text then becomes the body).
size_t FindHoles(std::string_view s, std::array<Hole, kHoleKinds>& holes) {
  size_t n = 0;
  std::array<bool, kHoleKinds> seen{};
  size_t i = 0;
  auto ws = [&] {
    while (i < s.size() && IsSpace(s[i])) ++i;
  };
  ws();
  if (i >= s.size() || s[i] != '{') return 0;
  ++i;
  ws();
  if (i < s.size() && s[i] == '}') return 0;
  while (true) {
    ws();
    if (i >= s.size() || s[i] != '"') return 0;
    size_t key_begin = i + 1;
    if (!SkipString(s, i)) return 0;
    std::string_view key = s.substr(key_begin, i - 1 - key_begin);
    ws();
    if (i >= s.size() || s[i] != ':') return 0;
    ++i;
    ws();
    size_t vbegin = i;
    if (!SkipValue(s, i)) return 0;
    char kind = 0;
    if (key == "priority") {
      kind = kHolePriority;
    } else if (key == "version") {
      kind = kHoleVersion;
    } else if (key == "updated_at") {
      kind = kHoleUpdatedAt;
    } else if (key == "updated_by") {
      kind = kHoleUpdatedBy;
    }
    if (kind != 0 && !seen[HoleIndex(kind)]) {
      seen[HoleIndex(kind)] = true;
      holes[n++] = Hole{kind, vbegin, i};
      // All found: the rest is kept verbatim whatever it is, so it need not be scanned (in a
      // canonical snapshot this skips the content object, the bulk of the text).
      if (n == kHoleKinds) return n;
    }
    ws();
    if (i >= s.size()) return 0;
    if (s[i] == ',') {
      ++i;
      continue;
    }
    if (s[i] != '}') return 0;
    ++i;
    ws();
    if (i != s.size()) return 0;  // trailing garbage: treat as opaque text
    return n;
  }
}

std::string Quote(std::string_view v) {
  std::string q;
  q.reserve(v.size() + 2);
  q.push_back('"');
  q.append(v);
  q.push_back('"');
  return q;
}

// Write the timestamp as FormatTimestamp does into `buf` (27 bytes). Return false for years
// outside 1000..9999, which the caller then formats the slow way.
bool FormatTimestamp27(Timestamp t, char* buf) {
  using std::chrono::days;
  auto dp = std::chrono::floor<days>(t);
  std::chrono::year_month_day ymd(dp);
  int year = static_cast<int>(ymd.year());
  if (year < 1000 || year > 9999) return false;
  int64_t us = (t - dp).count();
  auto put = [&](int pos, int64_t v, int width) {
    for (int i = width - 1; i >= 0; --i) {
      buf[pos + i] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
  };
  put(0, year, 4);
  buf[4] = '-';
  put(5, static_cast<unsigned>(ymd.month()), 2);
  buf[7] = '-';
  put(8, static_cast<unsigned>(ymd.day()), 2);
  buf[10] = 'T';
  put(11, us / 3'600'000'000LL, 2);
  buf[13] = ':';
  put(14, us / 60'000'000LL % 60, 2);
  buf[16] = ':';
  put(17, us / 1'000'000LL % 60, 2);
  buf[19] = '.';
  put(20, us % 1'000'000LL, 6);
  buf[26] = 'Z';
  return true;
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(p - buf));
}

// Return true when `raw` is exactly the hole's value implied by the columns.
bool MatchesDefault(char kind, std::string_view raw, const SnapshotColumns& c) {
  switch (kind) {
    case kHolePriority:
    case kHoleVersion: {
      char buf[24];
      auto [p, ec] =
          std::to_chars(buf, buf + sizeof buf, kind == kHolePriority ? c.priority : c.version);
      return raw == std::string_view(buf, static_cast<size_t>(p - buf));
    }
    case kHoleUpdatedAt: {
      char buf[27];
      if (raw.size() != 29 || raw.front() != '"' || raw.back() != '"') return false;
      if (FormatTimestamp27(c.event_time, buf))
        return raw.substr(1, 27) == std::string_view(buf, 27);
      return raw.substr(1, 27) == FormatTimestamp(c.event_time);
    }
    case kHoleUpdatedBy:
      return raw.size() == c.actor.size() + 2 && raw.front() == '"' && raw.back() == '"' &&
             raw.substr(1, c.actor.size()) == c.actor;
  }
  return false;
}

// Parse a canonical decimal integer (no '+', no leading zeros, at most 18 digits).
std::optional<int64_t> CanonicalInt(std::string_view v) {
  std::string_view digits = v;
  if (!digits.empty() && digits.front() == '-') digits.remove_prefix(1);
  if (digits.empty() || digits.size() > 18) return std::nullopt;
  if (digits.size() > 1 && digits.front() == '0') return std::nullopt;
  if (v == "-0") return std::nullopt;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) return std::nullopt;
  return out;
}

// Parse a quoted timestamp exactly as FormatTimestamp writes it.
std::optional<Timestamp> CanonicalTime(std::string_view v) {
  if (v.size() != 29 || v.front() != '"' || v.back() != '"') return std::nullopt;
  std::string_view inner = v.substr(1, 27);
  auto t = ParseTimestamp(inner);
  if (!t.ok() || FormatTimestamp(*t) != inner) return std::nullopt;
  return *t;
}

void PutExtra(std::string& extras, char kind, std::string_view raw, const SnapshotColumns& c) {
  if (kind == kHolePriority || kind == kHoleVersion) {
    if (auto n = CanonicalInt(raw)) {
      int64_t base = kind == kHolePriority ? c.priority : c.version;
      extras.push_back(kind == kHolePriority ? kExtraPriority : kExtraVersion);
      PutVarint(extras, ZigZag(WrappingSub(base, *n)));
      return;
    }
  } else if (kind == kHoleUpdatedAt) {
    if (auto t = CanonicalTime(raw)) {
      extras.push_back(kExtraUpdatedAt);
      PutVarint(extras, ZigZag(WrappingSub(ToUnixMicros(c.event_time), ToUnixMicros(*t))));
      return;
    }
  }
  extras.push_back(kExtraRaw);
  extras.push_back(kind);
  PutVarint(extras, raw.size());
  extras.append(raw);
}

Status Corrupt(std::string_view what) {
  return DataLossError(std::string("history snapshot storage is corrupt: ") + std::string(what));
}

// Delta instructions: a varint header h; h & 1 == 1 is COPY of h >> 1 bytes from the base at
// (end of the previous copy + zigzag varint), h & 1 == 0 is INSERT of the h >> 1 bytes that
// follow. DO NOT CHANGE (stored).
constexpr size_t kMinMatch = 8;

uint32_t HashAt(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return static_cast<uint32_t>((v * 0x9E3779B97F4A7C15ULL) >> 32);
}

}  // namespace

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    auto b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

void AppendTimestamp(std::string& out, Timestamp t) {
  char buf[27];
  if (FormatTimestamp27(t, buf)) {
    out.append(buf, sizeof buf);
  } else {
    out.append(FormatTimestamp(t));
  }
}

SplitSnapshot SplitSnapshotText(std::string_view snapshot, const SnapshotColumns& columns) {
  SplitSnapshot out;
  SplitSnapshotText(snapshot, columns, &out);
  return out;
}

void SplitSnapshotText(std::string_view snapshot, const SnapshotColumns& columns,
                       SplitSnapshot* out) {
  SplitSnapshotUnlessSame(snapshot, columns, std::string_view(), out);
}

bool SplitSnapshotUnlessSame(std::string_view snapshot, const SnapshotColumns& columns,
                             std::string_view current_body, SplitSnapshot* out) {
  std::array<Hole, kHoleKinds> holes;
  size_t n = FindHoles(snapshot, holes);
  out->body.clear();
  out->extras.clear();
  for (size_t k = 0; k < n; ++k) {
    const Hole& h = holes[k];
    std::string_view raw = snapshot.substr(h.begin, h.end - h.begin);
    if (!MatchesDefault(h.kind, raw, columns)) PutExtra(out->extras, h.kind, raw, columns);
  }
  // The header: format tag, hole count, hole table. Offsets are in the body text: the text
  // before each hole, minus the values cut before it.
  char header[2 + kHoleKinds * 11];
  size_t header_size = 0;
  {
    std::string h;  // small: stays in the string's inline buffer
    h.push_back(kBodyTag);
    PutVarint(h, n);
    size_t removed = 0;
    size_t prev = 0;
    for (size_t k = 0; k < n; ++k) {
      size_t offset = holes[k].begin - removed;
      PutVarint(h, offset - prev);
      h.push_back(holes[k].kind);
      prev = offset;
      removed += holes[k].end - holes[k].begin;
    }
    header_size = h.size();
    std::memcpy(header, h.data(), header_size);
  }
  // Compare with the current body piece by piece before building anything: most versions of a
  // campaign (priority shifts) have the same body as the previous one.
  if (!current_body.empty()) {
    size_t text_size = snapshot.size();
    for (size_t k = 0; k < n; ++k) text_size -= holes[k].end - holes[k].begin;
    bool same = current_body.size() == header_size + text_size &&
                std::memcmp(current_body.data(), header, header_size) == 0;
    size_t at = header_size;
    size_t pos = 0;
    for (size_t k = 0; same && k <= n; ++k) {
      size_t end = k < n ? holes[k].begin : snapshot.size();
      same = std::memcmp(current_body.data() + at, snapshot.data() + pos, end - pos) == 0;
      at += end - pos;
      if (k < n) pos = holes[k].end;
    }
    if (same) return true;
  }
  out->body.reserve(header_size + snapshot.size());
  out->body.append(header, header_size);
  size_t pos = 0;
  for (size_t k = 0; k < n; ++k) {
    out->body.append(snapshot.substr(pos, holes[k].begin - pos));
    pos = holes[k].end;
  }
  out->body.append(snapshot.substr(pos));
  return false;
}

Result<std::string> JoinSnapshotText(std::string_view body, std::string_view extras,
                                     const SnapshotColumns& columns) {
  std::string out;
  RETURN_IF_ERROR(JoinSnapshotText(body, extras, columns, &out));
  return out;
}

Status JoinSnapshotText(std::string_view body, std::string_view extras,
                        const SnapshotColumns& columns, std::string* out_ptr) {
  std::string& out = *out_ptr;
  std::array<std::optional<std::string>, kHoleKinds> values;
  while (!extras.empty()) {
    char tag = extras.front();
    extras.remove_prefix(1);
    uint64_t v = 0;
    if (tag == kExtraRaw) {
      if (extras.empty()) return Corrupt("truncated extras");
      char kind = extras.front();
      extras.remove_prefix(1);
      int idx = HoleIndex(kind);
      if (idx < 0 || !GetVarint(extras, v) || v > extras.size()) return Corrupt("bad extras");
      values[idx] = std::string(extras.substr(0, v));
      extras.remove_prefix(v);
      continue;
    }
    if (!GetVarint(extras, v)) return Corrupt("truncated extras");
    int64_t d = UnZigZag(v);
    if (tag == kExtraPriority) {
      values[HoleIndex(kHolePriority)] = std::to_string(WrappingSub(columns.priority, d));
    } else if (tag == kExtraVersion) {
      values[HoleIndex(kHoleVersion)] = std::to_string(WrappingSub(columns.version, d));
    } else if (tag == kExtraUpdatedAt) {
      Timestamp t = FromUnixMicros(WrappingSub(ToUnixMicros(columns.event_time), d));
      // Only times ParseTimestamp accepted were encoded; anything else is damage.
      if (t < kEarliestTimestamp || t > kLatestTimestamp) return Corrupt("bad updated_at extra");
      values[HoleIndex(kHoleUpdatedAt)] = Quote(FormatTimestamp(t));
    } else {
      return Corrupt("unknown extras tag");
    }
  }
  if (body.empty() || body.front() != kBodyTag) return Corrupt("unknown body format");
  body.remove_prefix(1);
  uint64_t n = 0;
  if (!GetVarint(body, n) || n > kHoleKinds) return Corrupt("bad hole count");
  std::array<std::pair<size_t, size_t>, kHoleKinds> holes{};  // offset, kind index
  size_t prev = 0;
  for (uint64_t k = 0; k < n; ++k) {
    uint64_t gap = 0;
    if (!GetVarint(body, gap) || body.empty()) return Corrupt("bad hole table");
    prev += gap;
    int idx = HoleIndex(body.front());
    if (idx < 0) return Corrupt("bad hole kind");
    holes[k] = {prev, static_cast<size_t>(idx)};
    body.remove_prefix(1);
  }
  out.clear();
  out.reserve(body.size() + 96);
  size_t pos = 0;
  for (uint64_t k = 0; k < n; ++k) {
    auto [offset, idx] = holes[k];
    if (offset < pos || offset > body.size()) return Corrupt("hole outside the body");
    out.append(body.substr(pos, offset - pos));
    pos = offset;
    const auto& v = values[idx % kHoleKinds];
    if (v) {
      out.append(*v);
    } else if (idx == 0) {
      AppendInt(out, columns.priority);
    } else if (idx == 1) {
      AppendInt(out, columns.version);
    } else if (idx == 2) {
      out.push_back('"');
      AppendTimestamp(out, columns.event_time);
      out.push_back('"');
    } else {
      out.push_back('"');
      out.append(columns.actor);
      out.push_back('"');
    }
  }
  out.append(body.substr(pos));
  return Status::OK();
}

void EncodeDelta(std::string_view base, std::string_view target, std::string& out) {
  auto emit_insert = [&](size_t from, size_t to) {
    if (to <= from) return;
    PutVarint(out, static_cast<uint64_t>(to - from) << 1);
    out.append(target.substr(from, to - from));
  };
  if (base.size() < kMinMatch || target.size() < kMinMatch) {
    emit_insert(0, target.size());
    return;
  }
  // Index every position of the base by the hash of the 8 bytes starting there; a later
  // position overwrites an earlier one, which is as good as any for text edits.
  size_t bits = 4;
  while ((size_t{1} << bits) < base.size() * 2) ++bits;
  std::vector<int32_t> table(size_t{1} << bits, -1);
  const size_t mask = table.size() - 1;
  for (size_t i = 0; i + kMinMatch <= base.size(); ++i) {
    table[HashAt(base.data() + i) & mask] = static_cast<int32_t>(i);
  }
  size_t literal = 0;   // start of the pending insert
  size_t expected = 0;  // base position right after the previous copy
  size_t j = 0;
  while (j + kMinMatch <= target.size()) {
    // Prefer continuing where the previous copy ended (the common case after a small insert).
    size_t cand = expected;
    bool found = cand + kMinMatch <= base.size() &&
                 std::memcmp(base.data() + cand, target.data() + j, kMinMatch) == 0;
    if (!found) {
      int32_t c = table[HashAt(target.data() + j) & mask];
      found = c >= 0 && std::memcmp(base.data() + c, target.data() + j, kMinMatch) == 0;
      cand = static_cast<size_t>(c);
    }
    if (!found) {
      ++j;
      continue;
    }
    // Extend backwards into the pending literal, then forwards.
    size_t b = cand;
    size_t t = j;
    while (t > literal && b > 0 && base[b - 1] == target[t - 1]) {
      --b;
      --t;
    }
    size_t len = (j - t) + kMinMatch;
    while (b + len < base.size() && t + len < target.size() && base[b + len] == target[t + len]) {
      ++len;
    }
    emit_insert(literal, t);
    PutVarint(out, (static_cast<uint64_t>(len) << 1) | 1);
    PutVarint(out, ZigZag(static_cast<int64_t>(b) - static_cast<int64_t>(expected)));
    expected = b + len;
    j = t + len;
    literal = j;
  }
  emit_insert(literal, target.size());
}

Result<std::string> ApplyDelta(std::string_view base, std::string_view delta) {
  std::string out;
  out.reserve(base.size() + 64);
  size_t expected = 0;
  while (!delta.empty()) {
    uint64_t h = 0;
    if (!GetVarint(delta, h)) return Corrupt("truncated delta");
    uint64_t len = h >> 1;
    if (h & 1) {
      uint64_t z = 0;
      if (!GetVarint(delta, z)) return Corrupt("truncated delta");
      int64_t from = 0;
      if (__builtin_add_overflow(static_cast<int64_t>(expected), UnZigZag(z), &from) || from < 0 ||
          static_cast<uint64_t>(from) > base.size() ||
          len > base.size() - static_cast<uint64_t>(from)) {
        return Corrupt("delta copies outside its base");
      }
      out.append(base.substr(static_cast<size_t>(from), len));
      expected = static_cast<size_t>(from) + len;
    } else {
      if (len > delta.size()) return Corrupt("truncated delta insert");
      out.append(delta.substr(0, len));
      delta.remove_prefix(len);
    }
  }
  return out;
}

}  // namespace ch
