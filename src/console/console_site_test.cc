#include "console/console_site.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "console/console_assets.h"

namespace ch {
namespace {

std::map<std::string, std::string> Headers(const ConsoleResponse& r) {
  return {r.headers.begin(), r.headers.end()};
}

TEST(ConsoleAssetsTest, EmbedsTheIndexAndItsScripts) {
  const ConsoleAsset* index = FindConsoleAsset("index.html");
  ASSERT_NE(index, nullptr);
  EXPECT_NE(index->body().find("<title>"), std::string_view::npos);
  EXPECT_NE(FindConsoleAsset("app.js"), nullptr);
  EXPECT_NE(FindConsoleAsset("console.css"), nullptr);
}

TEST(ConsoleAssetsTest, AssetsAreSortedAndFoundByExactPath) {
  auto all = AllConsoleAssets();
  ASSERT_FALSE(all.empty());
  for (size_t i = 1; i < all.size(); ++i) {
    EXPECT_LT(std::string_view(all[i - 1].path), std::string_view(all[i].path));
  }
  for (const ConsoleAsset& a : all) EXPECT_EQ(FindConsoleAsset(a.path), &a) << a.path;
  EXPECT_EQ(FindConsoleAsset(""), nullptr);
  EXPECT_EQ(FindConsoleAsset("/index.html"), nullptr);
  EXPECT_EQ(FindConsoleAsset("index.htm"), nullptr);
}

TEST(ConsoleSiteTest, RootServesTheIndexWithSecurityHeaders) {
  ConsoleResponse r = ServeConsole("/console/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(r.body, FindConsoleAsset("index.html")->body());
  auto h = Headers(r);
  EXPECT_NE(h["Content-Security-Policy"].find("default-src 'self'"), std::string::npos);
  EXPECT_NE(h["Content-Security-Policy"].find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_EQ(h["Content-Security-Policy"].find("unsafe-inline"), std::string::npos);
  EXPECT_EQ(h["X-Content-Type-Options"], "nosniff");
  EXPECT_EQ(h["Referrer-Policy"], "no-referrer");
  EXPECT_EQ(h["X-Frame-Options"], "DENY");
}

TEST(ConsoleSiteTest, BarePrefixRedirectsToTheSlash) {
  ConsoleResponse r = ServeConsole("/console");
  EXPECT_EQ(r.status, 301);
  EXPECT_EQ(Headers(r)["Location"], "/console/");
}

TEST(ConsoleSiteTest, AssetsGetTheirContentType) {
  ConsoleResponse js = ServeConsole("/console/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(js.body, FindConsoleAsset("app.js")->body());
  EXPECT_EQ(ServeConsole("/console/console.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(Headers(js)["X-Content-Type-Options"], "nosniff");
}

TEST(ConsoleSiteTest, ViewsOfTheSinglePageGetTheIndex) {
  for (const char* path : {"/console/customers/2", "/console/customers/2/",
                           "/console/customers/1/compare", "/console/signin"}) {
    ConsoleResponse r = ServeConsole(path);
    EXPECT_EQ(r.status, 200) << path;
    EXPECT_EQ(r.body, FindConsoleAsset("index.html")->body()) << path;
  }
}

TEST(ConsoleSiteTest, MissingFilesAndTraversalAre404WithHeaders) {
  for (const char* path :
       {"/console/nope.js", "/console/../etc/passwd", "/console/customers/../app.js",
        "/console/./app.js", "/console//app.js", "/console/customers/2/x.png", "/consolex"}) {
    ConsoleResponse r = ServeConsole(path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(Headers(r)["X-Content-Type-Options"], "nosniff") << path;
  }
}

TEST(ConsoleSiteTest, IsConsolePath) {
  EXPECT_TRUE(IsConsolePath("/console"));
  EXPECT_TRUE(IsConsolePath("/console/"));
  EXPECT_TRUE(IsConsolePath("/console/customers/2"));
  EXPECT_FALSE(IsConsolePath("/consoles"));
  EXPECT_FALSE(IsConsolePath("/v1/support/search"));
  EXPECT_FALSE(IsConsolePath("/"));
}

TEST(ConsoleSiteTest, ContentTypes) {
  EXPECT_EQ(ContentTypeFor("a.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeFor("a.png"), "image/png");
  EXPECT_EQ(ContentTypeFor("README"), "application/octet-stream");
}

}  // namespace
}  // namespace ch
