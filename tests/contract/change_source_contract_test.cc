// The ChangeSource contract (capture/change_source.h) checked once, against every source: one
// typed suite, one factory per source. Each factory owns a fresh capture database, the store that
// writes it and a way to open a (new) source on it -- opening again is a restarted relay.
//
//   InMemory          InMemoryChangeSource, whole transactions
//   InMemoryInParts   InMemoryChangeSource, transactions of more than 5 changes in parts
//   Sqlite            SqliteOutboxSource (never splits a transaction)
//   Postgres          PgLogicalSource with max_buffered_changes = 5 (parts), on a fresh database
//                     of the CH_TEST_PG_URL server; skipped when it is not set
//
// Documented deviations are capability flags of the factory (kBacklogInChanges, kHeartbeats):
// every test runs on every source and checks what that source promises.
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"
#include "campaign/pg_campaign_store.h"
#include "campaign/pg_test_util.h"
#include "campaign/sqlite_campaign_store.h"
#include "capture/in_memory_change_source.h"
#include "capture/pg_logical_source.h"
#include "capture/sqlite_outbox_source.h"
#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;

// The part size of the splitting sources: small, so that ordinary actions (a create that shifts
// a few campaigns, an import) exceed it.
constexpr size_t kPart = 5;

// ---- source factories --------------------------------------------------------------------------

struct InMemoryFactory {
  static constexpr const char* kName = "InMemory";
  static constexpr bool kBacklogInChanges = true;
  static constexpr bool kHeartbeats = true;
  size_t part_limit() const { return part; }
  CampaignStore* MakeStore(Clock& clock) {
    clock_ = &clock;
    store = std::make_unique<InMemoryCampaignStore>(clock, StoreCapture::kLog);
    return store.get();
  }
  Result<std::unique_ptr<ChangeSource>> OpenSource() {
    InMemoryChangeSourceOptions o;
    o.store = store.get();
    o.progress = &progress;
    o.max_transaction_part = part_limit();
    o.clock = clock_;
    ASSIGN_OR_RETURN(auto source, InMemoryChangeSource::Open(o));
    return std::unique_ptr<ChangeSource>(std::move(source));
  }
  size_t part = 0;  // whole transactions
  Clock* clock_ = nullptr;
  std::unique_ptr<InMemoryCampaignStore> store;
  InMemoryCaptureProgress progress;
};

struct InMemoryInPartsFactory : InMemoryFactory {
  static constexpr const char* kName = "InMemoryInParts";
  InMemoryInPartsFactory() { part = kPart; }
};

struct SqliteFactory {
  static constexpr const char* kName = "Sqlite";
  static constexpr bool kBacklogInChanges = true;
  static constexpr bool kHeartbeats = true;
  size_t part_limit() const { return 0; }
  CampaignStore* MakeStore(Clock& clock) {
    clock_ = &clock;
    SqliteCampaignStoreOptions o;
    o.path = dir.File("campaigns.db");
    o.clock = &clock;
    auto opened = SqliteCampaignStore::Open(o);
    EXPECT_OK(opened);
    if (!opened.ok()) return nullptr;
    store = std::move(opened).value();
    return store.get();
  }
  Result<std::unique_ptr<ChangeSource>> OpenSource() {
    SqliteOutboxSourceOptions o;
    o.path = dir.File("campaigns.db");
    o.poll_interval = std::chrono::milliseconds(2);
    o.clock = clock_;
    ASSIGN_OR_RETURN(auto source, SqliteOutboxSource::Open(o));
    return std::unique_ptr<ChangeSource>(std::move(source));
  }
  testing::TempDir dir;
  Clock* clock_ = nullptr;
  std::unique_ptr<SqliteCampaignStore> store;
};

