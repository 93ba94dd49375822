#include "capture/pg_logical_source_internal.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>

#include "campaign/pg_client.h"
#include "campaign/pg_schema.h"

namespace ch::pg_logical {

namespace {

// Big-endian reader over one message; any read past the end marks it failed.
class Reader {
 public:
  explicit Reader(std::string_view data) : d_(data) {}
  bool failed() const { return failed_; }
  bool done() const { return i_ >= d_.size(); }

  uint64_t UInt(size_t bytes) {
    if (i_ + bytes > d_.size()) {
      failed_ = true;
      i_ = d_.size();
      return 0;
    }
    uint64_t v = 0;
    for (size_t k = 0; k < bytes; ++k) v = (v << 8) | static_cast<uint8_t>(d_[i_ + k]);
    i_ += bytes;
    return v;
  }
  uint8_t U8() { return static_cast<uint8_t>(UInt(1)); }
  uint16_t U16() { return static_cast<uint16_t>(UInt(2)); }
  uint32_t U32() { return static_cast<uint32_t>(UInt(4)); }
  uint64_t U64() { return UInt(8); }
  int64_t I64() { return static_cast<int64_t>(UInt(8)); }
  // A NUL-terminated string.
  std::string_view Str() {
    size_t end = d_.find('\0', i_);
    if (end == std::string_view::npos) {
      failed_ = true;
      i_ = d_.size();
      return {};
    }
    std::string_view s = d_.substr(i_, end - i_);
    i_ = end + 1;
    return s;
  }
  std::string_view Bytes(size_t n) {
    if (i_ + n > d_.size()) {
      failed_ = true;
      i_ = d_.size();
      return {};
    }
    std::string_view s = d_.substr(i_, n);
    i_ += n;
    return s;
  }

 private:
  std::string_view d_;
  size_t i_ = 0;
  bool failed_ = false;
};

void PutUInt(std::string& out, uint64_t v, size_t bytes) {
  for (size_t k = bytes; k-- > 0;) out.push_back(static_cast<char>((v >> (8 * k)) & 0xff));
}

Status Malformed(char kind, std::string_view why) {
  return DataLossError(fmt::format("pgoutput: malformed '{}' message: {}", kind, why));
}

Timestamp FromPgMicros(int64_t pg_us) { return FromUnixMicros(pg_us + kPgEpochUnixMicros); }

}  // namespace

Result<ServerMessage> ParseServerMessage(std::string_view data) {
  if (data.empty()) return DataLossError("replication stream: empty CopyData message");
  Reader r(data.substr(1));
  ServerMessage m;
  if (data[0] == 'w') {
    m.kind = ServerMessage::Kind::kXLogData;
    r.U64();  // dataStart
    m.wal_end = r.U64();
    r.I64();  // sendTime
    if (r.failed()) return DataLossError("replication stream: truncated XLogData header");
    m.payload = data.substr(1 + 24);
    return m;
  }
  if (data[0] == 'k') {
    m.kind = ServerMessage::Kind::kKeepalive;
    m.wal_end = r.U64();
    r.I64();  // sendTime
    m.reply_requested = r.U8() != 0;
    if (r.failed()) return DataLossError("replication stream: truncated keepalive");
    return m;
  }
  return DataLossError(fmt::format("replication stream: unexpected message type '{}'", data[0]));
}

std::string EncodeStandbyStatus(uint64_t written, uint64_t flushed, int64_t now_unix_us,
                                bool reply_requested) {
  std::string out;
  out.reserve(34);
  out.push_back('r');
  PutUInt(out, written, 8);
  PutUInt(out, flushed, 8);
  PutUInt(out, flushed, 8);  // applied
  PutUInt(out, static_cast<uint64_t>(now_unix_us - kPgEpochUnixMicros), 8);
  out.push_back(reply_requested ? 1 : 0);
  return out;
}

std::string FormatSourcePosition(const SourcePosition& p) {
  if (p.part == 0) return FormatLsn(p.lsn);
  return fmt::format("{}#{}", FormatLsn(p.lsn), p.part);
}

Result<SourcePosition> ParseSourcePosition(std::string_view text) {
  auto bad = [&] {
    return InvalidArgumentError(
        fmt::format("position: '{}' is not a log position (0/16B3748) or a part of a transaction "
                    "(0/16B3700#10000)",
                    text.substr(0, 200)));
  };
  SourcePosition p;
  const size_t hash = text.find('#');
  auto lsn = ParseLsn(text.substr(0, hash));
  if (!lsn.ok()) return bad();
  p.lsn = *lsn;
  if (hash == std::string_view::npos) return p;
  std::string_view part = text.substr(hash + 1);
  auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), p.part);
  if (ec != std::errc() || end != part.data() + part.size() || p.part <= 0) return bad();
  return p;
}

