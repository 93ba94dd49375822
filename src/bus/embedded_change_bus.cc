#include "bus/embedded_change_bus.h"

#include <fmt/format.h>

#include <charconv>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <set>

#include "bus/bus_limits.h"
#include "common/sqlite.h"

namespace ch {

namespace {

// The file layout. Messages are stored once; bus_deliveries holds one row per (subscription,
// message) until that subscription acknowledges it, with the lease state; `pending` counts the
// rows left so the message row goes with the last acknowledgement.
constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS bus_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_topics(name TEXT PRIMARY KEY, created_us INTEGER NOT NULL)
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_subscriptions(
  name TEXT PRIMARY KEY,
  topic TEXT NOT NULL,
  ack_deadline_us INTEGER NOT NULL,
  ordered INTEGER NOT NULL,
  created_us INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bus_messages(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  topic TEXT NOT NULL,
  ordering_key TEXT NOT NULL,
  data BLOB NOT NULL,
  attributes BLOB NOT NULL,
  publish_us INTEGER NOT NULL,
  pending INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bus_deliveries(
  subscription TEXT NOT NULL,
  message_id INTEGER NOT NULL,
  ordering_key TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  lease_until_us INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(subscription, message_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bus_deliveries_by_lease ON bus_deliveries(subscription, lease_until_us);
)sql";

// Attributes as length-prefixed pairs (u32 little-endian length, bytes), binary-safe.
std::string EncodeAttributes(const std::map<std::string, std::string>& attributes) {
  std::string out;
  auto put = [&](const std::string& s) {
    uint32_t n = static_cast<uint32_t>(s.size());
    char len[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                   static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
    out.append(len, 4);
    out.append(s);
  };
  for (const auto& [k, v] : attributes) {
    put(k);
    put(v);
  }
  return out;
}

Result<std::map<std::string, std::string>> DecodeAttributes(std::string_view in) {
  std::map<std::string, std::string> out;
  auto get = [&](std::string& s) {
    if (in.size() < 4) return false;
    uint32_t n = 0;
    for (int i = 3; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(in[i]);
    in.remove_prefix(4);
    if (in.size() < n) return false;
    s.assign(in.substr(0, n));
    in.remove_prefix(n);
    return true;
  };
  while (!in.empty()) {
    std::string k, v;
    if (!get(k) || !get(v)) return DataLossError("embedded bus: corrupt message attributes");
    out.emplace(std::move(k), std::move(v));
  }
  return out;
}

std::string MakeAckId(int64_t message_id, int64_t attempt) {
  return fmt::format("{}:{}", message_id, attempt);
}

Status ParseAckId(std::string_view id, int64_t& message_id, int64_t& attempt) {
  size_t colon = id.find(':');
  if (colon != std::string_view::npos) {
    auto a = std::from_chars(id.data(), id.data() + colon, message_id);
    auto b = std::from_chars(id.data() + colon + 1, id.data() + id.size(), attempt);
    if (a.ec == std::errc() && a.ptr == id.data() + colon && b.ec == std::errc() &&
        b.ptr == id.data() + id.size()) {
      return Status::OK();
    }
  }
  return InvalidArgumentError(fmt::format("malformed ack id '{}'", id));
}

}  // namespace

struct EmbeddedChangeBus::Impl {
  EmbeddedChangeBusOptions options;
  const Clock* clock;
  std::mutex db_mu;  // guards db (one connection, one thread at a time)
  std::unique_ptr<SqliteDb> db;

  // Wakes local Pull waiters when this object publishes or returns messages to the queue.
  std::mutex wake_mu;
  std::condition_variable wake_cv;
  uint64_t wake_generation = 0;

  void Wake() {
    {
      std::lock_guard lock(wake_mu);
      wake_generation++;
    }
    wake_cv.notify_all();
  }

  int64_t NowUs() const { return ToUnixMicros(clock->Now()); }

  // REQUIRES: db_mu held.
  Status RequireSubscription(std::string_view subscription) {
    ASSIGN_OR_RETURN(SqliteStmt * q, db->Prepare("SELECT 1 FROM bus_subscriptions WHERE name = ?"));
    q->Bind(1, subscription);
    ASSIGN_OR_RETURN(bool found, q->Step());
    q->Reset();
    if (!found) return NotFoundError(fmt::format("subscription '{}' not found", subscription));
    return Status::OK();
  }

  // One look at the queue: lease what is due. REQUIRES: db_mu held.
  Result<std::vector<Delivery>> TryPull(std::string_view subscription, size_t max) {
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*db, /*immediate=*/true));
    ASSIGN_OR_RETURN(SqliteStmt * sq,
                     db->Prepare("SELECT ack_deadline_us, ordered FROM bus_subscriptions "
                                 "WHERE name = ?"));
    sq->Bind(1, subscription);
    ASSIGN_OR_RETURN(bool found, sq->Step());
    if (!found) return NotFoundError(fmt::format("subscription '{}' not found", subscription));
    int64_t ack_deadline_us = sq->ColumnInt64(0);
    bool ordered = sq->ColumnInt64(1) != 0;
    sq->Reset();
    int64_t now = NowUs();

    std::set<std::string> blocked;
    if (ordered) {
      ASSIGN_OR_RETURN(SqliteStmt * bq,
                       db->Prepare("SELECT DISTINCT ordering_key FROM bus_deliveries "
                                   "WHERE subscription = ? AND lease_until_us > ? "
                                   "AND ordering_key != ''"));
      bq->Bind(1, subscription).Bind(2, now);
      while (true) {
        ASSIGN_OR_RETURN(bool row, bq->Step());
        if (!row) break;
        blocked.insert(bq->ColumnString(0));
      }
      bq->Reset();
    }

    struct Pick {
      int64_t id;
      int64_t attempt;
      std::string key;
    };
    std::vector<Pick> picks;
    ASSIGN_OR_RETURN(SqliteStmt * cq,
                     db->Prepare("SELECT message_id, ordering_key, attempts FROM bus_deliveries "
                                 "WHERE subscription = ? AND lease_until_us <= ? "
                                 "ORDER BY message_id LIMIT ?"));
    cq->Bind(1, subscription).Bind(2, now).Bind(3, static_cast<int64_t>(options.scan_limit));
    while (picks.size() < max) {
      ASSIGN_OR_RETURN(bool row, cq->Step());
      if (!row) break;
      std::string key = cq->ColumnString(1);
      if (ordered && !key.empty() && blocked.contains(key)) continue;
      picks.push_back(Pick{cq->ColumnInt64(0), cq->ColumnInt64(2) + 1, std::move(key)});
    }
    cq->Reset();
    if (picks.empty()) return std::vector<Delivery>{};  // read only: the rollback is free

    ASSIGN_OR_RETURN(SqliteStmt * lease,
                     db->Prepare("UPDATE bus_deliveries SET attempts = ?, lease_until_us = ? "
                                 "WHERE subscription = ? AND message_id = ?"));
    ASSIGN_OR_RETURN(SqliteStmt * mq,
                     db->Prepare("SELECT data, attributes, publish_us FROM bus_messages "
                                 "WHERE id = ?"));
    std::vector<Delivery> out;
    out.reserve(picks.size());
    for (Pick& p : picks) {
      lease->Bind(1, p.attempt).Bind(2, now + ack_deadline_us).Bind(3, subscription).Bind(4, p.id);
      RETURN_IF_ERROR(lease->Run());
      mq->Bind(1, p.id);
      ASSIGN_OR_RETURN(bool row, mq->Step());
      if (!row) {
        mq->Reset();
        return DataLossError(
            fmt::format("embedded bus '{}': message {} of subscription '{}' is "
                        "missing",
                        db->path(), p.id, subscription));
      }
      Delivery d;
      d.ack_id = MakeAckId(p.id, p.attempt);
      d.message.data = mq->ColumnString(0);
      d.message.ordering_key = std::move(p.key);
      auto attributes = DecodeAttributes(mq->ColumnText(1));
      if (!attributes.ok()) {
        mq->Reset();
        return attributes.status();
      }
      d.message.attributes = std::move(attributes).value();
      d.publish_time = FromUnixMicros(mq->ColumnInt64(2));
      d.delivery_attempt = static_cast<int>(p.attempt);
      d.message_id = std::to_string(p.id);
      mq->Reset();
      out.push_back(std::move(d));
    }
    RETURN_IF_ERROR(tx->Commit());
    return out;
  }

  // Run `sql` (parameters ?1 subscription, ?2 message id, ?3 attempt, then ?4, ?5, ... from
  // `extra`) for every handle.
  Status ForEachHandle(std::string_view subscription, std::span<const std::string> ack_ids,
                       const std::string& sql, std::vector<int64_t> extra, bool is_ack) {
    std::vector<std::pair<int64_t, int64_t>> handles;
    handles.reserve(ack_ids.size());
    for (const std::string& id : ack_ids) {
      int64_t m = 0, a = 0;
      RETURN_IF_ERROR(ParseAckId(id, m, a));
      handles.emplace_back(m, a);
    }
    std::lock_guard lock(db_mu);
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*db, /*immediate=*/true));
    RETURN_IF_ERROR(RequireSubscription(subscription));
    ASSIGN_OR_RETURN(SqliteStmt * st, db->Prepare(sql));
    SqliteStmt* dec = nullptr;
    SqliteStmt* del = nullptr;
    if (is_ack) {
      ASSIGN_OR_RETURN(dec, db->Prepare("UPDATE bus_messages SET pending = pending - 1 "
                                        "WHERE id = ?"));
      ASSIGN_OR_RETURN(del, db->Prepare("DELETE FROM bus_messages WHERE id = ? AND pending <= 0"));
    }
    for (auto [m, a] : handles) {
      st->Bind(1, subscription).Bind(2, m).Bind(3, a);
      for (size_t i = 0; i < extra.size(); ++i) st->Bind(static_cast<int>(4 + i), extra[i]);
      RETURN_IF_ERROR(st->Run());
      if (is_ack && db->Changes() == 1) {
        dec->Bind(1, m);
        RETURN_IF_ERROR(dec->Run());
        del->Bind(1, m);
        RETURN_IF_ERROR(del->Run());
      }
    }
    return tx->Commit();
  }
};

EmbeddedChangeBus::EmbeddedChangeBus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EmbeddedChangeBus::~EmbeddedChangeBus() = default;

Result<std::unique_ptr<EmbeddedChangeBus>> EmbeddedChangeBus::Open(
    const EmbeddedChangeBusOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("embedded bus: path is empty");
  if (options.clock == nullptr) return InvalidArgumentError("embedded bus: clock is null");
  if (options.scan_limit == 0) return InvalidArgumentError("embedded bus: scan_limit is 0");
  SqliteOptions sqlite_options;
  sqlite_options.synchronous = options.synchronous;
  sqlite_options.cache_kib = 8192;
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(options.path, sqlite_options));
  {
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(*db, /*immediate=*/true));
    RETURN_IF_ERROR(db->Exec(kSchema));
    ASSIGN_OR_RETURN(SqliteStmt * q,
                     db->Prepare("SELECT value FROM bus_meta WHERE key = 'schema_version'"));
    ASSIGN_OR_RETURN(bool found, q->Step());
    std::string version = found ? q->ColumnString(0) : "";
    q->Reset();
    if (!found) {
      ASSIGN_OR_RETURN(SqliteStmt * ins, db->Prepare("INSERT INTO bus_meta(key, value) "
                                                     "VALUES('schema_version', ?)"));
      ins->Bind(1, std::to_string(kSchemaVersion));
      RETURN_IF_ERROR(ins->Run());
    } else if (version != std::to_string(kSchemaVersion)) {
      return FailedPreconditionError(
          fmt::format("embedded bus '{}' has queue schema version {}, this build reads {}",
                      options.path, version, kSchemaVersion));
    }
    RETURN_IF_ERROR(tx->Commit());
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->clock = options.clock;
  impl->db = std::move(db);
  return std::unique_ptr<EmbeddedChangeBus>(new EmbeddedChangeBus(std::move(impl)));
}

Status EmbeddedChangeBus::EnsureTopic(std::string_view topic) {
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  std::lock_guard lock(impl_->db_mu);
  ASSIGN_OR_RETURN(SqliteStmt * q, impl_->db->Prepare("INSERT INTO bus_topics(name, created_us) "
                                                      "VALUES(?, ?) ON CONFLICT DO NOTHING"));
  q->Bind(1, topic).Bind(2, impl_->NowUs());
  return q->Run();
}

Status EmbeddedChangeBus::EnsureSubscription(std::string_view subscription, std::string_view topic,
                                             const SubscriptionOptions& options) {
  RETURN_IF_ERROR(ValidateBusName("subscription", subscription));
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  RETURN_IF_ERROR(ValidateLeaseDuration("ack deadline", options.ack_deadline, false));
  std::lock_guard lock(impl_->db_mu);
  SqliteDb& db = *impl_->db;
  ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
  ASSIGN_OR_RETURN(SqliteStmt * q,
                   db.Prepare("SELECT topic, ordered FROM bus_subscriptions WHERE name = ?"));
  q->Bind(1, subscription);
  ASSIGN_OR_RETURN(bool exists, q->Step());
  if (exists) {
    std::string existing_topic = q->ColumnString(0);
    bool ordered = q->ColumnInt64(1) != 0;
    q->Reset();
    if (existing_topic != topic) {
      return FailedPreconditionError(
          fmt::format("subscription '{}' exists on topic '{}', not on '{}'", subscription,
                      existing_topic, topic));
    }
    if (ordered != options.ordered) {
      return FailedPreconditionError(
          fmt::format("subscription '{}' exists with ordering {}, requested {}", subscription,
                      ordered ? "on" : "off", options.ordered ? "on" : "off"));
    }
    return Status::OK();
  }
  q->Reset();
  ASSIGN_OR_RETURN(SqliteStmt * t, db.Prepare("SELECT 1 FROM bus_topics WHERE name = ?"));
  t->Bind(1, topic);
  ASSIGN_OR_RETURN(bool topic_exists, t->Step());
  t->Reset();
  if (!topic_exists) return NotFoundError(fmt::format("topic '{}' not found", topic));
  ASSIGN_OR_RETURN(SqliteStmt * ins,
                   db.Prepare("INSERT INTO bus_subscriptions(name, topic, ack_deadline_us, "
                              "ordered, created_us) VALUES(?, ?, ?, ?, ?)"));
  ins->Bind(1, subscription)
      .Bind(2, topic)
      .Bind(3, static_cast<int64_t>(options.ack_deadline.count()))
      .Bind(4, options.ordered ? 1 : 0)
      .Bind(5, impl_->NowUs());
  RETURN_IF_ERROR(ins->Run());
  return tx->Commit();
}

Status EmbeddedChangeBus::Publish(std::string_view topic, std::span<const BusMessage> messages) {
  RETURN_IF_ERROR(ValidateMessages(messages));
  {
    std::lock_guard lock(impl_->db_mu);
    SqliteDb& db = *impl_->db;
    ASSIGN_OR_RETURN(auto tx, SqliteTransaction::Begin(db, /*immediate=*/true));
    ASSIGN_OR_RETURN(SqliteStmt * t, db.Prepare("SELECT 1 FROM bus_topics WHERE name = ?"));
    t->Bind(1, topic);
    ASSIGN_OR_RETURN(bool topic_exists, t->Step());
    t->Reset();
    if (!topic_exists) return NotFoundError(fmt::format("topic '{}' not found", topic));
    std::vector<std::string> subscriptions;
    ASSIGN_OR_RETURN(
        SqliteStmt * sq,
        db.Prepare("SELECT name FROM bus_subscriptions WHERE topic = ? ORDER BY name"));
    sq->Bind(1, topic);
    while (true) {
      ASSIGN_OR_RETURN(bool row, sq->Step());
      if (!row) break;
      subscriptions.push_back(sq->ColumnString(0));
    }
    sq->Reset();
    // As on Pub/Sub, a message published to a topic without subscriptions goes nowhere.
    if (subscriptions.empty() || messages.empty()) return Status::OK();
    ASSIGN_OR_RETURN(SqliteStmt * ins,
                     db.Prepare("INSERT INTO bus_messages(topic, ordering_key, data, attributes, "
                                "publish_us, pending) VALUES(?, ?, ?, ?, ?, ?)"));
    ASSIGN_OR_RETURN(SqliteStmt * del,
                     db.Prepare("INSERT INTO bus_deliveries(subscription, message_id, "
                                "ordering_key) VALUES(?, ?, ?)"));
    int64_t now = impl_->NowUs();
    for (const BusMessage& m : messages) {
      ins->Bind(1, topic)
          .Bind(2, m.ordering_key)
          .BindBlob(3, m.data)
          .BindBlob(4, EncodeAttributes(m.attributes))
          .Bind(5, now)
          .Bind(6, static_cast<int64_t>(subscriptions.size()));
      RETURN_IF_ERROR(ins->Run());
      int64_t id = db.LastInsertRowId();
      for (const std::string& s : subscriptions) {
        del->Bind(1, s).Bind(2, id).Bind(3, m.ordering_key);
        RETURN_IF_ERROR(del->Run());
      }
    }
    RETURN_IF_ERROR(tx->Commit());
  }
  impl_->Wake();
  return Status::OK();
}

Result<std::vector<Delivery>> EmbeddedChangeBus::Pull(std::string_view subscription, size_t max,
                                                      Micros wait) {
  auto deadline = std::chrono::steady_clock::now() + wait;
  Micros sleep = std::chrono::milliseconds(2);
  while (true) {
    uint64_t generation;
    {
      std::lock_guard lock(impl_->wake_mu);
      generation = impl_->wake_generation;
    }
    Result<std::vector<Delivery>> r = std::vector<Delivery>{};
    if (max > 0) {
      std::lock_guard lock(impl_->db_mu);
      r = impl_->TryPull(subscription, max);
    } else {
      std::lock_guard lock(impl_->db_mu);
      RETURN_IF_ERROR(impl_->RequireSubscription(subscription));
    }
    auto now = std::chrono::steady_clock::now();
    if (!r.ok() || !r->empty() || max == 0 || now >= deadline) return r;
    // Other processes signal nothing: poll the file, sooner at first, then every poll_interval.
    std::unique_lock lock(impl_->wake_mu);
    impl_->wake_cv.wait_until(lock, std::min(deadline, now + sleep),
                              [&] { return impl_->wake_generation != generation; });
    sleep = std::min(sleep * 2, impl_->options.poll_interval);
  }
}

Status EmbeddedChangeBus::Ack(std::string_view subscription, std::span<const std::string> ack_ids) {
  return impl_->ForEachHandle(subscription, ack_ids,
                              "DELETE FROM bus_deliveries WHERE subscription = ?1 AND "
                              "message_id = ?2 AND attempts = ?3",
                              {}, /*is_ack=*/true);
}

Status EmbeddedChangeBus::Nack(std::string_view subscription,
                               std::span<const std::string> ack_ids) {
  RETURN_IF_ERROR(impl_->ForEachHandle(subscription, ack_ids,
                                       "UPDATE bus_deliveries SET lease_until_us = 0 WHERE "
                                       "subscription = ?1 AND message_id = ?2 AND attempts = ?3",
                                       {}, /*is_ack=*/false));
  impl_->Wake();
  return Status::OK();
}

Status EmbeddedChangeBus::ExtendDeadline(std::string_view subscription,
                                         std::span<const std::string> ack_ids, Micros deadline) {
  RETURN_IF_ERROR(ValidateLeaseDuration("ack deadline extension", deadline, true));
  if (deadline == Micros(0)) return Nack(subscription, ack_ids);
  int64_t now = impl_->NowUs();
  // Only a lease that is still held is extended: an expired one may already be someone else's.
  return impl_->ForEachHandle(
      subscription, ack_ids,
      "UPDATE bus_deliveries SET lease_until_us = ?4 WHERE subscription = ?1 AND "
      "message_id = ?2 AND attempts = ?3 AND lease_until_us > ?5",
      {now + deadline.count(), now}, /*is_ack=*/false);
}

Result<int64_t> EmbeddedChangeBus::Unacked(std::string_view subscription) {
  std::lock_guard lock(impl_->db_mu);
  ASSIGN_OR_RETURN(
      SqliteStmt * q,
      impl_->db->Prepare("SELECT count(*) FROM bus_deliveries WHERE subscription = ?"));
  q->Bind(1, subscription);
  ASSIGN_OR_RETURN(bool row, q->Step());
  int64_t n = row ? q->ColumnInt64(0) : 0;
  q->Reset();
  return n;
}

}  // namespace ch
