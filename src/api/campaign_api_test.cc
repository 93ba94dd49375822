// CampaignApiServer over real HTTP on 127.0.0.1 (httplib client), with the service over an
// InMemoryCampaignStore and a FakeClock.
#include "api/campaign_api.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "campaign/campaign.h"
#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "common/clock.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

constexpr char kActor[] = "user:42";

// A CampaignStore that can hold writers at BeginWrite until released: a request "in flight".
class GatedStore final : public CampaignStore {
 public:
  explicit GatedStore(CampaignStore& inner) : inner_(inner) {}

  // From now on, BeginWrite blocks until Open().
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  void Open() {
    std::lock_guard lock(mu_);
    closed_ = false;
    cv_.notify_all();
  }
  // Wait until a writer is blocked at the gate.
  bool WaitForWaiter(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return waiting_ > 0; });
  }

  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view actor) override {
    {
      std::unique_lock lock(mu_);
      ++waiting_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return !closed_; });
      --waiting_;
    }
    return inner_.BeginWrite(actor);
  }
  Result<std::optional<Campaign>> Get(int64_t id) override { return inner_.Get(id); }
  Result<std::vector<Campaign>> List(int64_t customer_id) override {
    return inner_.List(customer_id);
  }
  Result<std::vector<int64_t>> ListCustomers() override { return inner_.ListCustomers(); }
  Result<std::vector<Campaign>> ListExpired(Timestamp now, int64_t limit) override {
    return inner_.ListExpired(now, limit);
  }
  Status SyncCommitted() override { return inner_.SyncCommitted(); }
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view workload) override {
    return inner_.GetReplayPosition(workload);
  }

 private:
  CampaignStore& inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  int waiting_ = 0;
};

// Return the stored campaign `id` (a test failure and an empty campaign when absent).
Campaign MustGet(CampaignStore& store, int64_t id) {
  auto r = store.Get(id);
  if (!r.ok() || !r->has_value()) {
    ADD_FAILURE() << "campaign " << id << " is not stored: " << r.status().ToString();
    return Campaign{};
  }
  return **r;
}

// What a request got back.
struct Reply {
  int status = 0;  // 0: no response (connection error)
  std::string body;
  httplib::Headers headers;

  std::string Header(const std::string& key) const {
    auto it = headers.find(key);
    return it == headers.end() ? "" : it->second;
  }
  // The error object's fields, or "" when the body is not an error.
  std::string ErrorCode() const { return ErrorField("code"); }
  std::string ErrorMessage() const { return ErrorField("message"); }

 private:
  std::string ErrorField(const char* field) const {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) return "";
    return j["error"].value(field, "");
  }
};

Reply ToReply(const httplib::Result& r) {
  Reply out;
  if (!r) return out;
  out.status = r->status;
  out.body = r->body;
  out.headers = r->headers;
  return out;
}

// Send `raw` on a new connection and return everything the server sends until it closes (or
// 5 s pass).
std::string RawExchange(int port, const std::string& raw) {
  // Reads one response: its head, then Content-Length bytes of body (or until close).
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  (void)!write(fd, raw.data(), raw.size());
  std::string out;
  char buf[4096];
  for (;;) {
    size_t head_end = out.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      size_t cl = out.find("Content-Length: ");
      if (cl != std::string::npos && cl < head_end) {
        size_t length = std::stoul(out.substr(cl + 16));
        if (out.size() >= head_end + 4 + length) break;
      }
    }
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

class CampaignApiTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }
  void TearDown() override {
    client_.reset();
    if (server_) server_->Stop();
  }

  void StartServer(const CampaignApiOptions& options) {
    server_ = std::make_unique<CampaignApiServer>(service_, options);
    ASSERT_OK(server_->Start("127.0.0.1", 0));
    ASSERT_GT(server_->port(), 0);
    client_ = NewClient();
  }

  std::unique_ptr<httplib::Client> NewClient() {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);
    c->set_connection_timeout(5);
    c->set_read_timeout(10);
    return c;
  }

  static httplib::Headers Headers(const std::string& actor = kActor) {
    httplib::Headers h;
    if (!actor.empty()) h.emplace("X-Actor", actor);
    return h;
  }

  Reply Send(const std::string& method, const std::string& path, const std::string& body = "",
             const httplib::Headers& headers = Headers()) {
    return SendOn(*client_, method, path, body, headers);
  }
  static Reply SendOn(httplib::Client& c, const std::string& method, const std::string& path,
                      const std::string& body, const httplib::Headers& headers) {
    if (method == "GET") return ToReply(c.Get(path, headers));
    if (method == "POST") return ToReply(c.Post(path, headers, body, "application/json"));
    if (method == "PATCH") return ToReply(c.Patch(path, headers, body, "application/json"));
    if (method == "PUT") return ToReply(c.Put(path, headers, body, "application/json"));
    if (method == "DELETE") {
      return body.empty() ? ToReply(c.Delete(path, headers))
                          : ToReply(c.Delete(path, headers, body, "application/json"));
    }
    if (method == "OPTIONS") return ToReply(c.Options(path, headers));
    ADD_FAILURE() << "unknown method " << method;
    return {};
  }

  // Create a campaign for `customer` through the API; return its id.
  int64_t Create(int64_t customer, const std::string& name) {
    Reply r = Send("POST", "/v1/customers/" + std::to_string(customer) + "/campaigns",
                   json{{"name", name}}.dump());
    EXPECT_EQ(r.status, 201) << r.body;
    return json::parse(r.body, nullptr, false).value("id", int64_t{0});
  }

  // "c3@v1 p1, c2@v2 p2": the customer's campaigns in priority order.
  std::string Summary(int64_t customer) {
    auto rows = store_.List(customer);
    EXPECT_OK(rows);
    std::string out;
    for (const Campaign& c : rows.value_or({})) {
      if (!out.empty()) out += ", ";
      out += "c" + std::to_string(c.id) + "@v" + std::to_string(c.version) + " p" +
             std::to_string(c.priority);
    }
    return out;
  }

  // Everything the store holds: every campaign in full, and the capture log's length.
  std::string Dump() {
    std::string out;
    for (const Campaign& c : store_.AllCampaigns()) out += CampaignToJson(c) + "\n";
    out += "captured: " + std::to_string(store_.AllChanges().size());
    return out;
  }

  FakeClock clock_;
  InMemoryCampaignStore store_{clock_, StoreCapture::kLog};
  CampaignService service_{store_};
  std::unique_ptr<CampaignApiServer> server_;
  std::unique_ptr<httplib::Client> client_;
};

