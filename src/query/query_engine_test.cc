#include "query/query_engine.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>

#include "common/time_util.h"
#include "history/in_memory_history_store.h"
#include "query/render.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::testing::ElementsAre;

const Timestamp kT0 = *ParseTimestamp("2026-11-03T14:00:00Z");
Timestamp T(int s) { return kT0 + Micros(int64_t{s} * 1'000'000); }

// A campaign's state in a test, serialized in the canonical snapshot field order.
struct State {
  int64_t id = 7;
  int64_t customer = 1;
  std::string name = "Spring sale";
  std::string status = "draft";
  int64_t priority = 1;
  int64_t version = 0;
  std::string updated_at;
  std::string updated_by;
  std::string title = "Hello";
  std::string body = "Spring is here and everything is twenty percent off today only";

  std::string Json() const {
    nlohmann::ordered_json j;
    j["id"] = id;
    j["customer_id"] = customer;
    j["name"] = name;
    j["status"] = status;
    j["priority"] = priority;
    j["trigger_event"] = "app_open";
    j["audience_segment"] = "all_users";
    j["start_at"] = nullptr;
    j["end_at"] = nullptr;
    j["frequency_cap"] = 2;
    j["version"] = version;
    j["created_at"] = "2026-11-03T14:00:00.000000Z";
    j["updated_at"] = updated_at;
    j["updated_by"] = updated_by;
    j["content"] = {{"body", body}, {"title", title}};
    return j.dump();
  }
};

class QueryEngineTest : public ::testing::Test {
 protected:
  // Record a new version of `s` at T(at) by `actor` in transaction `tx`.
  void Write(State& s, int at, const std::string& actor, const std::string& tx,
             ChangeOp op = ChangeOp::kUpdated) {
    HistoryRecord r;
    r.customer_id = s.customer;
    r.campaign_id = s.id;
    r.event_time = T(at);
    r.event_type = op;
    r.actor = actor;
    r.transaction_id = tx;
    if (op == ChangeOp::kDeleted) {
      r.version = s.version + 1;
    } else {
      s.version += 1;
      s.updated_at = FormatTimestamp(T(at));
      s.updated_by = actor;
      r.version = s.version;
    }
    r.priority = s.priority;
    r.snapshot = s.Json();
    pending_.push_back(r);
  }
  void Flush() {
    ASSERT_OK(store_.Append(pending_));
    pending_.clear();
  }
  // The standard story: created at 10, shifted at 20, body edited at 30, activated at 40.
  void Story() {
    Write(c7_, 10, "user:101", "t10", ChangeOp::kCreated);
    c8_.id = 8;
    c8_.name = "Welcome";
    Write(c8_, 10, "user:101", "t10", ChangeOp::kCreated);
    c8_.priority = 2;
    c7_.priority = 2;
    c8_.priority = 1;
    Write(c7_, 20, "worker:rebalance", "t20");
    Write(c8_, 20, "worker:rebalance", "t20");
    c7_.body = "Spring is here and everything is thirty percent off today only";
    Write(c7_, 30, "user:102", "t30");
    c7_.status = "active";
    Write(c7_, 40, "worker:scheduler", "t40");
    Flush();
  }

  static std::vector<std::string> Describe(const std::vector<FieldChange>& changes) {
    std::vector<std::string> out;
    for (const auto& c : changes) out.push_back(DescribeChange(c));
    return out;
  }

  FakeClock clock_;
  InMemoryHistoryStore store_{InMemoryHistoryOptions{&clock_}};
  QueryEngine engine_{store_};
  std::vector<HistoryRecord> pending_;
  State c7_;
  State c8_;
};

TEST_F(QueryEngineTest, AsOfListsCampaignsByPriority) {
  Story();
  ASSERT_OK_AND_ASSIGN(AsOfResult r, engine_.AsOf(1, T(25)));
  ASSERT_EQ(r.campaigns.size(), 2u);
  EXPECT_EQ(r.campaigns[0].campaign_id, 8);
  EXPECT_EQ(r.campaigns[1].campaign_id, 7);
  ASSERT_OK_AND_ASSIGN(r, engine_.AsOf(1, T(5)));
  EXPECT_TRUE(r.campaigns.empty());
}

TEST_F(QueryEngineTest, LogDiffsEveryVersionAgainstThePreviousOne) {
  Story();
  ASSERT_OK_AND_ASSIGN(LogResult log, engine_.Log(7, {}));
  ASSERT_EQ(log.entries.size(), 4u);
  EXPECT_EQ(log.customer_id, 1);
  EXPECT_FALSE(log.entries[0].previous_version.has_value());
  EXPECT_EQ(log.entries[0].changes.size(), 13u) << "every field is new in the first version";
  EXPECT_THAT(Describe(log.entries[1].changes), ElementsAre("priority: 1 → 2"));
  EXPECT_THAT(Describe(log.entries[2].changes),
              ElementsAre("content.body: …erything is [twenty → thirty] percent off…"));
  EXPECT_THAT(Describe(log.entries[3].changes), ElementsAre("status: draft → active"));
}

