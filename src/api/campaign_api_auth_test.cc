// CampaignApiServer with API keys, over real HTTP on 127.0.0.1: credentials (401), tenant
// isolation (404, byte for byte the answer for what does not exist), the actor each kind of key
// writes as, hostile strings through every parameter (never a 500, nothing changed), and what
// the logs and metrics say (never the secret).
#include <httplib.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "api/api_keys.h"
#include "api/campaign_api.h"
#include "campaign/campaign.h"
#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "common/clock.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

constexpr int64_t kA = 7, kB = 8;

struct Reply {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  std::string Header(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? "" : it->second;
  }
  std::string Code() const {
    json j = json::parse(body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : "";
  }
  std::string Message() const {
    json j = json::parse(body, nullptr, false);
    return j.is_object() && j.contains("error") ? j["error"].value("message", "") : "";
  }
};

class CampaignApiAuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const Timestamp now = clock_.Now();
    auto a = CreateApiKey(file_, kA, now);
    auto a2 = CreateApiKey(file_, kA, now);
    auto b = CreateApiKey(file_, kB, now);
    auto svc = CreateApiKey(file_, std::nullopt, now);
    auto revoked = CreateApiKey(file_, kA, now);
    ASSERT_OK(a);
    ASSERT_OK(a2);
    ASSERT_OK(b);
    ASSERT_OK(svc);
    ASSERT_OK(revoked);
    ASSERT_OK(RevokeApiKey(file_, revoked->key.id, now));
    a_ = *a, a2_ = *a2, b_ = *b, svc_ = *svc, revoked_ = *revoked;
    auto ring = ApiKeyring::Load(file_);
    ASSERT_OK(ring);

    log_ = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000);
    previous_logger_ = spdlog::default_logger();
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("test", log_));

    server_ = std::make_unique<CampaignApiServer>(service_, CampaignApiOptions{.keys = *ring});
    ASSERT_OK(server_->Start("127.0.0.1", 0));
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_keep_alive(true);
    client_->set_tcp_nodelay(true);
    client_->set_read_timeout(10);

    // Two campaigns of A (through A's key) and two of B (through B's key).
    a1_ = MustCreate(a_, kA, "A one");
    MustCreate(a_, kA, "A two");
    b1_ = MustCreate(b_, kB, "B one");
    MustCreate(b_, kB, "B two");
  }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
    if (previous_logger_) spdlog::set_default_logger(previous_logger_);
  }

  static httplib::Headers Auth(const NewApiKey& key, const std::string& actor = "") {
    httplib::Headers h = {{"Authorization", "Bearer " + key.secret}};
    if (!actor.empty()) h.emplace("X-Actor", actor);
    return h;
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body,
             const httplib::Headers& headers) {
    httplib::Result r = [&] {
      if (method == "GET") return client_->Get(path, headers);
      if (method == "POST") return client_->Post(path, headers, body, "application/json");
      if (method == "PATCH") return client_->Patch(path, headers, body, "application/json");
      return client_->Delete(path, headers);
    }();
    Reply out;
    if (!r) return out;
    out.status = r->status;
    out.body = r->body;
    out.headers = r->headers;
    // No answer ever carries a secret.
    for (const NewApiKey* k : {&a_, &a2_, &b_, &svc_, &revoked_}) {
      EXPECT_THAT(out.body, Not(HasSubstr(k->secret.substr(22))));
    }
    return out;
  }

  int64_t MustCreate(const NewApiKey& key, int64_t customer, const std::string& name) {
    Reply r = Send("POST", fmt::format("/v1/customers/{}/campaigns", customer),
                   json{{"name", name}}.dump(), Auth(key));
    EXPECT_EQ(r.status, 201) << r.body;
    return json::parse(r.body, nullptr, false).value("id", int64_t{0});
  }

  // Everything stored for `customer`, and the length of the capture log (the changes history
  // will be built from).
  std::string Dump(int64_t customer) {
    std::string out;
    for (const Campaign& c : store_.AllCampaigns()) {
      if (c.customer_id == customer) out += CampaignToJson(c) + "\n";
    }
    size_t changes = 0;
    for (const CapturedChange& c : store_.AllChanges()) changes += c.row.customer_id == customer;
    return out + "captured: " + std::to_string(changes);
  }
  std::string Logs() {
    std::string out;
    for (const std::string& line : log_->last_formatted()) out += line;
    return out;
  }

  TempDir dir_;
  const std::string file_ = dir_.File("keys.jsonl");
  NewApiKey a_, a2_, b_, svc_, revoked_;
  int64_t a1_ = 0, b1_ = 0;
  FakeClock clock_;
  InMemoryCampaignStore store_{clock_, StoreCapture::kLog};
  CampaignService service_{store_};
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> log_;
  std::shared_ptr<spdlog::logger> previous_logger_;
  std::unique_ptr<CampaignApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

