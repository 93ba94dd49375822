#include "capture/pg_logical_source.h"

#include <fmt/format.h>
#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <thread>
#include <utility>

#include "campaign/pg_client.h"
#include "campaign/pg_schema.h"
#include "capture/pg_logical_source_internal.h"

namespace ch {

namespace {

using pg_logical::DecodedTransaction;
using pg_logical::ServerMessage;
using pg_logical::SourcePosition;
using SteadyClock = std::chrono::steady_clock;

// Any constant: the advisory lock that serializes CreateCapture runs within a database.
constexpr int64_t kCaptureSetupLockKey = 7346912270114;

Status CheckName(std::string_view what, const std::string& name, bool allow_upper) {
  bool ok = !name.empty() && name.size() <= 63;
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                (allow_upper && c >= 'A' && c <= 'Z'));
  }
  if (ok) return Status::OK();
  return InvalidArgumentError(fmt::format("{}: '{}' must be 1-63 characters of {}", what, name,
                                          allow_upper ? "[A-Za-z0-9_]" : "[a-z0-9_]"));
}

Status CheckNames(const std::string& url, const std::string& slot, const std::string& publication) {
  if (url.empty()) return InvalidArgumentError("url: must not be empty");
  RETURN_IF_ERROR(CheckName("slot", slot, /*allow_upper=*/false));
  return CheckName("publication", publication, /*allow_upper=*/true);
}

std::string SetupHint(const std::string& slot, const std::string& publication) {
  return fmt::format(
      "create the capture first: PgLogicalSource::CreateCapture(url, \"{0}\", \"{1}\"), or in SQL "
      "(publication first): CREATE PUBLICATION {2} FOR TABLE campaigns, ch_customer_txn WITH "
      "(publish = "
      "'insert, update, delete'); SELECT pg_create_logical_replication_slot('{0}', 'pgoutput');",
      slot, publication, PgQuoteIdent(publication));
}

Result<std::unique_ptr<PgConn>> ConnectSql(const std::string& url, int connect_timeout_s) {
  PgConnectOptions o;
  o.url = url;
  o.connect_timeout_s = connect_timeout_s;
  // The progress row only narrows what a restart resends (the history is idempotent), so its
  // commits need not wait for the WAL flush; losing the last ones in a server crash only means
  // a few more resent transactions.
  o.settings["synchronous_commit"] = "off";
  o.application_name = "campaign-history capture";
  return PgConn::Connect(o);
}

