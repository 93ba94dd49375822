#include "history/snapshot_codec.h"

#include <limits>
#include <random>
#include <utility>

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

constexpr char kSnapshot[] =
    R"({"id":7,"customer_id":1,"name":"Banner: Summer #7","status":"active","priority":3,)"
    R"("trigger_event":"app_open","audience_segment":"vip","start_at":null,"end_at":null,)"
    R"("frequency_cap":2,"version":12,"created_at":"2026-01-01T00:00:00.000000Z",)"
    R"("updated_at":"2026-02-01T10:00:00.500000Z","updated_by":"user:101",)"
    R"("content":{"title":"Hi","body":"say \"hi\" \\ {not a brace}","priority":99}})";

SnapshotColumns Columns(int64_t priority, int64_t version, const char* at, const char* actor) {
  return SnapshotColumns{priority, version, *ParseTimestamp(at), actor};
}

std::string RoundTrip(std::string_view snapshot, const SnapshotColumns& c) {
  SplitSnapshot s = SplitSnapshotText(snapshot, c);
  Result<std::string> back = JoinSnapshotText(s.body, s.extras, c);
  EXPECT_OK(back);
  return back.ok() ? *back : std::string();
}

TEST(SnapshotCodecTest, HolesImpliedByTheColumnsCostNothing) {
  auto c = Columns(3, 12, "2026-02-01T10:00:00.5Z", "user:101");
  SplitSnapshot s = SplitSnapshotText(kSnapshot, c);
  EXPECT_TRUE(s.extras.empty());
  EXPECT_EQ(s.body.find("user:101"), std::string::npos);
  EXPECT_NE(s.body.find(R"("priority":99)"), std::string::npos) << "nested keys are no holes";
  EXPECT_EQ(RoundTrip(kSnapshot, c), kSnapshot);
}

TEST(SnapshotCodecTest, PriorityShiftsShareOneBody) {
  auto c1 = Columns(3, 12, "2026-02-01T10:00:00.5Z", "user:101");
  std::string moved = kSnapshot;
  moved.replace(moved.find(R"("priority":3)"), 12, R"("priority":4)");
  moved.replace(moved.find(R"("version":12)"), 12, R"("version":13)");
  moved.replace(moved.find("2026-02-01T10:00:00.500000Z"), 27, "2026-02-02T09:00:00.000000Z");
  moved.replace(moved.find("user:101"), 8, "worker:rebalance");
  auto c2 = Columns(4, 13, "2026-02-02T09:00:00Z", "worker:rebalance");
  EXPECT_EQ(SplitSnapshotText(kSnapshot, c1).body, SplitSnapshotText(moved, c2).body);
  EXPECT_EQ(RoundTrip(moved, c2), moved);
}

TEST(SnapshotCodecTest, SplitUnlessSameComparesWithoutBuilding) {
  auto c1 = Columns(3, 12, "2026-02-01T10:00:00.5Z", "user:101");
  const std::string body = SplitSnapshotText(kSnapshot, c1).body;
  SplitSnapshot out;
  // A shift: other hole values, same body.
  std::string moved = kSnapshot;
  moved.replace(moved.find(R"("priority":3)"), 12, R"("priority":40)");
  auto c2 = Columns(40, 12, "2026-02-01T10:00:00.5Z", "user:101");
  EXPECT_TRUE(SplitSnapshotUnlessSame(moved, c2, body, &out));
  EXPECT_TRUE(out.body.empty());
  EXPECT_TRUE(out.extras.empty());
  // Same body, but the snapshot's version is not the record's: extras still come out.
  auto c3 = Columns(40, 13, "2026-02-01T10:00:00.5Z", "user:101");
  EXPECT_TRUE(SplitSnapshotUnlessSame(moved, c3, body, &out));
  EXPECT_FALSE(out.extras.empty());
  // Edits before, between and after the holes, and a length change: a new body.
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"Banner", "Bonner"}, {"app_open", "app_shut"}, {"Hi", "Hey"}, {"}}", "} }"}}) {
    std::string edited = kSnapshot;
    edited.replace(edited.find(from), from.size(), to);
    EXPECT_FALSE(SplitSnapshotUnlessSame(edited, c1, body, &out)) << from;
    EXPECT_EQ(out.body, SplitSnapshotText(edited, c1).body) << from;
  }
  EXPECT_FALSE(SplitSnapshotUnlessSame(kSnapshot, c1, "", &out));
  EXPECT_EQ(out.body, body);
}

TEST(SnapshotCodecTest, AppendTimestampMatchesFormatTimestamp) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 2000; ++i) {
    // From year 1000 to 9999, and a few outside (the slow path).
    int64_t us =
        static_cast<int64_t>(rng() % 253'000'000'000'000'000ULL) - 30'610'000'000'000'000LL;
    if (i % 500 == 0) us = -62'200'000'000'000'000LL + i;
    Timestamp t = FromUnixMicros(us);
    std::string got;
    AppendTimestamp(got, t);
    ASSERT_EQ(got, FormatTimestamp(t)) << us;
  }
}

TEST(SnapshotCodecTest, DeleteSnapshotCarriesThePreviousVersionInExtras) {
  // A delete's record is version 13 by worker:x at a later time, its snapshot still says v12.
  auto c = Columns(3, 13, "2026-02-03T00:00:00Z", "worker:x");
  SplitSnapshot s = SplitSnapshotText(kSnapshot, c);
  EXPECT_FALSE(s.extras.empty());
  EXPECT_LT(s.extras.size(), 24u);
  EXPECT_EQ(RoundTrip(kSnapshot, c), kSnapshot);
}

