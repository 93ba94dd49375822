#include "app/history_metrics.h"

#include "history/in_memory_history_store.h"
#include "publisher/publisher.h"
#include "testing/test_util.h"

namespace ch {
namespace {

HistoryRecord Version1(std::string name) {
  Campaign c;
  c.id = 7;
  c.customer_id = 1;
  c.name = std::move(name);
  c.priority = 1;
  c.version = 1;
  c.content = R"({"title":"Hi"})";
  c.updated_by = "user:1";
  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  e.op = ChangeOp::kCreated;
  e.campaign_id = c.id;
  e.customer_id = c.customer_id;
  e.version = 1;
  e.event_time = FromUnixMicros(5);
  e.actor = "user:1";
  e.transaction_id = "1";
  e.row = c;
  Result<HistoryRecord> r = BuildLogRecord(e);
  EXPECT_OK(r.status());
  return r.ok() ? *r : HistoryRecord{};
}

TEST(HistoryMetricsTest, AReusedVersionShowsAsAConflict) {
  InMemoryHistoryStore history;
  ASSERT_OK(history.Append(std::vector<HistoryRecord>{Version1("a")}).status());
  ASSERT_OK(history.Append(std::vector<HistoryRecord>{Version1("a")}).status());  // redelivery
  MetricsWriter before;
  WriteHistoryMetrics(history, before);
  EXPECT_NE(before.Render().find("\ncampaign_history_history_conflicts 0\n"), std::string::npos)
      << before.Render();
  // Version 1 again, with other content: the campaign database reused the number.
  ASSERT_OK(history.Append(std::vector<HistoryRecord>{Version1("b")}).status());
  MetricsWriter after;
  WriteHistoryMetrics(history, after);
  const std::string text = after.Render();
  EXPECT_NE(text.find("# TYPE campaign_history_history_conflicts gauge\n"), std::string::npos);
  EXPECT_NE(text.find("\ncampaign_history_history_conflicts 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ncampaign_history_history_held_records 0\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace ch