int64_t UnixMicrosNow() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct PgLogicalSource::Impl {
  // A transaction handed out in parts whose last part is not out (or not confirmed) yet.
  struct Partial {
    uint64_t commit_lsn = 0;
    int64_t seq = 0;      // its txn_seq
    int64_t changes = 0;  // how many of its changes are out (confirmed)
  };
  // What Confirm(pos) records: the last whole transaction's end and number, and the transaction
  // in parts, if pos is a part of one.
  struct Handout {
    SourcePosition pos;
    uint64_t full_lsn = 0;
    int64_t full_txns = 0;
    std::optional<Partial> partial;
    // The event time of the last whole transaction (at full_lsn), µs.
    int64_t full_time_us = 0;
  };

  explicit Impl(const PgLogicalSourceOptions& o)
      : options(o), decoder(std::max<size_t>(o.max_buffered_changes, 1)) {}

  PgLogicalSourceOptions options;
  std::string where;
  std::unique_ptr<PgConn> sql;   // progress and backlog; reconnected on demand
  std::unique_ptr<PgConn> repl;  // the replication stream; null while down

  pg_logical::PgOutputDecoder decoder;
  std::deque<DecodedTransaction> ready;  // decoded pieces, not yet handed out
  size_t ready_events = 0;
  // The commit LSN of a transaction whose parts came (or were recorded) but whose last piece
  // has not come on this stream: nothing else may come before it.
  std::optional<uint64_t> awaiting_last_piece;

  uint64_t confirmed = 0;  // recorded in ch_capture_progress
  uint64_t delivered = 0;  // end LSN of the last whole transaction handed out
  // Transactions numbered so far (ChangeEvent::txn_seq): confirmed ones (recorded beside
  // `confirmed`) and handed-out ones; and the transaction in parts, confirmed and handed out.
  int64_t confirmed_txns = 0;
  int64_t delivered_txns = 0;
  std::optional<Partial> confirmed_partial;
  std::optional<Partial> handed;
  // Each batch end handed out and not yet confirmed.
  std::deque<Handout> unconfirmed;
  // Event times (µs) follow WAL order, which is commit order: a transaction's event time is
  // max(its stamp, the previous transaction's + 1 µs). The chain runs from the last confirmed
  // whole transaction (recorded with it), so a transaction resent after a restart gets the same
  // time. `admit_*`: the newest transaction queued (its commit LSN, to give its later parts the
  // same time); `handed_*`: the newest handed out (a reconnect resumes the chain there);
  // `whole_handed_us`: the newest whole transaction handed out.
  int64_t confirmed_time_us = 0;
  int64_t admit_last_us = 0;
  uint64_t admit_open_lsn = 0;
  int64_t handed_last_us = 0;
  uint64_t handed_open_lsn = 0;
  int64_t whole_handed_us = 0;
  uint64_t received = 0;    // highest WAL position seen on the stream
  uint64_t feedback = 0;    // the flushed position reported to the server
  uint64_t slot_start = 0;  // the slot's confirmed position when this source opened
  SteadyClock::time_point last_feedback{};
  // Set when the stream failed: Poll hands out the complete transactions decoded before the
  // failure, then returns it and drops the stream.
  std::optional<Status> failure;

  Result<PgConn*> Sql() {
    if (sql == nullptr || !sql->ok()) {
      sql.reset();
      ASSIGN_OR_RETURN(sql, ConnectSql(options.url, options.connect_timeout_s));
    }
    return sql.get();
  }

  // Run a statement on the normal connection, reconnecting once if it had died.
  Result<PgResult> SqlExec(const std::string& text,
                           const std::vector<std::optional<std::string>>& params) {
    for (int attempt = 0;; ++attempt) {
      ASSIGN_OR_RETURN(PgConn * conn, Sql());
      auto r = conn->ExecParams(text, params);
      if (r.ok() || conn->ok() || attempt > 0) return r;
    }
  }

  Status StartStreaming() {
    PgConnectOptions o;
    o.url = options.url;
    o.connect_timeout_s = options.connect_timeout_s;
    o.application_name = "campaign-history capture";
    o.replication = true;
    ASSIGN_OR_RETURN(auto conn, PgConn::Connect(o));
    const uint64_t start = options.TEST_start_at_slot_position ? 0 : confirmed;
    RETURN_IF_ERROR(
        conn->Exec(fmt::format("START_REPLICATION SLOT {} LOGICAL {} (proto_version '1', "
                               "publication_names '{}', messages 'true')",
                               options.slot, FormatLsn(start), PgQuoteIdent(options.publication)))
            .status()
            .WithContext(fmt::format("cannot stream from replication slot '{}'", options.slot)));
    Drop();
    repl = std::move(conn);
    last_feedback = SteadyClock::now();
    return Status::OK();
  }

  // Return an Unavailable status for a stream that failed, with libpq's reason.
  Status StreamError(std::string_view why) const {
    std::string message = repl != nullptr ? std::string(PQerrorMessage(repl->raw())) : "";
    while (!message.empty() && message.back() == '\n') message.pop_back();
    return UnavailableError(fmt::format("PostgreSQL {}: replication stream of slot '{}' {}{}{}",
                                        where, options.slot, why, message.empty() ? "" : ": ",
                                        message));
  }

  // Drop the stream (the next Poll reconnects). What was decoded but not handed out is dropped
  // too: the server sends it again.
  void Drop() {
    repl.reset();
    decoder.Reset();
    ready.clear();
    ready_events = 0;
    failure.reset();
    awaiting_last_piece.reset();
    if (handed) awaiting_last_piece = handed->commit_lsn;
    admit_last_us = handed_last_us;
    admit_open_lsn = handed_open_lsn;
  }

  // The stream ended (-1: the server sent an error or CopyDone) or failed (-2): return the
  // server's reason.
  Status StreamEnded(int code) {
    std::string reason;
    // After an ErrorResponse the error is the next result. After a CopyDone the connection stays
    // in copy-in state and PQgetResult would return PGRES_COPY_IN forever: stop there.
    for (int i = 0; code == -1 && i < 4; ++i) {
      PGresult* res = PQgetResult(repl->raw());
      if (res == nullptr) break;
      const ExecStatusType st = PQresultStatus(res);
      if (st == PGRES_FATAL_ERROR) reason = repl->ErrorStatus(res, "").message();
      PQclear(res);
      if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) break;
    }
    if (!reason.empty()) return UnavailableError(reason + " (replication stream closed)");
    return StreamError("was closed");
  }

  Status SendFeedback(bool reply_requested) {
    if (repl == nullptr || failure) return Status::OK();
    const uint64_t flushed = options.TEST_no_server_feedback ? slot_start : feedback;
    std::string msg = pg_logical::EncodeStandbyStatus(std::max(received, flushed), flushed,
                                                      UnixMicrosNow(), reply_requested);
    if (PQputCopyData(repl->raw(), msg.data(), static_cast<int>(msg.size())) != 1 ||
        PQflush(repl->raw()) != 0) {
      return StreamError("failed while sending a status update");
    }
    last_feedback = SteadyClock::now();
    return Status::OK();
  }

  Status MaybePeriodicFeedback() {
    if (SteadyClock::now() - last_feedback < options.feedback_interval) return Status::OK();
    return SendFeedback(false);
  }

  // True when nothing decoded is waiting and everything handed out is confirmed.
  bool Idle() const {
    return !decoder.in_transaction() && ready.empty() && delivered <= confirmed && !handed;
  }

  Status Handle(std::string_view data) {
    ASSIGN_OR_RETURN(ServerMessage m, pg_logical::ParseServerMessage(data));
    received = std::max(received, m.wal_end);
    if (m.kind == ServerMessage::Kind::kKeepalive) {
      bool advanced = false;
      if (Idle() && m.wal_end > feedback) {
        // Nothing of ours lies before the server's end of WAL that is not confirmed: let the
        // slot move on, so that an idle capture does not pin other databases' WAL.
        feedback = m.wal_end;
        advanced = true;
      }
      if (m.reply_requested || advanced) return SendFeedback(false);
      return Status::OK();
    }
    ASSIGN_OR_RETURN(std::optional<DecodedTransaction> piece, decoder.Feed(m.payload));
    if (!piece) return Status::OK();
    return Admit(std::move(*piece));
  }

  // Queue a decoded transaction or part, less what was handed out before (PostgreSQL resends
  // from the last confirmed whole transaction, after a restart or a reconnect).
  Status Admit(DecodedTransaction piece) {
    const uint64_t done = std::max(confirmed, delivered);
    if (piece.complete ? piece.end_lsn <= done : piece.commit_lsn < done) {
      spdlog::debug("pg capture: skipped transaction {} at {} (already delivered)", piece.xid,
                    FormatLsn(piece.commit_lsn));
      return Status::OK();
    }
    if (awaiting_last_piece && *awaiting_last_piece != piece.commit_lsn) {
      // A transaction without campaign changes that committed before it is resent too.
      if (piece.events.empty() && piece.commit_lsn < *awaiting_last_piece) return Status::OK();
      return DataLossError(fmt::format(
          "pg capture: the transaction that commits at {} was handed out in part, but the "
          "stream went on with the one that commits at {}",
          FormatLsn(*awaiting_last_piece), FormatLsn(piece.commit_lsn)));
    }
    awaiting_last_piece.reset();
    if (!piece.complete) awaiting_last_piece = piece.commit_lsn;
    if (handed && handed->commit_lsn == piece.commit_lsn) {
      const int64_t out = std::clamp<int64_t>(handed->changes - piece.first_change, 0,
                                              static_cast<int64_t>(piece.events.size()));
      piece.events.erase(piece.events.begin(), piece.events.begin() + out);
      piece.first_change += out;
    }
    // An empty piece: a transaction without campaign changes (not numbered), or one already out.
    if (piece.events.empty()) return Status::OK();
    StampEventTime(piece);
    ready_events += piece.events.size();
    ready.push_back(std::move(piece));
    return Status::OK();
  }

  // Give the piece's events their place in the event-time chain (see admit_last_us).
  void StampEventTime(DecodedTransaction& piece) {
    int64_t time = admit_last_us;
    if (admit_open_lsn == 0 || admit_open_lsn != piece.commit_lsn) {
      const int64_t own = ToUnixMicros(piece.events.front().event_time);
      time = std::max(own, admit_last_us + 1);
      admit_last_us = time;
      admit_open_lsn = piece.commit_lsn;
    }
    for (ChangeEvent& e : piece.events) e.event_time = FromUnixMicros(time);
  }

  // Number the next pieces and hand them out: about max_events, whole pieces.
  SourceBatch TakeBatch(size_t max_events) {
    SourceBatch batch;
    while (!ready.empty() && batch.events.size() < max_events) {
      DecodedTransaction& t = ready.front();
      ready_events -= t.events.size();
      const bool continued = handed && handed->commit_lsn == t.commit_lsn;
      const int64_t seq = continued ? handed->seq : ++delivered_txns;
      Handout h;
      handed_last_us = ToUnixMicros(t.events.front().event_time);
      handed_open_lsn = t.commit_lsn;
      if (t.complete) {
        delivered = t.end_lsn;
        handed.reset();
        whole_handed_us = handed_last_us;
        h = Handout{{t.end_lsn, 0}, t.end_lsn, seq, std::nullopt, whole_handed_us};
      } else {
        handed = Partial{t.commit_lsn, seq, t.first_change + static_cast<int64_t>(t.events.size())};
        h = Handout{{t.commit_lsn, handed->changes}, delivered, seq - 1, handed, whole_handed_us};
      }
      batch.end_position = FormatSourcePosition(h.pos);
      unconfirmed.push_back(h);
      for (ChangeEvent& e : t.events) {
        e.txn_seq = seq;
        // The count is known at the Commit: only the last piece states it.
        e.txn_changes = t.complete ? t.total_changes : 0;
        if (!t.complete) e.source_position = batch.end_position;
        batch.events.push_back(std::move(e));
      }
      ready.pop_front();
    }
    return batch;
  }

  SourcePosition ConfirmedPosition() const {
    if (confirmed_partial) return {confirmed_partial->commit_lsn, confirmed_partial->changes};
    return {confirmed, 0};
  }

  // Record the progress (one row per slot; never moves back).
  Status RecordProgress(uint64_t lsn, int64_t txns, const std::optional<Partial>& partial,
                        int64_t time_us) {
    auto r = SqlExec(
        "INSERT INTO ch_capture_progress (slot, confirmed_lsn, updated_at, confirmed_txns, "
        "partial_lsn, partial_changes, confirmed_event_us) VALUES ($1, $2::pg_lsn, now(), $3, "
        "$4::pg_lsn, $5, $6) "
        "ON CONFLICT (slot) DO UPDATE SET confirmed_lsn = EXCLUDED.confirmed_lsn, "
        "confirmed_txns = EXCLUDED.confirmed_txns, partial_lsn = EXCLUDED.partial_lsn, "
        "partial_changes = EXCLUDED.partial_changes, confirmed_event_us = "
        "EXCLUDED.confirmed_event_us, updated_at = now() "
        "WHERE (EXCLUDED.confirmed_lsn, COALESCE(EXCLUDED.partial_lsn, '0/0'), "
        "EXCLUDED.partial_changes) > (ch_capture_progress.confirmed_lsn, "
        "COALESCE(ch_capture_progress.partial_lsn, '0/0'), ch_capture_progress.partial_changes)",
        {options.slot, FormatLsn(lsn), std::to_string(txns),
         partial ? std::optional<std::string>(FormatLsn(partial->commit_lsn)) : std::nullopt,
         std::to_string(partial ? partial->changes : 0), std::to_string(time_us)});
    if (!r.ok()) {
      return r.status().WithContext(
          fmt::format("cannot record the capture progress of slot '{}'", options.slot));
    }
    return Status::OK();
  }
};

