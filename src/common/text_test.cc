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

TEST(TextTest, Ellipsizes) {
  EXPECT_EQ(Ellipsize("hello", 10), "hello");
  EXPECT_EQ(Ellipsize("hello world", 5), "hello…");
  EXPECT_EQ(Ellipsize("caf\xc3\xa9!", 4), "caf\xc3\xa9…");
}

}  // namespace
}  // namespace ch