struct PgFactory {
  static constexpr const char* kName = "Postgres";
  // Backlog() is bytes of WAL; PostgreSQL commit times are not vouched for.
  static constexpr bool kBacklogInChanges = false;
  static constexpr bool kHeartbeats = false;
  size_t part_limit() const { return kPart; }
  CampaignStore* MakeStore(Clock& clock) {
    auto created = testing::PgTestDatabase::Create();
    EXPECT_OK(created);
    if (!created.ok() || *created == nullptr) return nullptr;
    db = std::move(created).value();
    PgCampaignStoreOptions o;
    o.url = db->url();
    o.clock = &clock;
    auto opened = PgCampaignStore::Open(o);
    EXPECT_OK(opened);
    if (!opened.ok()) return nullptr;
    store = std::move(opened).value();
    // Slot names are global to the server: one per test.
    std::random_device rd;
    slot = fmt::format("ch_contract_{:08x}", rd());
    EXPECT_OK(PgLogicalSource::CreateCapture(db->url(), slot, "contract_pub"));
    return store.get();
  }
  Result<std::unique_ptr<ChangeSource>> OpenSource() {
    PgLogicalSourceOptions o;
    o.url = db->url();
    o.slot = slot;
    o.publication = "contract_pub";
    o.max_buffered_changes = part_limit();
    o.feedback_interval = std::chrono::milliseconds(200);
    // The server never learns what was confirmed, so every reopen resends everything since the
    // slot was created (as PostgreSQL 15 may after a crash): what the source skips is then
    // decided by its recorded progress alone, the strictest case.
    o.TEST_no_server_feedback = true;
    // The previous source's server process may hold the slot for a moment after it closed.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      auto source = PgLogicalSource::Open(o);
      if (source.ok()) return std::unique_ptr<ChangeSource>(std::move(source).value());
      if (source.status().code() != StatusCode::kUnavailable ||
          std::chrono::steady_clock::now() > deadline) {
        return source.status();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  std::unique_ptr<testing::PgTestDatabase> db;
  std::unique_ptr<PgCampaignStore> store;
  std::string slot;
};

using SourceFactories =
    ::testing::Types<InMemoryFactory, InMemoryInPartsFactory, SqliteFactory, PgFactory>;

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
  c.content = R"({"title":"Hi"})";
  return c;
}

WriteContext As(std::string actor) {
  WriteContext ctx;
  ctx.actor = std::move(actor);
  return ctx;
}

// "c3@v2 updated": what a change is, whoever captured it.
std::string Render(ChangeOp op, int64_t campaign, int64_t version) {
  return "c" + std::to_string(campaign) + "@v" + std::to_string(version) + " " +
         std::string(ChangeOpName(op));
}
std::string Render(const ChangeEvent& e) { return Render(e.op, e.campaign_id, e.version); }
std::string Render(const RowChange& r) { return Render(r.op, r.campaign_id, r.version); }

// One transaction as a consumer reassembles it from the events it was handed.
struct Txn {
  std::string transaction_id;
  int64_t txn_seq = 0;
  // The txn_changes the events stated (0 when none did).
  int64_t stated_changes = 0;
  std::vector<std::string> changes;  // in delivery order
  // The sizes of the batches (or parts) it came in.
  std::vector<size_t> pieces;
};

// Group events into transactions, checking on the way what every event of one transaction must
// share and that a transaction's events are contiguous.
std::vector<Txn> Transactions(const std::vector<SourceBatch>& batches) {
  std::vector<Txn> out;
  for (const SourceBatch& b : batches) {
    EXPECT_FALSE(b.events.empty());
    if (b.events.empty()) continue;
    // The position to confirm is the end of the batch's last transaction or part.
    EXPECT_EQ(b.end_position, b.events.back().source_position);
    std::string last_in_batch;
    for (const ChangeEvent& e : b.events) {
      if (out.empty() || out.back().txn_seq != e.txn_seq) {
        for (const Txn& t : out) {
          EXPECT_NE(t.txn_seq, e.txn_seq) << "transaction " << e.txn_seq << " is not contiguous";
        }
        out.push_back(Txn{e.transaction_id, e.txn_seq, 0, {}, {}});
      }
      Txn& t = out.back();
      EXPECT_EQ(e.transaction_id, t.transaction_id) << Render(e);
      if (e.txn_changes != 0) {
        EXPECT_TRUE(t.stated_changes == 0 || t.stated_changes == e.txn_changes) << Render(e);
        t.stated_changes = e.txn_changes;
      }
      if (last_in_batch != e.transaction_id || t.pieces.empty()) t.pieces.push_back(0);
      ++t.pieces.back();
      last_in_batch = e.transaction_id;
      t.changes.push_back(Render(e));
    }
  }
  return out;
}

template <typename Factory>
class ChangeSourceContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = factory_.MakeStore(clock_);
    if (store_ == nullptr) {
      GTEST_SKIP() << Factory::kName << " source not configured: " << testing::kPgTestSkipMessage;
    }
    service_ = std::make_unique<CampaignService>(*store_);
    Reopen();
  }

  // A restarted relay: the old source goes first (one consumer per slot).
  void Reopen() {
    source_.reset();
    auto opened = factory_.OpenSource();
    ASSERT_OK(opened);
    source_ = std::move(opened).value();
  }

  CommitInfo Commit(Result<CommitInfo> r) {
    EXPECT_OK(r);
    clock_.Advance(Micros(1000));
    return r.ok() ? *r : CommitInfo{};
  }

  // Create `n` campaigns of `customer` one by one (each shifts the ones before).
  std::vector<CommitInfo> Seed(int64_t customer, int n) {
    std::vector<CommitInfo> out;
    for (int i = 0; i < n; ++i) {
      out.push_back(Commit(service_->Create(Draft(customer, "c" + std::to_string(i)),
                                            As("user:" + std::to_string(i)))));
    }
    return out;
  }

  // Import `n` campaigns of `customer` in one transaction of n changes.
  CommitInfo Bulk(int64_t customer, int n) {
    std::vector<Campaign> rows;
    for (int p = 1; p <= n; ++p) {
      Campaign c = Draft(customer, "bulk " + std::to_string(p));
      c.id = customer * 1000 + p;
      c.priority = p;
      c.updated_by = "user:bulk";
      rows.push_back(c);
    }
    return Commit(service_->Import(customer, rows));
  }

  // Poll (without confirming) until `n` events arrived; fail after 20 s.
  std::vector<SourceBatch> PollEvents(size_t n, size_t max_events = 100) {
    std::vector<SourceBatch> out;
    size_t got = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (got < n && std::chrono::steady_clock::now() < deadline) {
      auto batch = source_->Poll(max_events, std::chrono::milliseconds(100));
      EXPECT_OK(batch);
      if (!batch.ok() || batch->events.empty()) continue;
      got += batch->events.size();
      out.push_back(std::move(*batch));
    }
    EXPECT_EQ(got, n) << "events polled";
    return out;
  }

  void ExpectNothingMore() {
    auto batch = source_->Poll(100, std::chrono::milliseconds(500));
    ASSERT_OK(batch);
    EXPECT_TRUE(batch->events.empty()) << "unexpected: " << Render(batch->events.front());
    EXPECT_EQ(batch->end_position, "");
  }

  static size_t Count(const std::vector<CommitInfo>& commits) {
    size_t n = 0;
    for (const CommitInfo& c : commits) n += c.changes.size();
    return n;
  }

  FakeClock clock_;
  Factory factory_;
  CampaignStore* store_ = nullptr;
  std::unique_ptr<CampaignService> service_;
  std::unique_ptr<ChangeSource> source_;
};

