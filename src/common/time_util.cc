#include "common/time_util.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <limits>

#include "common/text.h"

namespace ch {
namespace {

using std::chrono::days;
using std::chrono::sys_days;

Status Bad(std::string_view text, std::string_view why) {
  return InvalidArgumentError(fmt::format(
      "invalid time '{}': {} (expected RFC 3339, e.g. 2026-11-03T14:05:00Z or 2026-11-03 14:05)",
      Excerpt(text), why));
}

// Read exactly `n` digits at `pos`; advance `pos`.
bool Digits(std::string_view s, size_t& pos, int n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (int i = 0; i < n; ++i) {
    char c = s[pos + i];
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  pos += n;
  return true;
}

}  // namespace

Result<Timestamp> ParseTimestamp(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.empty()) return Bad(text, "empty");
  size_t pos = 0;
  int y, mo, d;
  if (!Digits(s, pos, 4, y) || pos >= s.size() || s[pos++] != '-' || !Digits(s, pos, 2, mo) ||
      pos >= s.size() || s[pos++] != '-' || !Digits(s, pos, 2, d)) {
    return Bad(text, "date must be YYYY-MM-DD");
  }
  std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo),
                                  std::chrono::day(d)};
  if (!ymd.ok()) return Bad(text, "no such date");
  int hh = 0, mm = 0, ss = 0;
  int64_t frac_us = 0;
  int64_t offset_s = 0;
  if (pos < s.size()) {
    char sep = s[pos];
    if (sep != 'T' && sep != 't' && sep != ' ') return Bad(text, "expected 'T' after the date");
    ++pos;
    if (!Digits(s, pos, 2, hh) || pos >= s.size() || s[pos++] != ':' || !Digits(s, pos, 2, mm)) {
      return Bad(text, "time must be hh:mm[:ss[.fraction]]");
    }
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!Digits(s, pos, 2, ss)) return Bad(text, "seconds must be two digits");
      if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        int n = 0;
        int64_t scale = 100000;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (n < 6) frac_us += (s[pos] - '0') * scale;
          scale /= 10;
          ++n;
          ++pos;
        }
        if (n == 0) return Bad(text, "empty fraction of a second");
        if (n > 9) return Bad(text, "more than 9 fractional digits");
      }
    }
    if (hh > 23 || mm > 59 || ss > 60) return Bad(text, "hour, minute or second out of range");
    if (ss == 60) ss = 59;  // leap second: clamp, we have no leap-second table
    if (pos < s.size()) {
      char z = s[pos];
      if (z == 'Z' || z == 'z') {
        ++pos;
      } else if (z == '+' || z == '-') {
        ++pos;
        int oh, om;
        if (!Digits(s, pos, 2, oh) || pos >= s.size() || s[pos++] != ':' ||
            !Digits(s, pos, 2, om) || oh > 23 || om > 59) {
          return Bad(text, "offset must be +hh:mm or -hh:mm");
        }
        offset_s = (oh * 3600 + om * 60) * (z == '+' ? 1 : -1);
      } else {
        return Bad(text, fmt::format("unexpected '{}'", Excerpt(s.substr(pos, 1))));
      }
    }
  }
  if (pos != s.size()) return Bad(text, "trailing characters");
  auto day_point = sys_days(ymd);
  Timestamp t = std::chrono::time_point_cast<Micros>(day_point) + std::chrono::hours(hh) +
                std::chrono::minutes(mm) + std::chrono::seconds(ss) + Micros(frac_us) -
                std::chrono::seconds(offset_s);
  // An offset can carry 0000-01-01 or 9999-12-31 into a year no RFC 3339 text can name; such an
  // instant would not format back to what was parsed (found by fuzz_rfc3339).
  if (t < kEarliestTimestamp || t > kLatestTimestamp) {
    return Bad(text, "outside 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59.999999Z");
  }
  return t;
}

std::string FormatTimestamp(Timestamp t) {
  auto dp = std::chrono::floor<days>(t);
  std::chrono::year_month_day ymd(dp);
  auto rem = t - dp;
  auto h = std::chrono::duration_cast<std::chrono::hours>(rem);
  rem -= h;
  auto m = std::chrono::duration_cast<std::chrono::minutes>(rem);
  rem -= m;
  auto sec = std::chrono::duration_cast<std::chrono::seconds>(rem);
  rem -= sec;
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:06d}Z", int(ymd.year()),
                     unsigned(ymd.month()), unsigned(ymd.day()), h.count(), m.count(), sec.count(),
                     rem.count());
}

std::string FormatTimestampHuman(Timestamp t, bool with_zone) {
  std::string s = FormatTimestamp(t);  // 2026-11-03T14:05:00.123456Z
  s[10] = ' ';
  s.resize(23);  // drop micro digits beyond milliseconds and the Z
  if (with_zone) s += "Z";
  return s;
}

