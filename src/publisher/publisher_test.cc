#include "publisher/publisher.h"

#include <fmt/format.h>

#include <atomic>
#include <deque>

#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "capture/in_memory_change_source.h"
#include "history/in_memory_history_store.h"
#include "history/sqlite_history_store.h"
#include "publisher/source_drainer.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

Campaign Row(int64_t id, int64_t version, int64_t priority = 1) {
  Campaign c;
  c.id = id;
  c.customer_id = 1;
  c.name = "Banner " + std::to_string(id);
  c.priority = priority;
  c.version = version;
  c.content = R"({"title":"Hi"})";
  c.updated_by = "user:1";
  return c;
}

ChangeEvent LogEvent(const Campaign& row, ChangeOp op, int64_t micros) {
  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  e.op = op;
  e.campaign_id = row.id;
  e.customer_id = row.customer_id;
  e.version = op == ChangeOp::kDeleted ? row.version + 1 : row.version;
  e.event_time = FromUnixMicros(micros);
  e.actor = "user:1";
  e.transaction_id = "7";
  e.row = row;
  return e;
}

std::string Render(const std::vector<HistoryRecord>& records) {
  std::string out;
  for (const auto& r : records) {
    if (!out.empty()) out += "; ";
    out += "c" + std::to_string(r.campaign_id) + "@v" + std::to_string(r.version) + " " +
           std::string(ChangeOpName(r.event_type)) + " missed " + std::to_string(r.missed_versions);
  }
  return out;
}

TEST(PublisherTest, BuildsLogRecordFromTheRowImage) {
  ASSERT_OK_AND_ASSIGN(HistoryRecord r,
                       BuildLogRecord(LogEvent(Row(7, 3, 2), ChangeOp::kUpdated, 5)));
  EXPECT_EQ(r.campaign_id, 7);
  EXPECT_EQ(r.version, 3);
  EXPECT_EQ(r.priority, 2);
  EXPECT_EQ(r.transaction_id, "7");
  EXPECT_EQ(r.snapshot, CampaignToJson(Row(7, 3, 2)));
  EXPECT_EQ(r.capture, CaptureMode::kLog);
}

TEST(PublisherTest, DeleteRecordKeepsTheLastContent) {
  ASSERT_OK_AND_ASSIGN(HistoryRecord r, BuildLogRecord(LogEvent(Row(7, 3), ChangeOp::kDeleted, 5)));
  EXPECT_EQ(r.version, 4);
  EXPECT_EQ(r.event_type, ChangeOp::kDeleted);
  EXPECT_EQ(r.snapshot, CampaignToJson(Row(7, 3)));
}

TEST(PublisherTest, RejectsInconsistentEvents) {
  ChangeEvent e = LogEvent(Row(7, 3), ChangeOp::kUpdated, 5);
  e.row->id = 8;
  EXPECT_THAT(BuildLogRecord(e), StatusIs(StatusCode::kInvalidArgument));
  e = LogEvent(Row(7, 3), ChangeOp::kUpdated, 5);
  e.version = 4;
  EXPECT_THAT(BuildLogRecord(e), StatusIs(StatusCode::kInvalidArgument));
  e.row.reset();
  EXPECT_THAT(BuildLogRecord(e), StatusIs(StatusCode::kInvalidArgument));
}

TEST(PublisherTest, ProcessingTwiceStoresOnce) {
  InMemoryHistoryStore history;
  Publisher p({.history = &history});
  std::vector<ChangeEvent> events = {LogEvent(Row(7, 1), ChangeOp::kCreated, 1),
                                     LogEvent(Row(7, 2), ChangeOp::kUpdated, 2)};
  ASSERT_OK_AND_ASSIGN(PublishStats first, p.Process(events));
  EXPECT_EQ(first.stored, 2);
  ASSERT_OK_AND_ASSIGN(PublishStats again, p.Process(events));
  EXPECT_EQ(again.stored, 0);
  EXPECT_EQ(Render(history.AllRecords()), "c7@v1 created missed 0; c7@v2 updated missed 0");
}

ChangeEvent Unchanged(const Campaign& row, int64_t micros) {
  ChangeEvent e = LogEvent(row, ChangeOp::kUpdated, micros);
  e.row->content = "";
  e.content_omitted = true;
  return e;
}

