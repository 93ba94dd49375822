// PubSubChangeBus without the emulator: the pure helpers, and the HTTP client against a scripted
// fake server (retries, timeouts, token refresh, error mapping, batching, re-creation).
// The emulator itself is covered by the bus contract suite and the bus integration tests.
#include "bus/pubsub_change_bus.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "bus/bus_limits.h"
#include "bus/pubsub_internal.h"
#include "testing/test_util.h"

namespace ch {
namespace {

namespace pi = pubsub_internal;
using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using std::chrono::milliseconds;

TEST(PubSubInternalTest, Base64RoundTripsEveryByte) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (size_t n = 0; n <= all.size(); n += (n < 8 ? 1 : 37)) {
    std::string in = all.substr(0, n);
    ASSERT_OK_AND_ASSIGN(std::string out, pi::Base64Decode(pi::Base64Encode(in)));
    EXPECT_EQ(out, in) << n;
  }
  EXPECT_EQ(pi::Base64Encode("hi"), "aGk=");
  EXPECT_EQ(pi::Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(*pi::Base64Decode("aGk"), "hi");         // no padding
  EXPECT_EQ(*pi::Base64Decode("_-8="), "\xff\xef");  // URL-safe alphabet
  EXPECT_THAT(pi::Base64Decode("a*b="), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(pi::Base64Decode("abcde"), StatusIs(StatusCode::kInvalidArgument));
}

TEST(PubSubInternalTest, BatchesRespectCountAndBytes) {
  std::vector<BusMessage> small(2500, BusMessage{.data = "x"});
  EXPECT_EQ(pi::PlanBatches(small, 1000, 9'000'000),
            (std::vector<std::pair<size_t, size_t>>{{0, 1000}, {1000, 2000}, {2000, 2500}}));
  std::vector<BusMessage> big(1100, BusMessage{.data = std::string(10 * 1024, 'x')});
  auto plan = pi::PlanBatches(big, 1000, 9'000'000);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_LT(plan[0].second, 1000u);  // cut by bytes, not by count
  EXPECT_EQ(plan[1].second, 1100u);
  std::vector<BusMessage> huge = {
      {.data = "a"}, {.data = std::string(9'500'000, 'x')}, {.data = "b"}};
  EXPECT_EQ(pi::PlanBatches(huge, 1000, 9'000'000),
            (std::vector<std::pair<size_t, size_t>>{{0, 1}, {1, 2}, {2, 3}}));
  EXPECT_TRUE(pi::PlanBatches({}, 1000, 100).empty());
}

TEST(PubSubInternalTest, HttpErrorsMapToCanonicalCodes) {
  std::string body =
      R"({"error":{"code":400,"message":"Too many messages","status":"INVALID_ARGUMENT"}})";
  EXPECT_THAT(pi::StatusFromHttp(400, body, "publish to", "projects/p/topics/t"),
              StatusIsWith(StatusCode::kInvalidArgument, "Too many messages"));
  EXPECT_THAT(pi::StatusFromHttp(400, R"({"error":{"status":"FAILED_PRECONDITION"}})", "x", "r"),
              StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(pi::StatusFromHttp(401, "", "x", "r"), StatusIs(StatusCode::kUnauthenticated));
  EXPECT_THAT(pi::StatusFromHttp(403, "", "x", "r"), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(pi::StatusFromHttp(404, "", "publish to", "projects/p/topics/t"),
              StatusIsWith(StatusCode::kNotFound, "projects/p/topics/t"));
  EXPECT_THAT(pi::StatusFromHttp(409, "", "x", "r"), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(pi::StatusFromHttp(429, "", "x", "r"), StatusIs(StatusCode::kResourceExhausted));
  EXPECT_THAT(pi::StatusFromHttp(503, "<html>", "x", "r"),
              StatusIsWith(StatusCode::kUnavailable, "<html>"));
  EXPECT_TRUE(pi::IsRetryableHttp(429));
  EXPECT_TRUE(pi::IsRetryableHttp(503));
  EXPECT_FALSE(pi::IsRetryableHttp(400));
  EXPECT_EQ(pi::BackoffCeiling(1, milliseconds(100), milliseconds(1000)), milliseconds(100));
  EXPECT_EQ(pi::BackoffCeiling(3, milliseconds(100), milliseconds(1000)), milliseconds(400));
  EXPECT_EQ(pi::BackoffCeiling(30, milliseconds(100), milliseconds(1000)), milliseconds(1000));
  EXPECT_EQ(pi::EmulatorEndpoint("localhost:8085"), "http://localhost:8085");
  EXPECT_EQ(pi::EmulatorEndpoint("http://h:1/"), "http://h:1");
}

TEST(PubSubInternalTest, PullResponseParsing) {
  std::string body = R"({"receivedMessages":[
    {"ackId":"a1","message":{"data":"aGk=","messageId":"7","publishTime":"2026-11-26T17:02:15.269Z",
     "orderingKey":"k","attributes":{"x":"y"}}},
    {"ackId":"a2","message":{"messageId":"8","attributes":{"only":"attrs"}},"deliveryAttempt":3}]})";
  ASSERT_OK_AND_ASSIGN(auto got, pi::ParsePullResponse(body));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].ack_id, "a1");
  EXPECT_EQ(got[0].message.data, "hi");
  EXPECT_EQ(got[0].message.ordering_key, "k");
  EXPECT_EQ(got[0].message.attributes.at("x"), "y");
  EXPECT_EQ(got[0].message_id, "7");
  EXPECT_EQ(got[0].delivery_attempt, 0);
  EXPECT_EQ(ToUnixMicros(got[0].publish_time), 1795712535269000);
  EXPECT_EQ(got[1].message.data, "");
  EXPECT_EQ(got[1].delivery_attempt, 3);
  ASSERT_OK_AND_ASSIGN(auto none, pi::ParsePullResponse("{}"));
  EXPECT_TRUE(none.empty());
  EXPECT_THAT(pi::ParsePullResponse("{not json"), StatusIs(StatusCode::kInternal));
}

// A scripted Pub/Sub: every request goes to `handler`, which the test sets.
class FakePubSub {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  FakePubSub() {
    auto route = [this](const httplib::Request& req, httplib::Response& res) {
      Handler h;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(req.method + " " + req.path);
        auth_.push_back(req.get_header_value("Authorization"));
        h = handler_;
      }
      if (h) h(req, res);
    };
    server_.Get(".*", route);
    server_.Put(".*", route);
    server_.Post(".*", route);
    server_.Delete(".*", route);
    server_.set_tcp_nodelay(true);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(milliseconds(1));
  }
  ~FakePubSub() {
    server_.stop();
    thread_.join();
  }
  void Set(Handler h) {
    std::lock_guard lock(mu_);
    handler_ = std::move(h);
  }
  std::vector<std::string> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }
  std::vector<std::string> auth() {
    std::lock_guard lock(mu_);
    return auth_;
  }
  std::string endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  Handler handler_;
  std::vector<std::string> requests_;
  std::vector<std::string> auth_;
};

