#include "bench/peers/sql_peer.h"

#include <fmt/format.h>

#include <utility>

#include "campaign/campaign.h"
#include "common/clock.h"

namespace ch::peers {
namespace {

bool IsMaria(SqlFlavor f) { return f == SqlFlavor::kMariaPlain || f == SqlFlavor::kMariaVersioned; }

// The campaign columns, in the order every query selects them.
constexpr const char* kColumns =
    "id, customer_id, name, status, priority, trigger_event, audience_segment, start_at, end_at, "
    "frequency_cap, content, version, updated_by";

// A string literal. Both servers run with standard strings: PostgreSQL's default, MariaDB's
// NO_BACKSLASH_ESCAPES (set per session), so doubling the quote is the only escape.
std::string Lit(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string TimeLit(const std::optional<Timestamp>& t) {
  return t ? std::to_string(ToUnixMicros(*t)) : "NULL";
}

std::string RowValues(const Campaign& c) {
  return fmt::format("({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, 1, {})", c.id, c.customer_id,
                     Lit(c.name), Lit(CampaignStatusName(c.status)), c.priority,
                     Lit(c.trigger_event), Lit(c.audience_segment), TimeLit(c.start_at),
                     TimeLit(c.end_at), c.frequency_cap, Lit(c.content), Lit(c.updated_by));
}

// One statement of an op and the number of rows it must touch.
struct Stmt {
  std::string sql;
  int64_t rows = 0;
};

Stmt Insert(const std::vector<Campaign>& rows) {
  std::string sql = fmt::format("INSERT INTO campaigns ({}) VALUES ", kColumns);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (i > 0) sql += ", ";
    sql += RowValues(rows[i]);
  }
  return {sql, static_cast<int64_t>(rows.size())};
}

Stmt Shift(int64_t customer_id, const WorkloadShift& s, const std::string& actor,
           std::optional<int64_t> skip_id) {
  std::string sql = fmt::format(
      "UPDATE campaigns SET priority = priority + ({}), version = version + 1, updated_by = {} "
      "WHERE customer_id = {} AND priority >= {}",
      s.delta, Lit(actor), customer_id, s.lo);
  if (s.hi) sql += fmt::format(" AND priority <= {}", *s.hi);
  if (skip_id) sql += fmt::format(" AND id <> {}", *skip_id);
  return {sql, s.n};
}

Stmt Update(const WorkloadUpdate& u) {
  std::string set;
  auto add = [&](std::string_view column, const std::string& value) {
    set += fmt::format("{} = {}, ", column, value);
  };
  const CampaignPatch& p = u.set;
  if (p.name) add("name", Lit(*p.name));
  if (p.status) add("status", Lit(CampaignStatusName(*p.status)));
  if (p.trigger_event) add("trigger_event", Lit(*p.trigger_event));
  if (p.audience_segment) add("audience_segment", Lit(*p.audience_segment));
  if (p.start_at) add("start_at", TimeLit(*p.start_at));
  if (p.end_at) add("end_at", TimeLit(*p.end_at));
  if (p.frequency_cap) add("frequency_cap", std::to_string(*p.frequency_cap));
  if (p.content) add("content", Lit(*p.content));
  return {fmt::format("UPDATE campaigns SET {}version = version + 1, updated_by = {} WHERE id = {} "
                      "AND customer_id = {}",
                      set, Lit(u.actor), u.id, u.customer_id),
          1};
}

// Return the statements of one applied line, in order.
std::vector<Stmt> OpStatements(const WorkloadLine& line) {
  switch (line.op) {
    case WorkloadOp::kSeed:
      return {Insert(line.seed().rows)};
    case WorkloadOp::kCreate: {
      const WorkloadCreate& c = line.create();
      return {Shift(c.customer_id, c.shift, c.actor, std::nullopt), Insert({c.row})};
    }
    case WorkloadOp::kUpdate:
    case WorkloadOp::kBurst:
      return {Update(line.update())};
    case WorkloadOp::kReorder: {
      const WorkloadReorder& r = line.reorder();
      return {Shift(r.customer_id, r.shift, r.actor, r.id),
              {fmt::format("UPDATE campaigns SET priority = {}, version = version + 1, "
                           "updated_by = {} WHERE id = {} AND customer_id = {} AND priority = {}",
                           r.to, Lit(r.actor), r.id, r.customer_id, r.from),
               1}};
    }
    case WorkloadOp::kDelete: {
      const WorkloadDelete& d = line.del();
      return {{fmt::format("DELETE FROM campaigns WHERE id = {} AND customer_id = {} AND "
                           "priority = {}",
                           d.id, d.customer_id, d.priority),
               1},
              Shift(d.customer_id, d.shift, d.actor, std::nullopt)};
    }
    case WorkloadOp::kHeader:
    case WorkloadOp::kFooter:
      break;
  }
  return {};
}

std::string PgTable(bool maria) {
  // MariaDB needs bounded VARCHARs for indexable text; the limits are campaign.h's.
  if (maria) {
    return "CREATE TABLE campaigns (id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, "
           "name VARCHAR(200) NOT NULL, status VARCHAR(16) NOT NULL, priority BIGINT NOT NULL, "
           "trigger_event VARCHAR(200) NOT NULL, audience_segment VARCHAR(200) NOT NULL, "
           "start_at BIGINT NULL, end_at BIGINT NULL, frequency_cap BIGINT NOT NULL, "
           "content JSON NOT NULL, version BIGINT NOT NULL, updated_by VARCHAR(128) NOT NULL, "
           "KEY campaigns_by_customer (customer_id, priority)) ENGINE=InnoDB "
           "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
  }
  return "CREATE TABLE campaigns (id bigint PRIMARY KEY, customer_id bigint NOT NULL, "
         "name text NOT NULL, status text NOT NULL, priority bigint NOT NULL, "
         "trigger_event text NOT NULL, audience_segment text NOT NULL, start_at bigint, "
         "end_at bigint, frequency_cap bigint NOT NULL, content jsonb NOT NULL, "
         "version bigint NOT NULL, updated_by text NOT NULL); "
         "CREATE INDEX campaigns_by_customer ON campaigns (customer_id, priority)";
}

// The DDL of each flavor. The indexes are the ones a user would add for the two queries.
std::string Ddl(SqlFlavor f) {
  switch (f) {
    case SqlFlavor::kPgPlain:
      return PgTable(false);
    case SqlFlavor::kPgPeriods:
      return PgTable(false) +
             "; SELECT periods.add_system_time_period('campaigns'); "
             "SELECT periods.add_system_versioning('campaigns'); "
             "CREATE INDEX ON campaigns_history (customer_id, system_time_start); "
             "CREATE INDEX ON campaigns_history (id, system_time_start)";
    case SqlFlavor::kPgAudit:
      return PgTable(false) +
             "; CREATE TABLE campaigns_audit (op char(1) NOT NULL, changed_at timestamptz NOT "
             "NULL, LIKE campaigns); "
             "CREATE INDEX ON campaigns_audit (customer_id, changed_at); "
             "CREATE INDEX ON campaigns_audit (id, changed_at); "
             "CREATE FUNCTION campaigns_audit_row() RETURNS trigger LANGUAGE plpgsql AS $$ "
             "BEGIN IF TG_OP = 'DELETE' THEN INSERT INTO campaigns_audit SELECT 'D', now(), "
             "OLD.*; ELSE INSERT INTO campaigns_audit SELECT left(TG_OP, 1), now(), NEW.*; END "
             "IF; RETURN NULL; END $$; "
             "CREATE TRIGGER campaigns_audit AFTER INSERT OR UPDATE OR DELETE ON campaigns FOR "
             "EACH ROW EXECUTE FUNCTION campaigns_audit_row()";
    case SqlFlavor::kMariaPlain:
      return PgTable(true);
    case SqlFlavor::kMariaVersioned:
      return PgTable(true) + " WITH SYSTEM VERSIONING";
  }
  return "";
}

std::string FlavorName(SqlFlavor f) {
  switch (f) {
    case SqlFlavor::kPgPlain:
      return "PostgreSQL, no versioning";
    case SqlFlavor::kPgPeriods:
      return "PostgreSQL + periods";
    case SqlFlavor::kPgAudit:
      return "PostgreSQL audit trigger";
    case SqlFlavor::kMariaPlain:
      return "MariaDB, no versioning";
    case SqlFlavor::kMariaVersioned:
      return "MariaDB system-versioned";
  }
  return "?";
}

Result<int64_t> ParseInt(const std::optional<std::string>& v, std::string_view what) {
  if (!v) return InternalError(fmt::format("{}: NULL", what));
  try {
    return std::stoll(*v);
  } catch (...) {
    return InternalError(fmt::format("{}: not a number: {}", what, *v));
  }
}

// Return the row (columns in kColumns order) as the model renders it.
Result<testing::ModelCampaign> RowToModel(const SqlRow& row) {
  if (row.size() != 13) return InternalError("peer row: expected 13 columns");
  Campaign c;
  ASSIGN_OR_RETURN(c.id, ParseInt(row[0], "id"));
  ASSIGN_OR_RETURN(c.customer_id, ParseInt(row[1], "customer_id"));
  c.name = row[2].value_or("");
  ASSIGN_OR_RETURN(c.status, ParseCampaignStatus(row[3].value_or("")));
  ASSIGN_OR_RETURN(c.priority, ParseInt(row[4], "priority"));
  c.trigger_event = row[5].value_or("");
  c.audience_segment = row[6].value_or("");
  for (int i : {7, 8}) {
    if (!row[i]) continue;
    ASSIGN_OR_RETURN(int64_t us, ParseInt(row[i], "start_at/end_at"));
    (i == 7 ? c.start_at : c.end_at) = FromUnixMicros(us);
  }
  ASSIGN_OR_RETURN(c.frequency_cap, ParseInt(row[9], "frequency_cap"));
  // PostgreSQL's jsonb re-spaces the text; the model's content is canonical.
  ASSIGN_OR_RETURN(c.content, CanonicalContent(row[10].value_or("")));
  ASSIGN_OR_RETURN(c.version, ParseInt(row[11], "version"));
  c.updated_by = row[12].value_or("");
  return testing::ToModelCampaign(c);
}

class SqlPeer final : public Peer {
 public:
  SqlPeer(SqlFlavor flavor, std::unique_ptr<SqlConn> conn)
      : flavor_(flavor), conn_(std::move(conn)) {}

