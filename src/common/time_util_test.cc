#include "common/time_util.h"

#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

Timestamp At(const char* s) {
  auto r = ParseTimestamp(s);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : Timestamp{};
}

TEST(TimeUtilTest, ParsesRfc3339WithZoneAndFraction) {
  EXPECT_EQ(FormatTimestamp(At("2026-11-03T14:05:00Z")), "2026-11-03T14:05:00.000000Z");
  EXPECT_EQ(FormatTimestamp(At("2026-11-03T14:05:00.123456789Z")), "2026-11-03T14:05:00.123456Z");
  EXPECT_EQ(FormatTimestamp(At("2026-11-03T15:05:00.5+01:00")), "2026-11-03T14:05:00.500000Z");
  EXPECT_EQ(FormatTimestamp(At("2026-11-03T09:35:00-04:30")), "2026-11-03T14:05:00.000000Z");
}

TEST(TimeUtilTest, AcceptsShortFormsAsUtc) {
  EXPECT_EQ(At("2026-11-03 14:05"), At("2026-11-03T14:05:00Z"));
  EXPECT_EQ(At("2026-11-03"), At("2026-11-03T00:00:00Z"));
  EXPECT_EQ(At("  2026-11-03t14:05:00z "), At("2026-11-03T14:05:00Z"));
}

TEST(TimeUtilTest, RoundTripsMicroseconds) {
  Timestamp t = FromUnixMicros(1'700'000'000'123'456);
  ASSERT_OK_AND_ASSIGN(Timestamp back, ParseTimestamp(FormatTimestamp(t)));
  EXPECT_EQ(back, t);
  EXPECT_EQ(FormatTimestampHuman(t), "2023-11-14 22:13:20.123Z");
}

TEST(TimeUtilTest, BeforeEpoch) {
  EXPECT_EQ(FormatTimestamp(At("1969-12-31T23:59:59.5Z")), "1969-12-31T23:59:59.500000Z");
}

TEST(TimeUtilTest, RejectsBadTimesWithAClearMessage) {
  for (const char* bad :
       {"", "yesterday", "2026-13-01", "2026-02-30", "2026-11-03T25:00", "2026-11-03T14:05:00+0100",
        "2026-11-03T14:05:00.Z", "2026-11-03T14:05:00Zjunk", "2026/11/03"}) {
    auto r = ParseTimestamp(bad);
    EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("invalid time"), std::string::npos);
    }
  }
}

// Found by fuzz_rfc3339: an offset carried the instant into year 10000 (or 0000 into year -1),
// which formats to text that does not parse back.
TEST(TimeUtilTest, RejectsInstantsOutsideTheFourDigitYears) {
  for (const char* bad : {"9999-12-31T23:59:60.999999999-23:59", "0000-01-01T00:00:00Z",
                          "0001-01-01T00:00:00+00:01", "9999-12-31T23:59:00-00:01"}) {
    auto r = ParseTimestamp(bad);
    EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument)) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("outside 0001-01-01"), std::string::npos);
    }
  }
  EXPECT_EQ(FormatTimestamp(At("0001-01-01T00:00:00Z")), "0001-01-01T00:00:00.000000Z");
  EXPECT_EQ(FormatTimestamp(At("9999-12-31T23:59:59.999999Z")), "9999-12-31T23:59:59.999999Z");
  EXPECT_EQ(FormatTimestamp(At("9999-12-31T23:59:60.5Z")), "9999-12-31T23:59:59.500000Z");
}

