#include "history/completeness.h"

#include <string>
#include <vector>

#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

Timestamp T(int seconds) { return FromUnixMicros(int64_t{1'800'000'000 + seconds} * 1'000'000); }

// Record `campaign`@v1 of transaction `seq` (of `changes` changes), committed at T(seq).
HistoryRecord R(int64_t seq, int64_t campaign, int64_t changes) {
  HistoryRecord r;
  r.customer_id = 1;
  r.campaign_id = campaign;
  r.version = 1;
  r.event_time = T(static_cast<int>(seq));
  r.snapshot = "{}";
  r.txn_seq = seq;
  r.txn_changes = changes;
  return r;
}

// Route `records` and render what became visible ("c1 c2") plus the watermark ("| wm 2").
std::string Route(InMemoryCompletenessLedger& ledger, std::vector<HistoryRecord> records) {
  Result<GateResult> g = GateRecords(records, ledger);
  EXPECT_OK(g.status());
  if (!g.ok()) return "error";
  std::vector<int64_t> ids;
  for (const HistoryRecord* r : g->visible) ids.push_back(r->campaign_id);
  for (const HistoryRecord& r : g->released) ids.push_back(r.campaign_id);
  std::sort(ids.begin(), ids.end());
  std::string out;
  for (int64_t id : ids) out += "c" + std::to_string(id) + " ";
  return out + "| wm " + std::to_string(ledger.Summary().through_seq);
}

TEST(CompletenessTest, AWholeTransactionGoesStraightThrough) {
  InMemoryCompletenessLedger ledger;
  EXPECT_EQ(Route(ledger, {R(1, 1, 2), R(1, 2, 2)}), "c1 c2 | wm 1");
  Completeness c = ledger.Summary();
  EXPECT_EQ(c.complete_through, T(1));
  EXPECT_EQ(c.held_records, 0);
  EXPECT_EQ(c.partial_transactions + c.waiting_transactions, 0);
}

TEST(CompletenessTest, PiecesAreHeldUntilTheTransactionIsComplete) {
  InMemoryCompletenessLedger ledger;
  EXPECT_EQ(Route(ledger, {R(1, 1, 3)}), "| wm 0");
  EXPECT_EQ(ledger.Summary().held_records, 1);
  EXPECT_EQ(ledger.Summary().partial_transactions, 1);
  // A redelivered piece is not counted twice.
  EXPECT_EQ(Route(ledger, {R(1, 1, 3), R(1, 2, 3)}), "| wm 0");
  EXPECT_EQ(ledger.Summary().held_records, 2);
  // The last piece releases all three together.
  EXPECT_EQ(Route(ledger, {R(1, 3, 3)}), "c1 c2 c3 | wm 1");
  EXPECT_EQ(ledger.Summary().held_records, 0);
  EXPECT_FALSE(ledger.FindHeld(1, 1));
  // Afterwards the transaction's records are redeliveries, stored (deduplicated) at once.
  EXPECT_EQ(Route(ledger, {R(1, 2, 3)}), "c2 | wm 1");
}

TEST(CompletenessTest, TheWatermarkWaitsForTheEarliestMissingTransaction) {
  InMemoryCompletenessLedger ledger;
  EXPECT_EQ(Route(ledger, {R(2, 20, 1), R(3, 30, 1)}), "c20 c30 | wm 0");
  Completeness c = ledger.Summary();
  EXPECT_EQ(c.waiting_transactions, 2);
  EXPECT_FALSE(c.complete_through.has_value());
  EXPECT_EQ(Route(ledger, {R(1, 10, 1)}), "c10 | wm 3");
  c = ledger.Summary();
  EXPECT_EQ(c.complete_through, T(3));
  EXPECT_EQ(c.waiting_transactions, 0);
}

TEST(CompletenessTest, ASizeStatedOnlyByTheLastPieceIsEnough) {
  // A source that streams a large transaction states its size only on the last part.
  InMemoryCompletenessLedger ledger;
  EXPECT_EQ(Route(ledger, {R(1, 1, 0), R(1, 2, 0)}), "| wm 0");
  EXPECT_EQ(Route(ledger, {R(1, 3, 3)}), "c1 c2 c3 | wm 1");
}

TEST(CompletenessTest, RecordsWithoutATransactionNumberAreVisibleAtOnce) {
  InMemoryCompletenessLedger ledger;
  HistoryRecord notify = R(0, 5, 0);
  EXPECT_EQ(Route(ledger, {notify, R(1, 1, 2)}), "c5 | wm 0");
  EXPECT_FALSE(ledger.Summary().complete_through.has_value());
}

TEST(CompletenessTest, HeartbeatsMoveCompleteThroughOnceTheWatermarkReachesThem) {
  InMemoryCompletenessLedger ledger;
  // Nothing captured yet, and nothing will commit before T(5): complete through T(5).
  ASSERT_OK(GateHeartbeat({.seq = 0, .at = T(5)}, ledger));
  EXPECT_EQ(ledger.Summary().complete_through, T(5));
  EXPECT_EQ(Route(ledger, {R(1, 1, 1)}), "c1 | wm 1");
  EXPECT_EQ(ledger.Summary().complete_through, T(5));  // never moves back
  // A heartbeat past the watermark waits for it.
  ASSERT_OK(GateHeartbeat({.seq = 3, .at = T(50)}, ledger));
  EXPECT_EQ(ledger.Summary().complete_through, T(5));
  EXPECT_EQ(Route(ledger, {R(3, 3, 1)}), "c3 | wm 1");
  EXPECT_EQ(ledger.Summary().complete_through, T(5));
  EXPECT_EQ(Route(ledger, {R(2, 2, 1)}), "c2 | wm 3");
  EXPECT_EQ(ledger.Summary().complete_through, T(50));
  // An older heartbeat changes nothing.
  ASSERT_OK(GateHeartbeat({.seq = 1, .at = T(7)}, ledger));
  EXPECT_EQ(ledger.Summary().complete_through, T(50));
}

TEST(CompletenessTest, TransactionFieldsAreValidated) {
  HistoryRecord r = R(1, 1, 1);
  EXPECT_EQ(TxnFieldsProblem(r), "");
  r.txn_seq = -1;
  EXPECT_NE(TxnFieldsProblem(r), "");
  r = R(0, 1, 2);
  EXPECT_EQ(TxnFieldsProblem(r), "txn_changes is set but txn_seq is 0");
}

}  // namespace
}  // namespace ch