Result<Micros> ParseDuration(std::string_view text) {
  std::string_view s = text;
  int64_t value = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || p == s.data() || value < 0) {
    return InvalidArgumentError(fmt::format(
        "invalid duration '{}': expected a non-negative number with a unit (us, ms, s, m, h, d)",
        Excerpt(text)));
  }
  std::string_view unit(p, s.data() + s.size() - p);
  int64_t us_per_unit = 0;
  if (unit == "us") {
    us_per_unit = 1;
  } else if (unit == "ms") {
    us_per_unit = 1000;
  } else if (unit == "s" || unit.empty()) {
    us_per_unit = 1000000;
  } else if (unit == "m") {
    us_per_unit = int64_t{60} * 1000000;
  } else if (unit == "h") {
    us_per_unit = int64_t{3600} * 1000000;
  } else if (unit == "d") {
    us_per_unit = int64_t{86400} * 1000000;
  } else {
    return InvalidArgumentError(
        fmt::format("invalid duration '{}': unknown unit '{}' (use us, ms, s, m, h, d)",
                    Excerpt(text), Excerpt(unit)));
  }
  if (value > std::numeric_limits<int64_t>::max() / us_per_unit) {
    return InvalidArgumentError(
        fmt::format("invalid duration '{}': too long (at most {} days)", Excerpt(text),
                    std::numeric_limits<int64_t>::max() / (int64_t{86400} * 1000000)));
  }
  return Micros(value * us_per_unit);
}

namespace {

constexpr std::string_view kForms =
    "expected RFC 3339 (2026-11-03T14:05:00Z, 2026-11-03 14:05), now, now-2h, today, "
    "yesterday 14:00";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool StartsWithWord(std::string_view s, std::string_view word) {
  if (!StartsWithNoCase(s, word)) return false;
  return s.size() == word.size() || !std::isalpha(static_cast<unsigned char>(s[word.size()]));
}

}  // namespace

bool IsRelativeTime(std::string_view text) {
  std::string_view s = Trim(text);
  return StartsWithWord(s, "now") || StartsWithWord(s, "today") || StartsWithWord(s, "yesterday");
}

Result<Timestamp> ParseTimeExpression(std::string_view text, const Clock& clock) {
  std::string_view s = Trim(text);
  if (!IsRelativeTime(s)) {
    Result<Timestamp> t = ParseTimestamp(s);
    if (t.ok()) return t;
    if (s.empty()) {
      return InvalidArgumentError(fmt::format("invalid time '': empty ({})", kForms));
    }
    return InvalidArgumentError(fmt::format("invalid time '{}': {}", Excerpt(text), kForms));
  }
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError(
        fmt::format("invalid time '{}': {} ({})", Excerpt(text), why, kForms));
  };
  const Timestamp now = clock.Now();
  // The base: now, or a day with an optional time of day.
  std::string_view rest;
  Timestamp base;
  if (StartsWithWord(s, "now")) {
    base = now;
    rest = Trim(s.substr(3));
  } else {
    const bool yesterday = StartsWithWord(s, "yesterday");
    sys_days day = std::chrono::floor<days>(now) - days(yesterday ? 1 : 0);
    rest = Trim(s.substr(yesterday ? 9 : 5));
    // A time of day runs up to an offset: a sign followed by a duration (not "+01:00").
    std::string_view tod = rest;
    std::string_view offset;
    for (size_t i = 0; i < rest.size(); ++i) {
      if (rest[i] != '+' && rest[i] != '-') continue;
      std::string_view after = Trim(rest.substr(i + 1));
      if (!after.empty() && after.find(':') == std::string_view::npos &&
          ParseDuration(after).ok() && std::isalpha(static_cast<unsigned char>(after.back()))) {
        tod = Trim(rest.substr(0, i));
        offset = rest.substr(i);
        break;
      }
    }
    base = Timestamp(std::chrono::duration_cast<Micros>(day.time_since_epoch()));
    if (!tod.empty()) {
      std::string date = FormatTimestamp(base).substr(0, 10);
      Result<Timestamp> t = ParseTimestamp(date + "T" + std::string(tod));
      if (!t.ok())
        return bad(fmt::format("'{}' is not a time of day (14:00, 14:05:30)", Excerpt(tod, 40)));
      base = *t;
    }
    rest = offset;
  }
  if (rest.empty()) return base;
  char sign = rest.front();
  if (sign != '+' && sign != '-') return bad("expected +DURATION or -DURATION after it");
  Result<Micros> d = ParseDuration(Trim(rest.substr(1)));
  if (!d.ok()) return bad(d.status().message());
  return sign == '+' ? base + *d : base - *d;
}

}  // namespace ch
