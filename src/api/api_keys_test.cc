// The API key file and keyring: what a file holds (hashes only), authentication outcomes, bad
// files refused with the line named, concurrent creates that lose no key, reloads.
#include "api/api_keys.h"

#include <sys/stat.h>

#include <fstream>
#include <iterator>
#include <set>
#include <thread>
#include <vector>

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;

const Timestamp kNow = FromUnixMicros(1'780'000'000'000'000);

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(ApiKeysTest, CreateRecordsOnlyTheHashAndTheSecretAuthenticates) {
  TempDir dir;
  const std::string file = dir.File("keys.jsonl");
  auto made = CreateApiKey(file, 7, kNow);
  ASSERT_OK(made);
  EXPECT_EQ(made->key.customer_id, 7);
  EXPECT_FALSE(made->key.service());
  EXPECT_EQ(made->key.actor(), "api:" + made->key.id);
  EXPECT_TRUE(made->secret.starts_with("chk_" + made->key.id + "_")) << made->secret;
  EXPECT_EQ(made->secret.size(), 4u + 17u + 1u + 64u);

  std::string text = ReadAll(file);
  EXPECT_THAT(text, HasSubstr(R"({"format":"campaign-history-api-keys","version":1})"));
  EXPECT_THAT(text, HasSubstr(Sha256Hex(made->secret)));
  EXPECT_THAT(text, Not(HasSubstr(made->secret.substr(22))));  // the random part
  struct stat st {};
  ASSERT_EQ(stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto ring = ApiKeyring::Load(file);
  ASSERT_OK(ring);
  ApiKeyring::Refusal why;
  auto key = (*ring)->Authenticate(made->secret, &why);
  ASSERT_TRUE(key.has_value()) << why.status.ToString();
  EXPECT_EQ(key->id, made->key.id);
  EXPECT_EQ(key->customer_id, 7);
}

TEST(ApiKeysTest, ServiceKeysHaveNoCustomerAndSecretsDiffer) {
  TempDir dir;
  const std::string file = dir.File("keys.jsonl");
  auto a = CreateApiKey(file, std::nullopt, kNow);
  auto b = CreateApiKey(file, std::nullopt, kNow);
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_TRUE(a->key.service());
  EXPECT_NE(a->key.id, b->key.id);
  EXPECT_NE(a->secret, b->secret);
  auto keys = ReadApiKeyFile(file);
  ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_TRUE((*keys)[0].service());
  EXPECT_THAT(ReadAll(file), HasSubstr(R"("customer_id":null)"));
}

TEST(ApiKeysTest, AuthenticateRefusesWithTheReasonAndNeverEchoesTheSecret) {
  TempDir dir;
  const std::string file = dir.File("keys.jsonl");
  auto made = CreateApiKey(file, 3, kNow);
  ASSERT_OK(made);
  auto ring = ApiKeyring::Load(file);
  ASSERT_OK(ring);
  std::string wrong = made->secret;
  wrong.back() = wrong.back() == '0' ? '1' : '0';
  std::string other_id = made->secret;
  other_id[5] = other_id[5] == '0' ? '1' : '0';
  struct Case {
    std::string secret, reason, key_id;
  };
  for (const Case& c : std::vector<Case>{{"", "malformed", ""},
                                         {"hunter2", "malformed", ""},
                                         {made->secret + "x", "malformed", ""},
                                         {"' OR 1=1 --", "malformed", ""},
                                         {other_id, "unknown_key", ""},
                                         {wrong, "wrong_secret", made->key.id}}) {
    ApiKeyring::Refusal why;
    EXPECT_FALSE((*ring)->Authenticate(c.secret, &why).has_value()) << c.secret;
    EXPECT_EQ(why.reason, c.reason) << c.secret;
    EXPECT_EQ(why.key_id, c.key_id) << c.secret;
    EXPECT_EQ(why.status.code(), StatusCode::kUnauthenticated);
    if (!c.secret.empty()) {
      EXPECT_THAT(why.status.message(), Not(HasSubstr(c.secret)));
    }
  }
}

TEST(ApiKeysTest, RevokedKeysAuthenticateNothing) {
  TempDir dir;
  const std::string file = dir.File("keys.jsonl");
  auto made = CreateApiKey(file, 3, kNow);
  ASSERT_OK(made);
  ASSERT_OK(RevokeApiKey(file, made->key.id, kNow));
  EXPECT_EQ(RevokeApiKey(file, made->key.id, kNow).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(RevokeApiKey(file, "k0000000000000000", kNow).code(), StatusCode::kNotFound);
  auto ring = ApiKeyring::Load(file);
  ASSERT_OK(ring);
  ApiKeyring::Refusal why;
  EXPECT_FALSE((*ring)->Authenticate(made->secret, &why).has_value());
  EXPECT_EQ(why.reason, "revoked");
}

TEST(ApiKeysTest, ConcurrentCreatesLoseNoKey) {
  TempDir dir;
  const std::string file = dir.File("keys.jsonl");
  constexpr int kThreads = 6, kEach = 5;
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> ids(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto made = CreateApiKey(file, t + 1, kNow);
        EXPECT_OK(made);
        if (made.ok()) ids[t].push_back(made->key.id);
      }
    });
  }
  for (auto& t : threads) t.join();
  auto keys = ReadApiKeyFile(file);
  ASSERT_OK(keys);
  std::set<std::string> in_file;
  for (const ApiKey& k : *keys) in_file.insert(k.id);
  EXPECT_EQ(in_file.size(), static_cast<size_t>(kThreads * kEach));
  for (const auto& list : ids) {
    for (const std::string& id : list) EXPECT_TRUE(in_file.contains(id)) << id;
  }
}

