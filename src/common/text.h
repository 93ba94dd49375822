// Small text helpers: UTF-8 validation, length in code points, and excerpts of untrusted input
// for error messages.
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

// Return true when `s` begins with `lower_prefix` ignoring ASCII case (`lower_prefix` is given in
// lower case): "Bearer x" starts with "bearer ". EqualsNoCase: the same for the whole of `s`.
bool StartsWithNoCase(std::string_view s, std::string_view lower_prefix);
bool EqualsNoCase(std::string_view s, std::string_view lower);

// Return at most `max_chars` code points of `s`, with "…" appended when shortened.
std::string Ellipsize(std::string_view s, size_t max_chars);

// Return how many terminal columns well-formed UTF-8 `s` takes: 2 for East Asian wide and
// fullwidth characters (CJK, Hangul, kana, fullwidth forms) and for emoji, 0 for combining
// marks, zero-width characters, variation selectors, skin-tone modifiers and whatever follows a
// zero-width joiner (the parts of one emoji sequence), 1 for everything else. What terminals do
// with emoji varies; this is what most of them do (wcwidth with Unicode 9+ tables).
size_t DisplayWidth(std::string_view s);

// Return the longest prefix of `s` that fits in `max_width` columns, with "…" (one column)
// appended when shortened (the result then takes at most `max_width` columns). Never cuts a
// character or a zero-width sequence part in half.
std::string EllipsizeWidth(std::string_view s, size_t max_width);

// The most bytes of someone else's input that an error message quotes. A message must name what
// is wrong without echoing a 10 MB line back at the user (or into a log, or a dead-letter
// attribute).
inline constexpr size_t kMaxExcerptBytes = 200;

// Return `text` fit for quoting in an error message: at most `max_bytes` of it, cut at a UTF-8
// character boundary, with control characters, DEL and bytes that are not UTF-8 written as \xNN
// (tab, CR and LF as \t, \r, \n; a backslash stays as is), and, when cut, "… (N bytes)" appended
// with N the size of the whole input. The result is valid UTF-8 of at most about
// max_bytes * 4 + 32 bytes (every input byte may become a 4-byte escape).
std::string Excerpt(std::string_view text, size_t max_bytes = kMaxExcerptBytes);

// Return the message of a JSON library exception (nlohmann-json's e.what()) shortened for an
// error message of ours: without the "[json.exception.parse_error.101] " tag, and with the token
// it quotes ("...; last read: '<token>'", which nlohmann makes as long as the bad input, e.g. a
// whole unterminated string) cut to an Excerpt. Any other part is cut to 2 * kMaxExcerptBytes.
std::string BriefJsonError(std::string_view what);

// The deepest nesting of JSON arrays and objects a parser of outside input accepts. Parsing
// itself copes with any depth, but serializing, copying and comparing a parsed value recurse
// once per level: a 400 KB line of nested brackets overflowed the stack. Campaign content is
// limited to less (kMaxContentNesting, campaign/campaign.h) so that every message wrapping a
// snapshot stays well within this.
inline constexpr size_t kMaxJsonNesting = 64;

// Return how deeply arrays and objects nest in `text` read as JSON (brackets inside strings do not
// count), counting no further than `limit` + 1. Malformed text gets some answer; the parser then
// rejects it.
size_t JsonNestingDepth(std::string_view text, size_t limit = kMaxJsonNesting);

}  // namespace ch
