// `purge` and `erase`: retention and erasure per customer (docs/operations.md, "Retention and
// erasure"). Both are atomic in the history store and recorded in its audit log, which `status`
// shows.
//
// Erase also removes the customer from the places this project owns besides the history: the
// confirmed rows of a SQLite outbox and the dead-letter keeping subscriptions. The campaign
// database itself belongs to the application and is not touched.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "campaign/sqlite_outbox.h"
#include "cli/cli.h"
#include "common/sqlite.h"
#include "common/time_util.h"
#include "history/history_store.h"

namespace ch::cli {
namespace {

constexpr size_t kMaxActorBytes = 200;

// The actor recorded in the audit log: --actor, else "admin:<OS user>".
Result<std::string> ResolveActor(const std::optional<std::string>& given) {
  std::string actor;
  if (given) {
    actor = *given;
  } else {
    const char* user = std::getenv("USER");
    actor = std::string("admin:") + (user && *user ? user : "unknown");
  }
  if (actor.empty()) return InvalidArgumentError("--actor: must not be empty");
  if (actor.size() > kMaxActorBytes) {
    return InvalidArgumentError(
        fmt::format("--actor: at most {} bytes (got {})", kMaxActorBytes, actor.size()));
  }
  for (char c : actor) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return InvalidArgumentError("--actor: must not contain control characters");
    }
  }
  return actor;
}

Status CheckCustomer(int64_t customer) {
  if (customer <= 0) {
    return InvalidArgumentError(
        fmt::format("--customer: must be a positive id (got {})", customer));
  }
  return Status::OK();
}

// Bring the history up to date first on the embedded setup, so that what is purged or erased is
// everything committed so far (a change still in the outbox would otherwise arrive afterwards).
void CatchUpFirst(Runtime& runtime) {
  Result<PublishStats> moved = runtime.CatchUp();
  if (!moved.ok()) {
    spdlog::warn("could not bring the history up to date first: {}", moved.status().ToString());
  }
}

// The confirmed outbox rows of the customer, when the campaign database is a SQLite file with an
// outbox. Return how many rows were removed (0 when there is no outbox).
Result<int64_t> EraseFromOutbox(Runtime& runtime, int64_t customer) {
  ASSIGN_OR_RETURN(BackendUrl url,
                   ParseBackendUrl("--campaign-db", runtime.config().CampaignDbUrl()));
  if (url.scheme != UrlScheme::kSqlite) return int64_t{0};
  std::error_code ec;
  if (!std::filesystem::exists(url.target, ec)) return int64_t{0};
  ASSIGN_OR_RETURN(auto db, SqliteDb::Open(url.target));
  if (!CheckOutbox(*db).ok()) return int64_t{0};
  RETURN_IF_ERROR(UpgradeOutboxState(*db));
  return EraseConfirmedOutboxRows(*db, customer);
}

Result<int64_t> EraseFromDeadLetters(Runtime& runtime, int64_t customer) {
  ASSIGN_OR_RETURN(BackendUrl url, ParseBackendUrl("--bus", runtime.config().bus));
  if (url.scheme != UrlScheme::kPubSub) return int64_t{0};  // the embedded bus keeps nothing
  ASSIGN_OR_RETURN(ChangeBus * bus, runtime.Bus());
  return EraseDeadLetters(*bus, runtime.topology(), customer);
}

void RegisterPurge(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "purge",
      "Remove a customer's history before a moment, keeping what as-of at that moment and later "
      "needs (recorded in the audit log)");
  struct Args {
    int64_t customer = 0;
    std::string before;
    std::optional<std::string> actor;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--customer", args->customer, "Customer id")->required()->check(IdFlag());
  cmd->add_option("--before", args->before,
                  "The moment history before which is removed (RFC 3339, or e.g. now-90d)")
      ->required();
  cmd->add_option("--actor", args->actor, "Who asks, for the audit log (default admin:$USER)");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      RETURN_IF_ERROR(CheckCustomer(args->customer));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());  // no I/O yet
      Result<Timestamp> before = ParseTimeExpression(args->before, runtime->clock());
      if (!before.ok()) return before.status().WithContext("--before");
      ASSIGN_OR_RETURN(std::string actor, ResolveActor(args->actor));
      CatchUpFirst(*runtime);
      ASSIGN_OR_RETURN(HistoryStore * history, runtime->History(/*create=*/false));
      ASSIGN_OR_RETURN(int64_t removed, history->PurgeCustomer(args->customer, *before, actor));
      std::cout << fmt::format(
          "purged {} record(s) of customer {} before {}; as-of at or after it answers as "
          "before, earlier moments are refused\n",
          removed, args->customer, FormatTimestamp(*before));
      std::cout.flush();
      return Status::OK();
    };
  });
}

void RegisterErase(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "erase",
      "Remove everything of a customer from the history, the outbox and the dead-letter topics, "
      "and refuse its changes from then on (data-protection requests; recorded in the audit log)");
  struct Args {
    int64_t customer = 0;
    bool yes = false;
    std::optional<std::string> actor;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--customer", args->customer, "Customer id")->required()->check(IdFlag());
  cmd->add_flag("--yes", args->yes, "Confirm: erasure cannot be undone");
  cmd->add_option("--actor", args->actor, "Who asks, for the audit log (default admin:$USER)");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      RETURN_IF_ERROR(CheckCustomer(args->customer));
      ASSIGN_OR_RETURN(std::string actor, ResolveActor(args->actor));
      if (!args->yes) {
        return InvalidArgumentError(
            fmt::format("erase cannot be undone: add --yes to erase customer {}", args->customer));
      }
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      CatchUpFirst(*runtime);
      ASSIGN_OR_RETURN(HistoryStore * history, runtime->History(/*create=*/false));
      ASSIGN_OR_RETURN(int64_t removed, history->EraseCustomer(args->customer, actor));
      std::cout << fmt::format("erased {} history record(s) of customer {}\n", removed,
                               args->customer);
      // The history now refuses the customer: what follows only removes copies.
      Result<int64_t> outbox = EraseFromOutbox(*runtime, args->customer);
      if (!outbox.ok()) return outbox.status().WithContext("erasing from the outbox");
      Result<int64_t> dead = EraseFromDeadLetters(*runtime, args->customer);
      if (!dead.ok()) return dead.status().WithContext("erasing from the dead-letter topics");
      std::cout << fmt::format("removed {} outbox row(s) and {} dead-lettered message(s)\n",
                               *outbox, *dead);
      std::cout.flush();
      return Status::OK();
    };
  });
}

}  // namespace

void RegisterRetention(CLI::App& app, Context& ctx) {
  RegisterPurge(app, ctx);
  RegisterErase(app, ctx);
}

}  // namespace ch::cli