TEST_F(QueryEngineTest, LogPatchesRebuildEverySnapshot) {
  Story();
  ASSERT_OK_AND_ASSIGN(LogResult log, engine_.Log(7, {}));
  nlohmann::json doc;
  for (const LogEntry& e : log.entries) {
    doc = doc.patch(nlohmann::json::parse(e.patch));
    EXPECT_EQ(doc, nlohmann::json::parse(e.record.snapshot)) << "v" << e.record.version;
  }
}

TEST_F(QueryEngineTest, LogRangeStillDiffsAgainstTheVersionBeforeIt) {
  Story();
  ASSERT_OK_AND_ASSIGN(LogResult log, engine_.Log(7, {T(30), T(40)}));
  ASSERT_EQ(log.entries.size(), 2u);
  EXPECT_EQ(log.entries[0].previous_version, std::optional<int64_t>(2));
  EXPECT_EQ(log.entries[0].changes.size(), 1u);
}

TEST_F(QueryEngineTest, LogRejectsUnknownCampaignsAndInvertedRanges) {
  Story();
  EXPECT_THAT(engine_.Log(99, {}), StatusIsWith(StatusCode::kNotFound, "campaign 99"));
  EXPECT_THAT(engine_.Log(7, {T(40), T(30)}), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK_AND_ASSIGN(LogResult empty, engine_.Log(7, {T(41), T(50)}));
  EXPECT_TRUE(empty.entries.empty());
}

TEST_F(QueryEngineTest, DiffBetweenVersionsAndMoments) {
  Story();
  ASSERT_OK_AND_ASSIGN(DiffResult d,
                       engine_.Diff(7, VersionRef::Version(1), VersionRef::At(T(45))));
  ASSERT_TRUE(d.to.record.has_value());
  ASSERT_TRUE(d.from.record.has_value());
  EXPECT_EQ(d.to.record.value().version, 4);
  EXPECT_THAT(Describe(d.changes),
              ElementsAre("status: draft → active", "priority: 1 → 2",
                          "content.body: …erything is [twenty → thirty] percent off…"));
  nlohmann::json a = nlohmann::json::parse(d.from.record->snapshot);
  EXPECT_EQ(a.patch(nlohmann::json::parse(d.patch)), nlohmann::json::parse(d.to.record->snapshot));
}

TEST_F(QueryEngineTest, DiffAgainstAbsentSides) {
  Story();
  Write(c7_, 50, "user:103", "t50", ChangeOp::kDeleted);
  Flush();
  // Before creation: everything is added.
  ASSERT_OK_AND_ASSIGN(DiffResult before,
                       engine_.Diff(7, VersionRef::At(T(0)), VersionRef::Version(1)));
  EXPECT_FALSE(before.from.exists);
  EXPECT_FALSE(before.from.record.has_value());
  EXPECT_EQ(before.changes.size(), 13u);
  EXPECT_FALSE(before.changes[0].before.has_value());
  // After the delete: everything is removed.
  ASSERT_OK_AND_ASSIGN(DiffResult after,
                       engine_.Diff(7, VersionRef::Version(4), VersionRef::At(T(60))));
  EXPECT_FALSE(after.to.exists);
  EXPECT_EQ(after.to.record->event_type, ChangeOp::kDeleted);
  EXPECT_EQ(after.changes.size(), 13u);
  EXPECT_FALSE(after.changes[0].after.has_value());
  EXPECT_EQ(after.patch, R"([{"op":"replace","path":"","value":null}])");
  // Naming the delete version itself is absent too.
  ASSERT_OK_AND_ASSIGN(DiffResult same,
                       engine_.Diff(7, VersionRef::Version(5), VersionRef::At(T(60))));
  EXPECT_TRUE(same.changes.empty());
  EXPECT_EQ(same.patch, "[]");
}

TEST_F(QueryEngineTest, DiffErrorsNameWhatIsMissing) {
  Story();
  EXPECT_THAT(engine_.Diff(7, VersionRef::Version(1), VersionRef::Version(9)),
              StatusIsWith(StatusCode::kNotFound, "no version 9 (latest stored: v4)"));
  EXPECT_THAT(engine_.Diff(70, VersionRef::Version(1), VersionRef::Version(2)),
              StatusIsWith(StatusCode::kNotFound, "campaign 70 has no history"));
}

TEST_F(QueryEngineTest, TimelineGroupsChangesByTransaction) {
  Story();
  ASSERT_OK_AND_ASSIGN(TimelineResult tl,
                       engine_.Timeline(1, {}, {.limit = 100, .show_shifts = true}));
  ASSERT_EQ(tl.groups.size(), 4u);
  EXPECT_FALSE(tl.truncated);
  EXPECT_EQ(tl.groups[0].transaction_id, "t10");
  EXPECT_EQ(tl.groups[0].changes.size(), 2u);
  EXPECT_EQ(tl.groups[1].transaction_id, "t20");
  EXPECT_THAT(tl.groups[1].actors, ElementsAre("worker:rebalance"));
  ASSERT_EQ(tl.groups[1].changes.size(), 2u);
  // (The story's t20 saves c8 without a change and moves c7 by one: c8's save comes first.)
  EXPECT_EQ(tl.groups[1].changes[1].campaign_id, 7);
  EXPECT_THAT(tl.groups[1].changes[1].fields, ElementsAre("priority"));
  EXPECT_THAT(tl.groups[2].changes[0].fields, ElementsAre("content.body"));
  EXPECT_THAT(tl.groups[3].changes[0].fields, ElementsAre("status"));
  ASSERT_OK_AND_ASSIGN(TimelineResult cut, engine_.Timeline(1, {}, {.limit = 2}));
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.groups.size(), 2u) << "the limit counts transactions";
  EXPECT_FALSE(cut.next_cursor.empty());
  ASSERT_OK_AND_ASSIGN(TimelineResult window, engine_.Timeline(1, {T(25), T(35)}, {.limit = 10}));
  ASSERT_EQ(window.groups.size(), 1u);
  EXPECT_THAT(window.groups[0].changes[0].fields, ElementsAre("content.body"))
      << "the previous version lies outside the window";
  EXPECT_THAT(engine_.Timeline(1, {}, {.limit = 0}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_.Timeline(1, {T(2), T(1)}, {.limit = 10}),
              StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_.Timeline(1, {}, {.cursor = "junk"}),
              StatusIsWith(StatusCode::kInvalidArgument, "cursor"));
}

TEST_F(QueryEngineTest, BlameNamesWhoLastSetEachField) {
  Story();
  ASSERT_OK_AND_ASSIGN(BlameResult b, engine_.Blame(7, T(100)));
  ASSERT_TRUE(b.exists);
  std::map<std::string, std::string> who;
  for (const BlameEntry& e : b.entries) {
    who[e.path] = fmt::format("v{} {}", e.version, e.actor);
  }
  EXPECT_EQ(who["name"], "v1 user:101");
  EXPECT_EQ(who["priority"], "v2 worker:rebalance");
  EXPECT_EQ(who["content.body"], "v3 user:102");
  EXPECT_EQ(who["content.title"], "v1 user:101");
  EXPECT_EQ(who["status"], "v4 worker:scheduler");
  EXPECT_EQ(who.count("version"), 0u) << "bookkeeping is not blamed";
  EXPECT_EQ(who.count("content"), 0u) << "content is blamed by sub-field";
  // As of an earlier moment, the later changes do not exist yet.
  ASSERT_OK_AND_ASSIGN(b, engine_.Blame(7, T(25)));
  for (const BlameEntry& e : b.entries) {
    if (e.path == "status" || e.path == "content.body") {
      EXPECT_EQ(e.version, 1) << e.path;
    }
  }
  ASSERT_OK_AND_ASSIGN(b, engine_.Blame(7, T(5)));
  EXPECT_FALSE(b.state.has_value());
  EXPECT_TRUE(b.entries.empty());
  EXPECT_THAT(engine_.Blame(99, T(5)), StatusIs(StatusCode::kNotFound));
}

TEST_F(QueryEngineTest, BlameAfterADeleteDescribesTheLastContent) {
  Story();
  Write(c7_, 50, "user:103", "t50", ChangeOp::kDeleted);
  Flush();
  ASSERT_OK_AND_ASSIGN(BlameResult b, engine_.Blame(7, T(60)));
  EXPECT_FALSE(b.exists);
  ASSERT_TRUE(b.state.has_value());
  EXPECT_EQ(b.state->version, 5);
  EXPECT_FALSE(b.entries.empty());
}

TEST(VersionRefTest, ParsesVersionsAndMoments) {
  ASSERT_OK_AND_ASSIGN(VersionRef v, VersionRef::Parse("12"));
  EXPECT_EQ(v.version, std::optional<int64_t>(12));
  ASSERT_OK_AND_ASSIGN(v, VersionRef::Parse("v3"));
  EXPECT_EQ(v.version, std::optional<int64_t>(3));
  ASSERT_OK_AND_ASSIGN(v, VersionRef::Parse("2026-11-03T14:05:00Z"));
  EXPECT_EQ(v.at, std::optional<Timestamp>(*ParseTimestamp("2026-11-03T14:05:00Z")));
  EXPECT_EQ(v.text, "2026-11-03T14:05:00Z");
  EXPECT_THAT(VersionRef::Parse("0"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(VersionRef::Parse("yesterday"),
              StatusIsWith(StatusCode::kInvalidArgument, "yesterday"));
  EXPECT_THAT(VersionRef::Parse(""), StatusIs(StatusCode::kInvalidArgument));
}

TEST(DiffSnapshotsTest, FlattensNestedContentAndSkipsBookkeeping) {
  ASSERT_OK_AND_ASSIGN(
      auto changes,
      DiffSnapshots(R"({"a":1,"version":1,"content":{"x":{"y":1},"gone":true},"z":[1]})",
                    R"({"a":2,"version":2,"content":{"x":{"y":2},"new":"n"},"z":[1]})"));
  std::vector<std::string> paths;
  for (const auto& c : changes) paths.push_back(c.path);
  EXPECT_THAT(paths, ElementsAre("a", "content.x.y", "content.new", "content.gone"));
  EXPECT_EQ(changes[2].before, std::nullopt);
  EXPECT_EQ(changes[3].after, std::nullopt);
  EXPECT_THAT(DiffSnapshots("{", "{}"), StatusIs(StatusCode::kInvalidArgument));
}

// ---- causes, paging, filters, notes, search -------------------------------------------------

// A customer's campaigns changed the way the campaign service changes them (a create shifts every
// other campaign down, a move the ones it passes, a delete the ones below it up), one
// transaction per action, each at its own second.
class Campaigns {
 public:
  explicit Campaigns(int64_t customer = 2) : customer_(customer) {}

  std::vector<HistoryRecord> Create(int64_t id, const std::string& name,
                                    const std::string& actor = "user:206") {
    Begin(actor);
    for (int64_t other : order_) Touch(other, ChangeOp::kUpdated, Position(other) + 1);
    State& s = rows_[id];
    s.id = id;
    s.customer = customer_;
    s.name = name;
    order_.insert(order_.begin(), id);
    Touch(id, ChangeOp::kCreated, 1);
    return End();
  }
  std::vector<HistoryRecord> Move(int64_t id, int64_t to, const std::string& actor = "user:5") {
    Begin(actor);
    int64_t from = Position(id);
    order_.erase(order_.begin() + (from - 1));
    order_.insert(order_.begin() + (to - 1), id);
    for (int64_t p = std::min(from, to); p <= std::max(from, to); ++p) {
      Touch(order_[p - 1], ChangeOp::kUpdated, p);
    }
    return End();
  }
  std::vector<HistoryRecord> Delete(int64_t id, const std::string& actor = "user:7") {
    Begin(actor);
    int64_t p = Position(id);
    Emit(id, ChangeOp::kDeleted, p);
    order_.erase(order_.begin() + (p - 1));
    for (size_t i = p - 1; i < order_.size(); ++i) {
      Touch(order_[i], ChangeOp::kUpdated, static_cast<int64_t>(i) + 1);
    }
    return End();
  }
  std::vector<HistoryRecord> Edit(int64_t id, const std::string& status,
                                  const std::string& actor = "user:3") {
    Begin(actor);
    rows_[id].status = status;
    Touch(id, ChangeOp::kUpdated, Position(id));
    return End();
  }
  int Now() const { return second_; }

 private:
  int64_t Position(int64_t id) const {
    return std::find(order_.begin(), order_.end(), id) - order_.begin() + 1;
  }
  void Begin(const std::string& actor) {
    actor_ = actor;
    ++second_;
    out_.clear();
  }
  std::vector<HistoryRecord> End() {
    std::sort(out_.begin(), out_.end(), [](const HistoryRecord& a, const HistoryRecord& b) {
      return a.campaign_id < b.campaign_id;
    });
    return out_;
  }
  void Touch(int64_t id, ChangeOp op, int64_t priority) {
    State& s = rows_[id];
    s.version += 1;
    s.priority = priority;
    s.updated_at = FormatTimestamp(T(second_));
    s.updated_by = actor_;
    Emit(id, op, priority);
  }
  void Emit(int64_t id, ChangeOp op, int64_t priority) {
    const State& s = rows_[id];
    HistoryRecord r;
    r.customer_id = customer_;
    r.campaign_id = id;
    r.version = op == ChangeOp::kDeleted ? s.version + 1 : s.version;
    r.event_time = T(second_);
    r.event_type = op;
    r.actor = actor_;
    r.transaction_id = fmt::format("tx{}", second_);
    r.priority = priority;
    r.snapshot = s.Json();
    out_.push_back(std::move(r));
  }

  int64_t customer_;
  std::map<int64_t, State> rows_;
  std::vector<int64_t> order_;
  std::string actor_;
  int second_ = 0;
  std::vector<HistoryRecord> out_;
};

// A store that counts what it was asked for (and otherwise is the in-memory store).
class CountingStore final : public HistoryStore {
 public:
  Result<int64_t> Append(std::span<const HistoryRecord> r) override { return inner.Append(r); }
  Status RecordHeartbeat(const CaptureHeartbeat& h) override { return inner.RecordHeartbeat(h); }
  Result<Completeness> GetCompleteness() override { return inner.GetCompleteness(); }
  Result<std::vector<HistoryRecord>> AsOf(int64_t c, Timestamp t) override {
    return inner.AsOf(c, t);
  }
  Result<std::vector<HistoryRecord>> CampaignLog(int64_t c, const TimeRange& r) override {
    ++campaign_logs;
    return inner.CampaignLog(c, r);
  }
  Result<std::optional<HistoryRecord>> GetVersion(int64_t c, int64_t v) override {
    ++versions_read;
    return inner.GetVersion(c, v);
  }
  Result<std::optional<HistoryRecord>> LatestAt(int64_t c, Timestamp t) override {
    return inner.LatestAt(c, t);
  }
  Result<std::optional<int64_t>> LatestVersion(int64_t c) override {
    return inner.LatestVersion(c);
  }
  Result<int64_t> CountVersions(int64_t c, int64_t a, int64_t b) override {
    return inner.CountVersions(c, a, b);
  }
  Result<std::vector<HistoryRecord>> CustomerChanges(int64_t c, const TimeRange& r,
                                                     int64_t l) override {
    auto out = inner.CustomerChanges(c, r, l);
    if (out.ok()) records_read += static_cast<int64_t>(out->size());
    return out;
  }
  Result<std::vector<HistoryRecord>> TransactionChanges(int64_t c, Timestamp at,
                                                        std::string_view tx,
                                                        bool snapshots) override {
    auto out = inner.TransactionChanges(c, at, tx, snapshots);
    if (out.ok()) (snapshots ? records_read : headers_read) += static_cast<int64_t>(out->size());
    return out;
  }
  Result<std::vector<HistoryRecord>> CustomerCampaigns(int64_t c) override {
    return inner.CustomerCampaigns(c);
  }
  Result<std::vector<int64_t>> ListCustomers() override { return inner.ListCustomers(); }
  Result<HistoryStats> Stats() override { return inner.Stats(); }
  Result<int64_t> PurgeCustomer(int64_t c, Timestamp b, std::string_view a) override {
    return inner.PurgeCustomer(c, b, a);
  }
  Result<int64_t> EraseCustomer(int64_t c, std::string_view a) override {
    return inner.EraseCustomer(c, a);
  }
  Result<std::optional<Timestamp>> PurgedBefore(int64_t c) override {
    return inner.PurgedBefore(c);
  }
  Result<bool> Erased(int64_t c) override { return inner.Erased(c); }
  Result<std::vector<AuditEntry>> AuditLog(int64_t l) override { return inner.AuditLog(l); }

  void Reset() { versions_read = headers_read = records_read = campaign_logs = 0; }

  InMemoryHistoryStore inner;
  int64_t versions_read = 0;
  int64_t headers_read = 0;
  int64_t records_read = 0;
  int64_t campaign_logs = 0;
};

class CauseTest : public ::testing::Test {
 protected:
  void Apply(std::vector<HistoryRecord> records) { ASSERT_OK(store_.Append(records)); }
  // Five campaigns, c1 created first (so it ends at priority 5).
  void FiveCampaigns() {
    for (int64_t id = 1; id <= 5; ++id) Apply(c_.Create(id, fmt::format("Campaign {}", id)));
  }
  std::string Kinds(const TimelineGroup& g) {
    std::string out;
    for (const TimelineChange& c : g.changes) {
      if (!out.empty()) out += ", ";
      out += fmt::format("c{} {}", c.campaign_id, ChangeKindName(c.kind));
    }
    return out;
  }

  Campaigns c_;
  CountingStore store_;
  QueryEngine engine_{store_};
};

TEST_F(CauseTest, TimelineLeadsEachTransactionWithItsPrimaryChange) {
  FiveCampaigns();                  // priorities: c5 c4 c3 c2 c1
  Apply(c_.Move(1, 2));             // c1 5 -> 2; c4 c3 c2 shift down
  Apply(c_.Delete(4, "user:9"));    // c4 at 3 deleted; below shift up
  Apply(c_.Edit(3, "active"));      // one version
  Apply(c_.Move(5, 2, "user:11"));  // c5 and c1 swap
  ASSERT_OK_AND_ASSIGN(TimelineResult tl, engine_.Timeline(2, {}, {.limit = 100}));
  ASSERT_EQ(tl.groups.size(), 9u);
  const TimelineGroup& create5 = tl.groups[4];
  EXPECT_EQ(Kinds(create5), "c5 created") << "shift-only changes are folded";
  EXPECT_EQ(create5.cause.changes, 5);
  EXPECT_EQ(create5.cause.shifted, 4);
  EXPECT_EQ(create5.cause.shifted_by, 1);
  EXPECT_EQ(DescribeCause(create5.cause), "user:206 created c5 'Campaign 5'");
  EXPECT_EQ(DescribeCause(tl.groups[5].cause), "user:5 moved c1 'Campaign 1' 5 → 2");
  EXPECT_EQ(tl.groups[5].cause.shifted_by, 1);
  EXPECT_EQ(DescribeCause(tl.groups[6].cause), "user:9 deleted c4 'Campaign 4'");
  EXPECT_EQ(tl.groups[6].cause.shifted_by, -1);
  EXPECT_EQ(DescribeCause(tl.groups[7].cause), "user:3 edited c3 'Campaign 3': status");
  EXPECT_EQ(DescribeCause(tl.groups[8].cause),
            "user:11 moved c1 'Campaign 1' 2 → 1 and c5 'Campaign 5' 1 → 2");
  EXPECT_EQ(Kinds(tl.groups[8]), "c1 moved, c5 moved");
  // With the shifts listed: primary first, then the shifted ones by campaign id.
  ASSERT_OK_AND_ASSIGN(tl, engine_.Timeline(2, {}, {.limit = 100, .show_shifts = true}));
  EXPECT_EQ(Kinds(tl.groups[5]), "c1 moved, c2 shifted, c3 shifted, c4 shifted");
  EXPECT_EQ(tl.groups[5].changes[1].priority_from, std::optional<int64_t>(4));
  EXPECT_EQ(tl.groups[5].changes[1].priority_to, std::optional<int64_t>(5));
}

TEST_F(CauseTest, LogAnnotatesOrHidesShiftOnlyVersions) {
  FiveCampaigns();
  Apply(c_.Delete(4, "user:9"));
  ASSERT_OK_AND_ASSIGN(LogResult log, engine_.Log(1, {}));
  ASSERT_EQ(log.entries.size(), 6u);
  EXPECT_EQ(log.entries[0].kind, ChangeKind::kCreated);
  const LogEntry& v2 = log.entries[1];
  EXPECT_EQ(v2.kind, ChangeKind::kShifted);
  ASSERT_TRUE(v2.cause.has_value());
  EXPECT_EQ(DescribeShift(1, 2, *v2.cause), "moved 1 → 2 because user:206 created c2 'Campaign 2'");
  const LogEntry& v6 = log.entries[5];
  EXPECT_EQ(v6.kind, ChangeKind::kShifted);
  EXPECT_EQ(DescribeCause(*v6.cause), "user:9 deleted c4 'Campaign 4'");
  std::string table = RenderLogTable(log);
  EXPECT_NE(table.find("v2  2026-11-03 14:00:02.000Z  shifted  by user:206  tx tx2\n"
                       "    moved 1 → 2 because user:206 created c2 'Campaign 2'\n"),
            std::string::npos)
      << table;
  ASSERT_OK_AND_ASSIGN(LogResult hidden, engine_.Log(1, {}, {.shifts = ShiftDisplay::kHide}));
  ASSERT_EQ(hidden.entries.size(), 1u);
  EXPECT_EQ(hidden.hidden_shifts, 5);
  EXPECT_NE(RenderLogTable(hidden).find("(5 shift-only versions hidden"), std::string::npos);
}

TEST_F(CauseTest, BlameSaysWhenAPriorityCameFromAnotherCampaign) {
  FiveCampaigns();
  ASSERT_OK_AND_ASSIGN(BlameResult b, engine_.Blame(1, T(100)));
  const BlameEntry* priority = nullptr;
  for (const BlameEntry& e : b.entries) {
    if (e.path == "priority") priority = &e;
  }
  ASSERT_NE(priority, nullptr);
  EXPECT_EQ(priority->value, "5");
  EXPECT_EQ(priority->kind, ChangeKind::kShifted);
  ASSERT_TRUE(priority->cause.has_value());
  EXPECT_EQ(DescribeCause(*priority->cause), "user:206 created c5 'Campaign 5'");
  std::string table = RenderBlameTable(b);
  EXPECT_NE(table.find("shifted: user:206 created c5 'Campaign 5'"), std::string::npos) << table;
  // A priority the campaign itself moved to is not a shift.
  Apply(c_.Move(1, 1));
  ASSERT_OK_AND_ASSIGN(b, engine_.Blame(1, T(100)));
  for (const BlameEntry& e : b.entries) {
    if (e.path == "priority") {
      EXPECT_EQ(e.kind, ChangeKind::kMoved);
      EXPECT_FALSE(e.cause.has_value());
    }
  }
}

TEST_F(CauseTest, FindingACauseReadsOnlyWhatItNeeds) {
  // A customer with 300 campaigns; the last create shifts 299 of them.
  for (int64_t id = 1; id <= 300; ++id) Apply(c_.Create(id, fmt::format("Campaign {}", id)));
  Apply(c_.Move(1, 2));  // c1 from 300 to 2: 298 campaigns shift
  ASSERT_OK_AND_ASSIGN(std::optional<HistoryRecord> shifted, store_.GetVersion(150, 152));
  ASSERT_TRUE(shifted.has_value());
  store_.Reset();
  ASSERT_OK_AND_ASSIGN(TransactionCause cause, engine_.TransactionCauseOf(*shifted));
  EXPECT_EQ(DescribeCause(cause), "user:5 moved c1 'Campaign 1' 300 → 2");
  EXPECT_EQ(cause.shifted, 298);
  EXPECT_EQ(cause.shifted_by, 1);
  EXPECT_EQ(store_.headers_read, 299) << "the transaction's records, without snapshots";
  EXPECT_EQ(store_.records_read, 0) << "no snapshot of a shift is read";
  EXPECT_LE(store_.versions_read, 4) << "its two ends and their previous versions";
  store_.Reset();
  ASSERT_OK(engine_.TransactionCauseOf(*shifted));
  EXPECT_EQ(store_.headers_read + store_.versions_read, 0) << "memoized";
  ASSERT_OK_AND_ASSIGN(std::optional<HistoryRecord> by_create, store_.GetVersion(150, 151));
  ASSERT_OK_AND_ASSIGN(cause, engine_.TransactionCauseOf(*by_create));
  EXPECT_EQ(DescribeCause(cause), "user:206 created c300 'Campaign 300'");
}

TEST_F(CauseTest, TheCauseOfOneVersionIsTheCauseTheTimelineGives) {
  // A random story; for every version, log and blame must tell what the timeline tells.
  std::mt19937 rng(7);
  std::vector<int64_t> live;
  int64_t next = 1;
  for (int step = 0; step < 120; ++step) {
    int what = live.size() < 3 ? 0 : static_cast<int>(rng() % 4);
    if (what == 0) {
      live.push_back(next);
      Apply(c_.Create(next, fmt::format("C{}", next)));
      ++next;
    } else if (what == 1) {
      int64_t id = live[rng() % live.size()];
      Apply(c_.Move(id, 1 + static_cast<int64_t>(rng() % live.size())));
    } else if (what == 2) {
      size_t i = rng() % live.size();
      Apply(c_.Delete(live[i]));
      live.erase(live.begin() + static_cast<long>(i));
    } else {
      Apply(c_.Edit(live[rng() % live.size()], rng() % 2 ? "active" : "paused"));
    }
  }
  ASSERT_OK_AND_ASSIGN(TimelineResult tl,
                       engine_.Timeline(2, {}, {.limit = 1000, .show_shifts = true}));
  std::map<std::pair<int64_t, int64_t>, std::pair<ChangeKind, TransactionCause>> expected;
  for (const TimelineGroup& g : tl.groups) {
    for (const TimelineChange& c : g.changes)
      expected[{c.campaign_id, c.version}] = {c.kind, g.cause};
  }
  int64_t shifted = 0;
  for (int64_t id = 1; id < next; ++id) {
    QueryEngine fresh(store_);  // nothing memoized from the timeline
    ASSERT_OK_AND_ASSIGN(LogResult log, fresh.Log(id, {}));
    for (const LogEntry& e : log.entries) {
      auto it = expected.find({id, e.record.version});
      ASSERT_NE(it, expected.end());
      EXPECT_EQ(e.kind, it->second.first) << "c" << id << " v" << e.record.version;
      if (e.kind == ChangeKind::kShifted) {
        ++shifted;
        ASSERT_TRUE(e.cause.has_value());
        EXPECT_EQ(*e.cause, it->second.second) << "c" << id << " v" << e.record.version;
      }
    }
  }
  EXPECT_GT(shifted, 100);
}

TEST_F(CauseTest, TimelinePagesAreWholeTransactionsAndFollowEachOther) {
  for (int64_t id = 1; id <= 300; ++id) Apply(c_.Create(id, fmt::format("Campaign {}", id)));
  Apply(c_.Delete(150));
  // The last 21 transactions; the biggest (300 changes) is larger than a read chunk.
  const TimeRange window{T(281), std::nullopt};
  ASSERT_OK_AND_ASSIGN(TimelineResult whole, engine_.Timeline(2, window, {.limit = 1000}));
  ASSERT_EQ(whole.groups.size(), 21u);
  EXPECT_FALSE(whole.truncated);
  EXPECT_TRUE(whole.next_cursor.empty());
  // Pages of 4, then of 1: each transaction whole, the pages one after the other.
  std::vector<std::string> paged;
  std::string cursor;
  int pages = 0;
  for (int64_t limit : {4, 1}) {
    paged.clear();
    cursor.clear();
    pages = 0;
    while (true) {
      ASSERT_OK_AND_ASSIGN(TimelineResult page,
                           engine_.Timeline(2, window, {.limit = limit, .cursor = cursor}));
      ++pages;
      ASSERT_LE(page.groups.size(), static_cast<size_t>(limit));
      for (const TimelineGroup& g : page.groups) {
        if (g.transaction_id != "tx301") {
          EXPECT_EQ(g.cause.changes, std::stoll(g.transaction_id.substr(2))) << "cut in half";
        }
        paged.push_back(g.transaction_id);
      }
      if (!page.truncated) break;
      ASSERT_FALSE(page.next_cursor.empty());
      cursor = page.next_cursor;
    }
    ASSERT_EQ(paged.size(), 21u) << "limit " << limit;
    for (size_t i = 0; i < paged.size(); ++i) EXPECT_EQ(paged[i], whole.groups[i].transaction_id);
  }
  EXPECT_EQ(pages, 21);
}

TEST_F(CauseTest, AsOfPagesAndFilters) {
  FiveCampaigns();
  Apply(c_.Edit(3, "active"));
  Apply(c_.Edit(1, "paused"));
  const Timestamp now = T(c_.Now());
  ASSERT_OK_AND_ASSIGN(AsOfResult all, engine_.AsOf(2, now));
  ASSERT_EQ(all.campaigns.size(), 5u);
  EXPECT_EQ(all.existing, 5);
  EXPECT_TRUE(all.next_cursor.empty());
  // Filters.
  ASSERT_OK_AND_ASSIGN(AsOfResult active, engine_.AsOf(2, now, {.statuses = {"active"}}));
  ASSERT_EQ(active.campaigns.size(), 1u);
  EXPECT_EQ(active.campaigns[0].campaign_id, 3);
  EXPECT_EQ(active.matching, 1);
  ASSERT_OK_AND_ASSIGN(AsOfResult named,
                       engine_.AsOf(2, now, {.statuses = {"draft", "paused"}, .name = "PAIGN 1"}));
  ASSERT_EQ(named.campaigns.size(), 1u);
  EXPECT_EQ(named.campaigns[0].campaign_id, 1);
  ASSERT_OK_AND_ASSIGN(AsOfResult none, engine_.AsOf(2, now, {.name = "zzz"}));
  EXPECT_EQ(none.note,
            "none of the 5 campaigns of customer 2 at 2026-11-03T14:00:07.000000Z has a name "
            "containing 'zzz'");
  EXPECT_THAT(engine_.AsOf(2, now, {.statuses = {"on"}}),
              StatusIsWith(StatusCode::kInvalidArgument, "status: 'on'"));
  EXPECT_THAT(engine_.AsOf(2, now, {.limit = -1}),
              StatusIsWith(StatusCode::kInvalidArgument, "limit"));
  // Pages of two: c5 c4 | c3 c2 | c1, each continuing the one before.
  std::vector<int64_t> ids;
  std::string cursor;
  while (true) {
    ASSERT_OK_AND_ASSIGN(AsOfResult page, engine_.AsOf(2, now, {.limit = 2, .cursor = cursor}));
    EXPECT_EQ(page.offset, static_cast<int64_t>(ids.size()));
    EXPECT_EQ(page.matching, 5);
    for (const HistoryRecord& r : page.campaigns) ids.push_back(r.campaign_id);
    if (page.next_cursor.empty()) break;
    cursor = page.next_cursor;
  }
  EXPECT_THAT(ids, ElementsAre(5, 4, 3, 2, 1));
  // A cursor belongs to its moment.
  ASSERT_OK_AND_ASSIGN(AsOfResult first, engine_.AsOf(2, now, {.limit = 2}));
  Apply(c_.Create(6, "Campaign 6"));
  ASSERT_OK_AND_ASSIGN(AsOfResult second,
                       engine_.AsOf(2, now, {.limit = 2, .cursor = first.next_cursor}));
  EXPECT_EQ(second.campaigns.front().campaign_id, 3);
  EXPECT_THAT(engine_.AsOf(2, T(c_.Now()), {.limit = 2, .cursor = first.next_cursor}),
              StatusIsWith(StatusCode::kInvalidArgument, "cursor"));
}

TEST_F(CauseTest, EmptyAnswersSayWhy) {
  FiveCampaigns();
  ASSERT_OK_AND_ASSIGN(AsOfResult unknown, engine_.AsOf(7, T(100)));
  EXPECT_EQ(unknown.note, "no customer 7 in the history");
  ASSERT_OK_AND_ASSIGN(AsOfResult early, engine_.AsOf(2, T(0)));
  EXPECT_EQ(early.note, "the history of customer 2 starts at 2026-11-03T14:00:01.000000Z");
  ASSERT_OK_AND_ASSIGN(AsOfResult full, engine_.AsOf(2, T(100)));
  EXPECT_EQ(full.note, "");
  ASSERT_OK_AND_ASSIGN(TimelineResult late, engine_.Timeline(2, {T(50), T(60)}));
  EXPECT_EQ(late.note,
            "the last change of customer 2 was at 2026-11-03T14:00:05.000000Z, before "
            "this window");
  ASSERT_OK_AND_ASSIGN(TimelineResult none, engine_.Timeline(9, {}));
  EXPECT_EQ(none.note, "no customer 9 in the history");
  ASSERT_OK_AND_ASSIGN(LogResult log, engine_.Log(1, {T(50), T(60)}));
  EXPECT_EQ(log.note,
            "campaign 1 has no versions in this range (its history runs from "
            "2026-11-03T14:00:01.000000Z (v1) to 2026-11-03T14:00:05.000000Z (v5))");
}

TEST_F(CauseTest, SearchFindsCustomersCampaignsAndNames) {
  FiveCampaigns();
  Campaigns other(3);
  Apply(other.Create(30, "Spring sale 🎉"));
  ASSERT_OK_AND_ASSIGN(SearchResult by_id, engine_.Search("3"));
  ASSERT_EQ(by_id.hits.size(), 2u) << "customer 3 and campaign 3 (whose name has a 3 too)";
  EXPECT_EQ(by_id.hits[0].kind, "customer");
  EXPECT_EQ(by_id.hits[0].customer_id, 3);
  EXPECT_EQ(by_id.hits[0].campaigns, 1);
  EXPECT_EQ(by_id.hits[1].kind, "campaign");
  EXPECT_EQ(by_id.hits[1].campaign_id, 3);
  EXPECT_EQ(by_id.hits[1].customer_id, 2);
  EXPECT_EQ(by_id.hits[1].matched, "campaign id");
  ASSERT_OK_AND_ASSIGN(SearchResult name, engine_.Search("SPRING"));
  ASSERT_EQ(name.hits.size(), 1u);
  EXPECT_EQ(name.hits[0].customer_id, 3);
  EXPECT_EQ(name.hits[0].name, "Spring sale 🎉");
  ASSERT_OK_AND_ASSIGN(SearchResult nothing, engine_.Search("autumn"));
  EXPECT_TRUE(nothing.hits.empty());
  EXPECT_NE(nothing.note.find("nothing matches 'autumn'"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(SearchResult few, engine_.Search("campaign", 2));
  EXPECT_EQ(few.hits.size(), 2u);
  EXPECT_TRUE(few.truncated);
  EXPECT_THAT(engine_.Search("  "), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_.Search("99999999999999999999"),
              StatusIsWith(StatusCode::kInvalidArgument, "too large for an id"));
}

}  // namespace
}  // namespace ch
