// Every record the publisher emits on the history topic loads into the BigQuery table unchanged,
// the way a Pub/Sub BigQuery subscription with "use table schema" (and the filter
// `NOT attributes:heartbeat`) writes it: the small workload captured with log capture, plus
// notify records, go through Publisher -> HistoryTopicWriter onto a bus, and every message is
// checked against history/bigquery_schema.h.
#include <fmt/format.h>

#include "bus/in_memory_change_bus.h"
#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "capture/change_event.h"
#include "history/bigquery_schema.h"
#include "history/in_memory_history_store.h"
#include "publisher/history_topic_writer.h"
#include "publisher/publisher.h"
#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"
#include "workload/replayer.h"

namespace ch {
namespace {

TEST(BigQueryRowsTest, EveryRecordOnTheHistoryTopicFitsTheTableSchema) {
  FakeClock clock;
  InMemoryCampaignStore store(clock, StoreCapture::kLog);
  CampaignService service(store);
  Replayer replayer(service);
  for (const WorkloadLine& line : ::ch::testing::SmallWorkload()) {
    ASSERT_OK(replayer.Apply(line).status());
    clock.Advance(std::chrono::milliseconds(3));
  }
  // The captured changes as a source hands them out: numbered transactions.
  std::vector<ChangeEvent> events;
  int64_t seq = 0;
  std::vector<CapturedChange> changes = store.AllChanges();
  for (size_t begin = 0; begin < changes.size();) {
    size_t end = begin + 1;
    while (end < changes.size() && changes[end].transaction_id == changes[begin].transaction_id) {
      ++end;
    }
    ++seq;
    for (size_t k = begin; k < end; ++k) {
      ChangeEvent e = ChangeEventFromCapture(changes[k]);
      e.txn_seq = seq;
      e.txn_changes = static_cast<int64_t>(end - begin);
      events.push_back(std::move(e));
    }
    begin = end;
  }
  // A notify record too: the publisher re-reads the campaign's row.
  ChangeEvent notify = events.back();
  notify.capture = CaptureMode::kNotify;
  notify.op = ChangeOp::kUpdated;
  notify.row.reset();
  notify.txn_seq = notify.txn_changes = 0;

  InMemoryChangeBus bus(clock);
  ASSERT_OK(bus.EnsureTopic("campaign-history"));
  InMemoryHistoryStore reader;  // notify resolves against what is recorded: nothing yet
  HistoryTopicWriter topic(bus, "campaign-history", &reader);
  Publisher publisher({.history = &topic, .campaigns = &store});
  for (size_t i = 0; i < events.size(); i += 500) {
    std::span<const ChangeEvent> batch(events.data() + i, std::min<size_t>(500, events.size() - i));
    ASSERT_OK(publisher.Process(batch).status());
  }
  // In a call of its own: the log records of this publisher are not in its reader store, so the
  // notify record is not a duplicate of them.
  ASSERT_OK_AND_ASSIGN(PublishStats notified, publisher.Process(std::span(&notify, 1)));
  EXPECT_EQ(notified.stored, 1);
  ASSERT_OK(publisher.RecordHeartbeat({.seq = seq, .at = clock.Now()}));

  int64_t rows = 0, heartbeats = 0;
  for (const auto& m : bus.AllMessages("campaign-history")) {
    if (m.message.attributes.contains("heartbeat")) {
      // `NOT attributes:heartbeat` keeps it out of the table; it would not fit.
      ++heartbeats;
      EXPECT_FALSE(ValidateBigQueryRow(m.message.data).ok());
      continue;
    }
    ++rows;
    Status s = ValidateBigQueryRow(m.message.data);
    ASSERT_OK(s) << m.message.data.substr(0, 300);
  }
  EXPECT_EQ(rows, static_cast<int64_t>(events.size()) + 1);
  EXPECT_EQ(heartbeats, 1);
  EXPECT_GT(rows, 7000) << "the whole small workload";
}

}  // namespace
}  // namespace ch