TYPED_TEST_SUITE(ChangeSourceContractTest, SourceFactories, FactoryNames);

// ---- the tests ---------------------------------------------------------------------------------

TYPED_TEST(ChangeSourceContractTest, TransactionsArriveWholeInCommitOrderNumberedDensely) {
  std::vector<CommitInfo> commits = this->Seed(1, 3);  // 1, 2, 3 changes
  commits.push_back(this->Commit(this->service_->Create(Draft(2, "x"), As("api:k"))));  // 1
  CampaignPatch patch;
  patch.name = "renamed";
  commits.push_back(
      this->Commit(this->service_->Update(commits[0].row->id, patch, As("user:u"))));  // 1
  commits.push_back(this->Commit(this->service_->Move(commits[0].row->id, 1, As("user:m"))));

  std::vector<Txn> txns = Transactions(this->PollEvents(this->Count(commits)));
  ASSERT_EQ(txns.size(), commits.size());
  for (size_t t = 0; t < txns.size(); ++t) {
    SCOPED_TRACE("transaction #" + std::to_string(t + 1));
    EXPECT_EQ(txns[t].transaction_id, commits[t].transaction_id);
    EXPECT_EQ(txns[t].txn_seq, static_cast<int64_t>(t) + 1);  // dense from 1, commit order
    EXPECT_EQ(txns[t].stated_changes, static_cast<int64_t>(commits[t].changes.size()));
    EXPECT_EQ(txns[t].pieces.size(), 1u);  // none is larger than a part: one batch each
    std::vector<std::string> want;
    for (const RowChange& r : commits[t].changes) want.push_back(Render(r));
    std::vector<std::string> got = txns[t].changes;
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
  }
  this->ExpectNothingMore();
}

