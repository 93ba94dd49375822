#include "api/response_cache.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <string>
#include <thread>
#include <vector>

namespace ch {
namespace {

std::string Gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  std::string out;
  char buf[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END);
  inflateEnd(&z);
  return out;
}

std::string Json(size_t n) {
  std::string s = "[";
  for (size_t i = 0; i < n; ++i) s += "{\"campaign_id\":" + std::to_string(i) + ",\"name\":\"x\"},";
  s.back() = ']';
  return s;
}

TEST(PreferredCodingTest, BrotliThenGzipThenIdentityHonouringQZero) {
  EXPECT_EQ(PreferredCoding(""), ContentCoding::kIdentity);
  EXPECT_EQ(PreferredCoding("identity"), ContentCoding::kIdentity);
  EXPECT_EQ(PreferredCoding("gzip"), ContentCoding::kGzip);
  EXPECT_EQ(PreferredCoding("gzip, deflate, br"), ContentCoding::kBrotli);
  EXPECT_EQ(PreferredCoding("GZIP;q=0.5 , br;q=0"), ContentCoding::kGzip);
  EXPECT_EQ(PreferredCoding("br;q=0.000, gzip; q = 0"), ContentCoding::kIdentity);
  EXPECT_EQ(PreferredCoding("br;q=0.001"), ContentCoding::kBrotli);
  EXPECT_EQ(PreferredCoding("*"), ContentCoding::kBrotli);
  EXPECT_EQ(PreferredCoding("x-gzip;q"), ContentCoding::kGzip);
  EXPECT_EQ(PreferredCoding(";;,,;q=,"), ContentCoding::kIdentity);
  EXPECT_EQ(ContentCodingName(ContentCoding::kBrotli), "br");
}

TEST(CompressTest, GzipRoundTripsAndShrinksJson) {
  std::string body = Json(2000);
  std::string gz = Compress(ContentCoding::kGzip, body);
  EXPECT_LT(gz.size(), body.size() / 4);
  EXPECT_EQ(Gunzip(gz), body);
  EXPECT_EQ(Gunzip(Compress(ContentCoding::kGzip, "")), "");
  std::string br = Compress(ContentCoding::kBrotli, body);
  EXPECT_FALSE(br.empty());
  EXPECT_LT(br.size(), body.size() / 4);
  EXPECT_EQ(Compress(ContentCoding::kIdentity, body), body);
}

TEST(ResponseCacheTest, KeepsBodiesWithTheirValidityAndCompressesOnce) {
  ResponseCache cache(1 << 20);
  EXPECT_EQ(cache.Find("a"), nullptr);
  auto put = cache.Put("a", Json(100), "v1");
  auto found = cache.Find("a");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found, put);
  EXPECT_EQ(found->validity(), "v1");
  EXPECT_EQ(found->Get(ContentCoding::kIdentity), Json(100));
  const std::string& gz = found->Get(ContentCoding::kGzip);
  EXPECT_EQ(&gz, &found->Get(ContentCoding::kGzip)) << "made once";
  EXPECT_EQ(found->Actual(ContentCoding::kGzip), ContentCoding::kGzip);
  EXPECT_EQ(Gunzip(gz), Json(100));
  size_t before = cache.stats().bytes;
  cache.Served("a", *found, ContentCoding::kGzip);
  cache.Served("a", *found, ContentCoding::kGzip);
  EXPECT_EQ(cache.stats().bytes, before + gz.size()) << "counted once";
  // Replacing an entry (a new validity) frees the old one's bytes.
  cache.Put("a", Json(10), "v2");
  EXPECT_EQ(cache.Find("a")->validity(), "v2");
  EXPECT_EQ(cache.stats().entries, 1);
  EXPECT_LT(cache.stats().bytes, before);
  // The old entry stays usable by whoever holds it.
  EXPECT_EQ(found->Get(ContentCoding::kIdentity), Json(100));
}

TEST(ResponseCacheTest, MemoryIsBoundedLeastRecentlyUsedFirst) {
  const std::string body(10000, 'x');
  ResponseCache cache(45000);
  cache.Put("a", body, "");
  cache.Put("b", body, "");
  cache.Put("c", body, "");
  ASSERT_NE(cache.Find("a"), nullptr);  // a is now the most recent
  cache.Put("d", body, "");
  cache.Put("e", body, "");
  EXPECT_LE(cache.stats().bytes, 45000u);
  EXPECT_NE(cache.Find("a"), nullptr);
  EXPECT_EQ(cache.Find("b"), nullptr);
  EXPECT_NE(cache.Find("e"), nullptr);
  // Too big for the cache: served, not kept.
  auto big = cache.Put("big", std::string(20000, 'y'), "");
  EXPECT_EQ(big->Get(ContentCoding::kIdentity).size(), 20000u);
  EXPECT_EQ(cache.Find("big"), nullptr);
}

TEST(ResponseCacheTest, ConcurrentReadersGetOneCompressedForm) {
  ResponseCache cache;
  auto body = cache.Put("k", Json(3000), "");
  std::vector<const std::string*> seen(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < seen.size(); ++i) {
    threads.emplace_back([&, i] {
      auto b = cache.Find("k");
      seen[i] = &b->Get(i % 2 ? ContentCoding::kGzip : ContentCoding::kBrotli);
      cache.Served("k", *b, i % 2 ? ContentCoding::kGzip : ContentCoding::kBrotli);
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 2; i < seen.size(); ++i) EXPECT_EQ(seen[i], seen[i % 2]);
  EXPECT_NE(seen[0], seen[1]);
}

}  // namespace
}  // namespace ch