// Every byte outside [A-Za-z0-9-._~] as %XX, so the string reaches the server's path intact.
std::string PercentEncode(std::string_view s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      out += static_cast<char>(ch);
    } else {
      out += fmt::format("%{:02X}", ch);
    }
  }
  return out;
}

struct Call {
  std::string method, path, body;
};

std::vector<Call> EveryV1Call(int64_t customer, int64_t campaign) {
  return {{"GET", fmt::format("/v1/customers/{}/campaigns", customer), ""},
          {"POST", fmt::format("/v1/customers/{}/campaigns", customer), R"({"name":"x"})"},
          {"GET", fmt::format("/v1/campaigns/{}", campaign), ""},
          {"PATCH", fmt::format("/v1/campaigns/{}", campaign), R"({"name":"x"})"},
          {"POST", fmt::format("/v1/campaigns/{}:move", campaign), R"({"priority":2})"},
          {"DELETE", fmt::format("/v1/campaigns/{}", campaign), ""}};
}

TEST_F(CampaignApiAuthTest, NoCredentialsIs401OnEveryRouteAndChangesNothing) {
  const std::string before = Dump(kA);
  for (const Call& c : EveryV1Call(kA, a1_)) {
    Reply r = Send(c.method, c.path, c.body, {{"X-Actor", "user:1"}});
    EXPECT_EQ(r.status, 401) << c.method << " " << c.path;
    EXPECT_EQ(r.Code(), "UNAUTHENTICATED");
    EXPECT_THAT(r.Message(), HasSubstr("Authorization: credentials required"));
    EXPECT_EQ(r.Header("WWW-Authenticate"), "Bearer realm=\"campaign-history\"");
  }
  EXPECT_EQ(Dump(kA), before);
  // Health and metrics need no credentials.
  EXPECT_EQ(Send("GET", "/healthz", "", {}).status, 200);
  EXPECT_EQ(Send("GET", "/metrics", "", {}).status, 200);
}

TEST_F(CampaignApiAuthTest, WrongCredentialsAre401AndChangeNothing) {
  std::string wrong = a_.secret;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  const std::vector<httplib::Headers> bad = {
      {{"Authorization", "Basic dXNlcjpwYXNz"}},
      {{"Authorization", "Bearer"}},
      {{"Authorization", "Bearer "}},
      {{"Authorization", "Bearer not-a-key"}},
      {{"Authorization", a_.secret}},
      {{"Authorization", "Bearer " + wrong}},
      {{"Authorization", "Bearer " + revoked_.secret}},
      {{"Authorization", "Bearer  " + a_.secret}},
      {{"Authorization", "Bearer " + a_.secret}, {"Authorization", "Bearer " + b_.secret}},
  };
  const std::string before = Dump(kA);
  for (const httplib::Headers& h : bad) {
    for (const Call& c : EveryV1Call(kA, a1_)) {
      Reply r = Send(c.method, c.path, c.body, h);
      EXPECT_EQ(r.status, 401) << c.method << " " << c.path << " " << h.begin()->second;
      EXPECT_EQ(r.Code(), "UNAUTHENTICATED");
      EXPECT_THAT(r.Header("WWW-Authenticate"), HasSubstr("Bearer realm="));
    }
  }
  EXPECT_EQ(Dump(kA), before);
  // "Bearer" is case-insensitive (RFC 7235).
  EXPECT_EQ(Send("GET", "/v1/campaigns/" + std::to_string(a1_), "",
                 {{"Authorization", "bearer " + a_.secret}})
                .status,
            200);
}