// The compact outbox omits unchanged content; the publisher takes it from the previous version.
TEST(PublisherTest, ResolvesOmittedContentFromTheBatchTheCacheAndTheHistory) {
  InMemoryHistoryStore history;
  {
    Publisher p({.history = &history});
    ASSERT_OK(p.Process(std::vector<ChangeEvent>{LogEvent(Row(7, 1), ChangeOp::kCreated, 1),
                                                 Unchanged(Row(7, 2, 2), 2)})
                  .status());
    ASSERT_OK(p.Process(std::vector<ChangeEvent>{Unchanged(Row(7, 3, 3), 3)}).status());
  }
  // A new publisher (a restart) has no cache: the history has the previous version.
  Publisher restarted({.history = &history});
  ASSERT_OK(restarted.Process(std::vector<ChangeEvent>{Unchanged(Row(7, 4, 1), 4)}).status());
  for (int64_t v = 1; v <= 4; ++v) {
    ASSERT_OK_AND_ASSIGN(auto r, history.GetVersion(7, v));
    ASSERT_TRUE(r.has_value());
    ASSERT_OK_AND_ASSIGN(Campaign c, CampaignFromJson(r->snapshot));
    EXPECT_EQ(c.content, R"({"title":"Hi"})") << "v" << v;
    EXPECT_EQ(c.version, v);
  }
}

