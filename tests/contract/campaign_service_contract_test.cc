// The campaign service semantics (campaign/campaign_service.h) checked once, against every
// CampaignStore: one typed suite, one factory per store. To add a store, write a factory like
// SqliteStoreFactory below (Make() returns nullptr to skip when its server is not configured) and
// add it to `StoreFactories`.
//
// Then the SQLite log-capture contract: the outbox holds exactly one row per committed version,
// in the same transaction, and SqliteOutboxSource relays it in whole transactions.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_test_util.h"
#include "campaign/sqlite_campaign_store.h"
#include "campaign/sqlite_outbox.h"
#include "capture/sqlite_outbox_source.h"
#include "common/sqlite.h"
#include "common/time_util.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::IsOk;
using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;
using ::testing::ElementsAre;

// ---- store factories ---------------------------------------------------------------------------

struct InMemoryStoreFactory {
  static constexpr const char* kName = "InMemory";
  std::unique_ptr<CampaignStore> Make(Clock& clock) {
    return std::make_unique<InMemoryCampaignStore>(clock, StoreCapture::kLog);
  }
};

struct SqliteStoreFactory {
  static constexpr const char* kName = "Sqlite";
  std::unique_ptr<CampaignStore> Make(Clock& clock) {
    SqliteCampaignStoreOptions o;
    o.path = dir.File("campaigns.db");
    o.clock = &clock;
    auto store = SqliteCampaignStore::Open(o);
    EXPECT_OK(store);
    return store.ok() ? std::move(store).value() : nullptr;
  }
  testing::TempDir dir;
};

// A fresh database per test on the CH_TEST_PG_URL server; skipped when it is unset.
struct PgStoreFactory {
  static constexpr const char* kName = "Postgres";
  std::unique_ptr<CampaignStore> Make(Clock& clock) {
    auto created = testing::PgTestDatabase::Create();
    EXPECT_OK(created);
    if (!created.ok() || *created == nullptr) return nullptr;
    db = std::move(created).value();
    PgCampaignStoreOptions o;
    o.url = db->url();
    o.clock = &clock;
    auto store = PgCampaignStore::Open(o);
    EXPECT_OK(store);
    return store.ok() ? std::move(store).value() : nullptr;
  }
  std::unique_ptr<testing::PgTestDatabase> db;
};

using StoreFactories = ::testing::Types<InMemoryStoreFactory, SqliteStoreFactory, PgStoreFactory>;

struct FactoryNames {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

// ---- helpers -----------------------------------------------------------------------------------

Campaign Draft(int64_t customer, std::string name) {
  Campaign c;
  c.customer_id = customer;
  c.name = std::move(name);
  c.trigger_event = "app_open";
  c.audience_segment = "all";
  c.frequency_cap = 2;
  c.content = R"({"body":"Hello","title":"Hi"})";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext ctx;
  ctx.actor = std::move(actor);
  return ctx;
}

// "c3@v2 p1 by user:1"
std::string Render(const Campaign& c) {
  return "c" + std::to_string(c.id) + "@v" + std::to_string(c.version) + " p" +
         std::to_string(c.priority) + " by " + c.updated_by;
}

std::string Render(const RowChange& r) {
  return std::string(ChangeOpName(r.op)) + " c" + std::to_string(r.campaign_id) + "@v" +
         std::to_string(r.version);
}

template <typename T>
std::vector<std::string> RenderAll(const std::vector<T>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(Render(x));
  return out;
}

template <typename Factory>
class CampaignServiceContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = factory_.Make(clock_);
    if (store_ == nullptr) GTEST_SKIP() << Factory::kName << " store not configured";
    service_ = std::make_unique<CampaignService>(*store_);
  }

  // Every campaign of every customer, fully: what "unchanged" is compared against.
  std::vector<Campaign> Dump() {
    std::vector<Campaign> out;
    auto customers = store_->ListCustomers();
    EXPECT_OK(customers);
    if (!customers.ok()) return out;
    for (int64_t c : *customers) {
      auto rows = store_->List(c);
      EXPECT_OK(rows);
      if (rows.ok()) out.insert(out.end(), rows->begin(), rows->end());
    }
    return out;
  }

  std::vector<std::string> Listing(int64_t customer) {
    auto rows = store_->List(customer);
    EXPECT_OK(rows);
    return rows.ok() ? RenderAll(*rows) : std::vector<std::string>{};
  }

  // Create `n` campaigns for `customer`, one per user; return their ids (oldest first).
  std::vector<int64_t> Seed(int64_t customer, int n) {
    std::vector<int64_t> ids;
    for (int i = 0; i < n; ++i) {
      clock_.Advance(Micros(1000));
      auto r = service_->Create(Draft(customer, "c" + std::to_string(i)),
                                As("user:" + std::to_string(i)));
      EXPECT_OK(r);
      if (r.ok()) ids.push_back(r->row->id);
    }
    return ids;
  }

  FakeClock clock_;
  Factory factory_;
  std::unique_ptr<CampaignStore> store_;
  std::unique_ptr<CampaignService> service_;
};

TYPED_TEST_SUITE(CampaignServiceContractTest, StoreFactories, FactoryNames);

