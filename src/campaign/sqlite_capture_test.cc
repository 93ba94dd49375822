#include "campaign/sqlite_capture.h"

#include <fmt/format.h>
#include <gmock/gmock.h>

#include <map>

#include "campaign/campaign_service.h"
#include "campaign/sqlite_campaign_store.h"
#include "campaign/sqlite_outbox.h"
#include "common/sqlite.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::testing::ElementsAre;

Campaign Draft(int64_t customer, const std::string& name) {
  Campaign c;
  c.customer_id = customer;
  c.name = name;
  c.content = R"({"title":"t"})";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext w;
  w.actor = std::move(actor);
  return w;
}

class SqliteCaptureTest : public ::testing::Test {
 protected:
  Result<std::unique_ptr<SqliteCampaignStore>> Open(CaptureSetting mode, OutboxRows rows,
                                                    bool one_row_per_shift = true) {
    SqliteCampaignStoreOptions o;
    o.one_row_per_shift = one_row_per_shift;
    o.path = path_;
    o.clock = &clock_;
    o.capture = mode;
    o.rows_if_new = rows;
    return SqliteCampaignStore::Open(o);
  }

  // "c<id>@v<version> omitted|<content>" for every row in the outbox, in seq order.
  std::vector<std::string> Outbox() {
    auto db = SqliteDb::Open(path_);
    EXPECT_OK(db);
    if (!db.ok()) return {};
    auto rows = ReadOutbox(**db, 0, 1'000'000);
    EXPECT_OK(rows);
    std::vector<std::string> out;
    for (const CapturedChange& c : rows.ok() ? *rows : std::vector<CapturedChange>{}) {
      out.push_back(fmt::format("c{}@v{} {}", c.row.id, c.version,
                                c.row.content.empty() ? "omitted" : c.row.content));
    }
    return out;
  }

  void ConfirmAll() {
    auto db = SqliteDb::Open(path_);
    ASSERT_OK(db);
    auto rows = ReadOutbox(**db, 0, 1'000'000);
    ASSERT_OK(rows);
    ASSERT_FALSE(rows->empty());
    ASSERT_OK(ConfirmOutboxThrough(**db, {rows->back().seq, 1}));
  }

  testing::TempDir dir_;
  std::string path_ = dir_.File("campaigns.db");
  FakeClock clock_;
};

TEST_F(SqliteCaptureTest, ANewDatabaseRecordsTheModeAndRowsOfItsCreator) {
  EXPECT_THAT(ReadSqliteCaptureState(path_), StatusIs(StatusCode::kNotFound));
  ASSERT_OK(Open(CaptureSetting::kLog, OutboxRows::kFull).status());
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState s, ReadSqliteCaptureState(path_));
  EXPECT_EQ(s.schema_version, 2);
  EXPECT_EQ(s.mode, CaptureSetting::kLog);
  EXPECT_TRUE(s.recorded);
  EXPECT_EQ(s.rows, OutboxRows::kFull);
  EXPECT_TRUE(s.triggers);

  path_ = dir_.File("notify.db");
  ASSERT_OK(Open(CaptureSetting::kNotify, OutboxRows::kCompact).status());
  ASSERT_OK_AND_ASSIGN(s, ReadSqliteCaptureState(path_));
  EXPECT_EQ(s.mode, CaptureSetting::kNotify);
  EXPECT_FALSE(s.triggers);
  EXPECT_THAT(Open(CaptureSetting::kLog, OutboxRows::kCompact),
              StatusIsWith(StatusCode::kFailedPrecondition,
                           "captures in mode 'notify', but this process is configured for 'log'"));
}

// A process's bus decides the row format of a database it creates, never of an existing one:
// a later process with another --bus cannot turn a relay's rows into ones it cannot read.
TEST_F(SqliteCaptureTest, TheRowFormatDoesNotFlipWithTheOpener) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open(CaptureSetting::kLog, OutboxRows::kFull));
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
  }
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open(CaptureSetting::kLog, OutboxRows::kCompact));
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));  // shifts c1, content unchanged
  }
  EXPECT_THAT(Outbox(), ElementsAre("c1@v1 {\"title\":\"t\"}", "c1@v2 {\"title\":\"t\"}",
                                    "c2@v1 {\"title\":\"t\"}"));
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState s, ReadSqliteCaptureState(path_));
  EXPECT_EQ(s.rows, OutboxRows::kFull);
}