TEST(PublisherTest, OmittedContentWithoutAPreviousVersionIsDataLoss) {
  InMemoryHistoryStore history;
  Publisher p({.history = &history});
  EXPECT_THAT(p.Process(std::vector<ChangeEvent>{Unchanged(Row(7, 5), 5)}),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_TRUE(history.AllRecords().empty());
}

// A version of a priority shift as the outbox hands it out (format 3): the ids, the version, who
// and when; the rest is the previous version's with the shift applied.
ChangeEvent Shifted(int64_t id, int64_t version, int64_t shift, int64_t micros,
                    int64_t customer = 1) {
  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  e.op = ChangeOp::kUpdated;
  e.campaign_id = id;
  e.customer_id = customer;
  e.version = version;
  e.event_time = FromUnixMicros(micros);
  e.actor = "user:2";
  e.transaction_id = "8";
  Campaign row;
  row.id = id;
  row.customer_id = customer;
  row.version = version;
  row.updated_at = e.event_time;
  row.updated_by = "user:2";
  e.row = row;
  e.content_omitted = true;
  e.image_omitted = true;
  e.priority_shift = shift;
  return e;
}

Campaign Stored(InMemoryHistoryStore& history, int64_t id, int64_t version) {
  auto r = history.GetVersion(id, version);
  EXPECT_OK(r);
  if (!r.ok() || !r->has_value()) {
    ADD_FAILURE() << "c" << id << "@v" << version << " is not stored";
    return Campaign{};
  }
  auto c = CampaignFromJson((*r)->snapshot);
  EXPECT_OK(c);
  return c.ok() ? *c : Campaign{};
}

TEST(PublisherTest, ExpandsPriorityShiftsFromTheBatchTheCacheAndTheHistory) {
  InMemoryHistoryStore history;
  {
    Publisher p({.history = &history});
    ASSERT_OK(p.Process(std::vector<ChangeEvent>{LogEvent(Row(7, 1, 1), ChangeOp::kCreated, 1),
                                                 Shifted(7, 2, 1, 2)})
                  .status());
    ASSERT_OK(p.Process(std::vector<ChangeEvent>{Shifted(7, 3, 2, 3)}).status());
  }
  // A new publisher (a restart) has no cache: the history has the previous version.
  Publisher restarted({.history = &history});
  ASSERT_OK(restarted.Process(std::vector<ChangeEvent>{Shifted(7, 4, -3, 4)}).status());
  const int64_t priorities[] = {1, 2, 4, 1};
  for (int64_t v = 1; v <= 4; ++v) {
    Campaign expected = Row(7, v, priorities[v - 1]);
    if (v > 1) {
      expected.updated_at = FromUnixMicros(v);
      expected.updated_by = "user:2";
    }
    EXPECT_EQ(Stored(history, 7, v), expected) << "v" << v;
    ASSERT_OK_AND_ASSIGN(auto r, history.GetVersion(7, v));
    EXPECT_EQ(r->event_time, FromUnixMicros(v));
    EXPECT_EQ(r->actor, v == 1 ? "user:1" : "user:2");
    EXPECT_EQ(r->priority, priorities[v - 1]);
  }
}

TEST(PublisherTest, ShiftsWithoutTheirPreviousVersionAreDataLoss) {
  InMemoryHistoryStore history;
  Publisher p({.history = &history});
  EXPECT_THAT(p.Process(std::vector<ChangeEvent>{Shifted(7, 5, 1, 5)}),
              StatusIsWith(StatusCode::kDataLoss, "campaign 7 version 5 is a priority shift"));
  EXPECT_TRUE(history.AllRecords().empty());
  // The previous version is another customer's: the shift row is not this campaign's history.
  ASSERT_OK(
      p.Process(std::vector<ChangeEvent>{LogEvent(Row(7, 1), ChangeOp::kCreated, 1)}).status());
  EXPECT_THAT(p.Process(std::vector<ChangeEvent>{Shifted(7, 2, 1, 2, /*customer=*/2)}),
              StatusIs(StatusCode::kDataLoss));
  Publisher restarted({.history = &history});
  EXPECT_THAT(restarted.Process(std::vector<ChangeEvent>{Shifted(7, 2, 1, 2, /*customer=*/2)}),
              StatusIs(StatusCode::kDataLoss));
  EXPECT_EQ(history.AllRecords().size(), 1u);
}

// A crash in the middle of a shift's expansion: the history may hold some of its versions (a
// store that appends in parts) or none (a failed append). A restarted publisher given the whole
// transaction again stores every version once, exactly as an uninterrupted one.
TEST(PublisherTest, AShiftRedeliveredAfterACrashMidExpansionIsStoredOnceAndTheSame) {
  const std::vector<ChangeEvent> creates = {LogEvent(Row(7, 1, 1), ChangeOp::kCreated, 1),
                                            LogEvent(Row(8, 1, 2), ChangeOp::kCreated, 1),
                                            LogEvent(Row(9, 1, 3), ChangeOp::kCreated, 1)};
  const std::vector<ChangeEvent> shift = {Shifted(7, 2, 1, 2), Shifted(8, 2, 1, 2),
                                          Shifted(9, 2, 1, 2)};
  InMemoryHistoryStore reference;
  {
    Publisher p({.history = &reference});
    ASSERT_OK(p.Process(creates).status());
    ASSERT_OK(p.Process(shift).status());
  }
  for (size_t done = 0; done <= shift.size(); ++done) {
    InMemoryHistoryStore history;
    {
      Publisher p({.history = &history});
      ASSERT_OK(p.Process(creates).status());
    }
    // The crash: `done` of the shift's records made it.
    std::vector<HistoryRecord> part;
    for (const HistoryRecord& r : reference.AllRecords()) {
      if (r.version == 2 && part.size() < done) part.push_back(r);
    }
    if (!part.empty()) {
      ASSERT_OK(history.Append(part).status());
    }
    Publisher restarted({.history = &history});
    ASSERT_OK_AND_ASSIGN(PublishStats stats, restarted.Process(shift));
    EXPECT_EQ(stats.stored, static_cast<int64_t>(shift.size() - done));
    ASSERT_OK_AND_ASSIGN(PublishStats again, restarted.Process(shift));
    EXPECT_EQ(again.stored, 0);
    ASSERT_EQ(history.AllRecords().size(), reference.AllRecords().size()) << done;
    for (int64_t id : {7, 8, 9}) {
      EXPECT_EQ(Stored(history, id, 2), Stored(reference, id, 2)) << "c" << id << " " << done;
    }
  }
}

// Notify capture: the message names a version; the publisher records whatever the database holds
// now and counts what it never saw.
class NotifyTest : public ::testing::Test {
 protected:
  NotifyTest()
      : store_(clock_),
        service_(store_),
        publisher_({.history = &history_, .campaigns = &store_}) {}

  ChangeEvent Notify(const CommitInfo& info, size_t i = 0) {
    ChangeEvent e;
    e.capture = CaptureMode::kNotify;
    e.op = info.changes[i].op;
    e.campaign_id = info.changes[i].campaign_id;
    e.customer_id = info.changes[i].customer_id;
    e.version = info.changes[i].version;
    e.event_time = info.committed_at;
    e.actor = info.actor;
    e.transaction_id = info.transaction_id;
    if (e.op == ChangeOp::kDeleted) e.row = info.row;
    return e;
  }

  FakeClock clock_;
  InMemoryCampaignStore store_;
  CampaignService service_;
  InMemoryHistoryStore history_;
  Publisher publisher_;
};

TEST_F(NotifyTest, CollapsedSavesAreCountedAsMissed) {
  Campaign draft = Row(0, 0);
  ASSERT_OK_AND_ASSIGN(CommitInfo created, service_.Create(draft, {.actor = "user:1"}));
  int64_t id = created.changes[0].campaign_id;
  ASSERT_OK_AND_ASSIGN(CampaignPatch p1, ParseCampaignPatch(R"({"name":"two"})"));
  ASSERT_OK_AND_ASSIGN(CommitInfo v2, service_.Update(id, p1, {.actor = "user:2"}));
  ASSERT_OK_AND_ASSIGN(CampaignPatch p2, ParseCampaignPatch(R"({"name":"three"})"));
  ASSERT_OK_AND_ASSIGN(CommitInfo v3, service_.Update(id, p2, {.actor = "user:3"}));

  // The worker gets to the first message only now: it sees version 3.
  ASSERT_OK_AND_ASSIGN(PublishStats s1,
                       publisher_.Process(std::vector<ChangeEvent>{Notify(created)}));
  EXPECT_EQ(s1.stored, 1);
  EXPECT_EQ(s1.missed_versions, 2);
  ASSERT_OK_AND_ASSIGN(PublishStats s2,
                       publisher_.Process(std::vector<ChangeEvent>{Notify(v2), Notify(v3)}));
  EXPECT_EQ(s2.dropped, 2);
  EXPECT_EQ(Render(history_.AllRecords()), "c" + std::to_string(id) + "@v3 updated missed 2");
  auto rec = history_.AllRecords()[0];
  EXPECT_EQ(rec.actor, "user:3");
  EXPECT_EQ(rec.event_time, v3.committed_at);
  EXPECT_EQ(rec.transaction_id, "");  // the message's transaction made v1, not v3

  ASSERT_OK_AND_ASSIGN(CommitInfo del, service_.Delete(id, {.actor = "user:4"}));
  ASSERT_OK_AND_ASSIGN(PublishStats s3, publisher_.Process(std::vector<ChangeEvent>{Notify(del)}));
  EXPECT_EQ(s3.stored, 1);
  EXPECT_EQ(Render(history_.AllRecords()), "c" + std::to_string(id) + "@v3 updated missed 2; c" +
                                               std::to_string(id) + "@v4 deleted missed 0");
}

TEST_F(NotifyTest, UpdateOfADeletedCampaignIsDroppedAndTheDeleteRecorded) {
  ASSERT_OK_AND_ASSIGN(CommitInfo created, service_.Create(Row(0, 0), {.actor = "user:1"}));
  int64_t id = created.changes[0].campaign_id;
  ASSERT_OK_AND_ASSIGN(CommitInfo del, service_.Delete(id, {.actor = "user:4"}));
  ASSERT_OK_AND_ASSIGN(PublishStats s,
                       publisher_.Process(std::vector<ChangeEvent>{Notify(created), Notify(del)}));
  EXPECT_EQ(s.dropped, 1);
  EXPECT_EQ(s.stored, 1);
  EXPECT_EQ(Render(history_.AllRecords()), "c" + std::to_string(id) + "@v2 deleted missed 1");
}

// A forged or corrupt delete notification for a campaign the database still has, claiming a
// version far ahead of the real one: recording its tombstone would hide every real version that
// follows (they would all look "already recorded"). The database knows better.
TEST_F(NotifyTest, ADeleteNotificationForALiveCampaignIsRejectedAndMasksNothing) {
  ASSERT_OK_AND_ASSIGN(CommitInfo created, service_.Create(Row(0, 0), {.actor = "user:1"}));
  const int64_t id = created.changes[0].campaign_id;
  ASSERT_OK(publisher_.Process(std::vector<ChangeEvent>{Notify(created)}).status());
  ChangeEvent forged = Notify(created);
  forged.op = ChangeOp::kDeleted;
  forged.version = 1000;
  forged.row = Row(id, 999);
  forged.row->customer_id = forged.customer_id;
  Result<PublishStats> r = publisher_.Process(std::vector<ChangeEvent>{forged});
  EXPECT_THAT(r, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_NE(r.status().message().find(
                fmt::format("campaign {} was deleted (version 1000), but the campaign database "
                            "has it at version 1",
                            id)),
            std::string::npos)
      << r.status().ToString();
  // A forged update far ahead is harmless: the version recorded is the database's.
  ChangeEvent ahead = Notify(created);
  ahead.op = ChangeOp::kUpdated;
  ahead.version = 5000;
  ASSERT_OK_AND_ASSIGN(PublishStats dropped, publisher_.Process(std::vector<ChangeEvent>{ahead}));
  EXPECT_EQ(dropped.dropped, 1);  // the database's version 1 is already recorded
  // The real versions that follow are recorded.
  ASSERT_OK_AND_ASSIGN(CampaignPatch p, ParseCampaignPatch(R"({"name":"two"})"));
  ASSERT_OK_AND_ASSIGN(CommitInfo v2, service_.Update(id, p, {.actor = "user:2"}));
  ASSERT_OK(publisher_.Process(std::vector<ChangeEvent>{Notify(v2)}).status());
  ASSERT_OK_AND_ASSIGN(CommitInfo del, service_.Delete(id, {.actor = "user:3"}));
  ASSERT_OK(publisher_.Process(std::vector<ChangeEvent>{Notify(del)}).status());
  const std::string c = "c" + std::to_string(id);
  EXPECT_EQ(
      Render(history_.AllRecords()),
      c + "@v1 created missed 0; " + c + "@v2 updated missed 0; " + c + "@v3 deleted missed 0");
}

// A campaign database that does not answer (notify capture re-reads every row).
class DownCampaignStore final : public CampaignStore {
 public:
  Status failure = UnavailableError("connection refused");
  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view) override {
    return failure;
  }
  Result<std::optional<Campaign>> Get(int64_t) override { return failure; }
  Result<std::vector<Campaign>> List(int64_t) override { return failure; }
  Result<std::vector<int64_t>> ListCustomers() override { return failure; }
  Result<std::vector<Campaign>> ListExpired(Timestamp, int64_t) override { return failure; }
  Status SyncCommitted() override { return failure; }
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view) override {
    return failure;
  }
};