TEST_F(CampaignApiAuthTest, ACustomerKeyWritesAsItsKeyIdAndMayNotNameAnotherActor) {
  const std::string path = "/v1/campaigns/" + std::to_string(a1_);
  Reply r = Send("PATCH", path, R"({"name":"renamed"})", Auth(a2_));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["updated_by"], a2_.key.actor());
  r = Send("PATCH", path, R"({"name":"again"})", Auth(a_, a_.key.actor()));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["updated_by"], a_.key.actor());

  const std::string before = Dump(kA);
  for (const std::string& actor :
       std::vector<std::string>{"user:1", "worker:scheduler", "api:" + a2_.key.id, "x"}) {
    for (const Call& c : EveryV1Call(kA, a1_)) {
      if (c.method == "GET") continue;
      r = Send(c.method, c.path, c.body, Auth(a_, actor));
      EXPECT_EQ(r.status, 403) << actor << " " << c.method << " " << c.path;
      EXPECT_EQ(r.Code(), "PERMISSION_DENIED");
      EXPECT_THAT(r.Message(), HasSubstr("a customer key writes as " + a_.key.actor()));
    }
  }
  EXPECT_EQ(Dump(kA), before);
  // Every kind of write works with the key alone.
  EXPECT_EQ(Send("POST", path + ":move", R"({"priority":1})", Auth(a_)).status, 200);
  EXPECT_EQ(Send("DELETE", path, "", Auth(a_)).status, 200);
  for (const CapturedChange& c : store_.AllChanges()) {
    if (c.row.customer_id == kA) {
      EXPECT_TRUE(c.actor.starts_with("api:k")) << c.actor;
    }
  }
}

TEST_F(CampaignApiAuthTest, ACustomerKeyCanNeitherReadNorChangeAnotherCustomer) {
  const std::string b_before = Dump(kB);
  const int64_t missing = 999;
  // Every call on B's customer and campaign answers as if they did not exist, byte for byte.
  std::vector<Call> on_b = EveryV1Call(kB, b1_);
  std::vector<Call> on_nothing = EveryV1Call(kB + 100, missing);
  for (size_t i = 0; i < on_b.size(); ++i) {
    for (const httplib::Headers& h : {Auth(a_), Auth(a_, "user:1"), Auth(a_, a_.key.actor())}) {
      Reply r = Send(on_b[i].method, on_b[i].path, on_b[i].body, h);
      EXPECT_EQ(r.status, 404) << on_b[i].method << " " << on_b[i].path << ": " << r.body;
      EXPECT_EQ(r.Code(), "NOT_FOUND");
      Reply none = Send(on_nothing[i].method, on_nothing[i].path, on_nothing[i].body, h);
      std::string expected = none.body;
      for (auto [from, to] : {std::pair{std::to_string(missing), std::to_string(b1_)},
                              std::pair{std::to_string(kB + 100), std::to_string(kB)}}) {
        size_t at = expected.find(from);
        if (at != std::string::npos) expected.replace(at, from.size(), to);
      }
      EXPECT_EQ(r.body, expected) << on_b[i].method << " " << on_b[i].path;
    }
  }
  // A stale If-Match does not reveal B's version either.
  Reply r = Send("PATCH", "/v1/campaigns/" + std::to_string(b1_), R"({"name":"x"})", [&] {
    auto h = Auth(a_);
    h.emplace("If-Match", "\"1\"");
    return h;
  }());
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(Dump(kB), b_before);
  // The refusals are logged with the key id and without any secret.
  std::string logs = Logs();
  EXPECT_THAT(logs, HasSubstr("wrong_customer (key " + a_.key.id + ")"));
  EXPECT_THAT(logs, Not(HasSubstr(a_.secret.substr(22))));
  // B still reads and changes its own.
  EXPECT_EQ(Send("GET", "/v1/campaigns/" + std::to_string(b1_), "", Auth(b_)).status, 200);
  Reply list = Send("GET", "/v1/customers/8/campaigns", "", Auth(b_));
  EXPECT_EQ(json::parse(list.body)["campaigns"].size(), 2u);
}

TEST_F(CampaignApiAuthTest, AServiceKeyActsForAnyCustomerAndMustNameTheEndUser) {
  for (int64_t customer : {kA, kB, int64_t{42}}) {
    Reply r = Send("POST", fmt::format("/v1/customers/{}/campaigns", customer),
                   R"({"name":"from the UI"})", Auth(svc_, "user:5"));
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_EQ(json::parse(r.body)["updated_by"], "user:5");
  }
  EXPECT_EQ(Send("GET", "/v1/campaigns/" + std::to_string(b1_), "", Auth(svc_)).status, 200);
  const std::string before = Dump(kA);
  for (const Call& c : EveryV1Call(kA, a1_)) {
    if (c.method == "GET") continue;
    Reply r = Send(c.method, c.path, c.body, Auth(svc_));
    EXPECT_EQ(r.status, 400) << c.method << " " << c.path;
    EXPECT_THAT(r.Message(), HasSubstr("a service key names the end user"));
    for (const std::string actor : {"worker:scheduler", "api:k0123456789abcdef", "user"}) {
      r = Send(c.method, c.path, c.body, Auth(svc_, actor));
      EXPECT_TRUE(r.status == 403 || r.status == 400) << actor << ": " << r.status;
      EXPECT_THAT(r.Message(), HasSubstr("X-Actor"));
    }
  }
  EXPECT_EQ(Dump(kA), before);
}