// A queued shift row (format 3) stands for images only the history can complete: compact -> full
// refuses until the outbox is drained, and changes nothing; confirmed shift rows do not matter.
TEST_F(SqliteCaptureTest, SwitchingToFullRowsWaitsForQueuedShiftRowsToDrain) {
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open(CaptureSetting::kLog, OutboxRows::kCompact));
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
    ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));  // a shift row for c1
  }
  EXPECT_THAT(SetSqliteCapture(path_, {.mode = CaptureSetting::kLog, .rows = OutboxRows::kFull}),
              StatusIsWith(StatusCode::kFailedPrecondition,
                           "outbox row 2 is a priority shift of customer 1"));
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState before, ReadSqliteCaptureState(path_));
  EXPECT_EQ(before.rows, OutboxRows::kCompact);
  ConfirmAll();
  ASSERT_OK_AND_ASSIGN(
      SqliteCaptureState after,
      SetSqliteCapture(path_, {.mode = CaptureSetting::kLog, .rows = OutboxRows::kFull}));
  EXPECT_EQ(after.rows, OutboxRows::kFull);
}

// Compact -> full fills in every omitted content still queued, from the outbox or (when the
// previous version was already drained) from the history, so a relay to a bus can read them all.
TEST_F(SqliteCaptureTest, SwitchingToFullRowsFillsInEveryOmittedContent) {
  {
    // Row by row (format 2): shift rows cannot be filled in (the next test).
    ASSERT_OK_AND_ASSIGN(auto store, Open(CaptureSetting::kLog, OutboxRows::kCompact,
                                          /*one_row_per_shift=*/false));
    CampaignService service(*store);
    ASSERT_OK(service.Create(Draft(1, "a"), As("user:1")));
    ASSERT_OK(service.Create(Draft(1, "b"), As("user:1")));  // shifts c1: omitted
    ConfirmAll();                                 // drained: only the newest row (c2@v1) stays
    ASSERT_OK(service.Move(1, 1, As("user:2")));  // shifts c2, moves c1: both omitted
  }
  EXPECT_THAT(Outbox(), ElementsAre("c2@v1 {\"title\":\"t\"}", "c2@v2 omitted", "c1@v3 omitted"));

  // c1@v2 is neither in the outbox nor (without a history) anywhere: nothing changes.
  EXPECT_THAT(SetSqliteCapture(path_, {.mode = CaptureSetting::kLog, .rows = OutboxRows::kFull}),
              StatusIsWith(StatusCode::kFailedPrecondition, "campaign 1 version 3"));
  EXPECT_THAT(Outbox(), ElementsAre("c2@v1 {\"title\":\"t\"}", "c2@v2 omitted", "c1@v3 omitted"));
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState before, ReadSqliteCaptureState(path_));
  EXPECT_EQ(before.rows, OutboxRows::kCompact);
  EXPECT_EQ(before.omitted_content, 2);

  std::map<std::pair<int64_t, int64_t>, std::string> history = {{{1, 2}, R"({"title":"t"})"}};
  SqliteCaptureChange change{.mode = CaptureSetting::kLog, .rows = OutboxRows::kFull};
  change.previous_content = [&](int64_t id, int64_t version) -> Result<std::optional<std::string>> {
    auto it = history.find({id, version});
    if (it == history.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  };
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState after, SetSqliteCapture(path_, change));
  EXPECT_EQ(after.rows, OutboxRows::kFull);
  EXPECT_EQ(after.omitted_content, 0);
  EXPECT_THAT(Outbox(), ElementsAre("c2@v1 {\"title\":\"t\"}", "c2@v2 {\"title\":\"t\"}",
                                    "c1@v3 {\"title\":\"t\"}"));
  // And the triggers now write full rows.
  {
    ASSERT_OK_AND_ASSIGN(auto store, Open(CaptureSetting::kLog, OutboxRows::kCompact));
    CampaignService service(*store);
    ASSERT_OK(service.Move(1, 2, As("user:3")));
  }
  EXPECT_THAT(Outbox(), ::testing::Each(::testing::Not(::testing::HasSubstr("omitted"))));
}