TEST(PublisherTest, NotifyWithoutACampaignStoreFails) {
  InMemoryHistoryStore history;
  Publisher p({.history = &history});
  ChangeEvent e = LogEvent(Row(7, 1), ChangeOp::kUpdated, 1);
  e.capture = CaptureMode::kNotify;
  e.row.reset();
  EXPECT_THAT(p.Process(std::vector<ChangeEvent>{e}), StatusIs(StatusCode::kFailedPrecondition));
}

// A campaign database whose rows can be read but whose commits cannot be made durable.
class UnsyncableStore final : public CampaignStore {
 public:
  explicit UnsyncableStore(CampaignStore& inner) : inner_(inner) {}
  int syncs = 0;
  Status failure = UnavailableError("fsync of the WAL file: I/O error");
  Result<std::unique_ptr<CampaignTransaction>> BeginWrite(std::string_view a) override {
    return inner_.BeginWrite(a);
  }
  Result<std::optional<Campaign>> Get(int64_t id) override { return inner_.Get(id); }
  Result<std::vector<Campaign>> List(int64_t c) override { return inner_.List(c); }
  Result<std::vector<int64_t>> ListCustomers() override { return inner_.ListCustomers(); }
  Result<std::vector<Campaign>> ListExpired(Timestamp t, int64_t n) override {
    return inner_.ListExpired(t, n);
  }
  Status SyncCommitted() override {
    ++syncs;
    return failure;
  }
  Result<std::optional<ReplayPosition>> GetReplayPosition(std::string_view w) override {
    return inner_.GetReplayPosition(w);
  }