TEST(SnapshotCodecTest, OddTextRoundTripsVerbatim) {
  auto c = Columns(1, 1, "2026-01-01T00:00:00Z", "a");
  for (std::string text : {
           std::string("not json at all"),
           std::string("{"),
           std::string(R"({"priority":1} trailing)"),
           std::string(
               R"(  { "priority" : 01 , "version":1.0, "updated_at":"x", "updated_by":"a" } )"),
           std::string(R"({"priority":1,"priority":2})"),
           std::string(R"({"updated_by":"a\"b","version":-0,"priority":-5})"),
           std::string(R"({"updated_at":"2026-01-01T00:00:00Z"})"),
           std::string(R"({"pri\u006frity":1})"),
           std::string("[1,2,3]"),
           std::string(R"({"a":[{"b":"]}"}],"priority":9})"),
           std::string("{\"k\":\"\xf0\x9f\x8e\x89\",\"version\":1}"),
       }) {
    EXPECT_EQ(RoundTrip(text, c), text);
  }
}

TEST(SnapshotCodecTest, DeltaRoundTripsAndIsSmallForWordEdits) {
  std::string base(kSnapshot);
  std::string target = base;
  target.replace(target.find("Summer"), 6, "Winter holidays");
  target.replace(target.find("say"), 3, "shout");
  std::string delta;
  EncodeDelta(base, target, delta);
  EXPECT_LT(delta.size(), 48u);
  ASSERT_OK_AND_ASSIGN(std::string back, ApplyDelta(base, delta));
  EXPECT_EQ(back, target);
}

TEST(SnapshotCodecTest, DeltaRoundTripsRandomEdits) {
  std::mt19937 rng(7);
  auto random_text = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + rng() % 6));
    return s;
  };
  for (int iter = 0; iter < 300; ++iter) {
    std::string base = random_text(rng() % 400);
    std::string target = base;
    int edits = static_cast<int>(rng() % 5);
    for (int e = 0; e < edits; ++e) {
      size_t pos = target.empty() ? 0 : rng() % target.size();
      size_t len = std::min<size_t>(rng() % 20, target.size() - pos);
      target.replace(pos, len, random_text(rng() % 20));
    }
    if (iter % 10 == 0) target = random_text(rng() % 100);
    std::string delta;
    EncodeDelta(base, target, delta);
    ASSERT_OK_AND_ASSIGN(std::string back, ApplyDelta(base, delta));
    ASSERT_EQ(back, target) << "iteration " << iter;
    EXPECT_LE(delta.size(), target.size() + 8);
  }
}

TEST(SnapshotCodecTest, CorruptInputIsDataLoss) {
  auto c = Columns(1, 1, "2026-01-01T00:00:00Z", "a");
  EXPECT_THAT(JoinSnapshotText("", "", c), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(JoinSnapshotText("X{}", "", c), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(JoinSnapshotText("S\x01\x50p{}", "", c), StatusIs(StatusCode::kDataLoss));
  SplitSnapshot s = SplitSnapshotText(kSnapshot, c);
  EXPECT_THAT(JoinSnapshotText(s.body, "Z", c), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ApplyDelta("abc", "\x07\x00"), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ApplyDelta("abc", "\x08"), StatusIs(StatusCode::kDataLoss));
}

// Found by UBSan in fuzz_snapshot_codec: the difference of a column and the snapshot's value,
// and the decoding of a corrupt one, overflowed int64 (undefined behaviour).
TEST(SnapshotCodecTest, ExtremeIntegersRoundTripWithoutOverflow) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (auto [column, text] : {std::pair<int64_t, std::string>{kMax, std::to_string(kMin)},
                              {kMin, std::to_string(kMax)},
                              {kMin, "1"},
                              {kMax, "-1"}}) {
    std::string snapshot = kSnapshot;
    snapshot.replace(snapshot.find(R"("priority":3)"), 12, R"("priority":)" + text);
    snapshot.replace(snapshot.find(R"("version":12)"), 12, R"("version":)" + text);
    auto c = Columns(column, column, "2026-02-01T10:00:00.5Z", "user:101");
    EXPECT_EQ(RoundTrip(snapshot, c), snapshot) << column << " vs " << text;
  }
}

TEST(SnapshotCodecTest, CorruptExtremeExtrasAreDataLoss) {
  auto c = Columns(1, std::numeric_limits<int64_t>::min(), "2026-01-01T00:00:00Z", "a");
  SplitSnapshot s = SplitSnapshotText(kSnapshot, c);
  // An updated_at delta that lands outside the years a timestamp can have.
  std::string extras = "U";
  PutVarint(extras, ZigZag(std::numeric_limits<int64_t>::min()));
  EXPECT_THAT(JoinSnapshotText(s.body, extras, c), StatusIs(StatusCode::kDataLoss));
  // A delta copy whose offset overflows.
  std::string delta;
  PutVarint(delta, (uint64_t{2} << 1) | 1);
  PutVarint(delta, ZigZag(std::numeric_limits<int64_t>::max()));
  EXPECT_THAT(ApplyDelta("abc", delta), StatusIs(StatusCode::kDataLoss));
}

}  // namespace
}  // namespace ch