// ---- success paths ------------------------------------------------------------------------------

TEST_F(CampaignApiTest, CreateAnswers201WithCampaignLocationETagAndCommitHeaders) {
  Reply r = Send("POST", "/v1/customers/7/campaigns",
                 R"({"name":"Spring sale","status":"active","trigger_event":"app_open",)"
                 R"("frequency_cap":3,"content":{"title":"Hi","body":"50% off"}})");
  ASSERT_EQ(r.status, 201) << r.body;
  Campaign stored = MustGet(store_, 1);
  EXPECT_EQ(r.body, CampaignToJson(stored));
  EXPECT_EQ(stored.customer_id, 7);
  EXPECT_EQ(stored.name, "Spring sale");
  EXPECT_EQ(stored.status, CampaignStatus::kActive);
  EXPECT_EQ(stored.content, R"({"body":"50% off","title":"Hi"})");
  EXPECT_EQ(stored.updated_by, kActor);
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_EQ(r.Header("Location"), "/v1/campaigns/1");
  EXPECT_EQ(r.Header("ETag"), "\"1\"");
  EXPECT_EQ(r.Header("X-Transaction-Id"), "1");
  EXPECT_EQ(r.Header("X-Committed-At"), FormatTimestamp(clock_.Now()));
  EXPECT_EQ(r.Header("X-Committed-At"), "2026-01-01T00:00:00.000000Z");
}

TEST_F(CampaignApiTest, CreateWithExplicitIdAndMatchingCustomerId) {
  Reply r =
      Send("POST", "/v1/customers/7/campaigns", R"({"id":500,"customer_id":7,"name":"Explicit"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.Header("Location"), "/v1/campaigns/500");
  EXPECT_EQ(Summary(7), "c500@v1 p1");
}

TEST_F(CampaignApiTest, CreateShiftsTheCustomersOtherCampaignsDown) {
  EXPECT_EQ(Create(7, "A"), 1);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Create(7, "B"), 2);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(Create(8, "other customer"), 3);
  EXPECT_EQ(Create(7, "C"), 4);
  EXPECT_EQ(Summary(7), "c4@v1 p1, c2@v2 p2, c1@v3 p3");
  EXPECT_EQ(Summary(8), "c3@v1 p1");

  Reply r = Send("GET", "/v1/customers/7/campaigns");
  ASSERT_EQ(r.status, 200) << r.body;
  json list = json::parse(r.body);
  ASSERT_EQ(list["campaigns"].size(), 3u);
  std::vector<std::string> seen;
  for (const json& c : list["campaigns"]) {
    seen.push_back(c["name"].get<std::string>() + " p" + std::to_string(c["priority"].get<int>()) +
                   " v" + std::to_string(c["version"].get<int>()));
  }
  EXPECT_THAT(seen, ::testing::ElementsAre("C p1 v1", "B p2 v2", "A p3 v3"));
  // The list is the canonical snapshots, in order.
  ASSERT_OK_AND_ASSIGN(auto rows, store_.List(7));
  std::string expected = "{\"campaigns\":[";
  for (size_t i = 0; i < rows.size(); ++i) expected += (i ? "," : "") + CampaignToJson(rows[i]);
  EXPECT_EQ(r.body, expected + "]}");
}

