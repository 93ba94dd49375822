// The support API over real HTTP (an in-process server on an ephemeral port) against the SQLite
// history that `replay` builds from the small workload: every route, its JSON equal to the CLI's
// --json for the same inputs, bearer-token auth, every error, hostile strings through every
// parameter, the OpenAPI document against the route table, and the metrics.
#include "api/support_api.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "common/time_util.h"
#include "history/as_of_cache.h"
#include "history/in_memory_history_store.h"
#include "history/sqlite_history_store.h"
#include "query/query_engine.h"
#include "query/render.h"
#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr const char* kToken = "support-test-token-0123456789";

// ---- tokens (no server) -------------------------------------------------------------------------

TEST(SupportTokensTest, FileHoldsHashesAndLabels) {
  std::string text = fmt::format("# comment\n\n{} alice\n  {}\n", SupportTokens::Hash(kToken),
                                 SupportTokens::Hash("another-token-abcdefgh"));
  Result<SupportTokens> t = SupportTokens::Parse(text, "f");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->size(), 2u);
  EXPECT_EQ(t->Check(kToken), std::optional<std::string>("alice"));
  EXPECT_EQ(t->Check("another-token-abcdefgh"), std::optional<std::string>(""));
  EXPECT_EQ(t->Check("support-test-token-012345678"), std::nullopt);
  EXPECT_EQ(t->Check(""), std::nullopt);
}

TEST(SupportTokensTest, PlainTokenInFileIsRefusedWithoutEchoingIt) {
  Result<SupportTokens> t = SupportTokens::Parse("# x\nmy-secret-token-value\n", "tokens.txt");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(t.status().message(), HasSubstr("tokens.txt line 2"));
  EXPECT_THAT(t.status().message(), ::testing::Not(HasSubstr("my-secret")));
}

TEST(SupportTokensTest, EnvHoldsPlainTokensOrHashes) {
  Result<SupportTokens> t = SupportTokens::ParseEnv(
      fmt::format("{}, {}", kToken, SupportTokens::Hash("zzzzzzzzzzzzzzzz")));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->Check(kToken));
  EXPECT_TRUE(t->Check("zzzzzzzzzzzzzzzz"));
  EXPECT_FALSE(SupportTokens::ParseEnv("short").ok());
}

TEST(SupportTokensTest, GeneratedTokensAreLongAndDistinct) {
  Result<std::string> a = SupportTokens::Generate();
  Result<std::string> b = SupportTokens::Generate();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 43u);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(SupportTokens::Hash("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(SupportApiStartTest, RefusesToStartWithoutTokens) {
  ::ch::testing::TempDir dir;
  auto store = SqliteHistoryStore::Open({.path = dir.File("h.db")});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  SupportApiServer server(**store, SystemClock::Default(), {});
  Status s = server.Start("127.0.0.1", 0);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("--support-tokens"));
}