PgLogicalSource::PgLogicalSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgLogicalSource::~PgLogicalSource() = default;

Result<std::unique_ptr<PgLogicalSource>> PgLogicalSource::Open(
    const PgLogicalSourceOptions& options) {
  RETURN_IF_ERROR(CheckNames(options.url, options.slot, options.publication));
  if (options.feedback_interval <= Micros(0)) {
    return InvalidArgumentError("feedback_interval: must be positive");
  }
  ASSIGN_OR_RETURN(PgConnInfo info, ParsePgUrl(options.url));
  if (options.max_buffered_changes < 1) {
    return InvalidArgumentError("max_buffered_changes: must be at least 1");
  }
  auto impl = std::make_unique<Impl>(options);
  impl->where = info.Describe();
  auto fail = [&](const Status& s) {
    return s.WithContext(fmt::format("cannot open log capture from {}", impl->where));
  };
  auto conn = impl->Sql();
  if (!conn.ok()) return fail(conn.status());
  PgConn& sql = **conn;

  auto slot = sql.ExecParams(
      "SELECT plugin, database, current_database(), COALESCE(confirmed_flush_lsn::text, '0/0') "
      "FROM pg_replication_slots WHERE slot_name = $1",
      {options.slot});
  if (!slot.ok()) return fail(slot.status());
  if (slot->rows() == 0) {
    return fail(FailedPreconditionError(fmt::format("replication slot '{}' does not exist; {}",
                                                    options.slot,
                                                    SetupHint(options.slot, options.publication))));
  }
  if (slot->Get(0, 0) != "pgoutput" || slot->Get(0, 1) != slot->Get(0, 2)) {
    return fail(FailedPreconditionError(fmt::format(
        "replication slot '{}' is a {} slot of database '{}', not a pgoutput slot of '{}'",
        options.slot, slot->Get(0, 0), slot->Get(0, 1), slot->Get(0, 2))));
  }
  auto slot_lsn = ParseLsn(slot->Get(0, 3));
  if (!slot_lsn.ok()) return fail(slot_lsn.status());
  auto pub = sql.ExecParams(
      "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1), "
      "to_regclass('ch_capture_progress') IS NOT NULL",
      {options.publication});
  if (!pub.ok()) return fail(pub.status());
  if (pub->Get(0, 0) != "t") {
    return fail(FailedPreconditionError(fmt::format("publication '{}' does not exist; {}",
                                                    options.publication,
                                                    SetupHint(options.slot, options.publication))));
  }
  if (pub->Get(0, 1) != "t") {
    return fail(FailedPreconditionError(fmt::format("table ch_capture_progress does not exist; {}",
                                                    SetupHint(options.slot, options.publication))));
  }
  // Databases of older builds lack the transaction count (numbering starts from the upgrade)
  // and the transaction in parts.
  auto upgraded = sql.Exec(kPgUpgradeProgressTable);
  if (!upgraded.ok()) return fail(upgraded.status());
  auto progress = sql.ExecParams(
      "SELECT confirmed_lsn::text, confirmed_lsn > pg_current_wal_lsn(), confirmed_txns, "
      "partial_lsn::text, partial_changes, COALESCE(confirmed_event_us, 0) FROM "
      "ch_capture_progress WHERE slot = $1",
      {options.slot});
  if (!progress.ok()) return fail(progress.status());
  if (progress->rows() == 1) {
    if (progress->Get(0, 1) == "t") {
      return fail(FailedPreconditionError(fmt::format(
          "the recorded progress of slot '{}' ({}) is ahead of the server's WAL: the database "
          "was restored or replaced; recreate the capture (DropCapture, CreateCapture) and "
          "backfill the history",
          options.slot, progress->Get(0, 0))));
    }
    auto lsn = ParseLsn(progress->Get(0, 0));
    if (!lsn.ok()) return fail(lsn.status());
    impl->confirmed = *lsn;
    auto txns = progress->GetInt(0, 2);
    if (!txns.ok()) return fail(txns.status());
    impl->confirmed_txns = *txns;
    auto time_us = progress->GetInt(0, 5);
    if (!time_us.ok()) return fail(time_us.status());
    impl->confirmed_time_us = *time_us;
    if (!progress->IsNull(0, 3)) {
      // A transaction in parts: its next parts come first, without what was confirmed.
      auto partial_lsn = ParseLsn(progress->Get(0, 3));
      if (!partial_lsn.ok()) return fail(partial_lsn.status());
      auto changes = progress->GetInt(0, 4);
      if (!changes.ok()) return fail(changes.status());
      impl->confirmed_partial = Impl::Partial{*partial_lsn, *txns + 1, *changes};
    }
  }
  impl->delivered = impl->confirmed;
  impl->delivered_txns = impl->confirmed_txns;
  impl->admit_last_us = impl->handed_last_us = impl->whole_handed_us = impl->confirmed_time_us;
  impl->handed = impl->confirmed_partial;
  if (impl->handed) {
    impl->delivered_txns = impl->handed->seq;
    impl->awaiting_last_piece = impl->handed->commit_lsn;
  }
  impl->slot_start = *slot_lsn;
  impl->feedback = std::max(impl->confirmed, *slot_lsn);
  impl->received = impl->feedback;
  Status started = impl->StartStreaming();
  if (!started.ok()) return fail(started);
  return std::unique_ptr<PgLogicalSource>(new PgLogicalSource(std::move(impl)));
}

