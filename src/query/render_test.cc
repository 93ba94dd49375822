#include "query/render.h"

#include "common/text.h"
#include "testing/test_util.h"

namespace ch {
namespace {

FieldChange Change(std::string path, std::optional<std::string> before,
                   std::optional<std::string> after) {
  return FieldChange{std::move(path), std::move(before), std::move(after)};
}

TEST(RenderTest, DescribesChangesReadably) {
  EXPECT_EQ(DescribeChange(Change("priority", "3", "4")), "priority: 3 → 4");
  EXPECT_EQ(DescribeChange(Change("status", R"("draft")", R"("active")")),
            "status: draft → active");
  EXPECT_EQ(DescribeChange(Change("content.cta", std::nullopt, R"("Shop")")),
            "content.cta: (absent) → Shop");
  EXPECT_EQ(DescribeChange(Change("end_at", "null", R"("2026-12-01T00:00:00.000000Z")")),
            "end_at: null → 2026-12-01T00:00:00.000000Z");
  EXPECT_EQ(DescribeChange(Change("name", R"("")", R"("x")")), "name: \"\" → x");
}

TEST(RenderTest, LongStringEditsShowTheChangedRegion) {
  std::string a = R"("The quick brown fox jumps over the lazy dog and keeps running far away")";
  std::string b = R"("The quick brown fox leaps over the lazy dog and keeps running far away")";
  EXPECT_EQ(DescribeChange(Change("content.body", a, b), {.max_value_chars = 40}),
            "content.body: …k brown fox [jumps → leaps] over the la…");
  // Multi-byte characters are never cut in half.
  std::string c = R"("ääääääääääääääääääääääääääääääääääääääääääääääääääääääääääääääääääääää")";
  std::string d = R"("ääääääääääääääääääääääääääääääääääääööääääääääääääääääääääääääääääääää")";
  std::string s = DescribeChange(Change("t", c, d), {.max_value_chars = 30});
  EXPECT_TRUE(IsValidUtf8(s)) << s;
}

TEST(RenderTest, AsOfJsonIsTheStoredSnapshotsVerbatim) {
  AsOfResult r;
  HistoryRecord a;
  a.snapshot = R"({"id":1,  "odd":"spacing \u00e9"})";
  HistoryRecord b;
  b.snapshot = R"({"id":2})";
  r.campaigns = {a, b};
  EXPECT_EQ(RenderAsOfJson(r), "[\n{\"id\":1,  \"odd\":\"spacing \\u00e9\"},\n{\"id\":2}\n]\n");
  EXPECT_EQ(RenderAsOfJson(AsOfResult{}), "[]\n");
}

}  // namespace
}  // namespace ch