// A kept (rendered) as-of answer is served only while it is what the engine would answer: it
// follows the completeness it reports, and an erased customer is refused, not served from memory.
TEST(SupportApiKeptAnswersTest, FollowCompletenessAndErasure) {
  InMemoryHistoryStore store;
  const Timestamp t0{std::chrono::seconds(1'790'000'000)};
  auto record = [&](int64_t campaign, int64_t seq, Timestamp at) {
    HistoryRecord r;
    r.customer_id = 1;
    r.campaign_id = campaign;
    r.version = 1;
    r.event_time = at;
    r.event_type = ChangeOp::kCreated;
    r.actor = "user:1";
    r.transaction_id = fmt::format("tx{}", seq);
    r.priority = campaign;
    r.snapshot = fmt::format(R"({{"id":{},"customer_id":1,"name":"c{}","status":"active"}})",
                             campaign, campaign);
    r.txn_seq = seq;
    r.txn_changes = 1;
    return r;
  };
  ASSERT_TRUE(store.Append(std::vector{record(7, 1, t0)}).ok());
  ASSERT_TRUE(store.Append(std::vector{record(8, 2, t0 + std::chrono::seconds(10))}).ok());
  SupportApiOptions options;
  ASSERT_TRUE(options.tokens.AddPlain("kept-answers-token-1234", "test").ok());
  SupportApiServer server(store, SystemClock::Default(), std::move(options));
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const Timestamp at = t0 + std::chrono::seconds(5);
  const std::string target = "/v1/support/customers/1/as-of?at=" +
                             httplib::detail::encode_query_param(FormatTimestamp(at));
  auto get = [&] {
    httplib::Client c("127.0.0.1", server.port());
    auto r = c.Get(target, {{"Authorization", "Bearer kept-answers-token-1234"}});
    EXPECT_TRUE(r);
    return r ? std::pair(r->status, r->body) : std::pair(0, std::string());
  };
  auto engine = [&] {
    QueryEngine e(store);
    auto r = e.AsOf(1, at);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? RenderAsOfJson(*r) : std::string();
  };
  const std::string first = engine();
  EXPECT_THAT(first, HasSubstr("\"c7\""));
  EXPECT_EQ(get(), std::pair(200, first));
  EXPECT_EQ(get(), std::pair(200, first)) << "kept";
  {
    httplib::Client c("127.0.0.1", server.port());
    auto m = c.Get("/metrics");
    ASSERT_TRUE(m);
    EXPECT_THAT(m->body, HasSubstr("campaign_history_support_kept_answer_hits_total 1\n"));
    EXPECT_THAT(m->body, HasSubstr("campaign_history_support_kept_answers 1\n"));
  }
  // complete_through moves: the kept body would report the old one.
  ASSERT_TRUE(store.RecordHeartbeat({2, t0 + std::chrono::seconds(100)}).ok());
  const std::string later = engine();
  ASSERT_NE(later, first);
  EXPECT_EQ(get(), std::pair(200, later));
  EXPECT_EQ(get(), std::pair(200, later));
  ASSERT_TRUE(store.EraseCustomer(1, "test").ok());
  EXPECT_EQ(get().first, 404) << "an erased customer's answer is not served from memory";
  server.Stop();
}

// ---- the server over the small workload's history -----------------------------------------------

struct Reply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  Json JsonBody() const { return Json::parse(body, nullptr, false); }
};

class SupportApiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::ch::testing::BinaryDir().empty()) return;
    dir_ = new ::ch::testing::TempDir();
    data_ = dir_->File("data");
    std::string ops = dir_->File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(ops);
    auto r = ::ch::testing::RunCommand(
        fmt::format("'{}' --data '{}' replay --ops '{}' --wait --quiet", Bin(), data_, ops));
    ASSERT_EQ(r.code, 0) << r.output;
    auto store = SqliteHistoryStore::Open({.path = data_ + "/history.db", .read_only = true});
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = store->release();
    SupportApiOptions options;
    ASSERT_TRUE(options.tokens.AddPlain(kToken, "test").ok());
    server_ = new SupportApiServer(*store_, SystemClock::Default(), std::move(options));
    Status s = server_->Start("127.0.0.1", 0);
    ASSERT_TRUE(s.ok()) << s.ToString();
    auto stats = store_->Stats();
    ASSERT_TRUE(stats.ok());
    first_ = *stats->first_event;
    last_ = *stats->last_event;
    records_ = stats->records;
  }
  static void TearDownTestSuite() {
    if (server_) server_->Stop();
    delete server_;
    delete store_;
    delete dir_;
    server_ = nullptr;
    store_ = nullptr;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  }

  static std::string Bin() { return ::ch::testing::BinaryDir() + "/campaign-history"; }

  // A moment in the middle of the history, RFC 3339.
  static std::string Mid() { return FormatTimestamp(first_ + (last_ - first_) / 2); }

  static Reply Send(const std::string& method, const std::string& target,
                    std::optional<std::string> token = kToken) {
    httplib::Client c("127.0.0.1", server_->port());
    httplib::Headers h;
    if (token) h.emplace("Authorization", "Bearer " + *token);
    auto send = [&]() -> httplib::Result {
      if (method == "GET") return c.Get(target, h);
      if (method == "HEAD") return c.Head(target, h);
      if (method == "POST") return c.Post(target, h, "{}", "application/json");
      if (method == "DELETE") return c.Delete(target, h);
      return c.Options(target, h);
    };
    httplib::Result r = send();
    Reply out;
    if (!r) {
      ADD_FAILURE() << method << " " << target << ": no answer";
      return out;
    }
    out.status = r->status;
    out.body = r->body;
    out.headers = r->headers;
    return out;
  }
  static Reply Get(const std::string& target) { return Send("GET", target); }

  // The CLI's stdout for `args` (with --json), which must succeed: byte for byte what the API
  // answers (the renderings end with a newline).
  static std::string Cli(const std::string& args) {
    auto r = ::ch::testing::RunCommand(
        fmt::format("{{ '{}' --data '{}' {} --json 2>/dev/null; }}", Bin(), data_, args));
    EXPECT_EQ(r.code, 0) << args << "\n" << r.output;
    return r.output;
  }

  // Expect GET `target` to answer 200 with exactly the CLI's output for `cli_args`. The CLI runs
  // first: it brings the history up to date (a capture heartbeat moves complete_through), and the
  // API then answers from the same state.
  static Reply ExpectSameAsCli(const std::string& target, const std::string& cli_args) {
    std::string cli = Cli(cli_args);
    Reply r = Get(target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body.substr(0, 500);
    if (r.body != cli) {
      std::ofstream(dir_->File("api.json")) << r.body;
      std::ofstream(dir_->File("cli.json")) << cli;
      auto d = ::ch::testing::RunCommand(
          fmt::format("diff '{}' '{}' | head -20", dir_->File("cli.json"), dir_->File("api.json")));
      ADD_FAILURE() << "diff cli api:\n" << d.output;
    }
    EXPECT_TRUE(r.body == cli) << target << " differs from the CLI's " << cli_args
                               << "\nAPI: " << r.body.substr(0, 600)
                               << "\nCLI: " << cli.substr(0, 600);
    return r;
  }

  // Expect an error answer with this status, code, and a message containing `names`.
  static void ExpectError(const Reply& r, int status, const std::string& code,
                          const std::string& names, const std::string& what) {
    EXPECT_EQ(r.status, status) << what << ": " << r.body.substr(0, 300);
    Json j = r.JsonBody();
    ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r.body.substr(0, 300);
    EXPECT_EQ(j["error"]["code"], code) << what;
    EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr(names)) << what;
    EXPECT_EQ(r.Header("Content-Type"), "application/json") << what;
  }

  static ::ch::testing::TempDir* dir_;
  static std::string data_;
  static SqliteHistoryStore* store_;
  static SupportApiServer* server_;
  static Timestamp first_, last_;
  static int64_t records_;
};

