// pgoutput decoding and the replication protocol's messages, fed with hand-built bytes (no
// server): how each message kind becomes (part of) a transaction of ChangeEvents.
#include "capture/pg_logical_source_internal.h"

#include "campaign/pg_client.h"
#include "campaign/pg_schema.h"
#include "capture/pg_logical_source.h"
#include "common/time_util.h"
#include "testing/test_util.h"

// No header above includes libpq: it stays in .cc files (conventions §6).
#ifdef LIBPQ_FE_H
#error "a PostgreSQL adapter header includes libpq-fe.h"
#endif

namespace ch::pg_logical {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

// ---- message builders ---------------------------------------------------------------------------

void U(std::string& out, uint64_t v, int bytes) {
  for (int k = bytes - 1; k >= 0; --k) out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}
void S(std::string& out, std::string_view s) {
  out.append(s);
  out.push_back('\0');
}

// A tuple value: nullopt = NULL, "\x01u" = unchanged TOAST.
using Value = std::optional<std::string>;
const Value kUnchanged = std::string("\x01u");

std::string Tuple(const std::vector<Value>& values) {
  std::string out;
  U(out, values.size(), 2);
  for (const Value& v : values) {
    if (!v) {
      out.push_back('n');
    } else if (v == kUnchanged) {
      out.push_back('u');
    } else {
      out.push_back('t');
      U(out, v->size(), 4);
      out.append(*v);
    }
  }
  return out;
}

int64_t PgMicros(Timestamp t) { return ToUnixMicros(t) - kPgEpochUnixMicros; }

std::string Begin(uint32_t xid, Timestamp commit) {
  std::string m = "B";
  U(m, 0x1000, 8);
  U(m, static_cast<uint64_t>(PgMicros(commit)), 8);
  U(m, xid, 4);
  return m;
}
std::string Commit(uint64_t lsn, uint64_t end, Timestamp commit) {
  std::string m = "C";
  U(m, 0, 1);
  U(m, lsn, 8);
  U(m, end, 8);
  U(m, static_cast<uint64_t>(PgMicros(commit)), 8);
  return m;
}
std::string Relation(uint32_t id, std::string_view name, const std::vector<std::string>& cols) {
  std::string m = "R";
  U(m, id, 4);
  S(m, "public");
  S(m, name);
  m.push_back('f');
  U(m, cols.size(), 2);
  for (const auto& c : cols) {
    U(m, 0, 1);
    S(m, c);
    U(m, 25, 4);
    U(m, 0xffffffff, 4);
  }
  return m;
}
std::string Insert(uint32_t id, const std::vector<Value>& row) {
  std::string m = "I";
  U(m, id, 4);
  m.push_back('N');
  return m + Tuple(row);
}
std::string Update(uint32_t id, const std::vector<Value>* old_row, const std::vector<Value>& row) {
  std::string m = "U";
  U(m, id, 4);
  if (old_row != nullptr) {
    m.push_back('O');
    m += Tuple(*old_row);
  }
  m.push_back('N');
  return m + Tuple(row);
}
std::string Delete(uint32_t id, char kind, const std::vector<Value>& row) {
  std::string m = "D";
  U(m, id, 4);
  m.push_back(kind);
  return m + Tuple(row);
}
std::string Message(bool transactional, std::string_view prefix, std::string_view content) {
  std::string m = "M";
  U(m, transactional ? 1 : 0, 1);
  U(m, 0x1000, 8);
  S(m, prefix);
  U(m, content.size(), 4);
  m.append(content);
  return m;
}

std::vector<std::string> CampaignColumns() {
  return {kPgCampaignColumns.begin(), kPgCampaignColumns.end()};
}

Campaign Row(int64_t id, int64_t version, const char* updated_by) {
  Campaign c;
  c.id = id;
  c.customer_id = 7;
  c.name = "n" + std::to_string(id);
  c.priority = 1;
  c.content = R"({"title":"t"})";
  c.version = version;
  c.created_at = ParseTimestamp("2026-01-01T00:00:00Z").value();
  c.updated_at = ParseTimestamp("2026-01-02T00:00:00.000001Z").value();
  c.updated_by = updated_by;
  return c;
}

std::vector<Value> Values(const Campaign& c) { return CampaignToPgValues(c); }

Timestamp At(const char* t) { return ParseTimestamp(t).value(); }

class PgOutputDecoderTest : public ::testing::Test {
 protected:
  // Feed messages that are not a Commit.
  void FeedAll(const std::vector<std::string>& messages) {
    for (const auto& m : messages) {
      auto r = decoder_.Feed(m);
      ASSERT_OK(r);
      ASSERT_FALSE(r->has_value());
    }
  }
  DecodedTransaction FeedCommit(uint64_t lsn, uint64_t end, Timestamp t) {
    auto r = decoder_.Feed(Commit(lsn, end, t));
    EXPECT_OK(r);
    EXPECT_TRUE(r.ok() && r->has_value());
    return r.ok() && r->has_value() ? std::move(**r) : DecodedTransaction{};
  }