 private:
  CampaignStore& inner_;
};

// What notify capture records was read from the campaign database: a power loss there must not
// be able to take it back once the history holds it.
TEST(PublisherTest, NotifyRecordsWhatItReadOnlyOnceTheCampaignDatabaseMadeItDurable) {
  FakeClock clock;
  InMemoryCampaignStore inner(clock);
  CampaignService service(inner);
  UnsyncableStore store(inner);
  InMemoryHistoryStore history;
  Publisher p({.history = &history, .campaigns = &store});
  ASSERT_OK_AND_ASSIGN(CommitInfo created, service.Create(Row(0, 0), {.actor = "user:1"}));
  ChangeEvent e;
  e.capture = CaptureMode::kNotify;
  e.op = ChangeOp::kCreated;
  e.campaign_id = created.changes[0].campaign_id;
  e.customer_id = created.changes[0].customer_id;
  e.version = 1;
  e.event_time = created.committed_at;
  e.actor = "user:1";
  e.transaction_id = created.transaction_id;
  EXPECT_THAT(p.Process(std::vector<ChangeEvent>{e}),
              StatusIsWith(StatusCode::kUnavailable, "campaign database"));
  EXPECT_EQ(store.syncs, 1);
  EXPECT_TRUE(history.AllRecords().empty()) << "recorded before the database made it durable";
  store.failure = Status::OK();
  ASSERT_OK_AND_ASSIGN(PublishStats s, p.Process(std::vector<ChangeEvent>{e}));
  EXPECT_EQ(s.stored, 1);
  EXPECT_EQ(store.syncs, 2);
  // Log events carry their rows, which the capture made durable before handing them out.
  ASSERT_OK(p.Process(std::vector<ChangeEvent>{LogEvent(Row(9, 1), ChangeOp::kCreated, 1)}));
  EXPECT_EQ(store.syncs, 2);
}