::ch::testing::TempDir* SupportApiTest::dir_ = nullptr;
std::string SupportApiTest::data_;
SqliteHistoryStore* SupportApiTest::store_ = nullptr;
SupportApiServer* SupportApiTest::server_ = nullptr;
Timestamp SupportApiTest::first_{};
Timestamp SupportApiTest::last_{};
int64_t SupportApiTest::records_ = 0;

std::string Esc(const std::string& s) { return httplib::detail::encode_query_param(s); }

TEST_F(SupportApiTest, AsOfEqualsTheCliJsonWholePagedAndFiltered) {
  std::string at = Mid();
  Reply whole = ExpectSameAsCli("/v1/support/customers/1/as-of?at=" + Esc(at),
                                fmt::format("as-of --customer 1 --at '{}'", at));
  EXPECT_EQ(whole.Header("Content-Type"), "application/json");
  Reply page = ExpectSameAsCli(fmt::format("/v1/support/customers/1/as-of?at={}&limit=10", Esc(at)),
                               fmt::format("as-of --customer 1 --at '{}' --limit 10", at));
  Json j = page.JsonBody();
  ASSERT_TRUE(j.contains("next_cursor")) << page.body;
  std::string cursor = j["next_cursor"].get<std::string>();
  ASSERT_FALSE(cursor.empty());
  ExpectSameAsCli(fmt::format("/v1/support/customers/1/as-of?cursor={}&limit=10", Esc(cursor)),
                  fmt::format("as-of --customer 1 --cursor '{}' --limit 10", cursor));
  Reply filtered = ExpectSameAsCli(
      fmt::format("/v1/support/customers/1/as-of?at={}&status=active&status=paused&name=a",
                  Esc(at)),
      fmt::format("as-of --customer 1 --at '{}' --status active,paused --name a", at));
  Reply comma =
      Get(fmt::format("/v1/support/customers/1/as-of?at={}&status=active,paused&name=a", Esc(at)));
  EXPECT_EQ(comma.body, filtered.body);
}

