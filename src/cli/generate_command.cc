#include <fmt/format.h>

#include <iostream>

#include "cli/cli.h"
#include "workload/generator.h"

namespace ch::cli {

void RegisterGenerate(CLI::App& app, Context& ctx) {
  auto* cmd =
      app.add_subcommand("generate",
                         "Write a deterministic campaign-operation workload (JSON lines, format "
                         "campaign-history-workload/1) for replay, tests and benchmarks");
  struct Args {
    std::string preset = "small";
    uint64_t seed = 1;
    std::string out = "-";
    std::optional<int64_t> customers, campaigns_per_customer, big_customers, big_campaigns, ops;
    std::optional<double> big_op_share;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--preset", args->preset, "small (~2k ops, seconds) | large (200k ops)")
      ->capture_default_str();
  cmd->add_option("--seed", args->seed, "Random seed (same seed, same bytes)")
      ->capture_default_str();
  cmd->add_option("--out", args->out, "Output file, '-' for stdout")->capture_default_str();
  cmd->add_option("--customers", args->customers, "Number of small customers");
  cmd->add_option("--campaigns-per-customer", args->campaigns_per_customer,
                  "Steady-state campaign count of a small customer");
  cmd->add_option("--big-customers", args->big_customers, "Number of big customers");
  cmd->add_option("--big-campaigns", args->big_campaigns,
                  "Steady-state campaign count of a big customer");
  cmd->add_option("--big-op-share", args->big_op_share,
                  "Fraction of events that hit a big customer (0..1)");
  cmd->add_option("--ops", args->ops, "Number of operations (transactions), seeds excluded");
  cmd->callback([&ctx, args] {
    ctx.action = [args]() -> Status {
      ASSIGN_OR_RETURN(GeneratorOptions o, GeneratorPreset(args->preset));
      o.seed = args->seed;
      if (args->customers) o.customers = *args->customers;
      if (args->campaigns_per_customer) o.campaigns_per_customer = *args->campaigns_per_customer;
      if (args->big_customers) o.big_customers = *args->big_customers;
      if (args->big_campaigns) o.big_campaigns = *args->big_campaigns;
      if (args->big_op_share) o.big_op_share = *args->big_op_share;
      if (args->ops) o.ops = *args->ops;
      RETURN_IF_ERROR(ValidateGeneratorOptions(o));
      GeneratorStats stats;
      if (args->out == "-") {
        ASSIGN_OR_RETURN(stats, GenerateWorkload(o, std::cout));
        std::cout.flush();
      } else {
        ASSIGN_OR_RETURN(stats, GenerateWorkloadFile(o, args->out));
      }
      std::cerr << fmt::format("generated {} ops, {} versions expected ({} lines, {} bytes)\n",
                               stats.ops, stats.expected_versions, stats.lines, stats.bytes);
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
