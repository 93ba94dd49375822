#include "query/render.h"

#include <nlohmann/json.hpp>

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
  std::string json = RenderAsOfJson(r);
  EXPECT_NE(
      json.find("\"campaigns\": [\n{\"id\":1,  \"odd\":\"spacing \\u00e9\"},\n{\"id\":2}\n  ]"),
      std::string::npos)
      << json;
  nlohmann::json parsed = nlohmann::json::parse(json);
  EXPECT_EQ(parsed["campaigns"].size(), 2u);
  EXPECT_EQ(parsed["count"], 2);
  EXPECT_TRUE(parsed["complete_through"].is_null());
  EXPECT_TRUE(parsed["next_cursor"].is_null());
  nlohmann::json empty = nlohmann::json::parse(RenderAsOfJson(AsOfResult{}));
  EXPECT_EQ(empty["campaigns"], nlohmann::json::array());
}

TEST(RenderTest, FullShowsWholeValues) {
  std::string url_a = "\"https://example.com/" + std::string(80, 'a') + "/img.png\"";
  std::string url_b = "\"https://example.com/" + std::string(80, 'a') + "/img2.png\"";
  std::string cut = DescribeChange(Change("content.image_url", url_a, url_b));
  EXPECT_NE(cut.find("…"), std::string::npos) << cut;
  std::string full = DescribeChange(Change("content.image_url", url_a, url_b), {.full = true});
  EXPECT_EQ(full, "content.image_url: " + url_a.substr(1, url_a.size() - 2) + " → " +
                      url_b.substr(1, url_b.size() - 2));
}

TEST(RenderTest, TablesAlignWideCharactersByDisplayWidth) {
  AsOfResult r;
  r.customer_id = 1;
  for (std::string name : {"Spring sale", "日本語のセール", "🎉 Party"}) {
    HistoryRecord rec;
    rec.campaign_id = static_cast<int64_t>(r.campaigns.size()) + 1;
    rec.priority = rec.campaign_id;
    rec.snapshot = nlohmann::json{{"name", name}, {"status", "active"}}.dump();
    r.campaigns.push_back(rec);
  }
  std::string table = RenderAsOfTable(r);
  // Every row's STATUS column starts at the same display column.
  std::vector<size_t> columns;
  size_t start = 0;
  while (true) {
    size_t end = table.find('\n', start);
    if (end == std::string::npos) break;
    std::string line = table.substr(start, end - start);
    start = end + 1;
    size_t at = line.find("active");
    if (at == std::string::npos) at = line.find("STATUS");
    if (at == std::string::npos) continue;
    columns.push_back(DisplayWidth(line.substr(0, at)));
  }
  ASSERT_EQ(columns.size(), 4u) << table;
  for (size_t c : columns) EXPECT_EQ(c, columns.front()) << table;
}

}  // namespace
}  // namespace ch