TEST_F(SupportApiTest, EveryOtherRouteEqualsTheCliJson) {
  std::string from = FormatTimestamp(first_);
  std::string mid = Mid();
  std::string to = FormatTimestamp(last_);
  struct Case {
    std::string target;
    std::string cli;
  };
  std::vector<Case> cases = {
      {fmt::format("/v1/support/campaigns/3/log?from={}&to={}", Esc(from), Esc(to)),
       fmt::format("log --campaign 3 --from '{}' --to '{}'", from, to)},
      {fmt::format("/v1/support/campaigns/3/log?to={}&shifts=hide", Esc(mid)),
       fmt::format("log --campaign 3 --to '{}' --shifts hide", mid)},
      {fmt::format("/v1/support/campaigns/3/diff?from=1&to={}", Esc(to)),
       fmt::format("diff --campaign 3 --from 1 --to '{}'", to)},
      {fmt::format("/v1/support/campaigns/3/diff?from={}&to=2", Esc(from)),
       fmt::format("diff --campaign 3 --from '{}' --to 2", from)},
      {fmt::format("/v1/support/campaigns/3/blame?at={}", Esc(mid)),
       fmt::format("blame --campaign 3 --at '{}'", mid)},
      {fmt::format("/v1/support/customers/1/timeline?from={}&to={}&limit=5", Esc(from), Esc(mid)),
       fmt::format("timeline --customer 1 --from '{}' --to '{}' --limit 5", from, mid)},
      {fmt::format("/v1/support/customers/2/timeline?from={}&to={}&shifts=show", Esc(from),
                   Esc(to)),
       fmt::format("timeline --customer 2 --from '{}' --to '{}' --shifts show", from, to)},
      {"/v1/support/search?q=1", "search 1"},
      {"/v1/support/search?q=Campaign&limit=3", "search Campaign --limit 3"},
  };
  for (const Case& c : cases) {
    Reply r = ExpectSameAsCli(c.target, c.cli);
    // Every answer says how complete the history is.
    EXPECT_TRUE(r.JsonBody().contains("complete_through")) << c.target << ": " << r.body;
  }
  // A timeline page continues with its cursor.
  Reply page = Get(
      fmt::format("/v1/support/customers/1/timeline?from={}&to={}&limit=5", Esc(from), Esc(to)));
  std::string cursor = page.JsonBody().value("next_cursor", "");
  ASSERT_FALSE(cursor.empty()) << page.body;
  std::string target_next =
      fmt::format("/v1/support/customers/1/timeline?from={}&to={}&limit=5&cursor={}", Esc(from),
                  Esc(to), Esc(cursor));
  ExpectSameAsCli(target_next, fmt::format("timeline --customer 1 --from '{}' --to '{}' --limit 5 "
                                           "--cursor '{}'",
                                           from, to, cursor));
}

// The as-of cache the support role puts in front of the history: final moments only.
TEST_F(SupportApiTest, AsOfCacheRemembersOnlyFinalMoments) {
  AsOfCachingHistoryStore cached(*store_);
  auto completeness = store_->GetCompleteness();
  ASSERT_TRUE(completeness.ok() && completeness->complete_through);
  Timestamp mid = first_ + (last_ - first_) / 2;
  auto direct = store_->AsOf(1, mid);
  auto first = cached.AsOf(1, mid);
  auto second = cached.AsOf(1, mid);
  ASSERT_TRUE(direct.ok() && first.ok() && second.ok());
  EXPECT_EQ(cached.hits(), 1);
  ASSERT_EQ(second->size(), direct->size());
  for (size_t i = 0; i < direct->size(); ++i) {
    EXPECT_EQ((*second)[i].snapshot, (*direct)[i].snapshot);
    EXPECT_EQ((*second)[i].version, (*direct)[i].version);
  }
  Timestamp later = *completeness->complete_through + std::chrono::hours(1);
  ASSERT_TRUE(cached.AsOf(1, later).ok());
  ASSERT_TRUE(cached.AsOf(1, later).ok());
  EXPECT_EQ(cached.hits(), 1) << "a moment past complete_through may still change";
}

