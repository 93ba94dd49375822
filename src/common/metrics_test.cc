#include "common/metrics.h"

#include "common/metrics_server.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using std::chrono::seconds;

TEST(MetricsTest, GroupsSamplesByFamilyWithOneHelpAndTypeEach) {
  MetricsRegistry registry;
  registry.Register([](MetricsWriter& w) {
    w.Add("jobs_total", MetricType::kCounter, "Jobs done.", {{"role", "publisher"}}, 7);
    w.Add("blocked", MetricType::kGauge, "1 while blocked.", {}, 0);
  });
  registry.Register([](MetricsWriter& w) {
    w.Add("jobs_total", MetricType::kCounter, "ignored: the first help wins", {{"role", "sink"}},
          1234567);
    w.Add("seconds", MetricType::kGauge, "A duration.", {}, 2.5);
  });
  EXPECT_EQ(registry.Render(),
            "# HELP jobs_total Jobs done.\n"
            "# TYPE jobs_total counter\n"
            "jobs_total{role=\"publisher\"} 7\n"
            "jobs_total{role=\"sink\"} 1234567\n"
            "# HELP blocked 1 while blocked.\n"
            "# TYPE blocked gauge\n"
            "blocked 0\n"
            "# HELP seconds A duration.\n"
            "# TYPE seconds gauge\n"
            "seconds 2.5\n");
}

TEST(MetricsTest, EscapesLabelValues) {
  EXPECT_EQ(EscapeMetricLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  MetricsWriter w;
  w.Add("x", MetricType::kGauge, "h", {{"error", "UNAVAILABLE: \"db\" down\n"}}, 1);
  EXPECT_EQ(w.Render(),
            "# HELP x h\n# TYPE x gauge\nx{error=\"UNAVAILABLE: \\\"db\\\" down\\n\"} 1\n");
}

TEST(MetricsServerTest, ServesMetricsAndHealth) {
  MetricsRegistry registry;
  int scrapes = 0;
  registry.Register([&](MetricsWriter& w) {
    w.Add("scrapes_total", MetricType::kCounter, "Scrapes.", {}, ++scrapes);
  });
  bool healthy = true;
  ASSERT_OK_AND_ASSIGN(
      auto server,
      MetricsServer::Start("127.0.0.1", 0,
                           {.registry = &registry, .health = [&] {
                              return healthy ? HealthReply{} : HealthReply{503, "{\"x\":1}"};
                            }}));
  std::string base = "http://127.0.0.1:" + std::to_string(server->port());
  ASSERT_OK_AND_ASSIGN(HttpReply m, HttpGet(base + "/metrics", seconds(5)));
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(m.body,
            "# HELP scrapes_total Scrapes.\n# TYPE scrapes_total counter\nscrapes_total 1\n");
  ASSERT_OK_AND_ASSIGN(HttpReply h, HttpGet(base + "/healthz", seconds(5)));
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, R"({"status":"ok"})");
  healthy = false;
  ASSERT_OK_AND_ASSIGN(h, HttpGet(base + "/healthz", seconds(5)));
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.body, "{\"x\":1}");
  ASSERT_OK_AND_ASSIGN(HttpReply missing, HttpGet(base + "/nothing", seconds(5)));
  EXPECT_EQ(missing.status, 404);
  server->Stop();
  server->Stop();
  EXPECT_THAT(HttpGet(base + "/metrics", seconds(1)), StatusIs(StatusCode::kUnavailable));
}

TEST(MetricsServerTest, BadAddressesAndUrlsAreNamed) {
  EXPECT_THAT(ParseHostPort("--metrics-listen", "nohost"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseHostPort("--metrics-listen", "h:99999"), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(auto hp, ParseHostPort("--metrics-listen", "0.0.0.0:9090"));
  EXPECT_EQ(hp.first, "0.0.0.0");
  EXPECT_EQ(hp.second, 9090);
  EXPECT_THAT(HttpGet("https://x:1/", seconds(1)), StatusIs(StatusCode::kInvalidArgument));
  MetricsRegistry registry;
  ASSERT_OK_AND_ASSIGN(auto first, MetricsServer::Start("127.0.0.1", 0, {.registry = &registry}));
  auto second = MetricsServer::Start("127.0.0.1", first->port(), {.registry = &registry});
  EXPECT_THAT(second, StatusIs(StatusCode::kUnavailable));
}

}  // namespace
}  // namespace ch