void Json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

class PubSubFakeServerTest : public ::testing::Test {
 protected:
  PubSubOptions Options() {
    return PubSubOptions{.project = "p",
                         .endpoint = fake_.endpoint(),
                         .connect_timeout = milliseconds(500),
                         .io_timeout = milliseconds(2000),
                         .max_attempts = 3,
                         .initial_backoff = milliseconds(1),
                         .max_backoff = milliseconds(5)};
  }
  FakePubSub fake_;
};

TEST_F(PubSubFakeServerTest, RetriesServerErrorsThenSucceeds) {
  std::atomic<int> calls{0};
  fake_.Set([&](const httplib::Request&, httplib::Response& res) {
    if (++calls <= 2) return Json(res, 503, R"({"error":{"message":"try later"}})");
    Json(res, 200, R"({"messageIds":["1"]})");
  });
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_OK(bus->Publish("topic-a", m));
  EXPECT_EQ(bus->stats().requests, 3);
  EXPECT_EQ(bus->stats().retries, 2);
}

TEST_F(PubSubFakeServerTest, GivesUpWithUnavailableAfterMaxAttempts) {
  fake_.Set([&](const httplib::Request&, httplib::Response& res) {
    Json(res, 500, R"({"error":{"message":"NullPointerException"}})");
  });
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  EXPECT_THAT(bus->Pull("sub-a", 10, Micros(0)),
              StatusIsWith(StatusCode::kUnavailable, "NullPointerException"));
  EXPECT_EQ(bus->stats().requests, 3);
}