// A source that hands out scripted batches and records confirmations.
class ScriptedSource final : public ChangeSource {
 public:
  std::deque<SourceBatch> batches;
  std::vector<std::string> confirmed;
  Result<SourceBatch> Poll(size_t, Micros) override {
    if (batches.empty()) return SourceBatch{};
    SourceBatch b = batches.front();
    batches.pop_front();
    return b;
  }
  Status Confirm(const std::string& position) override {
    confirmed.push_back(position);
    return Status::OK();
  }
  Result<int64_t> Backlog() override { return static_cast<int64_t>(batches.size()); }
  // What Heartbeat() answers.
  std::optional<CaptureHeartbeat> heartbeat;
  Result<std::optional<CaptureHeartbeat>> Heartbeat() override { return heartbeat; }
};

// A history store that fails every Append while `down` is set.
class FlakyHistory final : public HistoryStore {
 public:
  InMemoryHistoryStore inner;
  std::atomic<bool> down{false};
  Status failure = UnavailableError("history down");
  Result<int64_t> Append(std::span<const HistoryRecord> r) override {
    if (down) return failure;
    return inner.Append(r);
  }
  Status RecordHeartbeat(const CaptureHeartbeat& h) override {
    if (down) return UnavailableError("history down");
    return inner.RecordHeartbeat(h);
  }
  Result<Completeness> GetCompleteness() override { return inner.GetCompleteness(); }
  Result<int64_t> PurgeCustomer(int64_t c, Timestamp t, std::string_view a) override {
    return inner.PurgeCustomer(c, t, a);
  }
  Result<int64_t> EraseCustomer(int64_t c, std::string_view a) override {
    return inner.EraseCustomer(c, a);
  }
  Result<std::optional<Timestamp>> PurgedBefore(int64_t c) override {
    return inner.PurgedBefore(c);
  }
  Result<bool> Erased(int64_t c) override { return inner.Erased(c); }
  Result<std::vector<AuditEntry>> AuditLog(int64_t l) override { return inner.AuditLog(l); }
  Result<std::vector<HistoryRecord>> AsOf(int64_t c, Timestamp t) override {
    return inner.AsOf(c, t);
  }
  Result<std::vector<HistoryRecord>> CampaignLog(int64_t c, const TimeRange& r) override {
    return inner.CampaignLog(c, r);
  }
  Result<std::optional<HistoryRecord>> GetVersion(int64_t c, int64_t v) override {
    return inner.GetVersion(c, v);
  }
  Result<std::optional<HistoryRecord>> LatestAt(int64_t c, Timestamp t) override {
    return inner.LatestAt(c, t);
  }
  Result<std::optional<int64_t>> LatestVersion(int64_t c) override {
    return inner.LatestVersion(c);
  }
  Result<int64_t> CountVersions(int64_t c, int64_t from, int64_t to) override {
    return inner.CountVersions(c, from, to);
  }
  Result<std::vector<HistoryRecord>> CustomerChanges(int64_t c, const TimeRange& r,
                                                     int64_t l) override {
    return inner.CustomerChanges(c, r, l);
  }
  Result<std::vector<HistoryRecord>> TransactionChanges(int64_t c, Timestamp at,
                                                        std::string_view tx,
                                                        bool snapshots) override {
    return inner.TransactionChanges(c, at, tx, snapshots);
  }
  Result<std::vector<HistoryRecord>> CustomerCampaigns(int64_t c) override {
    return inner.CustomerCampaigns(c);
  }
  Result<std::vector<int64_t>> ListCustomers() override { return inner.ListCustomers(); }
  Result<HistoryStats> Stats() override { return inner.Stats(); }
};