void PgOutputDecoder::Reset() {
  relations_.clear();
  in_txn_ = false;
  txn_ = DecodedTransaction{};
  handed_ = 0;
  actor_.reset();
}

void PgOutputDecoder::Finish(DecodedTransaction& piece) {
  const std::string position = piece.complete ? FormatLsn(piece.end_lsn) : std::string();
  const std::string txn_id = piece.stamp_txn_id.value_or(std::to_string(piece.xid));
  const Timestamp time = piece.stamp_commit_time.value_or(piece.pg_commit_time);
  for (ChangeEvent& e : piece.events) {
    e.event_time = time;
    e.transaction_id = txn_id;
    e.source_position = position;
  }
}

DecodedTransaction PgOutputDecoder::TakePart() {
  // Keep the newest change: the complete piece must hold at least one.
  std::vector<ChangeEvent> events = std::move(txn_.events);
  txn_.events.clear();
  txn_.events.push_back(std::move(events.back()));
  events.pop_back();
  // From now on the transaction's time and id are fixed: a part is out with them.
  if (!txn_.stamp_txn_id) txn_.stamp_txn_id = std::to_string(txn_.xid);
  if (!txn_.stamp_commit_time) txn_.stamp_commit_time = txn_.pg_commit_time;
  DecodedTransaction part;
  part.xid = txn_.xid;
  part.commit_lsn = txn_.commit_lsn;
  part.complete = false;
  part.first_change = handed_;
  part.pg_commit_time = txn_.pg_commit_time;
  part.stamp_txn_id = txn_.stamp_txn_id;
  part.stamp_commit_time = txn_.stamp_commit_time;
  part.events = std::move(events);
  handed_ += static_cast<int64_t>(part.events.size());
  Finish(part);
  return part;
}

Result<std::optional<DecodedTransaction>> PgOutputDecoder::Feed(std::string_view message) {
  if (message.empty()) return DataLossError("pgoutput: empty message");
  const char kind = message[0];
  std::string_view body = message.substr(1);
  switch (kind) {
    case 'B': {
      Reader r(body);
      DecodedTransaction t;
      t.commit_lsn = r.U64();  // final LSN: the commit record's
      t.pg_commit_time = FromPgMicros(r.I64());
      t.xid = r.U32();
      if (r.failed()) return Malformed(kind, "truncated");
      if (in_txn_) return Malformed(kind, "Begin inside an open transaction");
      txn_ = std::move(t);
      in_txn_ = true;
      handed_ = 0;
      actor_.reset();
      return std::optional<DecodedTransaction>();
    }
    case 'C': {
      Reader r(body);
      r.U8();  // flags
      const uint64_t commit_lsn = r.U64();
      const uint64_t end_lsn = r.U64();
      r.I64();  // commit timestamp (as in Begin)
      if (r.failed()) return Malformed(kind, "truncated");
      if (!in_txn_) return Malformed(kind, "Commit without Begin");
      in_txn_ = false;
      DecodedTransaction t = std::move(txn_);
      txn_ = DecodedTransaction{};
      t.commit_lsn = commit_lsn;
      t.end_lsn = end_lsn;
      t.first_change = handed_;
      t.total_changes = handed_ + static_cast<int64_t>(t.events.size());
      Finish(t);
      return std::optional<DecodedTransaction>(std::move(t));
    }
    case 'R':
      RETURN_IF_ERROR(OnRelation(body));
      return std::optional<DecodedTransaction>();
    case 'I':
    case 'U':
    case 'D':
      RETURN_IF_ERROR(OnChange(kind, body));
      if (txn_.events.size() > max_buffered_) {
        return std::optional<DecodedTransaction>(TakePart());
      }
      return std::optional<DecodedTransaction>();
    case 'M': {
      Reader r(body);
      const uint8_t flags = r.U8();
      r.U64();  // LSN
      std::string_view prefix = r.Str();
      const uint32_t len = r.U32();
      std::string_view content = r.Bytes(len);
      if (r.failed()) return Malformed(kind, "truncated");
      // Only transactional messages belong to a transaction (flags bit 0).
      if ((flags & 1) != 0 && in_txn_ && prefix == kPgActorMessagePrefix) {
        actor_ = std::string(content);
      }
      return std::optional<DecodedTransaction>();
    }
    case 'T':
      // The capture publication does not publish TRUNCATE; someone changed it.
      spdlog::warn(
          "pg capture: ignored a TRUNCATE in the replication stream (no row images: the "
          "truncated campaigns get no delete version); the publication should publish only "
          "insert, update, delete");
      return std::optional<DecodedTransaction>();
    case 'Y':  // type
    case 'O':  // origin
      return std::optional<DecodedTransaction>();
    default:
      return DataLossError(fmt::format("pgoutput: unknown message type '{}'", kind));
  }
}