TYPED_TEST(CampaignServiceContractTest, CreateShiftsEveryOtherCampaignStampedWithTheActor) {
  ASSERT_OK_AND_ASSIGN(auto a, this->service_->Create(Draft(1, "a"), As("user:a")));
  EXPECT_EQ(a.shifted, 0);
  EXPECT_THAT(RenderAll(a.changes), ElementsAre("created c1@v1"));
  ASSERT_OK_AND_ASSIGN(auto b, this->service_->Create(Draft(1, "b"), As("user:b")));
  ASSERT_OK_AND_ASSIGN(auto other, this->service_->Create(Draft(2, "x"), As("user:x")));
  this->clock_.Advance(Micros(5000));
  ASSERT_OK_AND_ASSIGN(auto c, this->service_->Create(Draft(1, "c"), As("user:c")));

  EXPECT_EQ(c.shifted, 2);
  EXPECT_EQ(c.actor, "user:c");
  EXPECT_EQ(c.committed_at, this->clock_.Now());
  // The action's own row first, then the shifted rows by campaign id.
  EXPECT_THAT(RenderAll(c.changes), ElementsAre("created c4@v1", "updated c1@v3", "updated c2@v2"));
  EXPECT_THAT(this->Listing(1),
              ElementsAre("c4@v1 p1 by user:c", "c2@v2 p2 by user:c", "c1@v3 p3 by user:c"));
  EXPECT_THAT(this->Listing(2), ElementsAre("c3@v1 p1 by user:x"));
  ASSERT_OK_AND_ASSIGN(auto c1, this->service_->Get(1));
  EXPECT_EQ(c1->updated_at, c.committed_at);
  EXPECT_EQ(c1->created_at, a.committed_at);
  ASSERT_TRUE(c.row.has_value());
  EXPECT_EQ(c.row->created_at, c.committed_at);
  EXPECT_EQ(c.row->updated_at, c.committed_at);
  EXPECT_NE(b.transaction_id, c.transaction_id);
  EXPECT_NE(other.transaction_id, c.transaction_id);
}

TYPED_TEST(CampaignServiceContractTest, MoveShiftsTheCampaignsInBetween) {
  auto ids = this->Seed(1, 5);  // priorities: c5 c4 c3 c2 c1
  EXPECT_THAT(this->Listing(1),
              ElementsAre("c5@v1 p1 by user:4", "c4@v2 p2 by user:4", "c3@v3 p3 by user:4",
                          "c2@v4 p4 by user:4", "c1@v5 p5 by user:4"));
  // Up: c2 from 4 to 2; c4 and c3 move down.
  ASSERT_OK_AND_ASSIGN(auto up, this->service_->Move(2, 2, As("user:m")));
  EXPECT_EQ(up.shifted, 2);
  EXPECT_THAT(RenderAll(up.changes),
              ElementsAre("updated c2@v5", "updated c3@v4", "updated c4@v3"));
  EXPECT_THAT(this->Listing(1),
              ElementsAre("c5@v1 p1 by user:4", "c2@v5 p2 by user:m", "c4@v3 p3 by user:m",
                          "c3@v4 p4 by user:m", "c1@v5 p5 by user:4"));
  // Down: c5 from 1 to 4; c2, c4, c3 move up.
  ASSERT_OK_AND_ASSIGN(auto down, this->service_->Move(5, 4, As("user:n")));
  EXPECT_EQ(down.shifted, 3);
  EXPECT_THAT(this->Listing(1),
              ElementsAre("c2@v6 p1 by user:n", "c4@v4 p2 by user:n", "c3@v5 p3 by user:n",
                          "c5@v2 p4 by user:n", "c1@v5 p5 by user:4"));
  // To the same place: one new version, nothing shifted.
  ASSERT_OK_AND_ASSIGN(auto same, this->service_->Move(1, 5, As("user:o")));
  EXPECT_EQ(same.shifted, 0);
  EXPECT_THAT(RenderAll(same.changes), ElementsAre("updated c1@v6"));
}

TYPED_TEST(CampaignServiceContractTest, DeleteKeepsPrioritiesDenseAndWritesATombstone) {
  this->Seed(1, 4);  // c4 c3 c2 c1
  ASSERT_OK_AND_ASSIGN(auto del, this->service_->Delete(3, As("user:d")));
  EXPECT_EQ(del.shifted, 2);
  EXPECT_THAT(RenderAll(del.changes),
              ElementsAre("deleted c3@v3", "updated c1@v5", "updated c2@v4"));
  ASSERT_TRUE(del.row.has_value());
  EXPECT_EQ(Render(*del.row), "c3@v2 p2 by user:3");  // the last content, before the delete
  EXPECT_THAT(this->Listing(1),
              ElementsAre("c4@v1 p1 by user:3", "c2@v4 p2 by user:d", "c1@v5 p3 by user:d"));
  ASSERT_OK_AND_ASSIGN(auto gone, this->service_->Get(3));
  EXPECT_FALSE(gone.has_value());
  // Deleting the last one shifts nothing.
  ASSERT_OK_AND_ASSIGN(auto last, this->service_->Delete(1, As("user:d")));
  EXPECT_EQ(last.shifted, 0);
  EXPECT_THAT(this->Listing(1), ElementsAre("c4@v1 p1 by user:3", "c2@v4 p2 by user:d"));
}