TEST_F(SqliteCaptureTest, DropAndSetupAreTheOnlyWaysToChangeTheMode) {
  ASSERT_OK(Open(CaptureSetting::kLog, OutboxRows::kCompact).status());
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState s,
                       SetSqliteCapture(path_, {.mode = CaptureSetting::kNone}));
  EXPECT_EQ(s.mode, CaptureSetting::kNone);
  EXPECT_FALSE(s.triggers);
  ASSERT_OK_AND_ASSIGN(s, SetSqliteCapture(path_, {.mode = CaptureSetting::kNotify}));
  EXPECT_EQ(s.mode, CaptureSetting::kNotify);
  ASSERT_OK(Open(CaptureSetting::kNotify, OutboxRows::kCompact).status());
  ASSERT_OK_AND_ASSIGN(s, SetSqliteCapture(path_, {.mode = CaptureSetting::kLog}));
  EXPECT_EQ(s.mode, CaptureSetting::kLog);
  EXPECT_TRUE(s.triggers);
  EXPECT_EQ(s.rows, OutboxRows::kCompact);  // kept
  // Idempotent.
  ASSERT_OK_AND_ASSIGN(s, SetSqliteCapture(path_, {.mode = CaptureSetting::kLog}));
  EXPECT_TRUE(s.triggers);
}

// A file written before the mode was recorded (schema 1) takes the mode its triggers say.
TEST_F(SqliteCaptureTest, SchemaOneFilesAreUpgradedInPlace) {
  auto downgrade = [&] {
    auto db = SqliteDb::Open(path_);
    ASSERT_OK(db);
    ASSERT_OK((*db)->Exec(
        "DELETE FROM meta WHERE key IN ('capture_mode', 'outbox_rows'); UPDATE meta SET value = "
        "'1' WHERE key = 'schema_version'"));
  };
  ASSERT_OK(Open(CaptureSetting::kLog, OutboxRows::kFull).status());
  downgrade();
  ASSERT_OK_AND_ASSIGN(SqliteCaptureState s, ReadSqliteCaptureState(path_));
  EXPECT_FALSE(s.recorded);
  EXPECT_EQ(s.mode, CaptureSetting::kLog);  // the triggers are there
  EXPECT_EQ(s.rows, OutboxRows::kFull);     // and write full rows
  EXPECT_THAT(Open(CaptureSetting::kNotify, OutboxRows::kCompact),
              StatusIs(StatusCode::kFailedPrecondition));
  ASSERT_OK(Open(CaptureSetting::kLog, OutboxRows::kCompact).status());
  ASSERT_OK_AND_ASSIGN(s, ReadSqliteCaptureState(path_));
  EXPECT_TRUE(s.recorded);
  EXPECT_EQ(s.schema_version, 2);
  EXPECT_EQ(s.rows, OutboxRows::kFull);

  // Without triggers it was notify or none: the opener says which, unless it says log.
  ASSERT_OK(SetSqliteCapture(path_, {.mode = CaptureSetting::kNone}).status());
  downgrade();
  EXPECT_THAT(Open(CaptureSetting::kLog, OutboxRows::kCompact),
              StatusIsWith(StatusCode::kFailedPrecondition, "captures in mode 'none'"));
  ASSERT_OK(Open(CaptureSetting::kNotify, OutboxRows::kCompact).status());
  ASSERT_OK_AND_ASSIGN(s, ReadSqliteCaptureState(path_));
  EXPECT_EQ(s.mode, CaptureSetting::kNotify);
}

TEST_F(SqliteCaptureTest, ABadRecordedModeIsDataLoss) {
  ASSERT_OK(Open(CaptureSetting::kLog, OutboxRows::kFull).status());
  {
    auto db = SqliteDb::Open(path_);
    ASSERT_OK(db);
    ASSERT_OK((*db)->Exec("UPDATE meta SET value = 'sometimes' WHERE key = 'capture_mode'"));
  }
  EXPECT_THAT(ReadSqliteCaptureState(path_), StatusIsWith(StatusCode::kDataLoss, "sometimes"));
  EXPECT_THAT(Open(CaptureSetting::kLog, OutboxRows::kFull),
              StatusIsWith(StatusCode::kDataLoss, "sometimes"));
}

}  // namespace
}  // namespace ch