// A final as-of answer is rendered once and then served as kept, in every coding a client
// accepts (made once each): always the bytes the CLI prints.
TEST_F(SupportApiTest, KeptAsOfAnswersEqualTheCliInEveryCoding) {
  std::string at = Mid();
  std::string target = "/v1/support/customers/1/as-of?at=" + Esc(at) + "&status=active&limit=3";
  std::string cli = Cli(fmt::format("as-of --customer 1 --at '{}' --status active --limit 3", at));
  for (const char* coding : {"", "", "gzip", "gzip, deflate, br", "br;q=0, gzip", "gzip;q=0"}) {
    httplib::Client c("127.0.0.1", server_->port());
    httplib::Headers h = {{"Authorization", std::string("Bearer ") + kToken}};
    if (*coding) h.emplace("Accept-Encoding", coding);
    auto r = c.Get(target, h);
    ASSERT_TRUE(r) << coding;
    EXPECT_EQ(r->status, 200) << coding;
    EXPECT_EQ(r->body, cli) << coding;
    std::string want =
        std::string(coding) == "gzip, deflate, br"                                       ? "br"
        : std::string(coding).find("gzip") == 0 || std::string(coding) == "br;q=0, gzip" ? "gzip"
                                                                                         : "";
    if (std::string(coding) == "gzip;q=0") want = "";
    EXPECT_EQ(r->get_header_value("Content-Encoding"), want) << coding;
    EXPECT_EQ(r->get_header_value("Vary"), "Accept-Encoding") << coding;
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json") << coding;
  }
  Reply head = Send("HEAD", target);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.Header("Content-Length"), std::to_string(cli.size()));
  // The next page of the kept answer continues it, as the CLI's does.
  std::string cursor = Json::parse(cli).value("next_cursor", "");
  ASSERT_FALSE(cursor.empty());
  ExpectSameAsCli(
      fmt::format("/v1/support/customers/1/as-of?cursor={}&status=active&limit=3", Esc(cursor)),
      fmt::format("as-of --customer 1 --cursor '{}' --status active --limit 3", cursor));
  // An answer that may still change is not kept: each one reports the completeness of its moment.
  Reply now1 = Get("/v1/support/customers/1/as-of?at=now&limit=1");
  EXPECT_EQ(now1.status, 200);
  EXPECT_EQ(now1.Header("Vary"), "");
}

TEST_F(SupportApiTest, AnswersSayHowCompleteTheHistoryIs) {
  Json j = Get("/v1/support/customers/1/as-of?at=" + Esc(Mid())).JsonBody();
  ASSERT_TRUE(j.contains("complete_through"));
  EXPECT_TRUE(j["complete_through"].is_string());
  EXPECT_EQ(j["complete"], true);
  EXPECT_TRUE(j.contains("answered_at"));
}

TEST_F(SupportApiTest, HeadAndOptionsWork) {
  Reply head = Send("HEAD", "/v1/support/search?q=1");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  Reply options = Send("OPTIONS", "/v1/support/search");
  EXPECT_EQ(options.status, 204);
  EXPECT_EQ(options.Header("Allow"), "GET, HEAD, OPTIONS");
}