Result<SourceBatch> PgLogicalSource::Poll(size_t max_events, Micros wait) {
  Impl& s = *impl_;
  max_events = std::max<size_t>(max_events, 1);
  const auto deadline = SteadyClock::now() + wait;
  if (s.repl == nullptr) {
    Status started = s.StartStreaming();
    if (!started.ok()) {
      return UnavailableError(started.message() + " (retrying on the next Poll)");
    }
  }
  while (true) {
    if (s.failure) {
      // What was complete before the failure still goes out (a transaction that cannot be
      // decoded must not hold back the ones before it); then the error, once.
      if (!s.ready.empty()) return s.TakeBatch(max_events);
      Status failed = *s.failure;
      s.Drop();
      return failed;
    }
    if (s.ready_events >= max_events) return s.TakeBatch(max_events);
    char* buf = nullptr;
    const int n = PQgetCopyData(s.repl->raw(), &buf, /*async=*/1);
    if (n > 0) {
      Status handled = s.Handle(std::string_view(buf, static_cast<size_t>(n)));
      PQfreemem(buf);
      if (handled.ok()) handled = s.MaybePeriodicFeedback();
      if (!handled.ok()) s.failure = handled;
      continue;
    }
    if (n < 0) {
      s.failure = s.StreamEnded(n);
      continue;
    }
    // Nothing more buffered: hand out what is complete, or wait for the socket.
    if (!s.ready.empty()) return s.TakeBatch(max_events);
    if (Status fed = s.MaybePeriodicFeedback(); !fed.ok()) {
      s.failure = fed;
      continue;
    }
    const auto now = SteadyClock::now();
    if (now >= deadline) return SourceBatch{};
    const auto until = std::min(deadline, s.last_feedback + s.options.feedback_interval);
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(until - now).count();
    pollfd pfd{PQsocket(s.repl->raw()), POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::max<int64_t>(ms, 0)));
    if (ready < 0 && errno != EINTR) {
      s.failure = s.StreamError("failed while waiting for data");
    } else if (PQconsumeInput(s.repl->raw()) == 0) {
      s.failure = s.StreamError("was lost");
    }
  }
}