TEST(ApiKeysTest, BadFilesAreRefusedNamingTheLine) {
  TempDir dir;
  const std::string good_key =
      R"({"id":"k0123456789abcdef","customer_id":7,"service":false,"sha256":")" +
      std::string(64, 'a') + R"(","created_at":"2026-01-01T00:00:00.000000Z","revoked_at":null})";
  const std::string header = R"({"format":"campaign-history-api-keys","version":1})";
  struct Case {
    std::string text, message;
  };
  for (const Case& c : std::vector<Case>{
           {"", "empty; not an API key file"},
           {"{\"id\":1}\n", "line 1: not an API key file"},
           {R"({"format":"campaign-history-api-keys","version":2})", "version 2 is not supported"},
           {header + "\n{not json\n", "line 2: malformed JSON"},
           {header + "\n" + good_key + "\n" + good_key + "\n",
            "line 3: key k0123456789abcdef appears twice"},
           {header + "\n" + R"({"id":"k0123456789abcdef","secret":"x"})",
            "line 2: secret: unknown field"},
           {header + "\n" + R"({"id":"../../etc/passwd","service":true,"sha256":"x"})",
            "line 2: id: must be"},
       }) {
    const std::string file = dir.File("bad.jsonl");
    std::ofstream(file, std::ios::trunc) << c.text;
    auto keys = ReadApiKeyFile(file);
    EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(keys.status().message(), HasSubstr(c.message)) << c.text;
    // A create on a bad file refuses too and leaves it as it was.
    EXPECT_FALSE(CreateApiKey(file, 1, kNow).ok());
    EXPECT_EQ(ReadAll(file), c.text);
  }
  EXPECT_EQ(ReadApiKeyFile(dir.File("missing.jsonl")).status().code(), StatusCode::kNotFound);
}

TEST(ApiKeysTest, UnwritablePlacesAndBadCustomersAreRefused) {
  TempDir dir;
  EXPECT_EQ(CreateApiKey(dir.File("no/such/dir/keys.jsonl"), 1, kNow).status().code(),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(CreateApiKey(dir.File("keys.jsonl"), 0, kNow).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateApiKey(dir.File("keys.jsonl"), -4, kNow).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadApiKeyFile(dir.File("keys.jsonl")).status().code(), StatusCode::kNotFound);
}

TEST(ApiKeysTest, AKeyringSeesKeysCreatedAfterItWasLoaded) {
  TempDir dir;
  const std::string file = dir.File("keys.jsonl");
  ASSERT_OK(CreateApiKey(file, 1, kNow));
  auto ring = ApiKeyring::Load(file);
  ASSERT_OK(ring);
  EXPECT_EQ((*ring)->size(), 1u);
  auto later = CreateApiKey(file, 2, kNow);
  ASSERT_OK(later);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  ApiKeyring::Refusal why;
  EXPECT_TRUE((*ring)->Authenticate(later->secret, &why).has_value()) << why.status.ToString();
  EXPECT_EQ((*ring)->size(), 2u);
  // A broken file keeps the keys loaded before.
  std::ofstream(file, std::ios::trunc) << "garbage\n";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_TRUE((*ring)->Authenticate(later->secret, &why).has_value());
}

}  // namespace
}  // namespace ch