TYPED_TEST(CampaignServiceContractTest, IdsAreNeverReused) {
  this->Seed(1, 3);
  ASSERT_OK(this->service_->Delete(3, As("user:d")));
  ASSERT_OK_AND_ASSIGN(auto next, this->service_->Create(Draft(1, "n"), As("user:n")));
  EXPECT_EQ(next.row->id, 4);
  Campaign reuse = Draft(1, "again");
  reuse.id = 3;
  auto before = this->Dump();
  EXPECT_THAT(this->service_->Create(reuse, As("user:n")), StatusIs(StatusCode::kAlreadyExists));
  reuse.id = 2;
  EXPECT_THAT(this->service_->Create(reuse, As("user:n")), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_EQ(this->Dump(), before);
  // An explicit, never used id is kept, and allocation continues above it.
  reuse.id = 100;
  ASSERT_OK_AND_ASSIGN(auto explicit_id, this->service_->Create(reuse, As("user:n")));
  EXPECT_EQ(explicit_id.row->id, 100);
  ASSERT_OK_AND_ASSIGN(auto after, this->service_->Create(Draft(1, "m"), As("user:n")));
  EXPECT_EQ(after.row->id, 101);
}

TYPED_TEST(CampaignServiceContractTest, UpdateIsPartialAndValidated) {
  this->Seed(1, 2);
  CampaignPatch patch;
  patch.name = "Renamed";
  patch.status = CampaignStatus::kActive;
  patch.end_at = std::optional<Timestamp>(ParseTimestamp("2027-01-01T00:00:00Z").value());
  patch.content = R"({ "title": "New", "body": "x" })";
  this->clock_.Advance(Micros(10));
  ASSERT_OK_AND_ASSIGN(auto info, this->service_->Update(1, patch, As("api:key1")));
  EXPECT_THAT(RenderAll(info.changes), ElementsAre("updated c1@v3"));
  EXPECT_EQ(info.shifted, 0);
  ASSERT_OK_AND_ASSIGN(auto row, this->service_->Get(1));
  EXPECT_EQ(row->name, "Renamed");
  EXPECT_EQ(row->status, CampaignStatus::kActive);
  EXPECT_EQ(row->trigger_event, "app_open");  // untouched
  EXPECT_EQ(row->frequency_cap, 2);
  EXPECT_EQ(row->content, R"({"body":"x","title":"New"})");  // canonical
  EXPECT_EQ(row->updated_by, "api:key1");
  EXPECT_EQ(row->updated_at, info.committed_at);
  EXPECT_EQ(row->priority, 2);
  EXPECT_EQ(*info.row, *row);
  // Setting a time to null.
  CampaignPatch clear;
  clear.end_at = std::optional<Timestamp>();
  ASSERT_OK(this->service_->Update(1, clear, As("api:key1")));
  ASSERT_OK_AND_ASSIGN(row, this->service_->Get(1));
  EXPECT_FALSE(row->end_at.has_value());
  EXPECT_EQ(row->version, 4);
}

// Every bad input fails with the right code, names the problem, and changes nothing.
TYPED_TEST(CampaignServiceContractTest, BadInputFailsAndChangesNothing) {
  this->Seed(1, 3);  // c3 c2 c1
  this->Seed(2, 1);  // c4
  struct Case {
    std::string what;
    std::function<Status()> call;
    StatusCode code;
    std::string message;
  };
  auto& s = *this->service_;
  auto patch_name = [](std::string n) {
    CampaignPatch p;
    p.name = std::move(n);
    return p;
  };
  auto with = [](std::function<void(Campaign&)> f) {
    Campaign c = Draft(1, "ok");
    f(c);
    return c;
  };
  auto ctx = [](std::function<void(WriteContext&)> f) {
    WriteContext w = As("user:z");
    f(w);
    return w;
  };
  std::vector<Case> cases = {
      {"empty name",
       [&] { return s.Create(with([](Campaign& c) { c.name = ""; }), As("user:z")).status(); },
       StatusCode::kInvalidArgument, "name: must be 1-200 characters (got 0)"},
      {"long name",
       [&] { return s.Update(1, patch_name(std::string(201, 'n')), As("user:z")).status(); },
       StatusCode::kInvalidArgument, "name: must be 1-200 characters (got 201)"},
      {"unknown status",
       [&] {
         return s
             .Create(with([](Campaign& c) { c.status = static_cast<CampaignStatus>(7); }),
                     As("user:z"))
             .status();
       },
       StatusCode::kInvalidArgument, "status: unknown value"},
      {"content not an object",
       [&] {
         return s.Create(with([](Campaign& c) { c.content = "[1]"; }), As("user:z")).status();
       },
       StatusCode::kInvalidArgument, "content: must be a JSON object"},
      {"content malformed",
       [&] {
         CampaignPatch p;
         p.content = "{\"a\":";
         return s.Update(1, p, As("user:z")).status();
       },
       StatusCode::kInvalidArgument, "content: must be a JSON object"},
      {"content too big",
       [&] {
         CampaignPatch p;
         p.content = "{\"a\":\"" + std::string(70000 - 8, 'x') + "\"}";
         return s.Update(1, p, As("user:z")).status();
       },
       StatusCode::kInvalidArgument, "content: 70000 bytes exceeds the 65536-byte limit"},
      {"end before start",
       [&] {
         return s
             .Create(with([](Campaign& c) {
                       c.start_at = ParseTimestamp("2026-05-01").value();
                       c.end_at = ParseTimestamp("2026-04-01").value();
                     }),
                     As("user:z"))
             .status();
       },
       StatusCode::kInvalidArgument, "end_at: must be after start_at"},
      {"end before existing start (update)",
       [&] {
         CampaignPatch p;
         p.start_at = std::optional<Timestamp>(ParseTimestamp("2026-05-01").value());
         p.end_at = std::optional<Timestamp>(ParseTimestamp("2026-05-01").value());
         return s.Update(2, p, As("user:z")).status();
       },
       StatusCode::kInvalidArgument, "end_at: must be after start_at"},
      {"negative frequency cap",
       [&] {
         CampaignPatch p;
         p.frequency_cap = -1;
         return s.Update(1, p, As("user:z")).status();
       },
       StatusCode::kInvalidArgument, "frequency_cap: must be 0..1000000"},
      {"invalid UTF-8", [&] { return s.Update(1, patch_name("bad \xff"), As("user:z")).status(); },
       StatusCode::kInvalidArgument, "name: not valid UTF-8"},
      {"missing actor (create)", [&] { return s.Create(Draft(1, "x"), As("")).status(); },
       StatusCode::kInvalidArgument, "actor: must be 1-128 characters (got 0)"},
      {"missing actor (update)", [&] { return s.Update(1, patch_name("x"), As("")).status(); },
       StatusCode::kInvalidArgument, "actor"},
      {"missing actor (move)", [&] { return s.Move(1, 1, As("")).status(); },
       StatusCode::kInvalidArgument, "actor"},
      {"missing actor (delete)", [&] { return s.Delete(1, As("")).status(); },
       StatusCode::kInvalidArgument, "actor"},
      {"updated_by differs from actor",
       [&] {
         CampaignPatch p = patch_name("x");
         p.updated_by = "user:other";
         return s.Update(1, p, As("user:z")).status();
       },
       StatusCode::kInvalidArgument, "updated_by"},
      {"empty patch", [&] { return s.Update(1, CampaignPatch{}, As("user:z")).status(); },
       StatusCode::kInvalidArgument, "patch"},
      {"unknown id (update)", [&] { return s.Update(99, patch_name("x"), As("user:z")).status(); },
       StatusCode::kNotFound, "campaign 99 not found"},
      {"unknown id (move)", [&] { return s.Move(99, 1, As("user:z")).status(); },
       StatusCode::kNotFound, "campaign 99 not found"},
      {"unknown id (delete)", [&] { return s.Delete(99, As("user:z")).status(); },
       StatusCode::kNotFound, "campaign 99 not found"},
      {"move to 0", [&] { return s.Move(1, 0, As("user:z")).status(); },
       StatusCode::kInvalidArgument, "out of range 1..3"},
      {"move past the end", [&] { return s.Move(1, 4, As("user:z")).status(); },
       StatusCode::kInvalidArgument, "out of range 1..3"},
      {"expect_version",
       [&] {
         return s.Update(1, patch_name("x"), ctx([](WriteContext& w) { w.expect_version = 1; }))
             .status();
       },
       StatusCode::kFailedPrecondition, "is at version 3, not 1"},
      {"expect_customer",
       [&] { return s.Delete(1, ctx([](WriteContext& w) { w.expect_customer = 2; })).status(); },
       StatusCode::kFailedPrecondition, "belongs to customer 1, not 2"},
      {"expect_customer (create)",
       [&] {
         return s.Create(Draft(1, "x"), ctx([](WriteContext& w) { w.expect_customer = 2; }))
             .status();
       },
       StatusCode::kFailedPrecondition, "customer"},
      {"expect_priority",
       [&] { return s.Move(1, 1, ctx([](WriteContext& w) { w.expect_priority = 1; })).status(); },
       StatusCode::kFailedPrecondition, "is at priority 3, not 1"},
      // These fail only after the shift ran: the transaction must roll it back.
      {"expect_shifted (create)",
       [&] {
         return s.Create(Draft(1, "x"), ctx([](WriteContext& w) { w.expect_shifted = 2; }))
             .status();
       },
       StatusCode::kFailedPrecondition, "shifts 3 other campaigns, expected 2"},
      {"expect_shifted (move)",
       [&] { return s.Move(1, 1, ctx([](WriteContext& w) { w.expect_shifted = 1; })).status(); },
       StatusCode::kFailedPrecondition, "shifts 2 other campaigns, expected 1"},
      {"expect_shifted (delete)",
       [&] { return s.Delete(3, ctx([](WriteContext& w) { w.expect_shifted = 0; })).status(); },
       StatusCode::kFailedPrecondition, "shifts 2 other campaigns, expected 0"},
      {"expect_shifted (update)",
       [&] {
         return s.Update(1, patch_name("x"), ctx([](WriteContext& w) { w.expect_shifted = 1; }))
             .status();
       },
       StatusCode::kFailedPrecondition, "shifts 0 other campaigns, expected 1"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto before = this->Dump();
    this->clock_.Advance(Micros(7));
    EXPECT_THAT(c.call(), StatusIsWith(c.code, c.message));
    EXPECT_EQ(this->Dump(), before);
  }
  // The store still works, and nothing above left a trace in the versions.
  ASSERT_OK_AND_ASSIGN(auto ok, this->service_->Move(1, 1, As("user:z")));
  EXPECT_THAT(RenderAll(ok.changes),
              ElementsAre("updated c1@v4", "updated c2@v3", "updated c3@v2"));
}

TYPED_TEST(CampaignServiceContractTest, CommitTimesStrictlyIncreaseEvenWhenTheClockDoesNot) {
  std::vector<Timestamp> times;
  std::set<std::string> txns;
  ASSERT_OK_AND_ASSIGN(auto a, this->service_->Create(Draft(1, "a"), As("user:1")));
  times.push_back(a.committed_at);
  txns.insert(a.transaction_id);
  EXPECT_EQ(a.committed_at, this->clock_.Now());
  for (int i = 0; i < 5; ++i) {  // the clock stands still
    ASSERT_OK_AND_ASSIGN(auto r, this->service_->Create(Draft(1, "b"), As("user:1")));
    times.push_back(r.committed_at);
    txns.insert(r.transaction_id);
  }
  this->clock_.Advance(Micros(-1000000));  // and goes backwards
  ASSERT_OK_AND_ASSIGN(auto back, this->service_->Move(1, 1, As("user:1")));
  times.push_back(back.committed_at);
  txns.insert(back.transaction_id);
  for (size_t i = 1; i < times.size(); ++i) EXPECT_EQ(times[i], times[i - 1] + Micros(1)) << i;
  EXPECT_EQ(txns.size(), times.size());
  this->clock_.Advance(Micros(5000000));
  ASSERT_OK_AND_ASSIGN(auto fwd, this->service_->Move(1, 2, As("user:1")));
  EXPECT_EQ(fwd.committed_at, this->clock_.Now());
}

TYPED_TEST(CampaignServiceContractTest, ImportKeepsIdsPrioritiesAndActors) {
  // A 2,000-campaign customer arrives as 4 seed lines of 500 rows, as in the workload format.
  const int kRows = 2000;
  ASSERT_OK(this->service_->Create(Draft(9, "other customer"), As("user:9")));
  for (int chunk = 0; chunk < 4; ++chunk) {
    std::vector<Campaign> rows;
    for (int i = 0; i < 500; ++i) {
      int p = chunk * 500 + i + 1;
      Campaign c = Draft(5, "seed " + std::to_string(p));
      c.id = 1000 + p;
      c.priority = p;
      c.updated_by = "user:" + std::to_string(p % 7);
      c.content = R"({"title":"t )" + std::to_string(p) + R"("})";
      rows.push_back(c);
    }
    this->clock_.Advance(Micros(100));
    ASSERT_OK_AND_ASSIGN(auto info, this->service_->Import(5, rows));
    EXPECT_EQ(info.changes.size(), 500u);
    EXPECT_EQ(info.changes.front().op, ChangeOp::kCreated);
    EXPECT_EQ(info.imported.size(), 500u);
    EXPECT_EQ(info.shifted, 0);
  }
  ASSERT_OK_AND_ASSIGN(auto rows, this->store_->List(5));
  ASSERT_EQ(rows.size(), size_t{kRows});
  for (int i = 0; i < kRows; ++i) {
    EXPECT_EQ(rows[i].priority, i + 1);
    EXPECT_EQ(rows[i].id, 1001 + i);
    EXPECT_EQ(rows[i].version, 1);
    EXPECT_EQ(rows[i].updated_by, "user:" + std::to_string((i + 1) % 7));
    EXPECT_EQ(rows[i].created_at, rows[i].updated_at);
  }
  // New ids continue above the imported ones.
  ASSERT_OK_AND_ASSIGN(auto next, this->service_->Create(Draft(5, "new"), As("user:1")));
  EXPECT_EQ(next.row->id, 3001);
  EXPECT_EQ(next.shifted, kRows);
}

// A workload replay's position commits with the action that carries it, or not at all, and only
// from the position the replayer expects (a compare-and-set).
TYPED_TEST(CampaignServiceContractTest, ReplayPositionCommitsWithItsActionOnly) {
  CampaignStore& store = *this->store_;
  CampaignService& service = *this->service_;
  auto at = [](int64_t seq, std::optional<int64_t> from, std::string workload = "w1") {
    return ReplayAdvance{{std::move(workload), seq, "digest" + std::to_string(seq), "a.jsonl", {}},
                         from};
  };
  auto seq_of = [&](const std::string& workload) -> std::optional<int64_t> {
    auto p = store.GetReplayPosition(workload);
    EXPECT_OK(p);
    return p.ok() && *p ? std::optional<int64_t>((*p)->seq) : std::nullopt;
  };
  EXPECT_EQ(seq_of("w1"), std::nullopt);

  WriteContext ctx = As("user:1");
  ctx.replay = at(1, std::nullopt);
  ASSERT_OK_AND_ASSIGN(auto created, service.Create(Draft(1, "a"), ctx));
  ASSERT_OK_AND_ASSIGN(std::optional<ReplayPosition> p, store.GetReplayPosition("w1"));
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, (ReplayPosition{"w1", 1, "digest1", "a.jsonl", created.committed_at}));
  const int64_t id = created.row->id;

  // From a stale position: refused, and the action with it.
  std::vector<Campaign> before = this->Dump();
  CampaignPatch rename;
  rename.name = "b";
  EXPECT_THAT(
      service.Update(id, rename, ctx),
      StatusIsWith(StatusCode::kFailedPrecondition, "replay position in this database is seq 1"));
  ctx.replay = at(2, 7);
  EXPECT_THAT(service.Move(id, 1, ctx), StatusIsWith(StatusCode::kFailedPrecondition, "seq 1"));
  ctx.replay = at(2, 1, "w2");
  EXPECT_THAT(
      service.Update(id, rename, ctx),
      StatusIsWith(StatusCode::kFailedPrecondition, "replay position in this database is none"));
  // An action that fails for its own reason leaves the position where it was.
  ctx.replay = at(2, 1);
  ctx.expect_version = 99;
  EXPECT_THAT(service.Update(id, rename, ctx), StatusIs(StatusCode::kFailedPrecondition));
  ctx.expect_version.reset();
  EXPECT_EQ(this->Dump(), before);
  EXPECT_EQ(seq_of("w1"), 1);
  EXPECT_EQ(seq_of("w2"), std::nullopt);

  // From the expected position every action moves it on; workloads are independent.
  ASSERT_OK(service.Update(id, rename, ctx));
  ctx.replay = at(3, 2);
  ASSERT_OK(service.Move(id, 1, ctx));
  Campaign row = Draft(2, "imported");
  row.id = 500;
  row.priority = 1;
  row.updated_by = "user:2";
  ASSERT_OK(service.Import(2, {row}, at(9, std::nullopt, "w2")));
  ctx.replay = at(4, 3);
  ASSERT_OK(service.Delete(id, ctx));
  EXPECT_EQ(seq_of("w1"), 4);
  EXPECT_EQ(seq_of("w2"), 9);

  // A bad position is refused before anything is committed.
  ctx.replay = at(5, 4, "");
  EXPECT_THAT(service.Create(Draft(1, "c"), ctx), StatusIs(StatusCode::kInvalidArgument));
  ctx.replay = at(5, 4, std::string(129, 'w'));
  EXPECT_THAT(service.Create(Draft(1, "c"), ctx), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->Listing(1), ::testing::IsEmpty());
}

TYPED_TEST(CampaignServiceContractTest, ImportRejectsBadRowsAndChangesNothing) {
  this->Seed(5, 2);  // c2 p1, c1 p2
  auto row = [](int64_t id, int64_t priority) {
    Campaign c = Draft(5, "imported");
    c.id = id;
    c.priority = priority;
    c.updated_by = "user:imp";
    return c;
  };
  auto before = this->Dump();
  auto& s = *this->service_;
  EXPECT_THAT(s.Import(5, {row(10, 3), row(11, 2)}),
              StatusIsWith(StatusCode::kFailedPrecondition, "priority: 2 is already taken"));
  EXPECT_THAT(s.Import(5, {row(10, 3), row(11, 5)}),
              StatusIsWith(StatusCode::kInvalidArgument, "out of range 1..4"));
  EXPECT_THAT(s.Import(5, {row(10, 3), row(1, 4)}), StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(s.Import(6, {row(10, 1)}), StatusIsWith(StatusCode::kInvalidArgument, "customer_id"));
  Campaign no_actor = row(10, 3);
  no_actor.updated_by = "";
  EXPECT_THAT(s.Import(5, {no_actor}), StatusIsWith(StatusCode::kInvalidArgument, "updated_by"));
  Campaign bad = row(10, 3);
  bad.name = "";
  EXPECT_THAT(s.Import(5, {bad}), StatusIsWith(StatusCode::kInvalidArgument, "name"));
  EXPECT_THAT(s.Import(5, {}), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_EQ(this->Dump(), before);
  ASSERT_OK(s.Import(5, {row(10, 4), row(11, 3)}));
  EXPECT_THAT(this->Listing(5), ElementsAre("c2@v1 p1 by user:1", "c1@v2 p2 by user:1",
                                            "c11@v1 p3 by user:imp", "c10@v1 p4 by user:imp"));
}

TYPED_TEST(CampaignServiceContractTest, UnicodeRoundTripsByteForByte) {
  Campaign d =
      Draft(1, "Caf\xc3\xa9 \"quoted\" back\\slash \xf0\x9f\x8e\x89 \xe6\x97\xa5\xe6\x9c\xac");
  d.trigger_event = "tab\there";
  d.audience_segment = "\xd0\xbc\xd0\xb8\xd1\x80";  // мир
  d.content = R"({"title":"\ud83c\udf89 Party","body":"line1\nline2 \"q\" \\ é"})";
  ASSERT_OK_AND_ASSIGN(auto info, this->service_->Create(d, As("user:\xc3\xa9")));
  ASSERT_OK_AND_ASSIGN(auto row, this->service_->Get(info.row->id));
  EXPECT_EQ(row->name, d.name);
  EXPECT_EQ(row->trigger_event, d.trigger_event);
  EXPECT_EQ(row->audience_segment, d.audience_segment);
  EXPECT_EQ(row->updated_by, "user:\xc3\xa9");
  EXPECT_EQ(
      row->content,
      "{\"body\":\"line1\\nline2 \\\"q\\\" \\\\ \xc3\xa9\",\"title\":\"\xf0\x9f\x8e\x89 Party\"}");
  EXPECT_EQ(*row, *info.row);
  ASSERT_OK_AND_ASSIGN(auto back, CampaignFromJson(CampaignToJson(*row)));
  EXPECT_EQ(back, *row);
}

TYPED_TEST(CampaignServiceContractTest, ObserversSeeEachCommitAfterItCommitted) {
  struct Recorder : CommitObserver {
    explicit Recorder(CampaignStore& s) : store(s) {}
    void OnCommit(const CommitInfo& info) override {
      infos.push_back(info);
      // The commit is visible, and the writer lock is free, when observers run.
      auto tx = store.BeginWrite("worker:observer");
      writable.push_back(tx.ok());
      auto row = info.row ? store.Get(info.row->id) : Result<std::optional<Campaign>>(std::nullopt);
      visible.push_back(row.ok() && (info.changes[0].op == ChangeOp::kDeleted) != row->has_value());
    }
    CampaignStore& store;
    std::vector<CommitInfo> infos;
    std::vector<bool> writable;
    std::vector<bool> visible;
  } recorder(*this->store_);
  this->service_->AddObserver(&recorder);
  ASSERT_OK(this->service_->Create(Draft(1, "a"), As("user:1")));
  ASSERT_OK(this->service_->Create(Draft(1, "b"), As("user:1")));
  EXPECT_THAT(this->service_->Move(1, 7, As("user:1")), StatusIs(StatusCode::kInvalidArgument));
  ASSERT_OK(this->service_->Delete(2, As("user:2")));
  ASSERT_EQ(recorder.infos.size(), 3u);
  EXPECT_THAT(recorder.writable, ElementsAre(true, true, true));
  EXPECT_THAT(recorder.visible, ElementsAre(true, true, true));
  EXPECT_EQ(recorder.infos[2].actor, "user:2");
  EXPECT_THAT(RenderAll(recorder.infos[2].changes), ElementsAre("deleted c2@v2", "updated c1@v3"));
}

TYPED_TEST(CampaignServiceContractTest, ConcurrentWritersKeepPrioritiesDense) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 15;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<CommitInfo> infos;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = this->service_->Create(Draft(1, "t" + std::to_string(t)),
                                        As("user:" + std::to_string(t)));
        EXPECT_OK(r);
        if (r.ok()) {
          std::lock_guard lock(mu);
          infos.push_back(*r);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_OK_AND_ASSIGN(auto rows, this->store_->List(1));
  ASSERT_EQ(rows.size(), size_t{kThreads * kPerThread});
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].priority, int64_t(i + 1));
  std::set<Timestamp> times;
  std::set<std::string> txns;
  for (const auto& info : infos) {
    times.insert(info.committed_at);
    txns.insert(info.transaction_id);
  }
  EXPECT_EQ(times.size(), infos.size());
  EXPECT_EQ(txns.size(), infos.size());
  // Version of each row = 1 + the number of creates after it.
  for (const auto& r : rows) EXPECT_EQ(r.version, r.priority) << Render(r);
}