TEST_F(CampaignApiAuthTest, HostileStringsInEveryParameterNeverCrashAndChangeNothing) {
  const std::vector<std::string> hostile = {
      "' OR '1'='1",
      "1; DROP TABLE campaign; --",
      "1 UNION SELECT * FROM history",
      "\"); DELETE FROM campaign WHERE (\"1\"=\"1",
      "../../../../etc/passwd",
      "..%2F..%2Fetc%2Fpasswd",
      "%00",
      "${jndi:ldap://x}",
      "<script>alert(1)</script>",
      std::string(300, 'A'),
      "\xff\xfe",
  };
  const std::string a_before = Dump(kA), b_before = Dump(kB);
  auto expect_sane = [&](const Reply& r, const std::string& where) {
    EXPECT_NE(r.status, 0) << where;
    EXPECT_LT(r.status, 500) << where << ": " << r.body;
    EXPECT_GE(r.status, 400) << where << ": " << r.body;
    EXPECT_FALSE(r.Code().empty()) << where << ": " << r.body;
    EXPECT_THAT(r.body, Not(HasSubstr("what()"))) << where;
  };
  for (const std::string& s : hostile) {
    const std::string enc = PercentEncode(s);
    // Path ids.
    for (const Call& c : std::vector<Call>{{"GET", "/v1/customers/" + enc + "/campaigns", ""},
                                           {"POST", "/v1/customers/" + enc + "/campaigns", "{}"},
                                           {"GET", "/v1/campaigns/" + enc, ""},
                                           {"PATCH", "/v1/campaigns/" + enc, R"({"name":"x"})"},
                                           {"POST", "/v1/campaigns/" + enc + ":move", "{}"},
                                           {"DELETE", "/v1/campaigns/" + enc, ""},
                                           {"GET", "/" + enc, ""}}) {
      expect_sane(Send(c.method, c.path, c.body, Auth(a_)), c.method + " " + c.path);
    }
    // Headers.
    const std::string path = "/v1/campaigns/" + std::to_string(a1_);
    expect_sane(Send("PATCH", path, R"({"name":"x"})", {{"Authorization", "Bearer " + s}}),
                "Authorization " + s);
    expect_sane(Send("PATCH", path, R"({"name":"x"})", Auth(a_, s)), "X-Actor " + s);
    expect_sane(Send("PATCH", path, R"({"name":"x"})", Auth(svc_, s)), "service X-Actor " + s);
    auto if_match = Auth(a_);
    if_match.emplace("If-Match", s);
    expect_sane(Send("PATCH", path, R"({"name":"x"})", if_match), "If-Match " + s);
    // Body fields that refuse the string (wrong type, unknown field, bad value).
    for (const json& body :
         {json{{"status", s}}, json{{"priority", s}}, json{{s, "x"}}, json{{"start_at", s}},
          json{{"frequency_cap", s}}, json{{"content", s}}}) {
      std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
      expect_sane(Send("PATCH", path, text, Auth(a_)), "PATCH body " + text);
      expect_sane(Send("POST", path + ":move", text, Auth(a_)), "move body " + text);
      expect_sane(Send("POST", "/v1/customers/7/campaigns", text, Auth(a_)), "create " + text);
    }
  }
  EXPECT_EQ(Dump(kA), a_before);
  EXPECT_EQ(Dump(kB), b_before);
  // Where a string is plain data (a name), it is stored as data, byte for byte, for A only.
  const std::string evil = "'; DROP TABLE campaign; -- ../../etc/passwd";
  Reply r =
      Send("PATCH", "/v1/campaigns/" + std::to_string(a1_), json{{"name", evil}}.dump(), Auth(a_));
  ASSERT_EQ(r.status, 200) << r.body;
  auto row = store_.Get(a1_);
  ASSERT_OK(row);
  EXPECT_EQ((*row)->name, evil);
  EXPECT_EQ(Dump(kB), b_before);
}