TEST(TimeUtilTest, ParsesDurations) {
  EXPECT_EQ(*ParseDuration("250ms"), Micros(250000));
  EXPECT_EQ(*ParseDuration("2m"), Micros(120000000));
  EXPECT_EQ(*ParseDuration("7"), Micros(7000000));
  EXPECT_THAT(ParseDuration("5 parsecs"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseDuration("-1s"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(*ParseDuration("106751991d"), Micros(int64_t{106751991} * 86400 * 1000000));
}

// Found by UBSan: the multiplication by the unit overflowed (signed overflow is undefined).
TEST(TimeUtilTest, RejectsDurationsBeyondTheRange) {
  for (const char* bad : {"106751992d", "9223372036854775807d", "9223372036854775807s",
                          "9223372036854776h", "9223372036854776ms"}) {
    EXPECT_THAT(ParseDuration(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_TRUE(ParseDuration("9223372036854775807us").ok());
}

TEST(TimeUtilTest, ErrorsQuoteAtMostAnExcerptOfTheInput) {
  std::string big = "2026-11-03T14:05:00Z" + std::string(10 * 1024 * 1024, '7');
  Result<Timestamp> t = ParseTimestamp(big);
  ASSERT_THAT(t, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_LT(t.status().message().size(), 500u);
  EXPECT_NE(t.status().message().find("2026-11-03T14:05:00Z777"), std::string::npos);
  Result<Micros> d = ParseDuration(std::string(1024 * 1024, 'x'));
  ASSERT_THAT(d, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_LT(d.status().message().size(), 500u);
  d = ParseDuration("5" + std::string(1024 * 1024, 'x'));
  ASSERT_THAT(d, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_LT(d.status().message().size(), 700u);
}

TEST(TimeUtilTest, RelativeMomentsResolveAgainstTheClock) {
  FakeClock clock(*ParseTimestamp("2026-11-04T10:30:15.5Z"));
  auto at = [&](std::string_view text) {
    Result<Timestamp> t = ParseTimeExpression(text, clock);
    return t.ok() ? FormatTimestamp(*t) : t.status().ToString();
  };
  EXPECT_EQ(at("now"), "2026-11-04T10:30:15.500000Z");
  EXPECT_EQ(at("now-2h"), "2026-11-04T08:30:15.500000Z");
  EXPECT_EQ(at(" NOW - 90m "), "2026-11-04T09:00:15.500000Z");
  EXPECT_EQ(at("now+1d"), "2026-11-05T10:30:15.500000Z");
  EXPECT_EQ(at("today"), "2026-11-04T00:00:00.000000Z");
  EXPECT_EQ(at("yesterday"), "2026-11-03T00:00:00.000000Z");
  EXPECT_EQ(at("yesterday 14:00"), "2026-11-03T14:00:00.000000Z");
  EXPECT_EQ(at("yesterday 14:05:30.25"), "2026-11-03T14:05:30.250000Z");
  EXPECT_EQ(at("today 09:00+01:00"), "2026-11-04T08:00:00.000000Z") << "a zone offset";
  EXPECT_EQ(at("yesterday 14:00+30m"), "2026-11-03T14:30:00.000000Z") << "a duration";
  EXPECT_EQ(at("today-1h"), "2026-11-03T23:00:00.000000Z");
  // Absolute moments as ParseTimestamp reads them.
  EXPECT_EQ(at("2026-11-03 14:05"), "2026-11-03T14:05:00.000000Z");
  // The clock moves: so does now.
  clock.Advance(std::chrono::hours(24));
  EXPECT_EQ(at("yesterday 14:00"), "2026-11-04T14:00:00.000000Z");
}

TEST(TimeUtilTest, RelativeMomentsThatDoNotParseSaySo) {
  FakeClock clock;
  for (std::string_view bad : {"now-2x", "now 2h", "yesterday 25:00", "yesterday noon", "nowish",
                               "last tuesday", "", "now-"}) {
    Result<Timestamp> t = ParseTimeExpression(bad, clock);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(t.status().message().find("invalid time '" + std::string(bad) + "'"),
              std::string::npos)
        << t.status().message();
    EXPECT_NE(t.status().message().find("yesterday 14:00"), std::string::npos)
        << "names the accepted forms: " << t.status().message();
  }
  EXPECT_TRUE(IsRelativeTime("now-2h"));
  EXPECT_TRUE(IsRelativeTime(" Yesterday 14:00"));
  EXPECT_FALSE(IsRelativeTime("2026-11-03"));
  EXPECT_FALSE(IsRelativeTime("nowhere"));
}

}  // namespace
}  // namespace ch