TYPED_TEST(CampaignServiceContractTest, ListsCustomersAndExpiredCampaigns) {
  auto at = [](const char* t) { return ParseTimestamp(t).value(); };
  auto make = [&](int64_t customer, CampaignStatus status, std::optional<Timestamp> end) {
    Campaign d = Draft(customer, "x");
    d.status = status;
    d.end_at = end;
    auto r = this->service_->Create(d, As("user:1"));
    EXPECT_OK(r);
    return r.ok() ? r->row->id : 0;
  };
  int64_t late = make(3, CampaignStatus::kActive, at("2026-03-01"));
  int64_t early = make(1, CampaignStatus::kActive, at("2026-02-01"));
  make(1, CampaignStatus::kPaused, at("2026-01-01"));
  make(2, CampaignStatus::kActive, std::nullopt);
  make(2, CampaignStatus::kActive, at("2027-01-01"));
  int64_t same = make(3, CampaignStatus::kActive, at("2026-02-01"));
  ASSERT_OK_AND_ASSIGN(auto customers, this->store_->ListCustomers());
  EXPECT_THAT(customers, ElementsAre(1, 2, 3));
  ASSERT_OK_AND_ASSIGN(auto expired, this->store_->ListExpired(at("2026-03-01"), 10));
  std::vector<int64_t> ids;
  for (const auto& c : expired) ids.push_back(c.id);
  EXPECT_THAT(ids, ElementsAre(early, same, late));  // oldest end_at first; end_at <= now
  ASSERT_OK_AND_ASSIGN(auto limited, this->store_->ListExpired(at("2026-03-01"), 1));
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0].id, early);
  ASSERT_OK_AND_ASSIGN(auto none, this->store_->ListExpired(at("2025-01-01"), 10));
  EXPECT_TRUE(none.empty());
}

