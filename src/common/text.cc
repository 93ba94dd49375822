#include "common/text.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace ch {

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) {
      return false;  // overlong
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) {
    if ((c & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string Ellipsize(std::string_view s, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return std::string(s.substr(0, i)) + "…";
      ++chars;
    }
  }
  return std::string(s);
}

namespace {

// Decode the code point at s[i] (well-formed UTF-8 assumed; a bad byte is taken as itself) and
// return its length in bytes.
size_t DecodeAt(std::string_view s, size_t i, uint32_t& cp) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 1;
  if (i + len > s.size()) len = 1;
  cp = len == 1 ? c : c & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  return len;
}

struct Range {
  uint32_t lo, hi;
};

bool InRanges(uint32_t cp, const Range* ranges, size_t n) {
  size_t a = 0;
  size_t b = n;
  while (a < b) {
    size_t m = (a + b) / 2;
    if (cp < ranges[m].lo) {
      b = m;
    } else if (cp > ranges[m].hi) {
      a = m + 1;
    } else {
      return true;
    }
  }
  return false;
}

// Zero-width: combining marks, zero-width spaces and joiners, variation selectors, skin-tone
// modifiers, tags. Sorted.
constexpr Range kZeroWidth[] = {
    {0x0300, 0x036F},   {0x0483, 0x0489},   {0x0591, 0x05BD}, {0x0610, 0x061A}, {0x064B, 0x065F},
    {0x0E31, 0x0E31},   {0x0E34, 0x0E3A},   {0x0E47, 0x0E4E}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF},
    {0x200B, 0x200F},   {0x2028, 0x202E},   {0x2060, 0x2064}, {0x20D0, 0x20FF}, {0x302A, 0x302F},
    {0x3099, 0x309A},   {0xFE00, 0xFE0F},   {0xFE20, 0xFE2F}, {0xFEFF, 0xFEFF}, {0x1F3FB, 0x1F3FF},
    {0xE0000, 0xE007F}, {0xE0100, 0xE01EF},
};

// Two columns: East Asian Wide and Fullwidth, and emoji presented as emoji. Sorted.
constexpr Range kWide[] = {
    {0x1100, 0x115F},   {0x231A, 0x231B},   {0x2329, 0x232A},   {0x23E9, 0x23EC},
    {0x23F0, 0x23F0},   {0x23F3, 0x23F3},   {0x25FD, 0x25FE},   {0x2614, 0x2615},
    {0x2648, 0x2653},   {0x267F, 0x267F},   {0x2693, 0x2693},   {0x26A1, 0x26A1},
    {0x26AA, 0x26AB},   {0x26BD, 0x26BE},   {0x26C4, 0x26C5},   {0x26CE, 0x26CE},
    {0x26D4, 0x26D4},   {0x26EA, 0x26EA},   {0x26F2, 0x26F3},   {0x26F5, 0x26F5},
    {0x26FA, 0x26FA},   {0x26FD, 0x26FD},   {0x2705, 0x2705},   {0x270A, 0x270B},
    {0x2728, 0x2728},   {0x274C, 0x274C},   {0x274E, 0x274E},   {0x2753, 0x2755},
    {0x2757, 0x2757},   {0x2795, 0x2797},   {0x27B0, 0x27B0},   {0x27BF, 0x27BF},
    {0x2B1B, 0x2B1C},   {0x2B50, 0x2B50},   {0x2B55, 0x2B55},   {0x2E80, 0x303E},
    {0x3041, 0x3247},   {0x3250, 0x4DBF},   {0x4E00, 0xA4CF},   {0xA960, 0xA97F},
    {0xAC00, 0xD7A3},   {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},
    {0xFF00, 0xFF60},   {0xFFE0, 0xFFE6},   {0x16FE0, 0x16FE4}, {0x17000, 0x18CFF},
    {0x1B000, 0x1B2FF}, {0x1F004, 0x1F004}, {0x1F0CF, 0x1F0CF}, {0x1F18E, 0x1F18E},
    {0x1F191, 0x1F19A}, {0x1F200, 0x1F251}, {0x1F300, 0x1F64F}, {0x1F680, 0x1F6FF},
    {0x1F7E0, 0x1F7EB}, {0x1F90C, 0x1F9FF}, {0x1FA70, 0x1FAFF}, {0x20000, 0x2FFFD},
    {0x30000, 0x3FFFD},
};

