// campaign-history: the one binary with every subcommand (docs/design "Roles and binaries").
#include <fmt/format.h>
#include <spdlog/cfg/helpers.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <iostream>
#include <limits>

#include "cli/cli.h"
#include "common/text.h"

namespace ch::cli {

Result<BackendConfig> Context::ResolveConfig() const {
  BackendConfig config;
  if (flags.config_file) RETURN_IF_ERROR(LoadConfigFile(*flags.config_file, config));
  if (flags.data_dir) config.data_dir = *flags.data_dir;
  if (flags.campaign_db) config.campaign_db = *flags.campaign_db;
  if (flags.bus) config.bus = *flags.bus;
  if (flags.history) config.history = *flags.history;
  if (flags.capture) {
    Result<CaptureSetting> capture = ParseCaptureSetting(*flags.capture);
    if (!capture.ok()) return capture.status().WithContext("--capture");
    config.capture = *capture;
  }
  if (config.data_dir.empty()) return InvalidArgumentError("--data: must not be empty");
  return config;
}

Result<std::unique_ptr<Runtime>> Context::MakeRuntime(Clock* clock) const {
  RuntimeOptions options;
  ASSIGN_OR_RETURN(options.config, ResolveConfig());
  options.clock = clock;
  return Runtime::Create(options);
}

CLI::Validator IdFlag() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        int64_t v = 0;
        const char* end = text.data() + text.size();
        auto [p, ec] = std::from_chars(text.data(), end, v);
        if (ec == std::errc::result_out_of_range) {
          return fmt::format("{} is too large for an id (ids are at most {})", Excerpt(text, 40),
                             std::numeric_limits<int64_t>::max());
        }
        if (ec != std::errc() || p != end || v <= 0) {
          return fmt::format("must be a positive id (got '{}')", Excerpt(text, 40));
        }
        return "";
      },
      "ID");
}

namespace {

// Return the first word that is neither a global option nor its value: the command the user
// meant (every global option takes a value).
std::string AttemptedCommand(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help" || a == "--help-all") continue;
    if (a.rfind("-", 0) == 0) {
      if (a.find('=') == std::string::npos) ++i;
      continue;
    }
    return a;
  }
  return "";
}

bool IsCommand(CLI::App& app, const std::string& name) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (sub->get_name() == name) return true;
  }
  return false;
}

std::string CommandList(CLI::App& app) {
  std::string out;
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (!out.empty()) out += ", ";
    out += sub->get_name();
  }
  return out;
}

int Run(int argc, char** argv) {
  CLI::App app{
      "campaign-history: every committed version of every campaign, with when and who, "
      "and the state of a customer's campaigns at any past moment."};
  app.require_subcommand(1);
  // Global flags work after the command too (`as-of --data DIR ...`): a subcommand hands the
  // options it does not know to the app.
  app.fallthrough();
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  Context ctx;
  auto* g = app.add_option_group("Backends", "Where data lives (the same flags on every command)");
  g->add_option("--data", ctx.flags.data_dir,
                "Embedded setup directory (SQLite campaign DB, outbox, history) "
                "[default: ./campaign-history-data]");
  g->add_option("--campaign-db", ctx.flags.campaign_db,
                "Campaign database URL: sqlite:PATH | postgresql://... [default: from --data]");
  g->add_option("--bus", ctx.flags.bus,
                "Change bus: embedded | pubsub://PROJECT [default: embedded]");
  g->add_option("--history", ctx.flags.history,
                "History store URL: sqlite:PATH | postgresql://... | clickhouse://HOST:PORT/DB "
                "[default: from --data]");
  g->add_option("--capture", ctx.flags.capture, "Capture mode: log | notify | none [default: log]");
  g->add_option("--config", ctx.flags.config_file,
                "Config file with 'key = value' lines (data, campaign-db, bus, history, capture); "
                "flags override it");
  app.add_option("--log-level", ctx.flags.log_level,
                 "Log level on stderr: trace, debug, info, warn, error, off [default: warn]");

  RegisterDemo(app, ctx);
  RegisterGenerate(app, ctx);
  RegisterReplay(app, ctx);
  RegisterServe(app, ctx);
  RegisterQueries(app, ctx);
  RegisterStatus(app, ctx);
  RegisterCapture(app, ctx);
  RegisterDeadLetters(app, ctx);
  RegisterRetention(app, ctx);
  RegisterBigQuery(app, ctx);
  RegisterSupportToken(app, ctx);
  RegisterApiKey(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string command = AttemptedCommand(argc, argv);
    if (!command.empty() && !IsCommand(app, command)) {
      std::cerr << "error: unknown command '" << command << "' (commands: " << CommandList(app)
                << ")\n";
      return ExitCodeFor(StatusCode::kInvalidArgument);
    }
    std::cerr << "error: " << e.what() << "\n(run 'campaign-history --help' for usage)\n";
    return ExitCodeFor(StatusCode::kInvalidArgument);
  }

  auto logger = spdlog::stderr_color_mt("campaign-history");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  auto level = spdlog::level::from_str(ctx.flags.log_level);
  if (level == spdlog::level::off && ctx.flags.log_level != "off") {
    std::cerr << "error: --log-level: unknown level '" << ctx.flags.log_level
              << "' (expected trace, debug, info, warn, error, off)\n";
    return ExitCodeFor(StatusCode::kInvalidArgument);
  }
  spdlog::set_level(level);

  if (!ctx.action) {
    std::cerr << "error: no command given\n";
    return ExitCodeFor(StatusCode::kInvalidArgument);
  }
  Status s = ctx.action();
  if (!s.ok()) {
    std::cerr << "error: " << s.message() << "\n";
    return ExitCodeFor(s.code());
  }
  return 0;
}

}  // namespace
}  // namespace ch::cli

int main(int argc, char** argv) { return ch::cli::Run(argc, argv); }