TYPED_TEST(CampaignServiceContractTest, UncommittedTransactionRollsBackOnDestruction) {
  this->Seed(1, 2);
  auto before = this->Dump();
  {
    ASSERT_OK_AND_ASSIGN(auto tx, this->store_->BeginWrite("user:x"));
    ASSERT_OK_AND_ASSIGN(auto shifted, tx->Shift(1, 1, 1, std::nullopt, "user:x"));
    EXPECT_EQ(shifted.size(), 2u);
    ASSERT_OK(tx->Remove(1, "user:x"));
    ASSERT_OK_AND_ASSIGN(auto inside, tx->List(1));
    EXPECT_EQ(inside.size(), 1u);
    // Readers see committed data only.
    EXPECT_EQ(this->Dump(), before);
  }
  EXPECT_EQ(this->Dump(), before);
  ASSERT_OK_AND_ASSIGN(auto info, this->service_->Delete(1, As("user:y")));
  EXPECT_THAT(RenderAll(info.changes), ElementsAre("deleted c1@v3"));
}

// ---- log capture ----------------------------------------------------------------------------

// Apply the same script of actions, at the same fake times, to `service`. Failed actions are part
// of the script: they must leave no captured change.
void RunScript(CampaignService& service, FakeClock& clock) {
  auto step = [&] { clock.Advance(Micros(250)); };
  std::vector<Campaign> seed;
  for (int p = 1; p <= 6; ++p) {
    Campaign c = Draft(2, "seed " + std::to_string(p));
    c.id = 100 + p;
    c.priority = p;
    c.updated_by = "user:seed";
    seed.push_back(c);
  }
  EXPECT_OK(service.Import(2, seed));
  step();
  for (int i = 0; i < 4; ++i) {
    EXPECT_OK(service.Create(Draft(1, "c" + std::to_string(i)), As("user:" + std::to_string(i))));
    step();
  }
  CampaignPatch patch;
  patch.name = "Renamed \xf0\x9f\x8e\x89";
  patch.content = R"({"title":"new"})";
  EXPECT_OK(service.Update(102, patch, As("api:key")));
  step();
  EXPECT_OK(service.Move(106, 2, As("user:mover")));
  EXPECT_OK(service.Move(101, 6, As("user:mover")));  // same transaction time as the previous
  step();
  WriteContext stale = As("user:late");
  stale.expect_version = 1;
  EXPECT_THAT(service.Update(102, patch, stale), StatusIs(StatusCode::kFailedPrecondition));
  WriteContext wrong_shift = As("user:x");
  wrong_shift.expect_shifted = 0;
  EXPECT_THAT(service.Delete(104, wrong_shift), StatusIs(StatusCode::kFailedPrecondition));
  step();
  EXPECT_OK(service.Delete(104, As("user:deleter")));
  EXPECT_OK(service.Delete(107, As("user:deleter")));  // the last of customer 1: no shift
}