TEST_F(CampaignApiAuthTest, OversizedBodiesUnknownRoutesAndMethodsGetJsonErrors) {
  const std::string before = Dump(kA);
  const std::string huge = "{\"name\":\"" + std::string(300 * 1024, 'x') + "\"}";
  for (const httplib::Headers& h : {Auth(a_), httplib::Headers{}}) {
    Reply r = Send("POST", "/v1/customers/7/campaigns", huge, h);
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(r.Code(), "RESOURCE_EXHAUSTED");
    EXPECT_THAT(r.Message(), HasSubstr("request body exceeds"));
  }
  Reply r = Send("GET", "/v1/customers/7/campaigns/../../secrets", "", Auth(a_));
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Code(), "NOT_FOUND");
  r = Send("GET", "/v2/campaigns/1", "", Auth(a_));
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.Message(), HasSubstr("no route"));
  r = Send("POST", "/v1/campaigns/" + std::to_string(a1_), "{}", Auth(a_));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.Code(), "UNIMPLEMENTED");
  EXPECT_EQ(Dump(kA), before);
}

TEST_F(CampaignApiAuthTest, AKeyRevokedWhileTheServerRunsIsRefusedWithinASecondOrTwo) {
  const std::string path = "/v1/campaigns/" + std::to_string(a1_);
  ASSERT_EQ(Send("GET", path, "", Auth(a2_)).status, 200);
  ASSERT_OK(RevokeApiKey(file_, a2_.key.id, clock_.Now()));
  auto fresh = CreateApiKey(file_, kA, clock_.Now());
  ASSERT_OK(fresh);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  Reply r = Send("GET", path, "", Auth(a2_));
  EXPECT_EQ(r.status, 401);
  EXPECT_THAT(r.Message(), HasSubstr("revoked"));
  EXPECT_EQ(Send("GET", path, "", Auth(*fresh)).status, 200);
  EXPECT_EQ(Send("GET", path, "", Auth(a_)).status, 200);
}

TEST_F(CampaignApiAuthTest, MetricsCountErrorsByKindAndAuthFailuresByReason) {
  std::string wrong = a_.secret;
  wrong.back() = wrong.back() == 'a' ? 'b' : 'a';
  Send("GET", "/v1/campaigns/1", "", {});
  Send("GET", "/v1/campaigns/1", "", {{"Authorization", "Bearer " + wrong}});
  Send("GET", "/v1/campaigns/" + std::to_string(b1_), "", Auth(a_));
  Send("PATCH", "/v1/campaigns/" + std::to_string(a1_), "{}", Auth(a_, "user:3"));
  Send("PATCH", "/v1/campaigns/" + std::to_string(a1_), "{\"name\":", Auth(a_));
  Reply m = Send("GET", "/metrics", "", {});
  ASSERT_EQ(m.status, 200);
  for (const std::string line :
       {"campaign_history_api_auth_failures_total{reason=\"missing\"} 1",
        "campaign_history_api_auth_failures_total{reason=\"wrong_secret\"} 1",
        "campaign_history_api_auth_failures_total{reason=\"wrong_customer\"} 1",
        "campaign_history_api_auth_failures_total{reason=\"actor_refused\"} 1",
        "campaign_history_api_errors_total{code=\"UNAUTHENTICATED\"} 2",
        "campaign_history_api_errors_total{code=\"NOT_FOUND\"} 1",
        "campaign_history_api_errors_total{code=\"PERMISSION_DENIED\"} 1",
        "campaign_history_api_errors_total{code=\"INVALID_ARGUMENT\"} 1",
        "campaign_history_api_request_duration_seconds_count{route=\"/v1/campaigns/{id}\","
        "method=\"PATCH\"}"}) {
    EXPECT_THAT(m.body, HasSubstr(line));
  }
  std::string logs = Logs();
  EXPECT_THAT(logs, HasSubstr("wrong_secret (key " + a_.key.id + ")"));
  EXPECT_THAT(logs, HasSubstr("missing (no known key)"));
  for (const NewApiKey* k : {&a_, &b_, &svc_}) {
    EXPECT_THAT(logs, Not(HasSubstr(k->secret.substr(22))));
  }
  EXPECT_THAT(logs, Not(HasSubstr(wrong.substr(22))));
}

}  // namespace
}  // namespace ch