TYPED_TEST(ChangeSourceContractTest, EventsCarryTheCommitTimeActorAndFullRow) {
  std::vector<CommitInfo> commits = this->Seed(1, 2);
  std::vector<SourceBatch> batches = this->PollEvents(this->Count(commits));
  std::map<std::string, const CommitInfo*> by_txn;
  for (const CommitInfo& c : commits) by_txn[c.transaction_id] = &c;
  for (const SourceBatch& b : batches) {
    for (const ChangeEvent& e : b.events) {
      SCOPED_TRACE(Render(e));
      const CommitInfo* c = by_txn.at(e.transaction_id);
      EXPECT_EQ(e.capture, CaptureMode::kLog);
      EXPECT_EQ(e.event_time, c->committed_at);
      EXPECT_EQ(e.actor, c->actor);
      ASSERT_TRUE(e.row.has_value());
      EXPECT_EQ(e.row->id, e.campaign_id);
      EXPECT_EQ(e.row->customer_id, e.customer_id);
      EXPECT_EQ(e.row->version, e.version);
      EXPECT_EQ(e.row->updated_at, c->committed_at);
      EXPECT_EQ(e.row->updated_by, c->actor);
      // Full content, or (the compact SQLite outbox) flagged as the previous version's.
      EXPECT_EQ(e.row->content.empty(), e.content_omitted);
      if (e.op == ChangeOp::kCreated) {
        EXPECT_EQ(e.row->content, R"({"title":"Hi"})");
      }
    }
  }
}

TYPED_TEST(ChangeSourceContractTest, ABatchIsAboutMaxEventsButASmallTransactionIsNeverSplit) {
  std::vector<CommitInfo> commits = this->Seed(1, 4);  // 1, 2, 3, 4 changes
  std::vector<SourceBatch> batches = this->PollEvents(this->Count(commits), /*max_events=*/1);
  ASSERT_EQ(batches.size(), 4u);  // one whole transaction per batch, however small max_events
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_EQ(batches[i].events.size(), i + 1);
    for (const ChangeEvent& e : batches[i].events) {
      EXPECT_EQ(e.transaction_id, commits[i].transaction_id);
      EXPECT_EQ(e.txn_changes, static_cast<int64_t>(i) + 1);
    }
  }
}

TYPED_TEST(ChangeSourceContractTest, UnconfirmedChangesComeAgainAfterAReopenConfirmedOnesNever) {
  std::vector<CommitInfo> commits = this->Seed(1, 3);
  std::vector<SourceBatch> first = this->PollEvents(this->Count(commits), 1);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_OK(this->source_->Confirm(first[0].end_position));
  this->Reopen();  // a crash after the first confirm
  std::vector<SourceBatch> again = this->PollEvents(2 + 3, 1);
  ASSERT_EQ(again.size(), 2u);
  for (size_t i = 0; i < again.size(); ++i) {
    // The same events, with the same numbers and the same positions.
    EXPECT_EQ(again[i].events, first[i + 1].events);
    EXPECT_EQ(again[i].end_position, first[i + 1].end_position);
  }
  ASSERT_OK(this->source_->Confirm(again[0].end_position));
  this->Reopen();
  std::vector<SourceBatch> last = this->PollEvents(3, 1);
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].events, first[2].events);
  ASSERT_OK(this->source_->Confirm(last[0].end_position));
  this->Reopen();
  this->ExpectNothingMore();
  // The numbering goes on after the confirmed transactions.
  CommitInfo next = this->Commit(this->service_->Create(Draft(2, "n"), As("user:n")));
  std::vector<SourceBatch> after = this->PollEvents(1);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].events[0].transaction_id, next.transaction_id);
  EXPECT_EQ(after[0].events[0].txn_seq, 4);
}