TEST_F(CampaignApiTest, ListOfACustomerWithoutCampaignsIsEmpty) {
  Reply r = Send("GET", "/v1/customers/99/campaigns");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"campaigns":[]})");
}

TEST_F(CampaignApiTest, GetAnswersTheCampaignWithItsVersionAsETag) {
  Create(7, "A");
  Create(7, "B");
  Reply r = Send("GET", "/v1/campaigns/1", "", {});
  ASSERT_EQ(r.status, 200) << r.body;
  Campaign stored = MustGet(store_, 1);
  EXPECT_EQ(r.body, CampaignToJson(stored));
  EXPECT_EQ(r.Header("ETag"), "\"2\"");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");

  Reply absent = Send("GET", "/v1/campaigns/3", "", {});
  EXPECT_EQ(absent.status, 404);
  EXPECT_EQ(absent.ErrorCode(), "NOT_FOUND");
  EXPECT_EQ(absent.ErrorMessage(), "campaign 3 not found");
}

TEST_F(CampaignApiTest, PatchSetsTheGivenFieldsAndAnswersTheNewVersion) {
  Create(7, "A");
  clock_.Advance(std::chrono::minutes(5));
  Reply r = Send("PATCH", "/v1/campaigns/1",
                 R"({"name":"Renamed","status":"paused","end_at":"2026-03-01T00:00:00Z"})",
                 Headers("api:key-7"));
  ASSERT_EQ(r.status, 200) << r.body;
  Campaign stored = MustGet(store_, 1);
  EXPECT_EQ(r.body, CampaignToJson(stored));
  EXPECT_EQ(stored.name, "Renamed");
  EXPECT_EQ(stored.status, CampaignStatus::kPaused);
  EXPECT_EQ(stored.version, 2);
  EXPECT_EQ(stored.updated_by, "api:key-7");
  EXPECT_EQ(r.Header("ETag"), "\"2\"");
  EXPECT_EQ(r.Header("X-Transaction-Id"), "2");
  EXPECT_EQ(r.Header("X-Committed-At"), "2026-01-01T00:05:00.000000Z");
}

TEST_F(CampaignApiTest, IfMatchMakesThePatchConditionalOnTheVersion) {
  Create(7, "A");
  httplib::Headers h = Headers();
  h.emplace("If-Match", "\"1\"");
  Reply ok = Send("PATCH", "/v1/campaigns/1", R"({"name":"v2"})", h);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.Header("ETag"), "\"2\"");

  std::string before = Dump();
  Reply stale = Send("PATCH", "/v1/campaigns/1", R"({"name":"lost update"})", h);
  EXPECT_EQ(stale.status, 412) << stale.body;
  EXPECT_EQ(stale.ErrorCode(), "FAILED_PRECONDITION");
  EXPECT_EQ(stale.ErrorMessage(), "campaign 1 is at version 2, not 1");
  EXPECT_EQ(stale.Header("X-Transaction-Id"), "");
  EXPECT_EQ(Dump(), before);

  httplib::Headers any = Headers();
  any.emplace("If-Match", "*");
  EXPECT_EQ(Send("PATCH", "/v1/campaigns/1", R"({"name":"v3"})", any).status, 200);
}

TEST_F(CampaignApiTest, MoveSetsThePriorityAndShiftsTheOthers) {
  Create(7, "A");
  Create(7, "B");
  Create(7, "C");
  ASSERT_EQ(Summary(7), "c3@v1 p1, c2@v2 p2, c1@v3 p3");
  Reply r = Send("POST", "/v1/campaigns/3:move", R"({"priority":3})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(Summary(7), "c2@v3 p1, c1@v4 p2, c3@v2 p3");
  Campaign stored = MustGet(store_, 3);
  EXPECT_EQ(r.body, CampaignToJson(stored));
  EXPECT_EQ(r.Header("ETag"), "\"2\"");
  EXPECT_FALSE(r.Header("X-Transaction-Id").empty());
  EXPECT_FALSE(r.Header("X-Committed-At").empty());
}

TEST_F(CampaignApiTest, DeleteAnswersTheLastContentAndClosesTheGap) {
  Create(7, "A");
  Create(7, "B");
  Campaign last = MustGet(store_, 2);
  Reply r = Send("DELETE", "/v1/campaigns/2");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, CampaignToJson(last));
  EXPECT_EQ(r.Header("X-Transaction-Id"), "3");
  EXPECT_EQ(r.Header("X-Committed-At"), FormatTimestamp(clock_.Now() + Micros(2)));
  EXPECT_EQ(Summary(7), "c1@v3 p1");
  EXPECT_EQ(Send("GET", "/v1/campaigns/2").status, 404);
  EXPECT_EQ(Send("DELETE", "/v1/campaigns/2").status, 404);
}

