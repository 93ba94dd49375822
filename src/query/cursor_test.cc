#include "query/cursor.h"

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIsWith;

TEST(CursorTest, AsOfCursorsRoundTrip) {
  AsOfCursor c{*ParseTimestamp("2026-11-03T14:05:00.123456Z"),
               *ParseTimestamp("2026-11-03T14:00:00Z"), 50, 2019};
  std::string text = EncodeCursor(c);
  EXPECT_EQ(
      text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
      std::string::npos)
      << "URL-safe as it is: " << text;
  ASSERT_OK_AND_ASSIGN(AsOfCursor back, DecodeAsOfCursor(text));
  EXPECT_EQ(back, c);
}

TEST(CursorTest, TimelineCursorsRoundTripAnyTransactionId) {
  for (std::string tx : {"", "981", "a|b|c", "0/16B3748", "ü 🎉"}) {
    TimelineCursor c{*ParseTimestamp("2026-11-03T14:05:00Z"), tx, 7, 3};
    ASSERT_OK_AND_ASSIGN(TimelineCursor back, DecodeTimelineCursor(EncodeCursor(c)));
    EXPECT_EQ(back, c) << tx;
  }
}

TEST(CursorTest, ACursorOfTheOtherQueryOrGarbageIsRefused) {
  std::string timeline = EncodeCursor(TimelineCursor{});
  std::string as_of = EncodeCursor(AsOfCursor{});
  EXPECT_THAT(DecodeAsOfCursor(timeline), StatusIsWith(StatusCode::kInvalidArgument, "cursor:"));
  EXPECT_THAT(DecodeTimelineCursor(as_of), StatusIsWith(StatusCode::kInvalidArgument, "timeline"));
  EXPECT_THAT(DecodeAsOfCursor("not a cursor!"),
              StatusIsWith(StatusCode::kInvalidArgument, "as-of"));
  EXPECT_THAT(DecodeAsOfCursor(""), StatusIsWith(StatusCode::kInvalidArgument, "cursor:"));
  EXPECT_THAT(DecodeAsOfCursor(std::string(5000, 'A')),
              StatusIsWith(StatusCode::kInvalidArgument, "cursor:"));
  // A cut cursor.
  EXPECT_THAT(DecodeAsOfCursor(as_of.substr(0, as_of.size() - 4)),
              StatusIsWith(StatusCode::kInvalidArgument, "cursor:"));
}

}  // namespace
}  // namespace ch