Status PgOutputDecoder::OnRelation(std::string_view body) {
  Reader r(body);
  const uint32_t id = r.U32();
  Relation rel;
  rel.ns = std::string(r.Str());
  rel.name = std::string(r.Str());
  r.U8();  // replica identity
  const uint16_t n = r.U16();
  for (uint16_t k = 0; k < n && !r.failed(); ++k) {
    r.U8();  // flags
    rel.columns.emplace_back(r.Str());
    r.U32();  // type oid
    r.U32();  // type modifier
  }
  if (r.failed()) return Malformed('R', "truncated");
  if (rel.name == kPgCampaignsTable) {
    for (std::string_view want : kPgCampaignColumns) {
      int found = -1;
      for (size_t k = 0; k < rel.columns.size(); ++k) {
        if (rel.columns[k] == want) found = static_cast<int>(k);
      }
      rel.campaign_index.push_back(found);
    }
  }
  relations_[id] = std::move(rel);
  return Status::OK();
}

namespace {

Status ReadTuple(Reader& r, char kind, std::vector<std::optional<std::string>>& values,
                 std::vector<bool>& unchanged) {
  const uint16_t n = r.U16();
  values.assign(n, std::nullopt);
  unchanged.assign(n, false);
  for (uint16_t k = 0; k < n; ++k) {
    const char t = static_cast<char>(r.U8());
    if (r.failed()) break;
    if (t == 'n') continue;
    if (t == 'u') {
      unchanged[k] = true;
      continue;
    }
    if (t != 't') {
      return Malformed(kind, fmt::format("column {}: unexpected value kind '{}'", k, t));
    }
    const uint32_t len = r.U32();
    values[k] = std::string(r.Bytes(len));
  }
  if (r.failed()) return Malformed(kind, "truncated tuple");
  return Status::OK();
}

}  // namespace