// Whatever a store answers -- down, full, read-only, or an internal error of its own -- the
// failure is the store's: the caller must hold the messages, never dead-letter them. Only what
// the store refuses for the record's content (InvalidArgument) stays a bad message.
TEST(PublisherTest, FailuresOfTheStoresAreAttributedToThem) {
  std::vector<ChangeEvent> events = {LogEvent(Row(7, 1), ChangeOp::kCreated, 1)};
  for (Status failure : {UnavailableError("history down"), InternalError("no such table"),
                         ResourceExhaustedError("database or disk is full"),
                         PermissionDeniedError("attempt to write a readonly database")}) {
    FlakyHistory history;
    history.failure = failure;
    history.down = true;
    Publisher p({.history = &history});
    Result<PublishStats> r = p.Process(events);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(ClassifyFailure(r.status().code()), FailureKind::kDependency)
        << r.status().ToString();
    EXPECT_TRUE(r.status().message().starts_with("history store: ")) << r.status().ToString();
  }
  FlakyHistory refusing;
  refusing.failure = InvalidArgumentError("record 1: empty snapshot");
  refusing.down = true;
  Publisher p({.history = &refusing});
  EXPECT_THAT(p.Process(events), StatusIs(StatusCode::kInvalidArgument));

  InMemoryHistoryStore history;
  DownCampaignStore campaigns;
  campaigns.failure = InternalError("server closed the connection unexpectedly");
  Publisher notify({.history = &history, .campaigns = &campaigns});
  ChangeEvent e = LogEvent(Row(7, 1), ChangeOp::kUpdated, 1);
  e.capture = CaptureMode::kNotify;
  e.row.reset();
  Result<PublishStats> r = notify.Process(std::vector<ChangeEvent>{e});
  EXPECT_THAT(r, StatusIs(StatusCode::kUnavailable));
  EXPECT_EQ(r.status().message(),
            "campaign database: INTERNAL: server closed the connection unexpectedly");
}

TEST(SourceDrainerTest, ConfirmsOnlyAfterTheHistoryIsDurable) {
  ScriptedSource source;
  FlakyHistory history;
  Publisher publisher({.history = &history});
  SourceDrainer drainer({.source = &source, .publisher = &publisher});
  source.batches.push_back({{LogEvent(Row(7, 1), ChangeOp::kCreated, 1)}, "1"});
  source.batches.push_back({{LogEvent(Row(7, 2), ChangeOp::kUpdated, 2)}, "2"});

  history.down = true;
  EXPECT_THAT(drainer.RunOnce(Micros(0)), StatusIs(StatusCode::kUnavailable));
  EXPECT_TRUE(source.confirmed.empty());

  history.down = false;
  ASSERT_OK_AND_ASSIGN(PublishStats s, drainer.DrainAll());
  EXPECT_EQ(s.stored, 2);
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(Render(history.inner.AllRecords()), "c7@v1 created missed 0; c7@v2 updated missed 0");
}

TEST(SourceDrainerTest, DrainAllEndsWithTheSourcesHeartbeat) {
  ScriptedSource source;
  FlakyHistory history;
  Publisher publisher({.history = &history});
  SourceDrainer drainer({.source = &source, .publisher = &publisher});
  ChangeEvent e = LogEvent(Row(7, 1), ChangeOp::kCreated, 1);
  e.txn_seq = 1;
  e.txn_changes = 1;
  source.batches.push_back({{e}, "1"});
  const Timestamp later = e.event_time + std::chrono::seconds(9);
  source.heartbeat = CaptureHeartbeat{.seq = 1, .at = later};
  ASSERT_OK(drainer.DrainAll().status());
  ASSERT_OK_AND_ASSIGN(Completeness c, history.inner.GetCompleteness());
  EXPECT_EQ(c.through_seq, 1);
  EXPECT_EQ(c.complete_through, later) << "complete through the heartbeat, not the last commit";
}

