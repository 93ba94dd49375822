#include "query/cursor.h"

#include <fmt/format.h>

#include <charconv>
#include <vector>

#include "common/text.h"

namespace ch {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64Url(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 0x3f];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 0x3f];
  return out;
}

bool FromBase64Url(std::string_view in, std::string& out) {
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return true;
}

// The longest cursor accepted: a timeline cursor holds a transaction id (at most a few dozen
// bytes in practice); anything much longer is not one of ours.
constexpr size_t kMaxCursorChars = 1024;

Status Bad(std::string_view text, std::string_view query) {
  return InvalidArgumentError(
      fmt::format("cursor: '{}' is not a cursor of {} (pass the next_cursor a previous page "
                  "printed, unchanged)",
                  Excerpt(text, 60), query));
}

// Split the decoded text at '|' into at most `max` fields (the last keeps any further '|').
std::vector<std::string_view> Fields(std::string_view s, size_t max) {
  std::vector<std::string_view> out;
  while (out.size() + 1 < max) {
    size_t bar = s.find('|');
    if (bar == std::string_view::npos) break;
    out.push_back(s.substr(0, bar));
    s.remove_prefix(bar + 1);
  }
  out.push_back(s);
  return out;
}

bool Int(std::string_view s, int64_t& v) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

std::string EncodeCursor(const AsOfCursor& c) {
  return Base64Url(fmt::format("a1|{}|{}|{}|{}", ToUnixMicros(c.at), ToUnixMicros(c.answered_at),
                               c.priority, c.campaign_id));
}

std::string EncodeCursor(const TimelineCursor& c) {
  return Base64Url(fmt::format("t1|{}|{}|{}|{}", ToUnixMicros(c.time), c.campaign_id, c.version,
                               c.transaction_id));
}

Result<AsOfCursor> DecodeAsOfCursor(std::string_view text) {
  std::string raw;
  if (text.size() > kMaxCursorChars || !FromBase64Url(text, raw)) return Bad(text, "as-of");
  std::vector<std::string_view> f = Fields(raw, 5);
  AsOfCursor c;
  int64_t at = 0;
  int64_t answered = 0;
  if (f.size() != 5 || f[0] != "a1" || !Int(f[1], at) || !Int(f[2], answered) ||
      !Int(f[3], c.priority) || !Int(f[4], c.campaign_id)) {
    return Bad(text, "as-of");
  }
  c.at = FromUnixMicros(at);
  c.answered_at = FromUnixMicros(answered);
  return c;
}

Result<TimelineCursor> DecodeTimelineCursor(std::string_view text) {
  std::string raw;
  if (text.size() > kMaxCursorChars || !FromBase64Url(text, raw)) return Bad(text, "timeline");
  std::vector<std::string_view> f = Fields(raw, 5);
  TimelineCursor c;
  int64_t t = 0;
  if (f.size() != 5 || f[0] != "t1" || !Int(f[1], t) || !Int(f[2], c.campaign_id) ||
      !Int(f[3], c.version)) {
    return Bad(text, "timeline");
  }
  c.time = FromUnixMicros(t);
  c.transaction_id = std::string(f[4]);
  return c;
}

}  // namespace ch
