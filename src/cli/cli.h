// The campaign-history command line: shared state of one invocation and the registration of each
// subcommand. Every command returns a Status; main() prints "error: <message>" on stderr and
// exits with ExitCodeFor(code) (2 bad input, 3 not found, 4 precondition, 5 unavailable, ...).
//
// Output contract: data goes to stdout (tables for people, --json for scripts), progress and
// hints to stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "api/support_tokens.h"
#include "app/backend_config.h"
#include "app/runtime.h"
#include "common/status.h"

namespace ch::cli {

// Global flags, as given on the command line (absent = not given).
struct GlobalFlags {
  std::optional<std::string> data_dir;
  std::optional<std::string> campaign_db;
  std::optional<std::string> bus;
  std::optional<std::string> history;
  std::optional<std::string> capture;
  std::optional<std::string> config_file;
  std::string log_level = "warn";
};

class Context {
 public:
  GlobalFlags flags;

  // Defaults, then the config file, then the flags. Fails naming the bad value.
  Result<BackendConfig> ResolveConfig() const;
  // Create a runtime for the resolved config (nothing is opened until used).
  Result<std::unique_ptr<Runtime>> MakeRuntime(Clock* clock = nullptr) const;

  // The action of the selected subcommand.
  std::function<Status()> action;
};

// The check of an id flag (--customer, --campaign): a positive decimal that fits in 64 bits.
// Without it CLI11 clamps 99999999999999999999 to the largest id and the command answers, with
// an empty result, a question nobody asked.
CLI::Validator IdFlag();

void RegisterGenerate(CLI::App& app, Context& ctx);
void RegisterDemo(CLI::App& app, Context& ctx);
void RegisterReplay(CLI::App& app, Context& ctx);
void RegisterServe(CLI::App& app, Context& ctx);
void RegisterQueries(CLI::App& app, Context& ctx);
void RegisterStatus(CLI::App& app, Context& ctx);
void RegisterCapture(CLI::App& app, Context& ctx);
void RegisterBigQuery(CLI::App& app, Context& ctx);
void RegisterDeadLetters(CLI::App& app, Context& ctx);
void RegisterRetention(CLI::App& app, Context& ctx);
void RegisterSupportToken(CLI::App& app, Context& ctx);

// The support API's tokens: those of `file` (when not empty) and of the environment variable
// CAMPAIGN_HISTORY_SUPPORT_TOKENS (api/support_tokens.h). Fails naming the bad file or entry.
Result<SupportTokens> LoadSupportTokens(const std::string& file);
void RegisterApiKey(CLI::App& app, Context& ctx);

// Remove from the dead-letter keeping subscriptions every message about `customer_id` (erase);
// what cannot be decoded is kept. Return how many were removed.
Result<int64_t> EraseDeadLetters(ChangeBus& bus, const TopologyOptions& topology,
                                 int64_t customer_id);

}  // namespace ch::cli