TEST_F(CampaignApiTest, StringsRoundTripByteForByte) {
  const std::string name = "Sommer \"Rabatt\" \\ 50% 🎉 — ünïcødé";
  json body = {{"name", name}, {"content", {{"title", "Ça va? 👋"}, {"n", {1, 2}}}}};
  Reply r = Send("POST", "/v1/customers/7/campaigns", body.dump());
  ASSERT_EQ(r.status, 201) << r.body;
  Reply got = Send("GET", "/v1/campaigns/1");
  json j = json::parse(got.body);
  EXPECT_EQ(j["name"], name);
  EXPECT_EQ(j["content"]["title"], "Ça va? 👋");
  Campaign stored = MustGet(store_, 1);
  EXPECT_EQ(stored.name, name);
}

TEST_F(CampaignApiTest, HealthzAndMetrics) {
  Reply h = Send("GET", "/healthz", "", {});
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "ok");

  Create(7, "A");
  Create(7, "B");
  Send("PATCH", "/v1/campaigns/1", R"({"name":"x"})");
  Send("GET", "/v1/campaigns/1");
  Send("GET", "/v1/campaigns/1");
  Send("GET", "/v1/campaigns/9");
  Send("GET", "/nope");
  Reply m = Send("GET", "/metrics", "", {});
  ASSERT_EQ(m.status, 200);
  EXPECT_THAT(m.Header("Content-Type"), HasSubstr("text/plain"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_requests_total{route=\"/v1/customers/"
                                "{customer_id}/campaigns\",method=\"POST\",status=\"201\"} 2\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_requests_total{route=\"/v1/campaigns/{id}\","
                                "method=\"GET\",status=\"200\"} 2\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_requests_total{route=\"/v1/campaigns/{id}\","
                                "method=\"GET\",status=\"404\"} 1\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_requests_total{route=\"unmatched\","
                                "method=\"GET\",status=\"404\"} 1\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_request_duration_seconds_bucket{route=\"/v1/"
                                "campaigns/{id}\",method=\"PATCH\",le=\"+Inf\"} 1\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_request_duration_seconds_count{route=\"/v1/"
                                "campaigns/{id}\",method=\"GET\"} 3\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_writes_total{op=\"created\"} 2\n"));
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_writes_total{op=\"updated\"} 1\n"));
  // 1 + (1 created + 1 shifted) + 1 updated.
  EXPECT_THAT(m.body, HasSubstr("campaign_history_api_campaign_versions_written_total 4\n"));
}

TEST_F(CampaignApiTest, OptionsListsTheAllowedMethods) {
  Reply r = Send("OPTIONS", "/v1/campaigns/1", "", {});
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.Header("Allow"), "GET, HEAD, PATCH, DELETE, OPTIONS");
}

// ---- bad input ----------------------------------------------------------------------------------

struct BadCase {
  std::string method;
  std::string path;
  std::string body;
  std::string actor;  // "" = no X-Actor header
  std::string if_match;
  int status;
  std::string code;
  std::string message;  // a substring of the error message
};

