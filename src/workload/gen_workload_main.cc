// ch-gen-workload: write a campaign-operation workload (docs/formats/workload.md) to a file or
// stdout, e.g.
//   ch-gen-workload --preset small --seed 1 --out small.jsonl
//   ch-gen-workload --preset large --ops 50000 --out -
// A development tool beside the library (GenerateWorkload); prints totals to stderr.
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <optional>

#include "workload/generator.h"

int main(int argc, char** argv) {
  CLI::App app{"Generate a campaign-history-workload/1 file (JSON Lines)"};
  std::string preset = "small";
  std::string out = "-";
  std::optional<uint64_t> seed;
  std::optional<int64_t> customers, per_customer, big_customers, big_campaigns, ops;
  std::optional<double> big_op_share, unicode_share;
  app.add_option("--preset", preset, "small or large")->capture_default_str();
  app.add_option("--seed", seed, "PRNG seed (default 1)");
  app.add_option("--customers", customers, "number of small customers");
  app.add_option("--campaigns-per-customer", per_customer, "steady-state size of a small one");
  app.add_option("--big-customers", big_customers, "number of big customers");
  app.add_option("--big-campaigns", big_campaigns, "steady-state size of a big one");
  app.add_option("--big-op-share", big_op_share, "fraction of events on big customers");
  app.add_option("--ops", ops, "workload ops (seed lines excluded)");
  app.add_option("--unicode-share", unicode_share, "share of non-ASCII titles/names/bodies");
  app.add_option("--out", out, "output file, - for stdout")->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  ch::Result<ch::GeneratorOptions> o = ch::GeneratorPreset(preset);
  if (!o.ok()) {
    std::cerr << o.status().ToString() << "\n";
    return ch::ExitCodeFor(o.status().code());
  }
  if (seed) o->seed = *seed;
  if (customers) o->customers = *customers;
  if (per_customer) o->campaigns_per_customer = *per_customer;
  if (big_customers) o->big_customers = *big_customers;
  if (big_campaigns) o->big_campaigns = *big_campaigns;
  if (big_op_share) o->big_op_share = *big_op_share;
  if (ops) o->ops = *ops;
  if (unicode_share) o->unicode_share = *unicode_share;
  auto start = std::chrono::steady_clock::now();
  ch::Result<ch::GeneratorStats> stats =
      out == "-" ? ch::GenerateWorkload(*o, std::cout) : ch::GenerateWorkloadFile(*o, out);
  if (!stats.ok()) {
    std::cerr << stats.status().ToString() << "\n";
    return ch::ExitCodeFor(stats.status().code());
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cerr << "generated " << stats->ops << " ops, " << stats->expected_versions
            << " row versions expected, " << stats->lines << " lines, " << stats->bytes
            << " bytes in " << secs << " s\n";
  return 0;
}