// The captured changes grouped by transaction, each transaction's rows sorted (the order of the
// rows one statement touches is the store's business).
std::vector<std::vector<std::string>> ByTransaction(const std::vector<CapturedChange>& changes) {
  std::vector<std::vector<std::string>> out;
  std::string txn;
  for (const CapturedChange& c : changes) {
    if (out.empty() || c.transaction_id != txn) out.emplace_back();
    txn = c.transaction_id;
    CapturedChange copy = c;
    copy.seq = 0;
    out.back().push_back(DebugString(copy) + " " + FormatTimestamp(c.commit_time) + " " +
                         CampaignToJson(c.row));
  }
  for (auto& t : out) std::sort(t.begin(), t.end());
  return out;
}

TEST(LogCaptureContractTest, EveryStoreCapturesTheSameVersions) {
  FakeClock mem_clock;
  InMemoryCampaignStore mem(mem_clock, StoreCapture::kLog);
  CampaignService mem_service(mem);
  RunScript(mem_service, mem_clock);

  testing::TempDir dir;
  FakeClock sql_clock;
  SqliteCampaignStoreOptions o;
  o.path = dir.File("campaigns.db");
  o.clock = &sql_clock;
  ASSERT_OK_AND_ASSIGN(auto sql, SqliteCampaignStore::Open(o));
  CampaignService sql_service(*sql);
  RunScript(sql_service, sql_clock);
  ASSERT_OK_AND_ASSIGN(auto db, SqliteDb::Open(o.path));
  ASSERT_OK_AND_ASSIGN(auto outbox, ReadOutbox(*db, 0, 100000));

  auto mem_changes = mem.AllChanges();
  ASSERT_EQ(mem_changes.size(), outbox.size());
  // Both omit unchanged content the same way; compare the full images.
  for (size_t i = 0; i < outbox.size(); ++i) {
    EXPECT_EQ(mem_changes[i].row.content.empty(), outbox[i].row.content.empty()) << i;
  }
  ASSERT_OK(ResolveOmittedContent(mem_changes));
  ASSERT_OK(ResolveOmittedContent(outbox));
  // 6 imported + (1 + 2 + 3 + 4) creates + 1 update + (1 + 4) + (1 + 5) moves + (1 + 2) + (1 + 0)
  // deletes.
  EXPECT_EQ(outbox.size(), 6u + 10u + 1u + 5u + 6u + 3u + 1u);
  auto mem_txns = ByTransaction(mem_changes);
  auto sql_txns = ByTransaction(outbox);
  ASSERT_EQ(mem_txns.size(), sql_txns.size());
  for (size_t t = 0; t < mem_txns.size(); ++t) {
    ASSERT_EQ(mem_txns[t].size(), sql_txns[t].size()) << "transaction #" << t;
    for (size_t i = 0; i < mem_txns[t].size(); ++i) EXPECT_EQ(mem_txns[t][i], sql_txns[t][i]);
  }
  // seq is the commit order on both (the SQLite outbox's changes of one shift share its row's).
  for (size_t i = 1; i < outbox.size(); ++i) EXPECT_LE(outbox[i - 1].seq, outbox[i].seq);
}