  std::string Name() const override { return FlavorName(flavor_); }
  bool Versioned() const override {
    return flavor_ != SqlFlavor::kPgPlain && flavor_ != SqlFlavor::kMariaPlain;
  }

  Status Apply(const WorkloadLine& line) override {
    if (!line.applied()) return Status::OK();
    std::vector<Stmt> stmts = OpStatements(line);
    std::string sql = IsMaria(flavor_) ? "START TRANSACTION" : "BEGIN";
    for (const Stmt& s : stmts) sql += "; " + s.sql;
    sql += "; COMMIT";
    std::vector<int64_t> affected;
    if (Status s = conn_->Exec(sql, &affected); !s.ok()) {
      conn_->Exec("ROLLBACK").IgnoreError();
      return InternalError(fmt::format("{}: {}: {}", Name(), line.Where(), s.ToString()));
    }
    if (affected.size() != stmts.size() + 2) {
      return InternalError(fmt::format("{}: {}: {} results for {} statements", Name(), line.Where(),
                                       affected.size(), stmts.size() + 2));
    }
    for (size_t i = 0; i < stmts.size(); ++i) {
      if (affected[i + 1] != stmts[i].rows) {
        return InternalError(fmt::format("{}: {}: statement {} touched {} rows, the line says {}",
                                         Name(), line.Where(), i + 1, affected[i + 1],
                                         stmts[i].rows));
      }
    }
    return Status::OK();
  }

