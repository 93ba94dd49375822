// The PostgreSQL row codec, URL handling and error translation: no server needed.
#include "campaign/pg_schema.h"

#include "campaign/pg_campaign_store.h"
#include "campaign/pg_client.h"

// The public PostgreSQL headers keep libpq out (conventions §6): nothing above may include it.
#ifdef LIBPQ_FE_H
#error "a public campaign header includes libpq-fe.h"
#endif

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

Timestamp At(const char* text) { return ParseTimestamp(text).value(); }

TEST(PgTimestampTest, FormatsAsPostgresPrintsUtc) {
  EXPECT_EQ(FormatPgTimestamp(At("2026-01-01T00:00:00Z")), "2026-01-01 00:00:00.000000+00");
  EXPECT_EQ(FormatPgTimestamp(At("2026-11-03T14:05:00.123456Z")), "2026-11-03 14:05:00.123456+00");
  EXPECT_EQ(FormatPgTimestamp(FromUnixMicros(-1)), "1969-12-31 23:59:59.999999+00");
  EXPECT_EQ(FormatPgTimestamp(FromUnixMicros(0)), "1970-01-01 00:00:00.000000+00");
}

TEST(PgTimestampTest, ParsesWhatPostgresPrints) {
  EXPECT_EQ(*ParsePgTimestamp("2026-01-01 00:00:00+00"), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(*ParsePgTimestamp("2026-01-01 00:00:00.000001+00"), At("2026-01-01T00:00:00.000001Z"));
  EXPECT_EQ(*ParsePgTimestamp("2026-01-01 00:00:00.5+00"), At("2026-01-01T00:00:00.5Z"));
  EXPECT_EQ(*ParsePgTimestamp("2026-01-01 02:30:00+02:30"), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(*ParsePgTimestamp("2025-12-31 19:00:00-05"), At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(*ParsePgTimestamp("1969-12-31 23:59:59.999999+00"), FromUnixMicros(-1));
  EXPECT_EQ(*ParsePgTimestamp("2026-01-01T00:00:00Z"), At("2026-01-01T00:00:00Z"));
}

TEST(PgTimestampTest, RoundTripsFarInstantsIncludingBc) {
  // Far past (BC) and far future instants.
  for (int64_t us :
       {int64_t{0}, int64_t{-1}, int64_t{1}, int64_t{1'767'225'600'000'000},
        int64_t{-62'135'596'800'000'000} /* 0001-01-01 */, int64_t{-62'135'596'800'000'001},
        int64_t{-210'000'000'000'000'000}, int64_t{6'249'223'180'799'999'999} /* 199999-12-31 */}) {
    Timestamp t = FromUnixMicros(us);
    std::string text = FormatPgTimestamp(t);
    ASSERT_OK_AND_ASSIGN(Timestamp back, ParsePgTimestamp(text));
    EXPECT_EQ(ToUnixMicros(back), us) << text;
  }
  EXPECT_EQ(FormatPgTimestamp(FromUnixMicros(-62'135'596'800'000'001)),
            "0001-12-31 23:59:59.999999+00 BC");
}

TEST(PgTimestampTest, RejectsWhatIsNotAnInstant) {
  for (const char* bad :
       {"infinity", "-infinity", "", "2026-01-01", "2026-01-01 00:00:00", "2026-13-01 00:00:00+00",
        "2026-01-01 00:00:00+00 junk", "0000-01-01 00:00:00+00 BC"}) {
    EXPECT_THAT(ParsePgTimestamp(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(PgRowCodecTest, RoundTripsEveryField) {
  Campaign c;
  c.id = 42;
  c.customer_id = 7;
  c.name = "Caf\xc3\xa9 \"q\" \\ \xf0\x9f\x8e\x89";
  c.status = CampaignStatus::kPaused;
  c.priority = 3;
  c.trigger_event = "tab\there";
  c.audience_segment = "";
  c.start_at = At("2026-02-01T00:00:00Z");
  c.end_at = std::nullopt;
  c.frequency_cap = 1'000'000;
  c.content = R"({"a":"b"})";
  c.version = 9;
  c.created_at = At("2026-01-01T00:00:00.000001Z");
  c.updated_at = At("2026-01-02T00:00:00Z");
  c.updated_by = "user:1";
  auto values = CampaignToPgValues(c);
  ASSERT_EQ(values.size(), kPgCampaignColumns.size());
  EXPECT_FALSE(values[8].has_value());  // end_at NULL
  std::vector<std::optional<std::string_view>> views;
  for (const auto& v : values)
    views.push_back(v ? std::optional<std::string_view>(*v) : std::nullopt);
  ASSERT_OK_AND_ASSIGN(Campaign back, CampaignFromPgValues(views));
  EXPECT_EQ(back, c);
}

TEST(PgRowCodecTest, NamesTheColumnThatCannotBeDecoded) {
  Campaign c;
  c.id = 1;
  auto values = CampaignToPgValues(c);
  std::vector<std::optional<std::string_view>> views;
  for (const auto& v : values)
    views.push_back(v ? std::optional<std::string_view>(*v) : std::nullopt);
  auto bad = views;
  bad[3] = "archived";
  EXPECT_THAT(CampaignFromPgValues(bad), StatusIsWith(StatusCode::kDataLoss, "campaigns.status"));
  bad = views;
  bad[4] = "x1";
  EXPECT_THAT(CampaignFromPgValues(bad), StatusIsWith(StatusCode::kDataLoss, "campaigns.priority"));
  bad = views;
  bad[12] = std::nullopt;
  EXPECT_THAT(CampaignFromPgValues(bad),
              StatusIsWith(StatusCode::kDataLoss, "campaigns.created_at"));
  bad.pop_back();
  EXPECT_THAT(CampaignFromPgValues(bad), StatusIs(StatusCode::kDataLoss));
}

TEST(PgUrlTest, ParsesUrlsAndConninfoAndDescribesWithoutPassword) {
  ASSERT_OK_AND_ASSIGN(auto info, ParsePgUrl("postgresql://alice:s3cret@db.example:6543/camp"));
  EXPECT_EQ(info.Describe(), "db.example:6543/camp");
  EXPECT_EQ(info.params.at("password"), "s3cret");
  ASSERT_OK_AND_ASSIGN(info, ParsePgUrl("host=127.0.0.1 dbname=x user=bob"));
  EXPECT_EQ(info.Describe(), "127.0.0.1:5432/x");
  ASSERT_OK_AND_ASSIGN(info, ParsePgUrl("postgres://bob@h"));
  EXPECT_EQ(info.Describe(), "h:5432/bob");
  ASSERT_OK_AND_ASSIGN(std::string other, PgUrlWithDatabase("postgresql://a:p'w@h:1/d", "e"));
  ASSERT_OK_AND_ASSIGN(info, ParsePgUrl(other));
  EXPECT_EQ(info.Describe(), "h:1/e");
  EXPECT_EQ(info.params.at("password"), "p'w");
}

TEST(PgUrlTest, RejectsBadUrlsWithoutEchoingThePassword) {
  EXPECT_THAT(ParsePgUrl(""), StatusIsWith(StatusCode::kInvalidArgument, "url"));
  EXPECT_THAT(ParsePgUrl("mysql://h/db"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParsePgUrl("postgresql://u:pw@h:notaport/db"),
              StatusIs(StatusCode::kInvalidArgument));
  auto r = ParsePgUrl("postgresql://u:hunter2@h/db?nosuchparam=hunter2");
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(r.status().message().find("hunter2"), std::string::npos) << r.status().message();
}

TEST(PgLsnTest, ParsesAndFormatsAsPostgres) {
  ASSERT_OK_AND_ASSIGN(uint64_t lsn, ParseLsn("16/B374D848"));
  EXPECT_EQ(lsn, (uint64_t{0x16} << 32) | 0xB374D848);
  EXPECT_EQ(FormatLsn(lsn), "16/B374D848");
  EXPECT_EQ(FormatLsn(0), "0/0");
  for (const char* bad : {"", "16", "/1", "1/", "x/1", "1/2/3", "1/ 2"}) {
    EXPECT_THAT(ParseLsn(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(PgErrorTest, TranslatesSqlStatesOnce) {
  EXPECT_THAT(PgErrorToStatus("", "could not connect", "h:1/d"),
              StatusIsWith(StatusCode::kUnavailable, "h:1/d"));
  EXPECT_THAT(PgErrorToStatus("08006", "x", "h"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(PgErrorToStatus("57P01", "x", "h"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(PgErrorToStatus("53300", "x", "h"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(PgErrorToStatus("55P03", "x", "h"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(PgErrorToStatus("23505", "x", "h"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(PgErrorToStatus("23514", "x", "h"), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(PgErrorToStatus("40001", "x", "h"), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(PgErrorToStatus("40P01", "x", "h"), StatusIs(StatusCode::kAborted));
  EXPECT_THAT(PgErrorToStatus("22021", "x", "h"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PgErrorToStatus("57014", "x", "h"), StatusIs(StatusCode::kDeadlineExceeded));
  EXPECT_THAT(PgErrorToStatus("42P01", "x", "h"), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(PgErrorToStatus("XX000", "x", "h"), StatusIsWith(StatusCode::kInternal, "XX000"));
}

}  // namespace
}  // namespace ch