// The columns of the code point `cp` that follows `prev` (0 at the start).
size_t Columns(uint32_t cp, uint32_t prev) {
  if (prev == 0x200D) return 0;  // joined into the emoji before it
  if (cp < 0x20 || cp == 0x7F) return 0;
  if (cp < 0x300) return 1;
  if (InRanges(cp, kZeroWidth, std::size(kZeroWidth))) return 0;
  return InRanges(cp, kWide, std::size(kWide)) ? 2 : 1;
}

// Return the length of the well-formed UTF-8 sequence at the front of `s`, or 0 when there is
// none (a stray continuation byte, a truncated or overlong sequence, a surrogate, > U+10FFFF).
size_t Utf8SequenceAt(std::string_view s) {
  auto c = static_cast<unsigned char>(s[0]);
  size_t len = c < 0x80             ? 1
               : (c & 0xE0) == 0xC0 ? 2
               : (c & 0xF0) == 0xE0 ? 3
               : (c & 0xF8) == 0xF0 ? 4
                                    : 0;
  if (len == 0 || len > s.size()) return 0;
  return IsValidUtf8(s.substr(0, len)) ? len : 0;
}

}  // namespace

bool StartsWithNoCase(std::string_view s, std::string_view lower_prefix) {
  if (s.size() < lower_prefix.size()) return false;
  for (size_t i = 0; i < lower_prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) != lower_prefix[i]) return false;
  }
  return true;
}

bool EqualsNoCase(std::string_view s, std::string_view lower) {
  return s.size() == lower.size() && StartsWithNoCase(s, lower);
}

std::string Excerpt(std::string_view text, size_t max_bytes) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t len = Utf8SequenceAt(text.substr(i));
    // Never cut a character in two: stop before one that does not fit.
    if (i + std::max<size_t>(len, 1) > max_bytes) break;
    auto c = static_cast<unsigned char>(text[i]);
    if (len > 1 || (len == 1 && c >= 0x20 && c != 0x7F)) {
      out.append(text.substr(i, len));
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\t') {
      out.append("\\t");
    } else {
      out.append(fmt::format("\\x{:02x}", c));
    }
    i += std::max<size_t>(len, 1);
  }
  if (i < text.size()) out.append(fmt::format("… ({} bytes)", text.size()));
  return out;
}

std::string BriefJsonError(std::string_view what) {
  // nlohmann messages start with "[json.exception.parse_error.101] "; drop the tag.
  if (what.starts_with("[json.exception.")) {
    size_t p = what.find("] ");
    if (p != std::string_view::npos) what.remove_prefix(p + 2);
  }
  constexpr std::string_view kToken = "last read: '";
  size_t t = what.find(kToken);
  if (t == std::string_view::npos) return Excerpt(what, 2 * kMaxExcerptBytes);
  std::string_view token = what.substr(t + kToken.size());
  if (token.ends_with('\'')) token.remove_suffix(1);
  return Excerpt(what.substr(0, t + kToken.size()), 2 * kMaxExcerptBytes) + Excerpt(token) + "'";
}

size_t JsonNestingDepth(std::string_view text, size_t limit) {
  size_t depth = 0;
  size_t deepest = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '"') {
      // Skip the string: to the next quote that no backslash escapes.
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

size_t DisplayWidth(std::string_view s) {
  size_t width = 0;
  uint32_t prev = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    i += DecodeAt(s, i, cp);
    width += Columns(cp, prev);
    prev = cp;
  }
  return width;
}

std::string EllipsizeWidth(std::string_view s, size_t max_width) {
  if (DisplayWidth(s) <= max_width) return std::string(s);
  if (max_width == 0) return "";
  size_t width = 0;
  size_t cut = 0;  // bytes that fit in max_width - 1 columns (room for the "…")
  uint32_t prev = 0;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0;
    size_t len = DecodeAt(s, i, cp);
    size_t w = Columns(cp, prev);
    if (w > 0 && width + w > max_width - 1) break;
    width += w;
    i += len;
    cut = i;
    prev = cp;
  }
  return std::string(s.substr(0, cut)) + "…";
}

}  // namespace ch