  Result<std::string> Moment() override {
    ASSIGN_OR_RETURN(auto rows, conn_->Query(IsMaria(flavor_) ? "SELECT NOW(6)"
                                                              : "SELECT clock_timestamp()::text"));
    if (rows.size() != 1 || rows[0].empty() || !rows[0][0]) return InternalError("no moment");
    return *rows[0][0];
  }

  Status AsOf(int64_t customer_id, const std::string& moment) override {
    std::string sql;
    switch (flavor_) {
      case SqlFlavor::kPgPeriods:
        sql = fmt::format(
            "SELECT {} FROM campaigns__as_of({}::timestamptz) WHERE customer_id = {} ORDER BY "
            "priority, id",
            kColumns, Lit(moment), customer_id);
        break;
      case SqlFlavor::kPgAudit:
        sql = fmt::format(
            "SELECT {0} FROM (SELECT DISTINCT ON (id) op, {0} FROM campaigns_audit WHERE "
            "customer_id = {1} AND changed_at <= {2}::timestamptz ORDER BY id, changed_at DESC, "
            "version DESC) s WHERE op <> 'D' ORDER BY priority, id",
            kColumns, customer_id, Lit(moment));
        break;
      case SqlFlavor::kMariaVersioned:
        sql = fmt::format(
            "SELECT {} FROM campaigns FOR SYSTEM_TIME AS OF TIMESTAMP {} WHERE customer_id = {} "
            "ORDER BY priority, id",
            kColumns, Lit(moment), customer_id);
        break;
      default:
        return UnimplementedError(Name() + " keeps no versions");
    }
    return Fetch(sql);
  }