TEST_F(CampaignApiTest, BadInputAnswersTheRightStatusAndChangesNothing) {
  Create(7, "A");
  Create(7, "B");
  Create(8, "C");
  const std::string big_content = "{\"content\":{\"x\":\"" + std::string(70 * 1024, 'y') + "\"}}";
  const std::string too_long_actor = "user:" + std::string(124, 'a');  // 129 characters
  const std::vector<BadCase> cases = {
      // The actor.
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n"})", "", "", 400, "INVALID_ARGUMENT",
       "X-Actor: header required"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n"})", "nobody", "", 400,
       "INVALID_ARGUMENT", "X-Actor: must be user:<id>"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n"})", "user:", "", 400, "INVALID_ARGUMENT",
       "X-Actor"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n"})", too_long_actor, "", 400,
       "INVALID_ARGUMENT", "X-Actor: must be 1-128 characters (got 129)"},
      {"PATCH", "/v1/campaigns/1", R"({"name":"n"})", "", "", 400, "INVALID_ARGUMENT", "X-Actor"},
      {"POST", "/v1/campaigns/1:move", R"({"priority":2})", "", "", 400, "INVALID_ARGUMENT",
       "X-Actor"},
      {"DELETE", "/v1/campaigns/1", "", "", "", 400, "INVALID_ARGUMENT", "X-Actor"},
      // Create bodies.
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n",)", kActor, "", 400, "INVALID_ARGUMENT",
       "body: malformed JSON"},
      {"POST", "/v1/customers/7/campaigns", "", kActor, "", 400, "INVALID_ARGUMENT",
       "body: malformed JSON"},
      {"POST", "/v1/customers/7/campaigns", R"(["name"])", kActor, "", 400, "INVALID_ARGUMENT",
       "body: must be a JSON object (got array)"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":""})", kActor, "", 400, "INVALID_ARGUMENT",
       "name: must be 1-200 characters (got 0)"},
      {"POST", "/v1/customers/7/campaigns", R"({"status":"active"})", kActor, "", 400,
       "INVALID_ARGUMENT", "name: must be 1-200 characters (got 0)"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","colour":"red"})", kActor, "", 400,
       "INVALID_ARGUMENT", "colour: unknown field"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","status":"live"})", kActor, "", 400,
       "INVALID_ARGUMENT", "status: unknown value 'live'"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","priority":2})", kActor, "", 400,
       "INVALID_ARGUMENT", "priority: a new campaign always starts at priority 1"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","version":4})", kActor, "", 400,
       "INVALID_ARGUMENT", "version: read-only"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","customer_id":8})", kActor, "", 400,
       "INVALID_ARGUMENT", "customer_id: 8 differs from the customer in the path (7)"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","id":0})", kActor, "", 400,
       "INVALID_ARGUMENT", "id: must be positive"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","id":"5"})", kActor, "", 400,
       "INVALID_ARGUMENT", "id: must be an integer (got string)"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","id":2})", kActor, "", 409,
       "ALREADY_EXISTS", "2"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","frequency_cap":-1})", kActor, "", 400,
       "INVALID_ARGUMENT", "frequency_cap: must be 0..1000000 (got -1)"},
      {"POST", "/v1/customers/7/campaigns",
       R"({"name":"n","start_at":"2026-02-01","end_at":"2026-01-01"})", kActor, "", 400,
       "INVALID_ARGUMENT", "end_at: must be after start_at"},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","content":[1]})", kActor, "", 400,
       "INVALID_ARGUMENT", "content: must be a JSON object (got array)"},
      {"POST", "/v1/customers/7/campaigns", big_content, kActor, "", 400, "INVALID_ARGUMENT",
       "content: "},
      {"POST", "/v1/customers/7/campaigns", R"({"name":"n","updated_by":"user:1"})", kActor, "",
       400, "INVALID_ARGUMENT", "updated_by: 'user:1' differs from the writing actor"},
      // Patches.
      {"PATCH", "/v1/campaigns/1", R"({"name":)", kActor, "", 400, "INVALID_ARGUMENT",
       "malformed JSON"},
      {"PATCH", "/v1/campaigns/1", "", kActor, "", 400, "INVALID_ARGUMENT", "malformed JSON"},
      {"PATCH", "/v1/campaigns/1", "{}", kActor, "", 400, "INVALID_ARGUMENT", ""},
      {"PATCH", "/v1/campaigns/1", R"({"version":9})", kActor, "", 400, "INVALID_ARGUMENT",
       "version: read-only"},
      {"PATCH", "/v1/campaigns/1", R"({"priority":1})", kActor, "", 400, "INVALID_ARGUMENT",
       "priority: read-only in a patch"},
      {"PATCH", "/v1/campaigns/1", R"({"name":7})", kActor, "", 400, "INVALID_ARGUMENT",
       "name: must be a string (got number)"},
      {"PATCH", "/v1/campaigns/1", R"({"name":"x"})", kActor, "\"1\"", 412, "FAILED_PRECONDITION",
       "campaign 1 is at version 2, not 1"},
      {"PATCH", "/v1/campaigns/1", R"({"name":"x"})", kActor, "1", 400, "INVALID_ARGUMENT",
       "If-Match: must be one quoted version"},
      {"PATCH", "/v1/campaigns/1", R"({"name":"x"})", kActor, "W/\"2\"", 400, "INVALID_ARGUMENT",
       "If-Match"},
      {"PATCH", "/v1/campaigns/99", R"({"name":"x"})", kActor, "", 404, "NOT_FOUND",
       "campaign 99 not found"},
      // Moves.
      {"POST", "/v1/campaigns/1:move", R"({"priority":3})", kActor, "", 400, "INVALID_ARGUMENT",
       "priority"},
      {"POST", "/v1/campaigns/1:move", R"({"priority":0})", kActor, "", 400, "INVALID_ARGUMENT",
       "priority"},
      {"POST", "/v1/campaigns/1:move", R"({})", kActor, "", 400, "INVALID_ARGUMENT",
       "priority: missing"},
      {"POST", "/v1/campaigns/1:move", R"({"priority":"1"})", kActor, "", 400, "INVALID_ARGUMENT",
       "priority: must be an integer (got string)"},
      {"POST", "/v1/campaigns/1:move", R"({"priority":1,"x":1})", kActor, "", 400,
       "INVALID_ARGUMENT", "x: unknown field"},
      {"POST", "/v1/campaigns/1:move", "nope", kActor, "", 400, "INVALID_ARGUMENT",
       "body: malformed JSON"},
      {"POST", "/v1/campaigns/99:move", R"({"priority":1})", kActor, "", 404, "NOT_FOUND", "99"},
      {"POST", "/v1/campaigns/1:move", R"({"priority":1})", kActor, "\"7\"", 412,
       "FAILED_PRECONDITION", "version"},
      // Deletes.
      {"DELETE", "/v1/campaigns/99", "", kActor, "", 404, "NOT_FOUND", "campaign 99 not found"},
      {"DELETE", "/v1/campaigns/1", "", kActor, "\"1\"", 412, "FAILED_PRECONDITION", "version"},
      // Path ids.
      {"GET", "/v1/campaigns/abc", "", "", "", 400, "INVALID_ARGUMENT",
       "id: must be a positive 64-bit integer (got 'abc')"},
      {"GET", "/v1/campaigns/0", "", "", "", 400, "INVALID_ARGUMENT", "id: must be a positive"},
      {"GET", "/v1/campaigns/-3", "", "", "", 400, "INVALID_ARGUMENT", "id: must be a positive"},
      {"GET", "/v1/campaigns/+3", "", "", "", 400, "INVALID_ARGUMENT", "id: must be a positive"},
      {"GET", "/v1/campaigns/1.5", "", "", "", 400, "INVALID_ARGUMENT", "id: must be a positive"},
      {"GET", "/v1/campaigns/99999999999999999999", "", "", "", 400, "INVALID_ARGUMENT",
       "id: must be a positive"},
      {"PATCH", "/v1/campaigns/x1", R"({"name":"x"})", kActor, "", 400, "INVALID_ARGUMENT",
       "id: must be a positive"},
      {"POST", "/v1/campaigns/x:move", R"({"priority":1})", kActor, "", 400, "INVALID_ARGUMENT",
       "id: must be a positive"},
      {"DELETE", "/v1/campaigns/0", "", kActor, "", 400, "INVALID_ARGUMENT",
       "id: must be a positive"},
      {"GET", "/v1/customers/abc/campaigns", "", "", "", 400, "INVALID_ARGUMENT",
       "customer_id: must be a positive 64-bit integer (got 'abc')"},
      {"POST", "/v1/customers/0/campaigns", R"({"name":"n"})", kActor, "", 400, "INVALID_ARGUMENT",
       "customer_id: must be a positive"},
      // Routes and methods.
      {"GET", "/v2/campaigns/1", "", "", "", 404, "NOT_FOUND",
       "no route for GET '/v2/campaigns/1'"},
      {"GET", "/v1/campaigns", "", "", "", 404, "NOT_FOUND", "no route"},
      {"GET", "/v1/campaigns/1/", "", "", "", 404, "NOT_FOUND", "no route"},
      {"POST", "/v1/campaigns/1:frobnicate", "{}", kActor, "", 404, "NOT_FOUND", "no route"},
      {"GET", "/v1/customers/7/campaigns/1", "", "", "", 404, "NOT_FOUND", "no route"},
      {"PUT", "/v1/campaigns/1", R"({"name":"x"})", kActor, "", 405, "UNIMPLEMENTED",
       "PUT is not allowed on /v1/campaigns/{id} (allowed: GET, HEAD, PATCH, DELETE)"},
      {"DELETE", "/v1/customers/7/campaigns", "", kActor, "", 405, "UNIMPLEMENTED",
       "DELETE is not allowed"},
      {"GET", "/v1/campaigns/1:move", "", "", "", 405, "UNIMPLEMENTED", "GET is not allowed"},
      {"POST", "/healthz", "{}", kActor, "", 405, "UNIMPLEMENTED", "POST is not allowed"},
  };

  const std::string before = Dump();
  ASSERT_EQ(Summary(7), "c2@v1 p1, c1@v2 p2");
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.method + " " + c.path + " " + c.body.substr(0, 80) + " actor=" + c.actor +
                 " if-match=" + c.if_match);
    httplib::Headers h = Headers(c.actor);
    if (!c.if_match.empty()) h.emplace("If-Match", c.if_match);
    Reply r = Send(c.method, c.path, c.body, h);
    EXPECT_EQ(r.status, c.status) << r.body;
    EXPECT_EQ(r.ErrorCode(), c.code) << r.body;
    EXPECT_THAT(r.ErrorMessage(), HasSubstr(c.message)) << r.body;
    EXPECT_EQ(r.Header("Content-Type"), "application/json");
    EXPECT_EQ(r.Header("X-Transaction-Id"), "");
    if (c.status == 405) {
      EXPECT_FALSE(r.Header("Allow").empty());
    }
    EXPECT_EQ(Dump(), before);
  }
  // Still serving, with the same state.
  EXPECT_EQ(Send("GET", "/v1/campaigns/1").status, 200);
  EXPECT_EQ(Summary(7), "c2@v1 p1, c1@v2 p2");
}