// A source that hands out a transaction in parts (PostgreSQL capture of a large transaction):
// the history holds the parts back until the last one, so no query shows part of it -- on every
// history store.
TEST(SourceDrainerTest, ATransactionInPartsIsInvisibleUntilItsLastPart) {
  testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto sqlite, SqliteHistoryStore::Open({.path = dir.File("history.db")}));
  InMemoryHistoryStore in_memory;
  for (HistoryStore* history : std::vector<HistoryStore*>{&in_memory, sqlite.get()}) {
    FakeClock clock;
    InMemoryCampaignStore campaigns(clock, StoreCapture::kLog);
    CampaignService service(campaigns);
    auto create = [&] {
      Campaign c;
      c.customer_id = 1;
      c.name = "c";
      c.content = R"({"title":"Hi"})";
      clock.Advance(Micros(1000));
      WriteContext ctx;
      ctx.actor = "user:a";
      ASSERT_OK(service.Create(c, ctx).status());
    };
    for (int i = 0; i < 3; ++i) create();
    InMemoryCaptureProgress progress;
    ASSERT_OK_AND_ASSIGN(
        auto source, InMemoryChangeSource::Open(
                         {.store = &campaigns, .progress = &progress, .max_transaction_part = 2}));
    Publisher publisher({.history = history});
    SourceDrainer drainer({.source = source.get(), .publisher = &publisher, .batch_size = 1});
    // 1 + 2 + 3 changes: the third transaction in two parts.
    for (int i = 0; i < 4; ++i) ASSERT_OK(drainer.RunOnce(Micros(0)).status());
    auto priorities = [&] {
      std::string out;
      auto rows = history->AsOf(1, clock.Now() + std::chrono::hours(1));
      EXPECT_OK(rows);
      if (!rows.ok()) return out;
      for (const HistoryRecord& r : *rows) {
        out += fmt::format("c{}@v{} p{} ", r.campaign_id, r.version, r.priority);
      }
      return out;
    };
    EXPECT_EQ(priorities(), "c3@v1 p1 c2@v2 p2 c1@v3 p3 ");
    // A fourth campaign on top: 4 changes, handed out as 2 + 2.
    create();
    ASSERT_EQ(progress.partial_changes, 0);
    ASSERT_OK(drainer.RunOnce(Micros(0)).status());
    EXPECT_EQ(progress.partial_changes, 2);  // the first part is durable and confirmed
    ASSERT_OK_AND_ASSIGN(Completeness held, history->GetCompleteness());
    EXPECT_EQ(held.through_seq, 3);
    EXPECT_EQ(held.partial_transactions, 1);
    EXPECT_EQ(held.held_records, 2);
    EXPECT_EQ(priorities(), "c3@v1 p1 c2@v2 p2 c1@v3 p3 ");  // none of it
    ASSERT_OK(drainer.RunOnce(Micros(0)).status());
    ASSERT_OK_AND_ASSIGN(Completeness done, history->GetCompleteness());
    EXPECT_EQ(done.through_seq, 4);
    EXPECT_EQ(done.held_records, 0);
    EXPECT_EQ(priorities(), "c4@v1 p1 c3@v2 p2 c2@v3 p3 c1@v4 p4 ");
  }
}

TEST(SourceDrainerTest, BackgroundLoopRetriesUntilTheStoreIsBack) {
  ScriptedSource source;
  FlakyHistory history;
  history.down = true;
  Publisher publisher({.history = &history});
  SourceDrainer drainer({.source = &source,
                         .publisher = &publisher,
                         .poll_wait = std::chrono::milliseconds(1),
                         .min_backoff = std::chrono::milliseconds(1),
                         .max_backoff = std::chrono::milliseconds(5)});
  source.batches.push_back({{LogEvent(Row(7, 1), ChangeOp::kCreated, 1)}, "1"});
  ASSERT_OK(drainer.Start());
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_THAT(drainer.last_error(), StatusIs(StatusCode::kUnavailable));
  // The failed batch was not confirmed, and it was not dropped either.
  EXPECT_TRUE(source.confirmed.empty());
  history.down = false;
  for (int i = 0; i < 500 && source.confirmed.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  drainer.Stop();
  EXPECT_EQ(source.confirmed, (std::vector<std::string>{"1"}));
  EXPECT_EQ(Render(history.inner.AllRecords()), "c7@v1 created missed 0");
}

}  // namespace
}  // namespace ch