TEST_F(PubSubFakeServerTest, ConnectionRefusedIsUnavailable) {
  PubSubOptions o = Options();
  {
    // A port that was just free: bound, never listened on, closed again.
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    close(fd);
    o.endpoint = fmt::format("http://127.0.0.1:{}", ntohs(addr.sin_port));
  }
  auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(o));
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_THAT(bus->Publish("topic-a", m), StatusIs(StatusCode::kUnavailable));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(500));
  EXPECT_EQ(bus->stats().requests, 3);
}

TEST_F(PubSubFakeServerTest, HangingServerTimesOut) {
  fake_.Set([&](const httplib::Request&, httplib::Response& res) {
    std::this_thread::sleep_for(milliseconds(1500));
    Json(res, 200, "{}");
  });
  PubSubOptions o = Options();
  o.io_timeout = milliseconds(200);
  o.max_attempts = 2;
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(o));
  auto start = std::chrono::steady_clock::now();
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_THAT(bus->Publish("topic-a", m), StatusIs(StatusCode::kUnavailable));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(1200));
}

TEST_F(PubSubFakeServerTest, ClientErrorsAreNotRetriedAndNameTheProblem) {
  fake_.Set([&](const httplib::Request& req, httplib::Response& res) {
    if (req.path.ends_with(":publish")) {
      return Json(res, 400, R"({"error":{"code":400,"message":"Too many messages to publish",
                                "status":"INVALID_ARGUMENT"}})");
    }
    if (req.path.ends_with(":pull")) return Json(res, 403, R"({"error":{"message":"denied"}})");
    Json(res, 404, R"({"error":{"message":"Resource not found"}})");
  });
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_THAT(bus->Publish("topic-a", m),
              StatusIsWith(StatusCode::kInvalidArgument, "Too many messages to publish"));
  EXPECT_THAT(bus->Pull("sub-a", 1, Micros(0)), StatusIs(StatusCode::kPermissionDenied));
  std::vector<std::string> ids = {"x"};
  EXPECT_THAT(bus->Ack("sub-a", ids),
              StatusIsWith(StatusCode::kNotFound, "projects/p/subscriptions/sub-a"));
  EXPECT_EQ(bus->stats().retries, 0);
}

TEST_F(PubSubFakeServerTest, PublishIsSplitIntoRequestsOfAtMostAThousand) {
  std::mutex mu;
  std::vector<size_t> sizes;
  std::vector<std::string> first_data;
  fake_.Set([&](const httplib::Request& req, httplib::Response& res) {
    auto j = nlohmann::json::parse(req.body);
    std::lock_guard lock(mu);
    sizes.push_back(j["messages"].size());
    first_data.push_back(j["messages"][0]["data"]);
    Json(res, 200, "{}");
  });
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  std::vector<BusMessage> m;
  for (int i = 0; i < 2500; ++i) m.push_back({.data = std::to_string(i), .ordering_key = "k"});
  ASSERT_OK(bus->Publish("topic-a", m));
  EXPECT_EQ(sizes, (std::vector<size_t>{1000, 1000, 500}));
  // In order: request n starts where request n-1 ended.
  EXPECT_EQ(first_data, (std::vector<std::string>{pi::Base64Encode("0"), pi::Base64Encode("1000"),
                                                  pi::Base64Encode("2000")}));
}