TEST_F(CampaignApiTest, BodyOverTheLimitIs413AndChangesNothing) {
  Create(7, "A");
  const std::string before = Dump();
  const std::string huge = "{\"name\":\"" + std::string(300 * 1024, 'x') + "\"}";
  Reply r = Send("POST", "/v1/customers/7/campaigns", huge);
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.ErrorCode(), "RESOURCE_EXHAUSTED");
  EXPECT_EQ(r.ErrorMessage(), "request body exceeds the 262144-byte limit");
  Reply p = Send("PATCH", "/v1/campaigns/1", huge);
  EXPECT_EQ(p.status, 413) << p.body;

  // A chunked body (no Content-Length) is cut off at the limit too.
  auto chunked = NewClient();
  size_t sent = 0;
  auto res = chunked->Post(
      "/v1/customers/7/campaigns", Headers(),
      [&](size_t, httplib::DataSink& sink) {
        if (sent >= 1024 * 1024) {
          sink.done();
          return true;
        }
        std::string chunk(16 * 1024, 'x');
        sent += chunk.size();
        return sink.write(chunk.data(), chunk.size());
      },
      "application/json");
  if (res) {  // the server may close before the client finished sending
    EXPECT_EQ(res->status, 413) << res->body;
  }
  EXPECT_EQ(Dump(), before);
  EXPECT_EQ(Send("GET", "/v1/campaigns/1").status, 200);
}

