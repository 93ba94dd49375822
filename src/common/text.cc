#include "common/text.h"

#include <fmt/format.h>

#include <algorithm>

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

}  // namespace ch