Status PgLogicalSource::Confirm(const std::string& position) {
  Impl& s = *impl_;
  ASSIGN_OR_RETURN(SourcePosition pos, pg_logical::ParseSourcePosition(position));
  if (pos <= s.ConfirmedPosition()) return Status::OK();
  // The last batch end handed out at or before `pos`: what goes with it.
  size_t covered = 0;
  while (covered < s.unconfirmed.size() && s.unconfirmed[covered].pos <= pos) ++covered;
  const Impl::Handout* last = covered > 0 ? &s.unconfirmed[covered - 1] : nullptr;
  if (pos.part != 0 && (last == nullptr || last->pos != pos)) {
    return InvalidArgumentError(
        fmt::format("position: {} is not a part this source handed out", position));
  }
  if (pos.part == 0 && last != nullptr && last->partial) {
    return InvalidArgumentError(
        fmt::format("position: {} lies inside a transaction handed out in parts; confirm a batch's "
                    "end_position",
                    position));
  }
  const uint64_t lsn = pos.part != 0 ? std::max(s.confirmed, last->full_lsn) : pos.lsn;
  const int64_t txns = last != nullptr ? last->full_txns : s.confirmed_txns;
  const std::optional<Impl::Partial> partial =
      pos.part != 0 ? last->partial : std::optional<Impl::Partial>();
  // Record first: if the process dies before the server hears of it, the resent transactions
  // (and parts) are skipped on restart.
  const int64_t time_us = last != nullptr ? last->full_time_us : s.confirmed_time_us;
  RETURN_IF_ERROR(s.RecordProgress(lsn, txns, partial, time_us));
  s.unconfirmed.erase(s.unconfirmed.begin(),
                      s.unconfirmed.begin() + static_cast<std::ptrdiff_t>(covered));
  s.confirmed_txns = txns;
  s.confirmed_time_us = time_us;
  s.confirmed = lsn;
  s.confirmed_partial = partial;
  // The server hears only of whole transactions: the slot keeps the WAL of a transaction in
  // parts until its last part is confirmed.
  s.feedback = std::max(s.feedback, lsn);
  // A failure to tell the server only ends the stream (the next Poll reports it and reconnects);
  // the recorded position stands.
  if (Status fed = s.SendFeedback(false); !fed.ok()) s.failure = fed;
  return Status::OK();
}