Status PgOutputDecoder::OnChange(char kind, std::string_view body) {
  Reader r(body);
  const uint32_t id = r.U32();
  if (r.failed()) return Malformed(kind, "truncated");
  if (!in_txn_) return Malformed(kind, "change outside a transaction");
  auto it = relations_.find(id);
  if (it == relations_.end()) {
    return DataLossError(
        fmt::format("pgoutput: change of relation {} before its Relation message", id));
  }
  const Relation& rel = it->second;
  std::optional<Tuple> old_tuple;
  Tuple new_tuple;
  char tag = static_cast<char>(r.U8());
  if (tag == 'K' || tag == 'O') {
    Tuple t;
    RETURN_IF_ERROR(ReadTuple(r, kind, t.values, t.unchanged));
    if (tag == 'O') old_tuple = std::move(t);
    if (kind == 'U') tag = static_cast<char>(r.U8());
  }
  if (kind != 'D') {
    if (tag != 'N') return Malformed(kind, fmt::format("expected a new tuple, got '{}'", tag));
    RETURN_IF_ERROR(ReadTuple(r, kind, new_tuple.values, new_tuple.unchanged));
  }
  if (r.failed()) return Malformed(kind, "truncated");

  // Stamps: ch_customer_txn (schema version 2) and ch_txn (version 1, in WAL from before the
  // upgrade).
  if ((rel.name == kPgCustomerTxnTable || rel.name == kPgTxnTable) && kind != 'D') {
    return OnStamp(rel, new_tuple);
  }
  if (rel.name != kPgCampaignsTable) return Status::OK();  // not ours: ignore

  ChangeEvent e;
  e.capture = CaptureMode::kLog;
  if (kind == 'D') {
    if (!old_tuple) {
      return DataLossError(
          "pg capture: a delete of campaigns carries only the key, not the row: the table must be "
          "REPLICA IDENTITY FULL (PgLogicalSource::CreateCapture sets it)");
    }
    ASSIGN_OR_RETURN(Campaign row, DecodeCampaign(rel, *old_tuple, "deleted row"));
    e.op = ChangeOp::kDeleted;
    e.version = row.version + 1;
    e.actor = actor_.value_or(kUnknownActor);
    e.row = std::move(row);
  } else {
    // Unchanged TOAST values (large content) are not repeated in the new tuple: take them from
    // the old one, which REPLICA IDENTITY FULL logs whole.
    for (size_t k = 0; k < new_tuple.values.size(); ++k) {
      if (!new_tuple.unchanged[k]) continue;
      if (!old_tuple || k >= old_tuple->values.size() || old_tuple->unchanged[k]) {
        return DataLossError(fmt::format(
            "pg capture: an update of campaigns left column '{}' out (unchanged TOAST value) and "
            "carries no old row: the table must be REPLICA IDENTITY FULL",
            k < rel.columns.size() ? rel.columns[k] : std::to_string(k)));
      }
      new_tuple.values[k] = old_tuple->values[k];
      new_tuple.unchanged[k] = false;
    }
    ASSIGN_OR_RETURN(Campaign row,
                     DecodeCampaign(rel, new_tuple, kind == 'I' ? "inserted row" : "updated row"));
    e.op = kind == 'I' ? ChangeOp::kCreated : ChangeOp::kUpdated;
    e.version = row.version;
    e.actor = row.updated_by;
    e.row = std::move(row);
  }
  e.campaign_id = e.row->id;
  e.customer_id = e.row->customer_id;
  txn_.events.push_back(std::move(e));
  return Status::OK();
}

Result<Campaign> PgOutputDecoder::DecodeCampaign(const Relation& rel, const Tuple& t,
                                                 std::string_view what) {
  std::array<std::optional<std::string_view>, kPgCampaignColumns.size()> values;
  for (size_t c = 0; c < values.size(); ++c) {
    const int idx = rel.campaign_index[c];
    if (idx < 0 || static_cast<size_t>(idx) >= t.values.size()) {
      return DataLossError(fmt::format("pg capture: {}.{} has no column '{}'", rel.ns, rel.name,
                                       kPgCampaignColumns[c]));
    }
    if (t.values[idx]) values[c] = *t.values[idx];
  }
  auto row = CampaignFromPgValues(values);
  if (!row.ok()) return row.status().WithContext(fmt::format("pg capture: {}", what));
  return row;
}

Status PgOutputDecoder::OnStamp(const Relation& rel, const Tuple& t) {
  std::optional<std::string> txn_id;
  std::optional<int64_t> commit_us;
  for (size_t k = 0; k < rel.columns.size() && k < t.values.size(); ++k) {
    if (!t.values[k]) continue;
    if (rel.columns[k] == "txn_id") txn_id = *t.values[k];
    if (rel.columns[k] == "commit_us") {
      int64_t v = 0;
      const std::string& s = *t.values[k];
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec != std::errc() || p != s.data() + s.size()) {
        return DataLossError(
            fmt::format("pg capture: {}.commit_us '{}' is not an integer", rel.name, s));
      }
      commit_us = v;
    }
  }
  if (handed_ > 0) {
    // Parts are out with the time and id known then; changing them now would split one
    // transaction into two in the history.
    spdlog::warn(
        "pg capture: transaction {} stamped ch_txn after {} of its changes were handed out; the "
        "stamp is ignored (stamp first, as PgCampaignStore does)",
        txn_.xid, handed_);
    return Status::OK();
  }
  if (txn_id) txn_.stamp_txn_id = std::move(txn_id);
  if (commit_us) txn_.stamp_commit_time = FromUnixMicros(*commit_us);
  return Status::OK();
}

}  // namespace ch::pg_logical
