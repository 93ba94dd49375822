// capture setup|drop|status: the explicit management of capture, the only way to change how a
// campaign database is captured (docs/operations.md, "Capture mode").
//   PostgreSQL: the publication and the replication slot of log capture
//               (docs/formats/pg-capture.md).
//   SQLite:     the mode recorded in the database (--capture: log, notify; drop = none), the
//               outbox triggers of log capture and the outbox row format
//               (campaign/sqlite_capture.h, docs/formats/outbox.md).
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "campaign/sqlite_capture.h"
#include "capture/pg_logical_source.h"
#include "cli/cli.h"

namespace ch::cli {
namespace {

struct CaptureArgs {
  std::string action;
  std::string slot = "campaign_history";
  std::string publication = "campaign_history";
  std::string outbox_rows;
  bool json = false;
  // --slot or --publication was given (PostgreSQL only).
  bool pg_options = false;
};

Status PgCapture(const CaptureArgs& args, const BackendConfig& config, const BackendUrl& url) {
  if (!args.outbox_rows.empty()) {
    return InvalidArgumentError("--outbox-rows: only a SQLite campaign database has an outbox");
  }
  if (args.action == "setup") {
    if (config.capture != CaptureSetting::kLog) {
      return InvalidArgumentError(fmt::format(
          "capture setup on PostgreSQL sets up log capture; --capture {} needs no setup there "
          "('capture drop' removes log capture)",
          CaptureSettingName(config.capture)));
    }
    RETURN_IF_ERROR(PgLogicalSource::CreateCapture(url.target, args.slot, args.publication));
    std::cerr << fmt::format("capture ready: publication '{}', slot '{}'\n", args.publication,
                             args.slot);
    return Status::OK();
  }
  if (args.action == "drop") {
    RETURN_IF_ERROR(PgLogicalSource::DropCapture(url.target, args.slot, args.publication));
    std::cerr << fmt::format("capture dropped: publication '{}', slot '{}'\n", args.publication,
                             args.slot);
    return Status::OK();
  }
  ASSIGN_OR_RETURN(PgSlotStatus s, PgLogicalSource::SlotStatus(url.target, args.slot));
  if (args.json) {
    std::cout << fmt::format(
        R"({{"slot":"{}","exists":{},"active":{},"confirmed_flush_lsn":"{}","retained_wal_bytes":{},"unconfirmed_wal_bytes":{},"wal_status":"{}"}})"
        "\n",
        args.slot, s.exists, s.active, s.confirmed_flush_lsn, s.retained_wal_bytes,
        s.unconfirmed_wal_bytes, s.wal_status);
  } else if (!s.exists) {
    std::cout << fmt::format("slot '{}' does not exist (run 'capture setup')\n", args.slot);
  } else {
    std::cout << fmt::format(
        "slot:        {}\nactive:      {}\nconfirmed:   {}\nunconfirmed: {:.1f} MiB of WAL "
        "not yet relayed\nretained:    {:.1f} MiB of WAL kept on disk for the slot\nwal "
        "status:  "
        "{}\n",
        args.slot, s.active ? "yes (a relay is connected)" : "no (no relay connected)",
        s.confirmed_flush_lsn, s.unconfirmed_wal_bytes / 1048576.0,
        s.retained_wal_bytes / 1048576.0, s.wal_status);
  }
  return Status::OK();
}

void PrintSqliteState(const std::string& path, const SqliteCaptureState& s, bool json) {
  if (json) {
    std::cout << fmt::format(
        R"({{"database":"sqlite:{}","schema_version":{},"mode":"{}","recorded":{},"outbox_rows":"{}","triggers":{},"backlog":{},"omitted_content":{},"confirmed_seq":{}}})"
        "\n",
        path, s.schema_version, CaptureSettingName(s.mode), s.recorded, OutboxRowsName(s.rows),
        s.triggers, s.backlog, s.omitted_content, s.confirmed_seq);
    return;
  }
  std::cout << fmt::format(
      "database:    sqlite:{}\nmode:        {}{}\noutbox rows: {}\ntriggers:    {}\nbacklog:     "
      "{} captured changes not yet confirmed downstream ({} of them omit their content)\n",
      path, CaptureSettingName(s.mode),
      s.recorded ? "" : " (not recorded: schema 1, written by an older version)",
      OutboxRowsName(s.rows), s.triggers ? "installed" : "none", s.backlog, s.omitted_content);
}

// Where `capture setup --outbox-rows full` finds the content of a version the outbox no longer
// holds: the history the embedded publisher drained it into (when there is one).
PreviousContentFn HistoryContent(Runtime& runtime) {
  return [&runtime](int64_t id, int64_t version) -> Result<std::optional<std::string>> {
    Result<HistoryStore*> history = runtime.History(/*create=*/false);
    if (!history.ok()) {
      if (history.status().code() == StatusCode::kNotFound) return std::optional<std::string>();
      return history.status();
    }
    ASSIGN_OR_RETURN(std::optional<HistoryRecord> record, (*history)->GetVersion(id, version));
    if (!record) return std::optional<std::string>();
    ASSIGN_OR_RETURN(Campaign c, CampaignFromJson(record->snapshot));
    return std::optional<std::string>(std::move(c.content));
  };
}

Status SqliteCapture(const CaptureArgs& args, Context& ctx, const BackendUrl& url) {
  if (args.pg_options) {
    return InvalidArgumentError(
        "--slot and --publication: only log capture on PostgreSQL has them (this campaign "
        "database is SQLite)");
  }
  if (args.action == "status") {
    ASSIGN_OR_RETURN(SqliteCaptureState s, ReadSqliteCaptureState(url.target));
    PrintSqliteState(url.target, s, args.json);
    return Status::OK();
  }
  ASSIGN_OR_RETURN(BackendConfig config, ctx.ResolveConfig());
  SqliteCaptureChange change;
  change.mode = args.action == "drop" ? CaptureSetting::kNone : config.capture;
  if (args.action == "setup" && change.mode == CaptureSetting::kNone) {
    return InvalidArgumentError(
        "capture setup --capture none: to capture nothing, run 'capture drop'");
  }
  if (!args.outbox_rows.empty()) {
    if (change.mode != CaptureSetting::kLog) {
      return InvalidArgumentError(
          fmt::format("--outbox-rows: only log capture has outbox rows (the mode would be '{}')",
                      CaptureSettingName(change.mode)));
    }
    Result<OutboxRows> rows = ParseOutboxRows(args.outbox_rows);
    if (!rows.ok()) return rows.status().WithContext("--outbox-rows");
    change.rows = *rows;
  }
  Result<SqliteCaptureState> before = ReadSqliteCaptureState(url.target);
  if (!before.ok() && before.status().code() != StatusCode::kNotFound) return before.status();
  if (!before.ok() && !change.rows) {
    // A new database: the row format its first writers would have chosen.
    change.rows = config.bus == "embedded" ? OutboxRows::kCompact : OutboxRows::kFull;
  }
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(url.target).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
  change.previous_content = HistoryContent(*runtime);
  Result<SqliteCaptureState> s = SetSqliteCapture(url.target, change);
  if (!s.ok()) return s.status().WithContext(fmt::format("capture {}", args.action));
  if (args.action == "drop") {
    std::cerr << fmt::format(
        "capture dropped: '{}' captures nothing now (mode none); {} captured changes are still "
        "in its outbox for the publisher\n",
        url.target, s->backlog);
  } else if (s->mode == CaptureSetting::kLog) {
    std::cerr << fmt::format("capture ready: '{}' captures in mode log (outbox rows: {})\n",
                             url.target, OutboxRowsName(s->rows));
  } else {
    std::cerr << fmt::format(
        "capture ready: '{}' captures in mode {} (no triggers: every writer publishes after "
        "commit)\n",
        url.target, CaptureSettingName(s->mode));
  }
  return Status::OK();
}

}  // namespace

void RegisterCapture(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "capture",
      "Manage capture, the only way to change how a campaign database is captured: setup (the "
      "mode of --capture; PostgreSQL: publication + replication slot), drop (capture nothing), "
      "status (SQLite: mode, outbox rows, backlog; PostgreSQL: slot lag)");
  auto args = std::make_shared<CaptureArgs>();
  cmd->add_option("action", args->action, "setup | drop | status")
      ->required()
      ->check(CLI::IsMember({"setup", "drop", "status"}));
  CLI::Option* slot =
      cmd->add_option("--slot", args->slot, "PostgreSQL: replication slot")->capture_default_str();
  CLI::Option* publication =
      cmd->add_option("--publication", args->publication, "PostgreSQL: publication")
          ->capture_default_str();
  cmd->add_option("--outbox-rows", args->outbox_rows,
                  "SQLite, setup in log mode: compact (an update that leaves the content alone "
                  "omits it; the embedded publisher takes it from the history) | full (every "
                  "row self-contained, as a relay to Pub/Sub needs) [default: keep the "
                  "database's; a new database: compact with --bus embedded, else full]");
  cmd->add_flag("--json", args->json, "status as JSON");
  cmd->callback([&ctx, args, slot, publication] {
    args->pg_options = slot->count() + publication->count() > 0;
    ctx.action = [&ctx, args]() -> Status {
      ASSIGN_OR_RETURN(BackendConfig config, ctx.ResolveConfig());
      ASSIGN_OR_RETURN(BackendUrl url, ParseBackendUrl("--campaign-db", config.CampaignDbUrl()));
      if (url.scheme == UrlScheme::kPostgres) return PgCapture(*args, config, url);
      if (url.scheme != UrlScheme::kSqlite) {
        return InvalidArgumentError(fmt::format(
            "capture {}: --campaign-db must be sqlite:PATH or postgresql://... (got '{}')",
            args->action, url.original));
      }
      return SqliteCapture(*args, ctx, url);
    };
  });
}

}  // namespace ch::cli