Result<int64_t> PgLogicalSource::Backlog() {
  Impl& s = *impl_;
  ASSIGN_OR_RETURN(PgResult r,
                   s.SqlExec("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
                             "::bigint FROM pg_replication_slots WHERE slot_name = $1",
                             {s.options.slot}));
  if (r.rows() == 0) {
    return FailedPreconditionError(
        fmt::format("PostgreSQL {}: replication slot '{}' is gone", s.where, s.options.slot));
  }
  if (r.IsNull(0, 0)) return int64_t{0};
  return std::max<int64_t>(*r.GetInt(0, 0), 0);
}

Result<std::optional<CaptureHeartbeat>> PgLogicalSource::Heartbeat() {
  return std::optional<CaptureHeartbeat>();
}

// ---- capture management ------------------------------------------------------------------------

Status PgLogicalSource::CreateCapture(const std::string& url, const std::string& slot,
                                      const std::string& publication) {
  RETURN_IF_ERROR(CheckNames(url, slot, publication));
  ASSIGN_OR_RETURN(auto conn, ConnectSql(url, 5));
  auto fail = [&](const Status& s) {
    return s.WithContext(
        fmt::format("cannot create log capture (slot '{}', publication '{}')", slot, publication));
  };
  auto level = conn->Exec("SHOW wal_level");
  if (!level.ok()) return fail(level.status());
  if (level->Get(0, 0) != "logical") {
    return fail(FailedPreconditionError(fmt::format(
        "PostgreSQL {}: wal_level is '{}'; log capture needs wal_level = logical (set it in "
        "postgresql.conf and restart the server)",
        conn->where(), level->Get(0, 0))));
  }
  // Serialize concurrent runs; the lock goes away with the connection.
  RETURN_IF_ERROR(
      fail(conn->Exec(fmt::format("SELECT pg_advisory_lock({})", kCaptureSetupLockKey)).status()));
  RETURN_IF_ERROR(fail(EnsurePgSchema(*conn, /*replica_identity_full=*/true)));

  // The publication first: decoding looks it up as of each change, so it must predate the slot.
  const std::string pub = PgQuoteIdent(publication);
  auto exists =
      conn->ExecParams("SELECT count(*) FROM pg_publication WHERE pubname = $1", {publication});
  if (!exists.ok()) return fail(exists.status());
  if (exists->Get(0, 0) == "0") {
    RETURN_IF_ERROR(fail(conn->Exec(fmt::format("CREATE PUBLICATION {} FOR TABLE campaigns, "
                                                "ch_customer_txn WITH (publish = 'insert, "
                                                "update, delete')",
                                                pub))
                             .status()));
  } else {
    for (const char* table : {kPgCampaignsTable, kPgCustomerTxnTable}) {
      auto has = conn->ExecParams(
          "SELECT count(*) FROM pg_publication_tables WHERE pubname = $1 AND schemaname = "
          "current_schema() AND tablename = $2",
          {publication, std::string(table)});
      if (!has.ok()) return fail(has.status());
      if (has->Get(0, 0) == "0") {
        RETURN_IF_ERROR(fail(
            conn->Exec(fmt::format("ALTER PUBLICATION {} ADD TABLE {}", pub, table)).status()));
      }
    }
  }

  auto existing = conn->ExecParams(
      "SELECT plugin, database, current_database() FROM pg_replication_slots WHERE slot_name = $1",
      {slot});
  if (!existing.ok()) return fail(existing.status());
  if (existing->rows() == 1) {
    if (existing->Get(0, 0) != "pgoutput" || existing->Get(0, 1) != existing->Get(0, 2)) {
      return fail(FailedPreconditionError(fmt::format(
          "replication slot '{}' exists as a {} slot of database '{}'; choose another name or drop "
          "it",
          slot, existing->Get(0, 0), existing->Get(0, 1))));
    }
    return Status::OK();
  }
  RETURN_IF_ERROR(
      fail(conn->ExecParams("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", {slot})
               .status()));
  // A new slot starts from now: the position recorded for an older slot of that name is void.
  // Its transaction count stays: numbering goes on, so a history store never sees a txn_seq
  // twice (the transactions committed while capture was off are simply not numbered).
  RETURN_IF_ERROR(fail(conn->Exec(kPgUpgradeProgressTable).status()));
  return fail(conn->ExecParams("UPDATE ch_capture_progress SET confirmed_lsn = '0/0', partial_lsn "
                               "= NULL, partial_changes = 0 WHERE slot = $1",
                               {slot})
                  .status());
}