  Status Log(int64_t campaign_id) override {
    std::string sql;
    switch (flavor_) {
      case SqlFlavor::kPgPeriods:
        sql = fmt::format("SELECT {} FROM campaigns_with_history WHERE id = {} ORDER BY version",
                          kColumns, campaign_id);
        break;
      case SqlFlavor::kPgAudit:
        sql = fmt::format(
            "SELECT {} FROM campaigns_audit WHERE id = {} AND op <> 'D' ORDER BY changed_at, "
            "version",
            kColumns, campaign_id);
        break;
      case SqlFlavor::kMariaVersioned:
        sql = fmt::format(
            "SELECT {} FROM campaigns FOR SYSTEM_TIME ALL WHERE id = {} ORDER BY "
            "version",
            kColumns, campaign_id);
        break;
      default:
        return UnimplementedError(Name() + " keeps no versions");
    }
    return Fetch(sql);
  }

  Result<std::vector<testing::ModelCampaign>> Answer() override {
    std::vector<testing::ModelCampaign> out;
    out.reserve(answer_.size());
    for (const SqlRow& r : answer_) {
      ASSIGN_OR_RETURN(auto c, RowToModel(r));
      out.push_back(std::move(c));
    }
    return out;
  }

  Result<int64_t> Bytes() override {
    std::string sql;
    switch (flavor_) {
      case SqlFlavor::kPgPlain:
        sql = "SELECT pg_total_relation_size('campaigns')";
        break;
      case SqlFlavor::kPgPeriods:
        sql =
            "SELECT pg_total_relation_size('campaigns') + "
            "pg_total_relation_size('campaigns_history')";
        break;
      case SqlFlavor::kPgAudit:
        sql =
            "SELECT pg_total_relation_size('campaigns') + "
            "pg_total_relation_size('campaigns_audit')";
        break;
      case SqlFlavor::kMariaPlain:
      case SqlFlavor::kMariaVersioned:
        RETURN_IF_ERROR(Drain("ANALYZE TABLE campaigns"));
        sql =
            "SELECT data_length + index_length FROM information_schema.tables WHERE "
            "table_schema = DATABASE() AND table_name = 'campaigns'";
        break;
    }
    if (!IsMaria(flavor_)) RETURN_IF_ERROR(conn_->Exec("VACUUM ANALYZE"));
    return Scalar(sql);
  }

  Result<int64_t> VersionsCaptured() override {
    switch (flavor_) {
      case SqlFlavor::kPgPeriods:
        return Scalar(
            "SELECT (SELECT count(*) FROM campaigns) + (SELECT count(*) FROM campaigns_history) "
            "+ (SELECT count(DISTINCT id) FROM campaigns_history h WHERE NOT EXISTS (SELECT 1 "
            "FROM campaigns c WHERE c.id = h.id))");
      case SqlFlavor::kPgAudit:
        return Scalar("SELECT count(*) FROM campaigns_audit");
      case SqlFlavor::kMariaVersioned:
        return Scalar(
            "SELECT (SELECT COUNT(*) FROM campaigns FOR SYSTEM_TIME ALL) + (SELECT COUNT(DISTINCT "
            "id) FROM campaigns FOR SYSTEM_TIME ALL WHERE id NOT IN (SELECT id FROM campaigns))");
      default:
        return UnimplementedError(Name() + " keeps no versions");
    }
  }

  Status Create() {
    if (IsMaria(flavor_)) RETURN_IF_ERROR(conn_->Exec("SET sql_mode = 'NO_BACKSLASH_ESCAPES'"));
    return conn_->Exec(Ddl(flavor_));
  }

 private:
  // Run the answer's query and keep its rows for Answer().
  Status Fetch(const std::string& sql) {
    answer_.clear();
    ASSIGN_OR_RETURN(answer_, conn_->Query(sql));
    return Status::OK();
  }

  Result<int64_t> Scalar(const std::string& sql) {
    ASSIGN_OR_RETURN(auto rows, conn_->Query(sql));
    if (rows.size() != 1 || rows[0].empty()) return InternalError("expected one value: " + sql);
    return ParseInt(rows[0][0], sql);
  }

  // Run a statement that returns rows and drop them (ANALYZE TABLE on MariaDB).
  Status Drain(const std::string& sql) { return conn_->Query(sql).status(); }

  SqlFlavor flavor_;
  std::unique_ptr<SqlConn> conn_;
  std::vector<SqlRow> answer_;  // of the last AsOf or Log
};

}  // namespace

Result<std::unique_ptr<Peer>> MakeSqlPeer(SqlFlavor flavor, std::unique_ptr<SqlConn> conn) {
  auto peer = std::make_unique<SqlPeer>(flavor, std::move(conn));
  RETURN_IF_ERROR(peer->Create());
  return std::unique_ptr<Peer>(std::move(peer));
}

}  // namespace ch::peers
