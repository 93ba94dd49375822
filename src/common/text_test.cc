#include "common/text.h"

#include "testing/test_util.h"

namespace ch {
namespace {

TEST(TextTest, ValidatesUtf8) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("caf\xc3\xa9 \xf0\x9f\x8e\x89"));  // café 🎉
  EXPECT_FALSE(IsValidUtf8("\xc3"));                         // truncated
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf"));                     // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));                 // surrogate
  EXPECT_FALSE(IsValidUtf8("\xff"));
}

TEST(TextTest, CountsCodePoints) {
  EXPECT_EQ(Utf8Length("caf\xc3\xa9"), 4u);
  EXPECT_EQ(Utf8Length("\xf0\x9f\x8e\x89"), 1u);
}

TEST(TextTest, ComparesIgnoringAsciiCase) {
  EXPECT_TRUE(StartsWithNoCase("Bearer abc", "bearer "));
  EXPECT_TRUE(StartsWithNoCase("BEARER ", "bearer "));
  EXPECT_FALSE(StartsWithNoCase("Bear", "bearer "));
  EXPECT_FALSE(StartsWithNoCase("Basic abc", "bearer "));
  EXPECT_TRUE(EqualsNoCase("GZip", "gzip"));
  EXPECT_FALSE(EqualsNoCase("gzip2", "gzip"));
  EXPECT_FALSE(EqualsNoCase("gzi", "gzip"));
}

TEST(TextTest, Ellipsizes) {
  EXPECT_EQ(Ellipsize("hello", 10), "hello");
  EXPECT_EQ(Ellipsize("hello world", 5), "hello…");
  EXPECT_EQ(Ellipsize("caf\xc3\xa9!", 4), "caf\xc3\xa9…");
}

TEST(TextTest, DisplayWidthCountsTerminalColumns) {
  EXPECT_EQ(DisplayWidth("Spring sale"), 11u);
  EXPECT_EQ(DisplayWidth("café"), 4u);
  EXPECT_EQ(DisplayWidth("cafe\u0301"), 4u) << "a combining accent takes no column";
  EXPECT_EQ(DisplayWidth("日本語"), 6u);
  EXPECT_EQ(DisplayWidth("스프링"), 6u);
  EXPECT_EQ(DisplayWidth("ＡＢ"), 4u) << "fullwidth forms";
  EXPECT_EQ(DisplayWidth("🎉"), 2u);
  EXPECT_EQ(DisplayWidth("👋🏽"), 2u) << "a skin-tone modifier joins the emoji";
  EXPECT_EQ(DisplayWidth("👨‍👩‍👧"), 2u) << "a ZWJ sequence is one emoji";
  EXPECT_EQ(DisplayWidth("❤️"), 1u) << "text-default symbol; its variation selector is 0";
  EXPECT_EQ(DisplayWidth("скидка"), 6u);
  EXPECT_EQ(DisplayWidth(""), 0u);
}

TEST(TextTest, EllipsizeWidthNeverCutsACharacter) {
  EXPECT_EQ(EllipsizeWidth("Spring sale", 20), "Spring sale");
  EXPECT_EQ(EllipsizeWidth("Spring sale", 7), "Spring…");
  EXPECT_EQ(EllipsizeWidth("日本語のキャンペーン", 7), "日本語…");
  EXPECT_EQ(DisplayWidth(EllipsizeWidth("日本語のキャンペーン", 8)), 7u)
      << "a wide character that does not fit is left out whole";
  EXPECT_EQ(EllipsizeWidth("🎉🎉🎉🎉", 5), "🎉🎉…");
  EXPECT_EQ(EllipsizeWidth("a👋🏽bc", 4), "a👋🏽…")
      << "the modifier stays with its emoji";
  EXPECT_EQ(EllipsizeWidth("abc", 0), "");
}

TEST(TextTest, ExcerptKeepsShortPrintableTextAsIs) {
  EXPECT_EQ(Excerpt("plain \"text\" \\ caf\xc3\xa9"), "plain \"text\" \\ caf\xc3\xa9");
  EXPECT_EQ(Excerpt(""), "");
}

TEST(TextTest, ExcerptCutsLongInputAndSaysHowLongItWas) {
  std::string big(10 * 1024 * 1024, 'a');
  std::string e = Excerpt(big);
  EXPECT_EQ(e, std::string(kMaxExcerptBytes, 'a') + "… (10485760 bytes)");
  EXPECT_EQ(Excerpt("abcdef", 3), "abc… (6 bytes)");
}

TEST(TextTest, ExcerptNeverSplitsACharacter) {
  // "é" is two bytes: with room for 4 bytes, "aé" fits and the next "é" does not.
  EXPECT_EQ(Excerpt("a\xc3\xa9\xc3\xa9", 4), "a\xc3\xa9… (5 bytes)");
  EXPECT_TRUE(IsValidUtf8(Excerpt("\xf0\x9f\x8e\x89\xf0\x9f\x8e\x89", 6)));
}

TEST(TextTest, ExcerptEscapesControlBytesAndInvalidUtf8) {
  EXPECT_EQ(Excerpt(std::string("a\0b\n\t\r\x7f", 7)), "a\\x00b\\n\\t\\r\\x7f");
  EXPECT_EQ(Excerpt("\xff\xc3(\xed\xa0\x80"), "\\xff\\xc3(\\xed\\xa0\\x80");
  std::string zeros(1024 * 1024, '\0');
  std::string e = Excerpt(zeros);
  EXPECT_LE(e.size(), 4 * kMaxExcerptBytes + 32);
  EXPECT_TRUE(e.starts_with("\\x00\\x00")) << e;
  EXPECT_TRUE(e.ends_with("… (1048576 bytes)")) << e;
}

TEST(TextTest, BriefJsonErrorDropsTheTagAndCutsTheToken) {
  EXPECT_EQ(BriefJsonError("[json.exception.type_error.302] type must be string, but is number"),
            "type must be string, but is number");
  std::string what =
      "[json.exception.parse_error.101] parse error at line 1, column 10485761: syntax error "
      "while parsing value - invalid string: missing closing quote; last read: '\"" +
      std::string(10 * 1024 * 1024, 'x') + "'";
  std::string brief = BriefJsonError(what);
  EXPECT_LT(brief.size(), 600u) << brief.substr(0, 1000);
  EXPECT_TRUE(brief.starts_with("parse error at line 1, column 10485761: syntax error")) << brief;
  EXPECT_NE(brief.find("missing closing quote; last read: '\"xxx"), std::string::npos) << brief;
  EXPECT_TRUE(brief.ends_with("… (10485761 bytes)'")) << brief;
  EXPECT_LE(BriefJsonError(std::string(100000, 'y')).size(), 2 * kMaxExcerptBytes + 32);
}

TEST(TextTest, MeasuresJsonNesting) {
  EXPECT_EQ(JsonNestingDepth("1"), 0u);
  EXPECT_EQ(JsonNestingDepth(R"({"a":[1,{"b":[]}],"c":{}})"), 4u);
  // Brackets inside strings, escaped quotes included, do not count.
  EXPECT_EQ(JsonNestingDepth(R"({"a":"[[[{{\"[[[","b":["\\"]})"), 2u);
  std::string deep(1000000, '[');
  EXPECT_EQ(JsonNestingDepth(deep), kMaxJsonNesting + 1);
  EXPECT_EQ(JsonNestingDepth(deep, 3), 4u);
  EXPECT_EQ(JsonNestingDepth("]]]}}[", 3), 1u);
}

}  // namespace
}  // namespace ch