TEST_F(PubSubFakeServerTest, OversizedMessageIsRejectedBeforeAnyRequest) {
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  std::vector<BusMessage> m = {{.data = std::string(kMaxBusMessageBytes + 1, 'x')}};
  EXPECT_THAT(bus->Publish("topic-a", m), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_TRUE(fake_.requests().empty());
}

TEST_F(PubSubFakeServerTest, EnsureCreatesMissingAndAcceptsConflicts) {
  fake_.Set([&](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" && req.path.find("/topics/") != std::string::npos) {
      return Json(res, 404, "{}");
    }
    if (req.method == "PUT" && req.path.find("/topics/") != std::string::npos) {
      return Json(res, 409, R"({"error":{"message":"Resource already exists"}})");
    }
    if (req.method == "GET") {  // subscription: exists on another topic
      return Json(res, 200,
                  R"({"topic":"projects/p/topics/elsewhere","enableMessageOrdering":true})");
    }
    Json(res, 500, "{}");
  });
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  EXPECT_OK(bus->EnsureTopic("topic-a"));
  EXPECT_THAT(bus->EnsureSubscription("sub-a", "topic-a", {}),
              StatusIsWith(StatusCode::kFailedPrecondition, "projects/p/topics/elsewhere"));
  EXPECT_EQ(fake_.requests(), (std::vector<std::string>{"GET /v1/projects/p/topics/topic-a",
                                                        "PUT /v1/projects/p/topics/topic-a",
                                                        "GET /v1/projects/p/subscriptions/sub-a"}));
}

TEST_F(PubSubFakeServerTest, WithoutCreateMissingAMissingTopicIsAFailedPrecondition) {
  fake_.Set([&](const httplib::Request&, httplib::Response& res) { Json(res, 404, "{}"); });
  PubSubOptions o = Options();
  o.create_missing = false;
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(o));
  EXPECT_THAT(bus->EnsureTopic("topic-a"),
              StatusIsWith(StatusCode::kFailedPrecondition, "projects/p/topics/topic-a"));
  EXPECT_THAT(bus->EnsureSubscription("sub-a", "topic-a", {}),
              StatusIsWith(StatusCode::kFailedPrecondition, "projects/p/subscriptions/sub-a"));
  EXPECT_EQ(fake_.requests().size(), 2u);  // two GETs, no PUT
}

TEST_F(PubSubFakeServerTest, NotFoundAfterEnsureRecreatesTopicAndSubscriptions) {
  // A server that keeps its resources in memory, like the emulator, and can "restart".
  std::mutex mu;
  std::set<std::string> existing;
  fake_.Set([&](const httplib::Request& req, httplib::Response& res) {
    std::lock_guard lock(mu);
    std::string resource = req.path.substr(0, req.path.find(':'));
    if (req.method == "PUT") {
      existing.insert(resource);
      return Json(res, 200, "{}");
    }
    if (!existing.contains(resource)) return Json(res, 404, R"({"error":{"message":"not found"}})");
    if (req.method == "GET" && resource.find("/subscriptions/") != std::string::npos) {
      return Json(res, 200,
                  R"({"topic":"projects/p/topics/topic-a","enableMessageOrdering":true})");
    }
    Json(res, 200, "{}");
  });
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(Options()));
  ASSERT_OK(bus->EnsureTopic("topic-a"));
  ASSERT_OK(bus->EnsureSubscription("sub-a", "topic-a", {}));
  {
    std::lock_guard lock(mu);
    existing.clear();  // the server restarted and forgot everything
  }
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_OK(bus->Publish("topic-a", m));
  EXPECT_EQ(bus->stats().recreated, 1);
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(existing, (std::set<std::string>{"/v1/projects/p/topics/topic-a",
                                               "/v1/projects/p/subscriptions/sub-a"}));
    existing.clear();
  }
  // A pull re-creates too, and returns what the new subscription has (nothing).
  ASSERT_OK_AND_ASSIGN(auto got, bus->Pull("sub-a", 10, Micros(0)));
  EXPECT_TRUE(got.empty());
  EXPECT_EQ(bus->stats().recreated, 2);
  // Leases died with the old subscription: acknowledging them is a no-op.
  {
    std::lock_guard lock(mu);
    existing.clear();
  }
  std::vector<std::string> ids = {"old-ack-id"};
  EXPECT_OK(bus->Ack("sub-a", ids));
  // Something this client never ensured is reported, not created.
  EXPECT_THAT(bus->Publish("topic-b", m), StatusIs(StatusCode::kNotFound));
}

