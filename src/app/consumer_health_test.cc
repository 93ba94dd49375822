#include "app/consumer_health.h"

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

std::vector<ConsumerReport> Reports(bool blocked) {
  BusConsumerStats s;
  s.delivered = 10;
  s.acked = 7;
  s.dead_lettered = 1;
  s.dependency_failures = 3;
  if (blocked) {
    s.blocked = true;
    s.blocking_error = ResourceExhaustedError("history store: database or disk is full");
    s.blocked_since = *ParseTimestamp("2026-11-27T10:00:00Z");
    s.retries = 3;
    s.held = 2;
    s.backoff = std::chrono::milliseconds(400);
  }
  return {{"publisher", "campaign-changes-publisher", s}};
}

TEST(ConsumerHealthTest, ReportsABlockedConsumerWith503AndReadsBack) {
  Timestamp now = *ParseTimestamp("2026-11-27T10:00:30Z");
  HealthReply ok = ConsumerHealth(Reports(false), now);
  EXPECT_EQ(ok.http_status, 200);
  HealthReply blocked = ConsumerHealth(Reports(true), now);
  EXPECT_EQ(blocked.http_status, 503);
  EXPECT_NE(blocked.json.find(R"("status":"blocked")"), std::string::npos) << blocked.json;
  ASSERT_OK_AND_ASSIGN(auto entries, ParseConsumerHealth(blocked.json));
  ASSERT_EQ(entries.size(), 1u);
  const ConsumerHealthEntry& e = entries[0];
  EXPECT_EQ(e.role, "publisher");
  EXPECT_EQ(e.subscription, "campaign-changes-publisher");
  EXPECT_TRUE(e.blocked);
  EXPECT_EQ(e.error, "RESOURCE_EXHAUSTED: history store: database or disk is full");
  EXPECT_EQ(e.since, "2026-11-27T10:00:00.000000Z");
  EXPECT_DOUBLE_EQ(e.blocked_seconds, 30);
  EXPECT_EQ(e.retries, 3);
  EXPECT_EQ(e.held, 2);
  EXPECT_DOUBLE_EQ(e.backoff_seconds, 0.4);
  EXPECT_EQ(e.acked, 7);
  EXPECT_FALSE(ParseConsumerHealth("not json").ok());
}

TEST(ConsumerHealthTest, MetricsCarryTheBlockedState) {
  MetricsWriter w;
  WriteConsumerMetrics(Reports(true), *ParseTimestamp("2026-11-27T10:00:30Z"), w);
  std::string text = w.Render();
  const std::string who = R"(role="publisher",subscription="campaign-changes-publisher")";
  for (const std::string& line :
       {"campaign_history_consumer_blocked{" + who + "} 1",
        "campaign_history_consumer_blocked_seconds{" + who + "} 30",
        "campaign_history_consumer_held_messages{" + who + "} 2",
        "campaign_history_consumer_dependency_failures_total{" + who + "} 3",
        "campaign_history_consumer_messages_total{" + who + R"(,outcome="dead_lettered"} 1)"}) {
    EXPECT_NE(text.find(line + "\n"), std::string::npos) << line << "\nin\n" << text;
  }
}

}  // namespace
}  // namespace ch