// Drive a random mix of actions through the service while a relay drains the outbox on another
// thread; every committed version must arrive exactly as committed, in whole transactions.
TEST(LogCaptureContractTest, OutboxSourceDeliversEveryCommittedVersionOnce) {
  testing::TempDir dir;
  SqliteCampaignStoreOptions o;
  o.path = dir.File("campaigns.db");
  ASSERT_OK_AND_ASSIGN(auto store, SqliteCampaignStore::Open(o));
  CampaignService service(*store);
  SqliteOutboxSourceOptions so;
  so.path = o.path;
  so.poll_interval = std::chrono::milliseconds(2);
  ASSERT_OK_AND_ASSIGN(auto source, SqliteOutboxSource::Open(so));
  service.AddObserver(&source->commit_observer());

  std::atomic<bool> done{false};
  std::vector<SourceBatch> batches;
  std::thread relay([&] {
    while (true) {
      bool finished = done.load();
      auto batch = source->Poll(7, std::chrono::milliseconds(20));
      ASSERT_OK(batch);
      if (batch->events.empty()) {
        if (finished) return;
        continue;
      }
      EXPECT_OK(source->Confirm(batch->end_position));
      batches.push_back(std::move(*batch));
    }
  });

  std::mt19937 rng(7);
  std::vector<CommitInfo> commits;
  std::vector<std::vector<int64_t>> ids(4);  // per customer (1..3), by creation
  for (int i = 0; i < 300; ++i) {
    int64_t customer = 1 + static_cast<int64_t>(rng() % 3);
    auto& mine = ids[customer];
    int kind = static_cast<int>(rng() % 10);
    Result<CommitInfo> r = InternalError("no action");
    if (mine.size() < 2 || kind < 3) {
      r = service.Create(Draft(customer, "c"), As("user:" + std::to_string(i % 5)));
      if (r.ok()) mine.push_back(r->row->id);
    } else if (kind < 7) {
      CampaignPatch p;
      p.frequency_cap = i;
      r = service.Update(mine[rng() % mine.size()], p, As("user:u"));
    } else if (kind < 9) {
      r = service.Move(mine[rng() % mine.size()], 1 + static_cast<int64_t>(rng() % mine.size()),
                       As("user:m"));
    } else {
      size_t k = rng() % mine.size();
      r = service.Delete(mine[k], As("user:d"));
      mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(k));
    }
    ASSERT_OK(r);
    commits.push_back(*r);
  }
  done = true;
  relay.join();

  // Every committed version arrives once, with the transaction's id, time and actor.
  std::map<std::string, std::set<std::string>> expected;
  std::map<std::string, const CommitInfo*> by_txn;
  size_t total = 0;
  for (const CommitInfo& c : commits) {
    by_txn[c.transaction_id] = &c;
    for (const RowChange& rc : c.changes) expected[c.transaction_id].insert(Render(rc));
    total += c.changes.size();
  }
  std::map<std::string, std::set<std::string>> got;
  std::map<int64_t, int64_t> last_version;
  int64_t last_seq = 0;
  size_t events = 0;
  for (size_t b = 0; b < batches.size(); ++b) {
    const auto& batch = batches[b];
    // A transaction is never split across batches.
    if (b > 0) {
      EXPECT_NE(batches[b - 1].events.back().transaction_id, batch.events.front().transaction_id);
    }
    EXPECT_EQ(batch.end_position, batch.events.back().source_position);
    for (const ChangeEvent& e : batch.events) {
      ++events;
      int64_t seq = std::stoll(e.source_position);
      EXPECT_GE(seq, last_seq);  // the changes of one SQLite shift row share its seq
      last_seq = seq;
      RowChange rc{e.op, e.campaign_id, e.customer_id, e.version};
      got[e.transaction_id].insert(Render(rc));
      const CommitInfo* c = by_txn.at(e.transaction_id);
      EXPECT_EQ(e.event_time, c->committed_at);
      EXPECT_EQ(e.actor, c->actor);
      ASSERT_TRUE(e.row.has_value());
      EXPECT_EQ(e.row->version, e.op == ChangeOp::kDeleted ? e.version - 1 : e.version);
      // Versions of one campaign arrive in order, without gaps.
      EXPECT_EQ(e.version, last_version[e.campaign_id] + 1) << "campaign " << e.campaign_id;
      last_version[e.campaign_id] = e.version;
    }
  }
  EXPECT_EQ(events, total);
  EXPECT_EQ(got, expected);
  EXPECT_EQ(*source->Backlog(), 0);
}

}  // namespace
}  // namespace ch