TEST_F(CampaignApiTest, RequestsWithoutBodyFramingAreAnsweredAtOnce) {
  Create(7, "A");
  Create(7, "B");
  // curl -X DELETE sends neither Content-Length nor Transfer-Encoding.
  auto start = std::chrono::steady_clock::now();
  std::string out = RawExchange(server_->port(),
                                "DELETE /v1/campaigns/2 HTTP/1.1\r\nHost: t\r\nX-Actor: user:1\r\n"
                                "Connection: close\r\n\r\n");
  EXPECT_THAT(out, ::testing::StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(out, HasSubstr("X-Transaction-Id: 3"));
  std::string move = RawExchange(server_->port(),
                                 "POST /v1/campaigns/1:move HTTP/1.1\r\nHost: t\r\n"
                                 "X-Actor: user:1\r\nConnection: close\r\n\r\n");
  EXPECT_THAT(move, ::testing::StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(move, HasSubstr("body: malformed JSON"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(Summary(7), "c1@v3 p1");
}

TEST_F(CampaignApiTest, MalformedHttpGetsAJsonError) {
  std::string out = RawExchange(server_->port(), "NONSENSE\r\n\r\n");
  EXPECT_THAT(out, ::testing::StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(out, HasSubstr(R"({"error":{"code":"INVALID_ARGUMENT")"));
}

// ---- concurrency and lifecycle ------------------------------------------------------------------

TEST_F(CampaignApiTest, ConcurrentUpdatesOnDifferentCampaignsAllSucceed) {
  constexpr int kThreads = 8;
  constexpr int kUpdates = 100;
  std::vector<int64_t> ids;
  for (int i = 0; i < kThreads; ++i) ids.push_back(Create(7, "c" + std::to_string(i)));
  std::vector<int64_t> start_versions;
  for (int64_t id : ids) start_versions.push_back(store_.Get(id).value()->version);

  std::atomic<int> ok{0};
  std::mutex mu;
  std::set<std::string> transaction_ids;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto c = NewClient();
      for (int i = 0; i < kUpdates; ++i) {
        json body = {{"name", "t" + std::to_string(t) + " #" + std::to_string(i)},
                     {"frequency_cap", i}};
        Reply r = SendOn(*c, "PATCH", "/v1/campaigns/" + std::to_string(ids[t]), body.dump(),
                         Headers("user:" + std::to_string(t)));
        if (r.status == 200) {
          ++ok;
          std::lock_guard lock(mu);
          transaction_ids.insert(r.Header("X-Transaction-Id"));
        } else {
          ADD_FAILURE() << "thread " << t << " update " << i << ": " << r.status << " " << r.body;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kThreads * kUpdates);
  EXPECT_EQ(transaction_ids.size(), static_cast<size_t>(kThreads * kUpdates));
  for (int t = 0; t < kThreads; ++t) {
    Campaign c = MustGet(store_, ids[t]);
    EXPECT_EQ(c.version, start_versions[t] + kUpdates);
    EXPECT_EQ(c.name, "t" + std::to_string(t) + " #" + std::to_string(kUpdates - 1));
    EXPECT_EQ(c.updated_by, "user:" + std::to_string(t));
  }
}

TEST(CampaignApiLifecycleTest, StopFinishesRequestsInFlightAndRefusesNewConnections) {
  FakeClock clock;
  InMemoryCampaignStore inner(clock);
  GatedStore store(inner);
  CampaignService service(store);
  ASSERT_OK(service.Create(Campaign{.customer_id = 7, .name = "A"}, {.actor = "user:1"}));
  CampaignApiServer server(service, {.threads = 2});
  ASSERT_OK(server.Start("127.0.0.1", 0));
  const int port = server.port();

  store.Close();
  auto in_flight = std::async(std::launch::async, [port] {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(20);
    return ToReply(
        c.Patch("/v1/campaigns/1", {{"X-Actor", "user:2"}}, R"({"name":"B"})", "application/json"));
  });
  ASSERT_TRUE(store.WaitForWaiter(std::chrono::seconds(10)));

  auto stopped = std::async(std::launch::async, [&] { server.Stop(); });
  // New connections are refused once the listening socket is closed...
  bool refused = false;
  for (int i = 0; i < 200 && !refused; ++i) {
    httplib::Client probe("127.0.0.1", port);
    probe.set_connection_timeout(1);
    refused = !probe.Get("/healthz");
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(refused);
  // ...while Stop waits for the request in flight.
  EXPECT_EQ(stopped.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);

  store.Open();
  Reply r = in_flight.get();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(r.Header("X-Transaction-Id").empty());
  ASSERT_EQ(stopped.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  Campaign c = MustGet(inner, 1);
  EXPECT_EQ(c.name, "B");
  EXPECT_EQ(c.version, 2);
}

TEST(CampaignApiLifecycleTest, StartStopContracts) {
  FakeClock clock;
  InMemoryCampaignStore store(clock);
  CampaignService service(store);
  CampaignApiServer server(service);
  EXPECT_EQ(server.port(), 0);
  server.Stop();  // before Start: a no-op
  ASSERT_OK(server.Start("127.0.0.1", 0));
  EXPECT_THAT(server.Start("127.0.0.1", 0), testing::StatusIs(StatusCode::kFailedPrecondition));

  // The port is taken: a second server cannot bind it.
  CampaignApiServer second(service);
  EXPECT_THAT(second.Start("127.0.0.1", server.port()),
              testing::StatusIsWith(StatusCode::kUnavailable, "cannot listen on 127.0.0.1"));

  CampaignApiServer bad(service, {.threads = 0});
  EXPECT_THAT(bad.Start("127.0.0.1", 0),
              testing::StatusIsWith(StatusCode::kInvalidArgument, "threads"));
  EXPECT_THAT(second.Start("127.0.0.1", 70000), testing::StatusIs(StatusCode::kInvalidArgument));

  server.Stop();
  server.Stop();  // idempotent
  httplib::Client probe("127.0.0.1", server.port());
  probe.set_connection_timeout(1);
  EXPECT_FALSE(probe.Get("/healthz"));
}

TEST(CampaignApiLifecycleTest, IdleKeepAliveConnectionsDoNotStarveNewOnes) {
  FakeClock clock;
  InMemoryCampaignStore store(clock);
  CampaignService service(store);
  // One worker to start with; each keep-alive connection below holds one while it is open.
  CampaignApiServer server(
      service, {.threads = 1, .max_threads = 4, .keep_alive_timeout = std::chrono::seconds(10)});
  ASSERT_OK(server.Start("127.0.0.1", 0));
  std::vector<std::unique_ptr<httplib::Client>> clients;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) {
    clients.push_back(std::make_unique<httplib::Client>("127.0.0.1", server.port()));
    clients.back()->set_keep_alive(true);
    clients.back()->set_read_timeout(20);
    auto r = clients.back()->Get("/healthz");
    ASSERT_TRUE(r) << "connection " << i;
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  clients.clear();
  server.Stop();
}

TEST(CampaignApiLifecycleTest, StopClosesIdleKeepAliveConnectionsPromptly) {
  FakeClock clock;
  InMemoryCampaignStore store(clock);
  CampaignService service(store);
  CampaignApiServer server(service, {.keep_alive_timeout = std::chrono::seconds(1)});
  ASSERT_OK(server.Start("127.0.0.1", 0));
  httplib::Client c("127.0.0.1", server.port());
  c.set_keep_alive(true);
  ASSERT_TRUE(c.Get("/healthz"));  // leaves an idle keep-alive connection open
  auto start = std::chrono::steady_clock::now();
  server.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

}  // namespace
}  // namespace ch
