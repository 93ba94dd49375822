// The support role's command-line pieces: loading the support tokens (serve --roles support) and
// `support-token create`, which appends a new token's hash to a tokens file and prints the
// secret once (api/support_tokens.h has the file format).
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "api/support_tokens.h"
#include "cli/cli.h"

namespace ch::cli {

Result<SupportTokens> LoadSupportTokens(const std::string& file) {
  SupportTokens tokens;
  if (!file.empty()) {
    ASSIGN_OR_RETURN(tokens, SupportTokens::Load(file));
  }
  if (const char* env = std::getenv(kSupportTokensEnv); env != nullptr && *env != '\0') {
    ASSIGN_OR_RETURN(SupportTokens from_env, SupportTokens::ParseEnv(env));
    tokens.Merge(from_env);
  }
  return tokens;
}

void RegisterSupportToken(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "support-token", "Manage the bearer tokens of the support API (serve --roles support)");
  cmd->require_subcommand(1);
  auto* create = cmd->add_subcommand(
      "create", "Make a new support token: print it once and append its SHA-256 hash to FILE");
  struct Args {
    std::string file;
    std::string label;
  };
  auto args = std::make_shared<Args>();
  create->add_option("--support-tokens", args->file, "The tokens file (created if missing)")
      ->required();
  create->add_option("--label", args->label, "Who holds it (shown in logs, never the secret)");
  create->callback([&ctx, args] {
    ctx.action = [args]() -> Status {
      for (char c : args->label) {
        if (c == '\n' || c == '\r') return InvalidArgumentError("--label: must be one line");
      }
      ASSIGN_OR_RETURN(std::string token, SupportTokens::Generate());
      bool existed = std::filesystem::exists(args->file);
      std::ofstream f(args->file, std::ios::app);
      if (!f) {
        return UnavailableError(fmt::format("--support-tokens: cannot write '{}'", args->file));
      }
      if (!existed) {
        f << "# campaign-history support tokens: sha256:<hex of SHA-256(token)> [label]\n";
        chmod(args->file.c_str(), 0600);
      }
      f << SupportTokens::Hash(token) << (args->label.empty() ? "" : " " + args->label) << "\n";
      f.close();
      if (!f)
        return UnavailableError(fmt::format("--support-tokens: cannot write '{}'", args->file));
      std::cerr << fmt::format("added the token's hash to {}; the token (shown only now):\n",
                               args->file);
      std::cout << token << "\n";
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