TEST_F(PubSubFakeServerTest, RefreshesTheTokenOnceOn401) {
  ch::testing::TempDir dir;
  std::string counter = dir.File("n");
  fake_.Set([&](const httplib::Request& req, httplib::Response& res) {
    if (req.get_header_value("Authorization") != "Bearer tok2") {
      return Json(res, 401, R"({"error":{"message":"Request had invalid authentication"}})");
    }
    Json(res, 200, R"({"messageIds":["1"]})");
  });
  PubSubOptions o = Options();
  o.auth = PubSubAuth::kAccessToken;
  o.access_token_command = fmt::format(
      "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo \"  tok$n \"", counter);
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(o));
  std::vector<BusMessage> m = {{.data = "x"}};
  EXPECT_OK(bus->Publish("topic-a", m));
  EXPECT_EQ(fake_.auth(), (std::vector<std::string>{"Bearer tok1", "Bearer tok2"}));
  EXPECT_EQ(bus->stats().token_fetches, 2);
  // Still rejected after the refresh: Unauthenticated, no endless loop.
  fake_.Set([&](const httplib::Request&, httplib::Response& res) { Json(res, 401, "{}"); });
  EXPECT_THAT(bus->Publish("topic-a", m), StatusIs(StatusCode::kUnauthenticated));
  // A failing command is Unauthenticated and names the command.
  o.access_token_command = "exit 3";
  ASSERT_OK_AND_ASSIGN(auto broken, PubSubChangeBus::Open(o));
  EXPECT_THAT(broken->Publish("topic-a", m), StatusIsWith(StatusCode::kUnauthenticated, "exit 3"));
}

TEST_F(PubSubFakeServerTest, TokenFromTheEnvironmentAndNoneForTheEmulator) {
  fake_.Set([&](const httplib::Request&, httplib::Response& res) { Json(res, 200, "{}"); });
  PubSubOptions o = Options();
  o.auth = PubSubAuth::kAccessToken;
  o.access_token_env = "CH_TEST_PUBSUB_TOKEN_FOR_UNIT_TEST";
  unsetenv(o.access_token_env.c_str());
  EXPECT_THAT(PubSubChangeBus::Open(o),
              StatusIsWith(StatusCode::kFailedPrecondition, "CH_TEST_PUBSUB_TOKEN_FOR_UNIT_TEST"));
  setenv(o.access_token_env.c_str(), "env-token", 1);
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open(o));
  ASSERT_OK(bus->EnsureTopic("topic-a"));
  ASSERT_OK_AND_ASSIGN(auto plain, PubSubChangeBus::Open(Options()));  // http: no token
  ASSERT_OK(plain->EnsureTopic("topic-a"));
  EXPECT_EQ(fake_.auth(), (std::vector<std::string>{"Bearer env-token", ""}));
  unsetenv(o.access_token_env.c_str());
}

TEST(PubSubOpenTest, OptionsAreChecked) {
  EXPECT_THAT(PubSubChangeBus::Open({}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(PubSubChangeBus::Open({.project = "p", .endpoint = "ftp://x"}),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(
      PubSubChangeBus::Open({.project = "p", .endpoint = "http://x", .max_batch_messages = 1001}),
      StatusIs(StatusCode::kInvalidArgument));
  PubSubOptions real{.project = "p",
                     .endpoint = "https://pubsub.googleapis.com",
                     .access_token_env = "CH_TEST_SURELY_UNSET_TOKEN_VARIABLE"};
  EXPECT_THAT(PubSubChangeBus::Open(real), StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(auto bus,
                       PubSubChangeBus::Open({.project = "p", .endpoint = "http://h:1/"}));
  EXPECT_EQ(bus->endpoint(), "http://h:1");
}

}  // namespace
}  // namespace ch
