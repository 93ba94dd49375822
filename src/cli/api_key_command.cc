// `api-key create|list|revoke`: the keys of the campaign API (`serve --roles api --api-keys
// FILE`; docs/api.md, "Authentication"). The file holds SHA-256 hashes only; `create` prints
// the secret once, on stdout, so `SECRET=$(campaign-history api-key create ...)` keeps it.
#include <fmt/format.h>

#include <iostream>
#include <nlohmann/json.hpp>

#include "api/api_keys.h"
#include "cli/cli.h"
#include "common/clock.h"

namespace ch::cli {
namespace {

void RegisterCreate(CLI::App& parent, Context& ctx) {
  auto* cmd = parent.add_subcommand(
      "create",
      "Create a key and print its secret once on stdout (the file keeps only its SHA-256). A "
      "customer key acts for --customer and writes as api:<key id>; a --service key acts for "
      "any customer and must name the end user in X-Actor: user:<id>");
  struct Args {
    int64_t customer = 0;
    bool service = false;
    std::string file;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* customer = cmd->add_option("--customer", args->customer, "The customer the key acts for")
                       ->check(IdFlag());
  cmd->add_flag("--service", args->service,
                "A service key (the customer UI's backend): any customer, X-Actor: user:<id>")
      ->excludes(customer);
  cmd->add_option("--api-keys", args->file, "The key file (created, mode 0600, when missing)")
      ->required();
  cmd->add_flag("--json", args->json, "Print {id, customer_id, service, actor, secret}");
  cmd->callback([&ctx, args] {
    ctx.action = [args]() -> Status {
      if (!args->service && args->customer == 0) {
        return InvalidArgumentError("api-key create: give --customer C or --service");
      }
      std::optional<int64_t> customer;
      if (!args->service) customer = args->customer;
      ASSIGN_OR_RETURN(NewApiKey made,
                       CreateApiKey(args->file, customer, SystemClock::Default().Now()));
      if (args->json) {
        nlohmann::json j = {
            {"id", made.key.id},
            {"customer_id", customer ? nlohmann::json(*customer) : nullptr},
            {"service", made.key.service()},
            {"actor", made.key.service() ? "user:<id> from X-Actor" : made.key.actor()},
            {"secret", made.secret}};
        std::cout << j.dump() << "\n";
      } else {
        std::cout << made.secret << "\n";
      }
      std::cout.flush();
      std::cerr << fmt::format(
          "created key {} {} in {}; the secret above is shown only this once "
          "(send it as Authorization: Bearer <secret>)\n",
          made.key.id,
          customer ? fmt::format("for customer {} (writes as {})", *customer, made.key.actor())
                   : std::string("(service key: any customer, X-Actor: user:<id>)"),
          args->file);
      return Status::OK();
    };
  });
}

void RegisterList(CLI::App& parent, Context& ctx) {
  auto* cmd = parent.add_subcommand("list", "List the keys of a key file (never a secret)");
  auto file = std::make_shared<std::string>();
  cmd->add_option("--api-keys", *file, "The key file")->required();
  cmd->callback([&ctx, file] {
    ctx.action = [file]() -> Status {
      ASSIGN_OR_RETURN(std::vector<ApiKey> keys, ReadApiKeyFile(*file));
      std::cout << fmt::format("{:<18} {:<12} {:<28} {}\n", "id", "customer", "created_at",
                               "revoked_at");
      for (const ApiKey& k : keys) {
        std::cout << fmt::format("{:<18} {:<12} {:<28} {}\n", k.id,
                                 k.customer_id ? std::to_string(*k.customer_id) : "service",
                                 k.created_at, k.revoked_at.value_or("-"));
      }
      std::cout.flush();
      return Status::OK();
    };
  });
}

void RegisterRevoke(CLI::App& parent, Context& ctx) {
  auto* cmd = parent.add_subcommand(
      "revoke", "Revoke a key: a running server refuses it within about a second");
  struct Args {
    std::string id, file;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--id", args->id, "The key id (k...)")->required();
  cmd->add_option("--api-keys", args->file, "The key file")->required();
  cmd->callback([&ctx, args] {
    ctx.action = [args]() -> Status {
      RETURN_IF_ERROR(RevokeApiKey(args->file, args->id, SystemClock::Default().Now()));
      std::cerr << fmt::format("revoked key {}\n", args->id);
      return Status::OK();
    };
  });
}

}  // namespace

void RegisterApiKey(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("api-key", "Manage the campaign API's keys (--api-keys FILE)");
  cmd->require_subcommand(1);
  RegisterCreate(*cmd, ctx);
  RegisterList(*cmd, ctx);
  RegisterRevoke(*cmd, ctx);
}

}  // namespace ch::cli