TYPED_TEST(ChangeSourceContractTest, ConfirmingAnEarlierPositionChangesNothing) {
  std::vector<CommitInfo> commits = this->Seed(1, 2);
  std::vector<SourceBatch> batches = this->PollEvents(this->Count(commits), 1);
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_OK(this->source_->Confirm(batches[1].end_position));  // covers the first one too
  EXPECT_OK(this->source_->Confirm(batches[0].end_position));
  EXPECT_OK(this->source_->Confirm(batches[1].end_position));
  this->Reopen();
  this->ExpectNothingMore();
}

TYPED_TEST(ChangeSourceContractTest, ABadPositionIsInvalidArgument) {
  EXPECT_THAT(this->source_->Confirm("not a position"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(this->source_->Confirm(""), StatusIs(StatusCode::kInvalidArgument));
}

TYPED_TEST(ChangeSourceContractTest, EmptyAndRolledBackTransactionsAreNotNumbered) {
  CommitInfo a = this->Commit(this->service_->Create(Draft(1, "a"), As("user:a")));
  {
    // Committed without changing a campaign.
    ASSERT_OK_AND_ASSIGN(auto tx, this->store_->BeginWrite("user:empty"));
    ASSERT_OK(tx->Commit());
  }
  {
    // Rolled back (destroyed uncommitted) after a change.
    ASSERT_OK_AND_ASSIGN(auto tx, this->store_->BeginWrite("user:rollback"));
    ASSERT_OK_AND_ASSIGN(int64_t id, tx->AllocateId());
    Campaign c = Draft(1, "never");
    c.id = id;
    c.priority = 2;
    c.version = 1;
    c.created_at = c.updated_at = tx->commit_time();
    c.updated_by = "user:rollback";
    ASSERT_OK(tx->Insert(c));
  }
  // A refused action commits nothing.
  EXPECT_THAT(this->service_->Move(a.row->id, 9, As("user:x")),
              StatusIs(StatusCode::kInvalidArgument));
  CommitInfo b = this->Commit(this->service_->Create(Draft(2, "b"), As("user:b")));
  std::vector<Txn> txns = Transactions(this->PollEvents(2));
  ASSERT_EQ(txns.size(), 2u);
  EXPECT_EQ(txns[0].transaction_id, a.transaction_id);
  EXPECT_EQ(txns[0].txn_seq, 1);
  EXPECT_EQ(txns[1].transaction_id, b.transaction_id);
  EXPECT_EQ(txns[1].txn_seq, 2);
  this->ExpectNothingMore();
}

TYPED_TEST(ChangeSourceContractTest, ALargeTransactionComesWholeOrInPartsWithTheCountOnTheLast) {
  const size_t part = this->factory_.part_limit();
  CommitInfo before = this->Commit(this->service_->Create(Draft(1, "before"), As("user:b")));
  CommitInfo bulk = this->Bulk(2, 23);
  CommitInfo after = this->Commit(this->service_->Create(Draft(3, "after"), As("user:a")));
  std::vector<SourceBatch> batches = this->PollEvents(1 + 23 + 1, /*max_events=*/1);
  std::vector<Txn> txns = Transactions(batches);
  ASSERT_EQ(txns.size(), 3u);
  EXPECT_EQ(txns[0].transaction_id, before.transaction_id);
  EXPECT_EQ(txns[2].transaction_id, after.transaction_id);
  const Txn& t = txns[1];
  EXPECT_EQ(t.transaction_id, bulk.transaction_id);
  EXPECT_EQ(t.txn_seq, 2);
  EXPECT_EQ(t.stated_changes, 23);
  EXPECT_EQ(std::set<std::string>(t.changes.begin(), t.changes.end()).size(), 23u);
  EXPECT_EQ(txns[2].txn_seq, 3);
  if (part == 0) {
    EXPECT_EQ(t.pieces, std::vector<size_t>{23});  // whole, however small max_events is
    return;
  }
  // In parts of `part`, the last one 1..part, in consecutive batches; only its events state the
  // count.
  ASSERT_GE(t.pieces.size(), 2u);
  for (size_t i = 0; i + 1 < t.pieces.size(); ++i) {
    EXPECT_EQ(t.pieces[i], part);
  }
  EXPECT_GE(t.pieces.back(), 1u);
  EXPECT_LE(t.pieces.back(), part);
  for (const SourceBatch& b : batches) {
    for (const ChangeEvent& e : b.events) {
      if (e.txn_seq != 2) continue;
      const bool last_part = &b == &batches[batches.size() - 2];
      EXPECT_EQ(e.txn_changes, last_part ? 23 : 0) << Render(e);
    }
  }
}

TYPED_TEST(ChangeSourceContractTest, ARestartInsideALargeTransactionResumesAfterWhatWasConfirmed) {
  {
    // A transaction without changes just before: resent after the restart, still not numbered.
    ASSERT_OK_AND_ASSIGN(auto tx, this->store_->BeginWrite("user:empty"));
    ASSERT_OK(tx->Commit());
  }
  this->Bulk(2, 23);
  // The first batch: the whole transaction, or its first part.
  std::vector<SourceBatch> first = this->PollEvents(this->factory_.part_limit() == 0 ? 23 : kPart,
                                                    /*max_events=*/1);
  ASSERT_EQ(first.size(), 1u);
  // A second batch, polled and lost in a crash.
  if (this->factory_.part_limit() != 0) this->PollEvents(kPart, 1);
  ASSERT_OK(this->source_->Confirm(first[0].end_position));
  this->Reopen();
  std::vector<SourceBatch> rest = this->PollEvents(23 - first[0].events.size(), 1);
  std::set<std::string> seen;
  for (const auto* batches : {&first, &rest}) {
    for (const SourceBatch& b : *batches) {
      for (const ChangeEvent& e : b.events) {
        EXPECT_TRUE(seen.insert(Render(e)).second) << "delivered again: " << Render(e);
        EXPECT_EQ(e.txn_seq, 1);
      }
    }
  }
  EXPECT_EQ(seen.size(), 23u);
  const std::vector<SourceBatch>& with_end = rest.empty() ? first : rest;
  EXPECT_EQ(with_end.back().events.back().txn_changes, 23);
  ASSERT_OK(this->source_->Confirm(with_end.back().end_position));
  this->Reopen();
  this->ExpectNothingMore();
}

// A random mix of actions while the relay crashes at random points, before or after confirming:
// everything confirmed, put together, is every committed version exactly once, each transaction
// whole and numbered by commit order.
TYPED_TEST(ChangeSourceContractTest, RandomCrashesLoseNothingAndConfirmedChangesNeverComeAgain) {
  std::mt19937 rng(11);
  std::vector<CommitInfo> commits;
  std::map<int64_t, std::vector<int64_t>> ids;  // customer -> live campaign ids
  std::vector<ChangeEvent> durable;             // what downstream holds (confirmed batches)
  auto act = [&](int i) {
    const int64_t customer = 1 + static_cast<int64_t>(rng() % 3);
    auto& mine = ids[customer];
    const int kind = static_cast<int>(rng() % 10);
    Result<CommitInfo> r = InternalError("no action");
    if (mine.size() < 3 || kind < 4) {
      r = this->service_->Create(Draft(customer, "c"), As("user:" + std::to_string(i % 4)));
      if (r.ok()) mine.push_back(r->row->id);
    } else if (kind < 6) {
      CampaignPatch p;
      p.frequency_cap = i;
      r = this->service_->Update(mine[rng() % mine.size()], p, As("user:u"));
    } else if (kind < 9) {
      r = this->service_->Move(mine[rng() % mine.size()],
                               1 + static_cast<int64_t>(rng() % mine.size()), As("user:m"));
    } else {
      const size_t k = rng() % mine.size();
      r = this->service_->Delete(mine[k], As("user:d"));
      mine.erase(mine.begin() + static_cast<std::ptrdiff_t>(k));
    }
    commits.push_back(this->Commit(std::move(r)));
  };
  for (int i = 0; i < 120; ++i) {
    act(i);
    if (rng() % 3 != 0) continue;
    auto batch = this->source_->Poll(1 + rng() % 8, std::chrono::milliseconds(200));
    ASSERT_OK(batch);
    if (batch->events.empty()) continue;
    if (rng() % 4 == 0) {
      this->Reopen();  // a crash before the confirm: the batch is lost
      continue;
    }
    ASSERT_OK(this->source_->Confirm(batch->end_position));
    durable.insert(durable.end(), batch->events.begin(), batch->events.end());
    if (rng() % 5 == 0) this->Reopen();  // a crash after it
  }
  const size_t total = this->Count(commits);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (durable.size() < total && std::chrono::steady_clock::now() < deadline) {
    auto batch = this->source_->Poll(7, std::chrono::milliseconds(100));
    ASSERT_OK(batch);
    if (batch->events.empty()) continue;
    ASSERT_OK(this->source_->Confirm(batch->end_position));
    durable.insert(durable.end(), batch->events.begin(), batch->events.end());
  }
  this->ExpectNothingMore();

  // Every committed version once, in its transaction, numbered by commit order.
  std::map<std::string, int64_t> seq_of;  // transaction id -> txn_seq
  std::map<std::string, std::set<std::string>> got;
  std::set<std::string> once;
  for (const ChangeEvent& e : durable) {
    EXPECT_TRUE(once.insert(Render(e)).second) << "confirmed twice: " << Render(e);
    auto [it, fresh] = seq_of.emplace(e.transaction_id, e.txn_seq);
    EXPECT_EQ(it->second, e.txn_seq) << Render(e);
    got[e.transaction_id].insert(Render(e));
    if (e.txn_changes != 0) {
      const CommitInfo* c = nullptr;
      for (const CommitInfo& ci : commits) {
        if (ci.transaction_id == e.transaction_id) c = &ci;
      }
      ASSERT_NE(c, nullptr);
      EXPECT_EQ(e.txn_changes, static_cast<int64_t>(c->changes.size())) << Render(e);
    }
  }
  EXPECT_EQ(durable.size(), total);
  int64_t expect_seq = 0;
  for (const CommitInfo& c : commits) {
    std::set<std::string> want;
    for (const RowChange& r : c.changes) want.insert(Render(r));
    EXPECT_EQ(got[c.transaction_id], want) << "transaction " << c.transaction_id;
    EXPECT_EQ(seq_of[c.transaction_id], ++expect_seq) << "transaction " << c.transaction_id;
  }
}

TYPED_TEST(ChangeSourceContractTest, DeletesCarryTheLastContentAndTheDeletingActor) {
  CommitInfo created = this->Commit(this->service_->Create(Draft(1, "a"), As("user:a")));
  const int64_t id = created.row->id;
  CampaignPatch content;
  content.content = R"({"title":"last words"})";
  this->Commit(this->service_->Update(id, content, As("user:u")));
  CampaignPatch cap;
  cap.frequency_cap = 7;  // the content stays
  this->Commit(this->service_->Update(id, cap, As("user:u")));
  this->Commit(this->service_->Delete(id, As("user:deleter")));
  std::vector<SourceBatch> batches = this->PollEvents(4);
  std::vector<ChangeEvent> events;
  for (const SourceBatch& b : batches)
    events.insert(events.end(), b.events.begin(), b.events.end());
  ASSERT_EQ(events.size(), 4u);
  // The unchanged content: given again, or flagged as the previous version's.
  const ChangeEvent& same = events[2];
  EXPECT_EQ(same.version, 3);
  EXPECT_TRUE(same.content_omitted ? same.row->content.empty()
                                   : same.row->content == R"({"title":"last words"})");
  const ChangeEvent& del = events[3];
  EXPECT_EQ(del.op, ChangeOp::kDeleted);
  EXPECT_EQ(del.version, 4);  // the tombstone: the last version + 1
  EXPECT_EQ(del.actor, "user:deleter");
  ASSERT_TRUE(del.row.has_value());
  EXPECT_FALSE(del.content_omitted);
  EXPECT_EQ(del.row->version, 3);
  EXPECT_EQ(del.row->frequency_cap, 7);
  EXPECT_EQ(del.row->content, R"({"title":"last words"})");
  EXPECT_EQ(del.row->updated_by, "user:u");  // the row as it was
}

TYPED_TEST(ChangeSourceContractTest, AnEmptyPollHasNoPosition) {
  const auto start = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(SourceBatch batch, this->source_->Poll(10, std::chrono::milliseconds(100)));
  EXPECT_TRUE(batch.events.empty());
  EXPECT_EQ(batch.end_position, "");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(90));
}

TYPED_TEST(ChangeSourceContractTest, BacklogShowsWhatIsNotConfirmed) {
  this->Seed(1, 3);  // 6 changes
  std::vector<SourceBatch> batches = this->PollEvents(6, 1);
  ASSERT_EQ(batches.size(), 3u);
  ASSERT_OK_AND_ASSIGN(int64_t backlog, this->source_->Backlog());
  EXPECT_GT(backlog, 0);
  ASSERT_OK(this->source_->Confirm(batches[0].end_position));
  ASSERT_OK_AND_ASSIGN(int64_t less, this->source_->Backlog());
  ASSERT_OK(this->source_->Confirm(batches.back().end_position));
  // WAL bytes move with every database of the server, and the slot learns of a confirm
  // asynchronously: only a count of changes is exact.
  if (!TypeParam::kBacklogInChanges) return;
  EXPECT_EQ(backlog, 6);
  EXPECT_EQ(less, 5);
  EXPECT_EQ(*this->source_->Backlog(), 0);
}

TYPED_TEST(ChangeSourceContractTest, AHeartbeatVouchesOnlyWhenEverythingIsConfirmed) {
  CommitInfo a = this->Commit(this->service_->Create(Draft(1, "a"), As("user:a")));
  CommitInfo b = this->Commit(this->service_->Create(Draft(1, "b"), As("user:b")));
  ASSERT_OK_AND_ASSIGN(auto unread, this->source_->Heartbeat());
  EXPECT_FALSE(unread.has_value());
  std::vector<SourceBatch> batches = this->PollEvents(1 + 2, 1);
  ASSERT_EQ(batches.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto unconfirmed, this->source_->Heartbeat());
  EXPECT_FALSE(unconfirmed.has_value());
  ASSERT_OK(this->source_->Confirm(batches[1].end_position));
  this->clock_.Advance(Micros(5000));
  ASSERT_OK_AND_ASSIGN(auto idle, this->source_->Heartbeat());
  if (!TypeParam::kHeartbeats) {
    EXPECT_FALSE(idle.has_value());  // documented: commit times are not vouched for
    return;
  }
  ASSERT_TRUE(idle.has_value());
  EXPECT_EQ(idle->seq, 2);  // the last transaction handed out
  EXPECT_GT(idle->at, b.committed_at);
  // Every later transaction commits after `at`, even when the clock went back.
  this->clock_.Advance(Micros(-1000000));
  CommitInfo c = this->Commit(this->service_->Create(Draft(2, "c"), As("user:c")));
  EXPECT_GT(c.committed_at, idle->at);
  std::vector<SourceBatch> next = this->PollEvents(1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].events[0].txn_seq, 3);
  EXPECT_EQ(next[0].events[0].event_time, c.committed_at);
  (void)a;
}

}  // namespace
}  // namespace ch