TEST_F(SupportApiTest, NoOrWrongTokenIs401WithBearerChallenge) {
  std::string target = "/v1/support/customers/1/as-of?at=" + Esc(Mid());
  Reply none = Send("GET", target, std::nullopt);
  ExpectError(none, 401, "UNAUTHENTICATED", "Authorization", "no token");
  EXPECT_EQ(none.Header("WWW-Authenticate"), "Bearer realm=\"campaign-history support\"");
  Reply wrong = Send("GET", target, std::string("support-test-token-0123456780"));
  ExpectError(wrong, 401, "UNAUTHENTICATED", "not valid", "wrong token");
  EXPECT_THAT(wrong.Header("WWW-Authenticate"), HasSubstr("Bearer"));
  EXPECT_THAT(wrong.Header("WWW-Authenticate"), HasSubstr("invalid_token"));
  EXPECT_THAT(wrong.body, ::testing::Not(HasSubstr("0123456780")));
  // Not a bearer scheme; an empty token.
  {
    httplib::Client c("127.0.0.1", server_->port());
    auto r = c.Get(target, {{"Authorization", std::string("Basic ") + kToken}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    r = c.Get(target, {{"Authorization", "Bearer "}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    r = c.Get(target, {{"Authorization", std::string("bearer ") + kToken}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200) << "the scheme is case-insensitive";
  }
  // Unknown routes under /v1/support say nothing without a token.
  ExpectError(Send("GET", "/v1/support/nothing-here", std::nullopt), 401, "UNAUTHENTICATED",
              "Authorization", "unknown route, no token");
  // The operational routes need none.
  EXPECT_EQ(Send("GET", "/openapi.json", std::nullopt).status, 200);
  EXPECT_EQ(Send("GET", "/healthz", std::nullopt).status, 200);
  EXPECT_EQ(Send("GET", "/metrics", std::nullopt).status, 200);
}

TEST_F(SupportApiTest, BadParametersAre400NamingThem) {
  std::string at = "at=" + Esc(Mid());
  struct Case {
    std::string target;
    std::string names;
  };
  std::vector<Case> cases = {
      {"/v1/support/customers/abc/as-of?" + at, "customer"},
      {"/v1/support/customers/-1/as-of?" + at, "customer"},
      {"/v1/support/customers/0/as-of?" + at, "customer"},
      {"/v1/support/customers/99999999999999999999/as-of?" + at, "customer"},
      {"/v1/support/customers/1/as-of", "at: required"},
      {"/v1/support/customers/1/as-of?at=yesterdayish", "at:"},
      {"/v1/support/customers/1/as-of?at=", "at:"},
      {"/v1/support/customers/1/as-of?" + at + "&cursor=garbage", "cursor"},
      {"/v1/support/customers/1/as-of?" + at + "&limit=0", "limit"},
      {"/v1/support/customers/1/as-of?" + at + "&limit=ten", "limit"},
      {"/v1/support/customers/1/as-of?" + at + "&limit=1000000", "limit"},
      {"/v1/support/customers/1/as-of?" + at + "&status=live", "status"},
      {"/v1/support/customers/1/as-of?" + at + "&at=now", "at: give the parameter once"},
      {"/v1/support/customers/1/as-of?" + at + "&access_token=x", "'access_token': unknown"},
      {"/v1/support/customers/1/timeline", "from: required"},
      {"/v1/support/customers/1/timeline?from=2026-01-02&to=2026-01-01", "from:"},
      {"/v1/support/customers/1/timeline?from=2026-01-01&cursor=Zm9v", "cursor"},
      {"/v1/support/customers/1/timeline?from=2026-01-01&shifts=all", "shifts"},
      {"/v1/support/campaigns/x/log", "id"},
      {"/v1/support/campaigns/3/log?from=soon", "from:"},
      {"/v1/support/campaigns/3/log?shifts=fold", "shifts"},
      {"/v1/support/campaigns/3/diff", "from: required"},
      {"/v1/support/campaigns/3/diff?from=v0", "from:"},
      {"/v1/support/campaigns/3/diff?from=1&to=later", "to:"},
      {"/v1/support/campaigns/3/blame?at=tomorrow", "at:"},
      {"/v1/support/campaigns/3/blame?from=1", "'from': unknown"},
      {"/v1/support/search", "q: required"},
      {"/v1/support/search?q=1&limit=-5", "limit"},
  };
  for (const Case& c : cases)
    ExpectError(Get(c.target), 400, "INVALID_ARGUMENT", c.names, c.target);
}

TEST_F(SupportApiTest, UnknownRoutesAre404AndOtherMethods405) {
  ExpectError(Get("/v1/support/customers/1"), 404, "NOT_FOUND", "no route", "short path");
  ExpectError(Get("/v1/support/customers/1/as-of/extra"), 404, "NOT_FOUND", "no route", "long");
  ExpectError(Get("/v1/support/customers//as-of"), 404, "NOT_FOUND", "no route", "empty id");
  ExpectError(Get("/nothing"), 404, "NOT_FOUND", "no route", "/nothing");
  ExpectError(Get("/v1/support/campaigns/999999/log"), 404, "NOT_FOUND", "999999", "no campaign");
  Reply post = Send("POST", "/v1/support/customers/1/as-of");
  ExpectError(post, 405, "UNIMPLEMENTED", "POST", "POST");
  EXPECT_EQ(post.Header("Allow"), "GET, HEAD");
  ExpectError(Send("DELETE", "/v1/support/campaigns/3/log"), 405, "UNIMPLEMENTED", "DELETE",
              "DELETE");
  // No such customer: 200 with a note, as the CLI (an empty answer that says why).
  Reply none = Get("/v1/support/customers/777/as-of?at=" + Esc(Mid()));
  ASSERT_EQ(none.status, 200);
  EXPECT_THAT(none.JsonBody().value("note", ""), HasSubstr("777"));
}

// Browsers accept brotli, which httplib would apply at its slowest quality (15 s for the big
// customer's timeline): the server answers them with gzip instead.
TEST_F(SupportApiTest, BrowsersGetGzipNotBrotli) {
  httplib::Client c("127.0.0.1", server_->port());
  c.set_decompress(false);
  auto r = c.Get("/v1/support/customers/1/timeline?from=" + Esc(FormatTimestamp(first_)),
                 {{"Authorization", std::string("Bearer ") + kToken},
                  {"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->get_header_value("Content-Encoding"), "gzip");
  auto only_br =
      c.Get("/v1/support/search?q=1",
            {{"Authorization", std::string("Bearer ") + kToken}, {"Accept-Encoding", "br;q=1.0"}});
  ASSERT_TRUE(only_br);
  EXPECT_EQ(only_br->status, 200);
  EXPECT_EQ(only_br->get_header_value("Content-Encoding"), "");
}

TEST_F(SupportApiTest, ConsolePagesNeedNoTokenAndCarryTheirSecurityHeaders) {
  Reply index = Send("GET", "/console/", std::nullopt);
  ASSERT_EQ(index.status, 200);
  EXPECT_THAT(index.Header("Content-Type"), HasSubstr("text/html"));
  EXPECT_THAT(index.body, HasSubstr("<title>"));
  EXPECT_THAT(index.Header("Content-Security-Policy"), HasSubstr("default-src 'self'"));
  EXPECT_THAT(index.Header("Content-Security-Policy"), HasSubstr("frame-ancestors 'none'"));
  EXPECT_EQ(index.Header("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(index.Header("X-Frame-Options"), "DENY");
  EXPECT_EQ(index.Header("Referrer-Policy"), "no-referrer");
  // The console's caching replaces the API's, not added to it.
  EXPECT_EQ(index.headers.count("Cache-Control"), 1u);
  EXPECT_EQ(index.Header("Cache-Control"), "no-cache");
  // A deep link is the page itself, which reads its view from the address.
  Reply deep = Send("GET", "/console/customers/2?at=2026-11-03T14:05:00Z&campaign=7", std::nullopt);
  EXPECT_EQ(deep.status, 200);
  EXPECT_EQ(deep.body, index.body);
  Reply js = Send("GET", "/console/app.js", std::nullopt);
  EXPECT_EQ(js.status, 200);
  EXPECT_THAT(js.Header("Content-Type"), HasSubstr("text/javascript"));
  EXPECT_EQ(Send("GET", "/console", std::nullopt).status, 301);
  EXPECT_EQ(Send("GET", "/console/nope.js", std::nullopt).status, 404);
  EXPECT_EQ(Send("GET", "/console/%2e%2e/%2e%2e/etc/passwd", std::nullopt).status, 404);
  EXPECT_EQ(Send("HEAD", "/console/", std::nullopt).status, 200);
  Reply post = Send("POST", "/console/", std::nullopt);
  ExpectError(post, 405, "UNIMPLEMENTED", "POST", "POST /console/");
  EXPECT_EQ(post.Header("Allow"), "GET, HEAD");
}

TEST_F(SupportApiTest, HostileStringsGet400Or404AndChangeNothing) {
  auto before = store_->Stats();
  ASSERT_TRUE(before.ok());
  std::string digest_before = Get("/v1/support/customers/1/as-of?at=" + Esc(Mid())).body;
  const std::vector<std::string> hostile = {
      "1' OR '1'='1",
      "1; DROP TABLE history;--",
      "\" OR 1=1 --",
      "../../etc/passwd",
      "..%2f..%2fetc%2fpasswd",
      "%00",
      "1/../../2",
      "<script>x</script>",
      "${jndi:ldap://x}",
      "1 UNION SELECT * FROM history",
      "\xff\xfe",
      std::string(5000, 'A'),
  };
  struct Slot {
    std::string tmpl;  // {} replaced by the (escaped) string
    bool path;         // the string goes into the path
    bool free_text;    // a text filter: 200 with no matches is right
  };
  const std::vector<Slot> slots = {
      {"/v1/support/customers/{}/as-of?at=now", true, false},
      {"/v1/support/customers/1/as-of?at={}", false, false},
      {"/v1/support/customers/1/as-of?at=now&cursor={}", false, false},
      {"/v1/support/customers/1/as-of?at=now&limit={}", false, false},
      {"/v1/support/customers/1/as-of?at=now&status={}", false, false},
      {"/v1/support/customers/1/as-of?at=now&name={}", false, true},
      {"/v1/support/customers/1/as-of?at=now&{}=1", false, false},
      {"/v1/support/customers/{}/timeline?from=2026-01-01", true, false},
      {"/v1/support/customers/1/timeline?from={}", false, false},
      {"/v1/support/customers/1/timeline?from=2026-01-01&to={}", false, false},
      {"/v1/support/customers/1/timeline?from=2026-01-01&limit={}", false, false},
      {"/v1/support/customers/1/timeline?from=2026-01-01&cursor={}", false, false},
      {"/v1/support/customers/1/timeline?from=2026-01-01&shifts={}", false, false},
      {"/v1/support/campaigns/{}/log", true, false},
      {"/v1/support/campaigns/3/log?from={}", false, false},
      {"/v1/support/campaigns/3/log?to={}", false, false},
      {"/v1/support/campaigns/3/log?shifts={}", false, false},
      {"/v1/support/campaigns/{}/diff?from=1", true, false},
      {"/v1/support/campaigns/3/diff?from={}", false, false},
      {"/v1/support/campaigns/3/diff?from=1&to={}", false, false},
      {"/v1/support/campaigns/{}/blame", true, false},
      {"/v1/support/campaigns/3/blame?at={}", false, false},
      {"/v1/support/search?q={}", false, true},
      {"/v1/support/search?q=1&limit={}", false, false},
  };
  for (const Slot& slot : slots) {
    for (const std::string& h : hostile) {
      // In a path, send the bytes escaped and also raw-ish (slashes kept), so traversal is tried.
      std::vector<std::string> forms = {Esc(h)};
      if (slot.path) forms.push_back(h.find(' ') == std::string::npos ? h : Esc(h));
      for (const std::string& form : forms) {
        std::string target = fmt::format(fmt::runtime(slot.tmpl), form);
        Reply r = Get(target);
        if (r.status == 200 && slot.free_text) continue;
        EXPECT_TRUE(r.status == 400 || r.status == 404)
            << target << " -> " << r.status << " " << r.body.substr(0, 300);
        EXPECT_THAT(r.body, ::testing::Not(HasSubstr("exception")));
      }
    }
  }
  auto after = store_->Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->records, before->records);
  EXPECT_EQ(Get("/v1/support/customers/1/as-of?at=" + Esc(Mid())).body, digest_before);
  // The server still answers.
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(SupportApiTest, OpenApiDocumentMatchesTheRoutes) {
  Reply served = Send("GET", "/openapi.json", std::nullopt);
  ASSERT_EQ(served.status, 200);
  EXPECT_EQ(served.body, std::string(SupportOpenApiJson()));
  Json doc = served.JsonBody();
  ASSERT_TRUE(doc.is_object()) << "not JSON";
  EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
  std::set<std::string> documented;
  for (const auto& [path, item] : doc["paths"].items()) {
    for (const auto& [method, op] : item.items()) {
      std::string key = fmt::format("{} {}", method, path);
      std::set<std::string> params;
      for (const Json& p : op.value("parameters", Json::array())) {
        if (p["in"] == "query") params.insert(p["name"].get<std::string>());
      }
      documented.insert(fmt::format("{} ? {}", key, fmt::join(params, ",")));
      bool secured = !op.contains("security") || !op["security"].empty();
      documented.insert(fmt::format("{} auth={}", key, secured));
    }
  }
  std::set<std::string> served_routes;
  for (const SupportRouteInfo& r : SupportApiRoutes()) {
    std::string key = fmt::format("get {}", r.path);
    std::set<std::string> params(r.query_params.begin(), r.query_params.end());
    served_routes.insert(fmt::format("{} ? {}", key, fmt::join(params, ",")));
    served_routes.insert(fmt::format("{} auth={}", key, r.needs_token));
  }
  EXPECT_EQ(documented, served_routes);
}

TEST_F(SupportApiTest, MetricsCountRequestsLatenciesAndErrors) {
  Get("/v1/support/search?q=1");
  Send("GET", "/v1/support/search?q=1", std::nullopt);
  Get("/v1/support/campaigns/x/log");
  Reply m = Send("GET", "/metrics", std::nullopt);
  ASSERT_EQ(m.status, 200);
  EXPECT_THAT(m.Header("Content-Type"), HasSubstr("text/plain"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_support_requests_total{route=\"/v1/support/"
                                "search\",method=\"GET\",status=\"200\"}"));
  EXPECT_THAT(m.body, HasSubstr("status=\"401\""));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_support_errors_total{code=\"UNAUTHENTICATED\"}"));
  EXPECT_THAT(m.body,
              HasSubstr("campaign_history_support_errors_total{code=\"INVALID_ARGUMENT\"}"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_support_request_duration_seconds_bucket{route="
                                "\"/v1/support/search\",le=\"+Inf\"}"));
  EXPECT_THAT(m.body, ::testing::Not(HasSubstr(kToken)));
  // The kept as-of answers (earlier tests asked for final moments).
  EXPECT_THAT(m.body, HasSubstr("# TYPE campaign_history_support_kept_answers gauge\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_support_kept_answer_hits_total "));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_support_kept_answer_bytes "));
}

}  // namespace
}  // namespace ch