  PgOutputDecoder decoder_;
};

TEST_F(PgOutputDecoderTest, DecodesATransactionWithTheStoresStampAndTheDeleteActor) {
  const Timestamp pg_commit = At("2026-03-01T10:00:00.5Z");
  Campaign a = Row(1, 1, "user:a");
  Campaign b_old = Row(2, 4, "user:x");
  b_old.content = std::string(R"({"big":")") + std::string(5000, 'x') + "\"}";
  Campaign b = b_old;
  b.version = 5;
  b.priority = 2;
  b.updated_by = "user:a";
  std::vector<Value> b_new = Values(b);
  b_new[10] = kUnchanged;  // the content did not change: TOAST value left out
  Campaign c = Row(3, 2, "user:old");
  std::vector<Value> b_old_values = Values(b_old);
  FeedAll({Begin(812, pg_commit), Relation(16400, "ch_txn", {"id", "txn_id", "commit_us"}),
           Update(16400, nullptr, {"1", "4294968108", "1767225600000123"}),
           Relation(16390, "campaigns", CampaignColumns()), Insert(16390, Values(a)),
           Update(16390, &b_old_values, b_new),
           Message(true, kPgActorMessagePrefix, "user:deleter"), Delete(16390, 'O', Values(c))});
  EXPECT_TRUE(decoder_.in_transaction());
  DecodedTransaction t = FeedCommit(0x2000, 0x2030, pg_commit);
  EXPECT_FALSE(decoder_.in_transaction());
  EXPECT_EQ(t.xid, 812u);
  EXPECT_EQ(t.end_lsn, 0x2030u);
  EXPECT_EQ(t.pg_commit_time, pg_commit);
  ASSERT_EQ(t.events.size(), 3u);
  const Timestamp stamp = FromUnixMicros(1767225600000123);
  for (const ChangeEvent& e : t.events) {
    EXPECT_EQ(e.capture, CaptureMode::kLog);
    EXPECT_EQ(e.event_time, stamp);  // the store's stamp, not PostgreSQL's commit time
    EXPECT_EQ(e.transaction_id, "4294968108");
    EXPECT_EQ(e.source_position, "0/2030");
  }
  EXPECT_EQ(t.events[0].op, ChangeOp::kCreated);
  EXPECT_EQ(*t.events[0].row, a);
  EXPECT_EQ(t.events[0].actor, "user:a");
  EXPECT_EQ(t.events[0].version, 1);
  EXPECT_EQ(t.events[1].op, ChangeOp::kUpdated);
  EXPECT_EQ(*t.events[1].row, b);  // content taken from the old row
  EXPECT_EQ(t.events[1].version, 5);
  EXPECT_EQ(t.events[2].op, ChangeOp::kDeleted);
  EXPECT_EQ(*t.events[2].row, c);
  EXPECT_EQ(t.events[2].version, 3);
  EXPECT_EQ(t.events[2].actor, "user:deleter");
  EXPECT_EQ(t.events[2].campaign_id, 3);
  EXPECT_EQ(t.events[2].customer_id, 7);
}

TEST_F(PgOutputDecoderTest, WithoutAStampUsesPostgresCommitTimeAndXid) {
  const Timestamp pg_commit = At("2026-03-01T10:00:00.5Z");
  FeedAll({Begin(900, pg_commit), Relation(1, "campaigns", CampaignColumns()),
           Delete(1, 'O', Values(Row(4, 1, "user:a")))});
  DecodedTransaction t = FeedCommit(0x10, 0x20, pg_commit);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(t.events[0].event_time, pg_commit);
  EXPECT_EQ(t.events[0].transaction_id, "900");
  EXPECT_EQ(t.events[0].actor, kUnknownActor);  // no actor message in the transaction
}

TEST_F(PgOutputDecoderTest, ActorMessagesBelongToTheirTransactionOnly) {
  const Timestamp t0 = At("2026-03-01T10:00:00Z");
  FeedAll({Relation(1, "campaigns", CampaignColumns()), Begin(1, t0),
           Message(true, kPgActorMessagePrefix, "user:first"),
           Message(true, "someone.else", "user:other"),
           Message(false, kPgActorMessagePrefix, "user:nontransactional")});
  FeedCommit(1, 2, t0);
  FeedAll({Begin(2, t0), Delete(1, 'O', Values(Row(4, 1, "user:a")))});
  DecodedTransaction t = FeedCommit(3, 4, t0);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(t.events[0].actor, kUnknownActor);
}

TEST_F(PgOutputDecoderTest, ColumnsAreFoundByNameAndOtherTablesIgnored) {
  std::vector<std::string> cols = CampaignColumns();
  std::reverse(cols.begin(), cols.end());
  cols.push_back("added_later");
  std::vector<Value> values = Values(Row(5, 1, "user:a"));
  std::reverse(values.begin(), values.end());
  values.push_back("whatever");
  const Timestamp t0 = At("2026-03-01T10:00:00Z");
  FeedAll({Begin(1, t0), Relation(1, "campaigns", cols), Relation(2, "other", {"x"}),
           Insert(2, {"1"}), Insert(1, values)});
  DecodedTransaction t = FeedCommit(1, 2, t0);
  ASSERT_EQ(t.events.size(), 1u);
  EXPECT_EQ(*t.events[0].row, Row(5, 1, "user:a"));
}

TEST_F(PgOutputDecoderTest, ADeleteWithOnlyTheKeyIsDataLoss) {
  const Timestamp t0 = At("2026-03-01T10:00:00Z");
  FeedAll({Begin(1, t0), Relation(1, "campaigns", CampaignColumns())});
  std::vector<Value> key(15, std::nullopt);
  key[0] = "4";
  EXPECT_THAT(decoder_.Feed(Delete(1, 'K', key)),
              StatusIsWith(StatusCode::kDataLoss, "REPLICA IDENTITY FULL"));
}

TEST_F(PgOutputDecoderTest, MalformedInputIsDataLoss) {
  const Timestamp t0 = At("2026-03-01T10:00:00Z");
  EXPECT_THAT(decoder_.Feed(""), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(decoder_.Feed("Z"), StatusIsWith(StatusCode::kDataLoss, "unknown message type"));
  EXPECT_THAT(decoder_.Feed("B\x01"), StatusIsWith(StatusCode::kDataLoss, "truncated"));
  EXPECT_THAT(decoder_.Feed(Commit(1, 2, t0)), StatusIsWith(StatusCode::kDataLoss, "without"));
  FeedAll({Begin(1, t0)});
  EXPECT_THAT(decoder_.Feed(Insert(99, {"1"})),
              StatusIsWith(StatusCode::kDataLoss, "before its Relation"));
  FeedAll({Relation(1, "campaigns", CampaignColumns())});
  std::vector<Value> bad = Values(Row(5, 1, "user:a"));
  bad[3] = "archived";
  EXPECT_THAT(decoder_.Feed(Insert(1, bad)), StatusIsWith(StatusCode::kDataLoss, "status"));
  std::string cut = Insert(1, Values(Row(5, 1, "user:a")));
  cut.resize(cut.size() - 3);
  EXPECT_THAT(decoder_.Feed(cut), StatusIsWith(StatusCode::kDataLoss, "truncated"));
}

// A transaction larger than the decoder may hold comes out in parts of `max_buffered` changes;
// the Commit's piece keeps at least one change and states the whole count.
TEST(PgOutputDecoderPartsTest, ALargeTransactionComesOutInPartsWithTheCountOnTheLast) {
  PgOutputDecoder decoder(/*max_buffered=*/3);
  const Timestamp pg_commit = At("2026-03-01T10:00:00.5Z");
  std::string begin = "B";
  U(begin, 0x5000, 8);  // the commit record's LSN
  U(begin, static_cast<uint64_t>(PgMicros(pg_commit)), 8);
  U(begin, 77, 4);
  std::vector<DecodedTransaction> pieces;
  auto feed = [&](const std::string& m) {
    auto r = decoder.Feed(m);
    ASSERT_OK(r);
    if (r->has_value()) pieces.push_back(std::move(**r));
  };
  feed(Relation(1, "campaigns", CampaignColumns()));
  feed(Relation(2, "ch_txn", {"id", "txn_id", "commit_us"}));
  feed(begin);
  feed(Update(2, nullptr, {"1", "901", "1767225600000123"}));
  for (int64_t id = 1; id <= 6; ++id) feed(Insert(1, Values(Row(id, 1, "user:a"))));
  // A stamp after a part is out would change the transaction's time and id: ignored.
  feed(Update(2, nullptr, {"1", "902", "1767225600000999"}));
  ASSERT_EQ(pieces.size(), 1u);  // the 4th change pushed out the first 3
  feed(Commit(0x5000, 0x5040, pg_commit));
  ASSERT_EQ(pieces.size(), 2u);
  const DecodedTransaction& part = pieces[0];
  EXPECT_FALSE(part.complete);
  EXPECT_EQ(part.commit_lsn, 0x5000u);
  EXPECT_EQ(part.first_change, 0);
  ASSERT_EQ(part.events.size(), 3u);
  const DecodedTransaction& last = pieces[1];
  EXPECT_TRUE(last.complete);
  EXPECT_EQ(last.end_lsn, 0x5040u);
  EXPECT_EQ(last.first_change, 3);
  EXPECT_EQ(last.total_changes, 6);
  ASSERT_EQ(last.events.size(), 3u);
  int64_t id = 1;
  for (const auto* piece : {&part, &last}) {
    for (const ChangeEvent& e : piece->events) {
      EXPECT_EQ(e.campaign_id, id++);
      EXPECT_EQ(e.transaction_id, "901");
      EXPECT_EQ(e.event_time, FromUnixMicros(1767225600000123));
      EXPECT_EQ(e.source_position, piece->complete ? "0/5040" : "");
    }
  }
  // The next transaction starts afresh.
  feed(begin);
  feed(Insert(1, Values(Row(9, 1, "user:b"))));
  feed(Commit(0x6000, 0x6040, pg_commit));
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_TRUE(pieces[2].complete);
  EXPECT_EQ(pieces[2].first_change, 0);
  EXPECT_EQ(pieces[2].total_changes, 1);
  EXPECT_EQ(pieces[2].events[0].transaction_id, "77");
}

// Exactly `max_buffered` changes: no part (the transaction is not larger than the limit).
TEST(PgOutputDecoderPartsTest, ATransactionOfExactlyTheLimitComesWhole) {
  PgOutputDecoder decoder(/*max_buffered=*/2);
  const Timestamp t0 = At("2026-03-01T10:00:00Z");
  for (const std::string& m :
       {Relation(1, "campaigns", CampaignColumns()), Begin(5, t0),
        Insert(1, Values(Row(1, 1, "user:a"))), Insert(1, Values(Row(2, 1, "user:a")))}) {
    auto r = decoder.Feed(m);
    ASSERT_OK(r);
    EXPECT_FALSE(r->has_value());
  }
  ASSERT_OK_AND_ASSIGN(auto t, decoder.Feed(Commit(1, 2, t0)));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->events.size(), 2u);
  EXPECT_EQ(t->total_changes, 2);
}

TEST(SourcePositionTest, FormatsAndParsesEndsAndParts) {
  EXPECT_EQ(FormatSourcePosition({0x16B3748, 0}), "0/16B3748");
  EXPECT_EQ(FormatSourcePosition({0x100000000, 10000}), "1/0#10000");
  ASSERT_OK_AND_ASSIGN(auto end, ParseSourcePosition("0/16B3748"));
  EXPECT_EQ(end, (SourcePosition{0x16B3748, 0}));
  ASSERT_OK_AND_ASSIGN(auto part, ParseSourcePosition("1/0#10000"));
  EXPECT_EQ(part, (SourcePosition{0x100000000, 10000}));
  // A part lies after the end of the transaction before it and before its own end.
  EXPECT_LT(end, part);
  EXPECT_LT(part, (SourcePosition{0x100000040, 0}));
  for (const char* bad : {"", "#3", "0/10#", "0/10#0", "0/10#-1", "0/10#3x", "12", "0/10 "}) {
    EXPECT_THAT(ParseSourcePosition(bad), StatusIs(StatusCode::kInvalidArgument)) << bad;
  }
}

TEST(ReplicationMessagesTest, ParsesXLogDataAndKeepalives) {
  std::string w = "w";
  U(w, 0x100, 8);
  U(w, 0x200, 8);
  U(w, 0, 8);
  w += "Bpayload";
  ASSERT_OK_AND_ASSIGN(ServerMessage m, ParseServerMessage(w));
  EXPECT_EQ(m.kind, ServerMessage::Kind::kXLogData);
  EXPECT_EQ(m.wal_end, 0x200u);
  EXPECT_EQ(m.payload, "Bpayload");
  std::string k = "k";
  U(k, 0x300, 8);
  U(k, 0, 8);
  U(k, 1, 1);
  ASSERT_OK_AND_ASSIGN(m, ParseServerMessage(k));
  EXPECT_EQ(m.kind, ServerMessage::Kind::kKeepalive);
  EXPECT_EQ(m.wal_end, 0x300u);
  EXPECT_TRUE(m.reply_requested);
  EXPECT_THAT(ParseServerMessage("k\x01"), StatusIs(StatusCode::kDataLoss));
  EXPECT_THAT(ParseServerMessage("x"), StatusIs(StatusCode::kDataLoss));
}

TEST(ReplicationMessagesTest, EncodesTheStandbyStatusUpdate) {
  std::string r = EncodeStandbyStatus(0x500, 0x400, kPgEpochUnixMicros + 7, false);
  std::string want = "r";
  U(want, 0x500, 8);
  U(want, 0x400, 8);
  U(want, 0x400, 8);
  U(want, 7, 8);
  U(want, 0, 1);
  EXPECT_EQ(r, want);
}

}  // namespace
}  // namespace ch::pg_logical
