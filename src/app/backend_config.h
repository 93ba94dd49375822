// BackendConfig: which campaign database, change bus, history store and capture mode a command
// uses, resolved from flags (and an optional config file) by one registry (backends.h).
//
// The same flags on every subcommand (docs/design "Choosing backends"):
//   --data DIR          the embedded setup's directory              default ./campaign-history-data
//   --campaign-db URL   sqlite:PATH | postgresql://...              default sqlite:DIR/campaigns.db
//   --bus URL           embedded | pubsub://PROJECT                 default embedded
//   --history URL       sqlite:PATH | postgresql://... | clickhouse://HOST:PORT/DB
//                                                                   default sqlite:DIR/history.db
//   --capture MODE      log | notify | none                         default log
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <string>
#include <string_view>

#include "campaign/capture_setting.h"
#include "common/status.h"

namespace ch {

struct BackendConfig {
  std::string data_dir = "./campaign-history-data";
  // Empty: derived from data_dir.
  std::string campaign_db;
  std::string bus = "embedded";
  // Empty: derived from data_dir.
  std::string history;
  CaptureSetting capture = CaptureSetting::kLog;

  // Return the effective URLs (defaults filled in from data_dir).
  std::string CampaignDbUrl() const;
  std::string HistoryUrl() const;
};

// Kinds of backend URL.
enum class UrlScheme { kSqlite, kPostgres, kClickHouse, kEmbedded, kPubSub };

struct BackendUrl {
  UrlScheme scheme;
  // sqlite: the file path; embedded: empty; others: the URL as given (or the project for pubsub).
  std::string target;
  std::string original;
};

// Parse a backend URL. `role` names the flag in errors ("--history"). Fails with InvalidArgument
// naming the flag, the value and the accepted forms.
Result<BackendUrl> ParseBackendUrl(std::string_view role, std::string_view url);

// Return `url` with the password of a scheme://user:password@host URL replaced by "***", for
// output (status prints the history URL).
std::string RedactUrlPassword(std::string_view url);

// Read settings from a config file (lines "key = value"; keys data, campaign-db, bus, history,
// capture; '#' comments) into `config`, overriding what it holds. Command-line flags are applied
// afterwards, so they override the file. Unknown keys and bad values fail with InvalidArgument
// naming the file, line and key; a missing file with NotFound.
Status LoadConfigFile(const std::string& path, BackendConfig& config);

}  // namespace ch
