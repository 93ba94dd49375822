// capture setup|drop|status: explicit management of log capture on PostgreSQL (the publication and
// the replication slot; docs/formats/pg-capture.md). Nothing else creates or drops them.
#include <fmt/format.h>

#include <iostream>

#include "capture/pg_logical_source.h"
#include "cli/cli.h"

namespace ch::cli {

void RegisterCapture(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "capture",
      "Manage log capture on PostgreSQL: setup (publication + replication slot), drop, status "
      "(slot lag: WAL the slot keeps while the relay is behind)");
  struct Args {
    std::string action;
    std::string slot = "campaign_history";
    std::string publication = "campaign_history";
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("action", args->action, "setup | drop | status")
      ->required()
      ->check(CLI::IsMember({"setup", "drop", "status"}));
  cmd->add_option("--slot", args->slot, "Replication slot")->capture_default_str();
  cmd->add_option("--publication", args->publication, "Publication")->capture_default_str();
  cmd->add_flag("--json", args->json, "status as JSON");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      ASSIGN_OR_RETURN(BackendConfig config, ctx.ResolveConfig());
      ASSIGN_OR_RETURN(BackendUrl url, ParseBackendUrl("--campaign-db", config.CampaignDbUrl()));
      if (url.scheme != UrlScheme::kPostgres) {
        return InvalidArgumentError(fmt::format(
            "capture {}: needs --campaign-db postgresql://... (SQLite captures through its outbox "
            "with no setup)",
            args->action));
      }
      if (args->action == "setup") {
        RETURN_IF_ERROR(PgLogicalSource::CreateCapture(url.target, args->slot, args->publication));
        std::cerr << fmt::format("capture ready: publication '{}', slot '{}'\n", args->publication,
                                 args->slot);
        return Status::OK();
      }
      if (args->action == "drop") {
        RETURN_IF_ERROR(PgLogicalSource::DropCapture(url.target, args->slot, args->publication));
        std::cerr << fmt::format("capture dropped: publication '{}', slot '{}'\n",
                                 args->publication, args->slot);
        return Status::OK();
      }
      ASSIGN_OR_RETURN(PgSlotStatus s, PgLogicalSource::SlotStatus(url.target, args->slot));
      if (args->json) {
        std::cout << fmt::format(
            R"({{"slot":"{}","exists":{},"active":{},"confirmed_flush_lsn":"{}","retained_wal_bytes":{},"unconfirmed_wal_bytes":{},"wal_status":"{}"}})"
            "\n",
            args->slot, s.exists, s.active, s.confirmed_flush_lsn, s.retained_wal_bytes,
            s.unconfirmed_wal_bytes, s.wal_status);
      } else if (!s.exists) {
        std::cout << fmt::format("slot '{}' does not exist (run 'capture setup')\n", args->slot);
      } else {
        std::cout << fmt::format(
            "slot:        {}\nactive:      {}\nconfirmed:   {}\nunconfirmed: {:.1f} MiB of WAL "
            "not yet relayed\nretained:    {:.1f} MiB of WAL kept on disk for the slot\nwal "
            "status:  "
            "{}\n",
            args->slot, s.active ? "yes (a relay is connected)" : "no (no relay connected)",
            s.confirmed_flush_lsn, s.unconfirmed_wal_bytes / 1048576.0,
            s.retained_wal_bytes / 1048576.0, s.wal_status);
      }
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