Status PgLogicalSource::DropCapture(const std::string& url, const std::string& slot,
                                    const std::string& publication) {
  RETURN_IF_ERROR(CheckNames(url, slot, publication));
  ASSIGN_OR_RETURN(auto conn, ConnectSql(url, 5));
  auto fail = [&](const Status& s) {
    return s.WithContext(
        fmt::format("cannot drop log capture (slot '{}', publication '{}')", slot, publication));
  };
  // A consumer that just disconnected may hold the slot for a moment longer.
  const auto deadline = SteadyClock::now() + std::chrono::seconds(5);
  while (true) {
    auto r = conn->ExecParams(
        "SELECT active, COALESCE(active_pid, 0), database = current_database() "
        "FROM pg_replication_slots WHERE slot_name = $1",
        {slot});
    if (!r.ok()) return fail(r.status());
    if (r->rows() == 0) break;
    if (r->Get(0, 2) != "t") {
      return fail(FailedPreconditionError(
          fmt::format("replication slot '{}' belongs to another database", slot)));
    }
    if (r->Get(0, 0) != "t") {
      auto dropped = conn->ExecParams("SELECT pg_drop_replication_slot($1)", {slot});
      if (dropped.ok()) break;
      if (dropped.status().code() != StatusCode::kUnavailable) return fail(dropped.status());
    }
    if (SteadyClock::now() >= deadline) {
      return fail(FailedPreconditionError(
          fmt::format("replication slot '{}' is in use by server process {}; stop its relay first",
                      slot, r->Get(0, 1))));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  RETURN_IF_ERROR(
      fail(conn->Exec("DROP PUBLICATION IF EXISTS " + PgQuoteIdent(publication)).status()));
  auto has_progress = conn->Exec("SELECT to_regclass('ch_capture_progress') IS NOT NULL");
  if (!has_progress.ok()) return fail(has_progress.status());
  if (has_progress->Get(0, 0) == "t") {
    // Keep the transaction count (see CreateCapture); the position dies with the slot.
    RETURN_IF_ERROR(fail(conn->Exec(kPgUpgradeProgressTable).status()));
    RETURN_IF_ERROR(fail(conn->ExecParams("UPDATE ch_capture_progress SET confirmed_lsn = '0/0', "
                                          "partial_lsn = NULL, partial_changes = 0 WHERE slot = $1",
                                          {slot})
                             .status()));
  }
  return Status::OK();
}

Result<PgSlotStatus> PgLogicalSource::SlotStatus(const std::string& url, const std::string& slot) {
  if (url.empty()) return InvalidArgumentError("url: must not be empty");
  RETURN_IF_ERROR(CheckName("slot", slot, /*allow_upper=*/false));
  ASSIGN_OR_RETURN(auto conn, ConnectSql(url, 5));
  ASSIGN_OR_RETURN(
      PgResult r,
      conn->ExecParams(
          "SELECT active, active_pid, COALESCE(confirmed_flush_lsn::text, ''), "
          "COALESCE(restart_lsn::text, ''), "
          "COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, 0), "
          "COALESCE(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint, 0), "
          "COALESCE(wal_status, '') FROM pg_replication_slots WHERE slot_name = $1",
          {slot}));
  PgSlotStatus st;
  if (r.rows() == 0) return st;
  st.exists = true;
  st.active = r.Get(0, 0) == "t";
  if (!r.IsNull(0, 1)) {
    ASSIGN_OR_RETURN(int64_t pid, r.GetInt(0, 1));
    st.active_pid = pid;
  }
  st.confirmed_flush_lsn = std::string(r.Get(0, 2));
  st.restart_lsn = std::string(r.Get(0, 3));
  ASSIGN_OR_RETURN(st.retained_wal_bytes, r.GetInt(0, 4));
  ASSIGN_OR_RETURN(st.unconfirmed_wal_bytes, r.GetInt(0, 5));
  st.wal_status = std::string(r.Get(0, 6));
  return st;
}

}  // namespace ch
