#include "query/query_engine.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

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
  ASSERT_OK_AND_ASSIGN(TimelineResult tl, engine_.Timeline(1, {}, 100));
  ASSERT_EQ(tl.groups.size(), 4u);
  EXPECT_FALSE(tl.truncated);
  EXPECT_EQ(tl.groups[0].transaction_id, "t10");
  EXPECT_EQ(tl.groups[0].changes.size(), 2u);
  EXPECT_EQ(tl.groups[1].transaction_id, "t20");
  EXPECT_THAT(tl.groups[1].actors, ElementsAre("worker:rebalance"));
  EXPECT_THAT(tl.groups[1].changes[0].fields, ElementsAre("priority"));
  EXPECT_THAT(tl.groups[2].changes[0].fields, ElementsAre("content.body"));
  EXPECT_THAT(tl.groups[3].changes[0].fields, ElementsAre("status"));
  ASSERT_OK_AND_ASSIGN(TimelineResult cut, engine_.Timeline(1, {}, 3));
  EXPECT_TRUE(cut.truncated);
  EXPECT_EQ(cut.groups.size(), 2u);
  ASSERT_OK_AND_ASSIGN(TimelineResult window, engine_.Timeline(1, {T(25), T(35)}, 10));
  ASSERT_EQ(window.groups.size(), 1u);
  EXPECT_THAT(window.groups[0].changes[0].fields, ElementsAre("content.body"))
      << "the previous version lies outside the window";
  EXPECT_THAT(engine_.Timeline(1, {}, 0), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(engine_.Timeline(1, {T(2), T(1)}, 10), StatusIs(StatusCode::kInvalidArgument));
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

}  // namespace
}  // namespace ch
