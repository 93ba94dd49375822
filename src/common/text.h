// Small text helpers: UTF-8 validation and length in code points.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace ch {

// Return true when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// Return the number of code points in well-formed UTF-8 `s`.
size_t Utf8Length(std::string_view s);

// Return at most `max_chars` code points of `s`, with "…" appended when shortened.
std::string Ellipsize(std::string_view s, size_t max_chars);

}  // namespace ch
