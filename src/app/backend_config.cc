#include "app/backend_config.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "common/text.h"

namespace ch {

std::string BackendConfig::CampaignDbUrl() const {
  if (!campaign_db.empty()) return campaign_db;
  return "sqlite:" + (std::filesystem::path(data_dir) / "campaigns.db").string();
}

std::string BackendConfig::HistoryUrl() const {
  if (!history.empty()) return history;
  return "sqlite:" + (std::filesystem::path(data_dir) / "history.db").string();
}

std::string RedactUrlPassword(std::string_view url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const size_t begin = scheme_end + 3;
  const size_t at = url.find('@', begin);
  const size_t slash = url.find('/', begin);
  if (at == std::string_view::npos || (slash != std::string_view::npos && slash < at)) {
    return std::string(url);
  }
  const size_t colon = url.find(':', begin);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

Result<BackendUrl> ParseBackendUrl(std::string_view role, std::string_view url) {
  BackendUrl out;
  out.original = std::string(url);
  auto starts = [&](std::string_view p) { return url.substr(0, p.size()) == p; };
  if (starts("sqlite:")) {
    std::string_view path = url.substr(7);
    if (path.substr(0, 2) == "//") path.remove_prefix(2);  // tolerate sqlite://path
    if (path.empty()) {
      return InvalidArgumentError(
          fmt::format("{}: '{}' has no file path (use sqlite:PATH)", role, url));
    }
    out.scheme = UrlScheme::kSqlite;
    out.target = std::string(path);
    return out;
  }
  if (starts("postgresql://") || starts("postgres://")) {
    out.scheme = UrlScheme::kPostgres;
    out.target = std::string(url);
    return out;
  }
  if (starts("clickhouse://")) {
    out.scheme = UrlScheme::kClickHouse;
    out.target = std::string(url);
    return out;
  }
  if (url == "embedded") {
    out.scheme = UrlScheme::kEmbedded;
    return out;
  }
  if (starts("pubsub://")) {
    std::string_view project = url.substr(9);
    if (project.empty() || project.find('/') != std::string_view::npos) {
      return InvalidArgumentError(
          fmt::format("{}: '{}' must be pubsub://PROJECT (a Google Cloud project id)", role, url));
    }
    out.scheme = UrlScheme::kPubSub;
    out.target = std::string(project);
    return out;
  }
  return InvalidArgumentError(
      fmt::format("{}: unsupported URL '{}' (expected sqlite:PATH, postgresql://..., "
                  "clickhouse://HOST:PORT/DB, "
                  "embedded or pubsub://PROJECT)",
                  role, url));
}

Status LoadConfigFile(const std::string& path, BackendConfig& config) {
  std::ifstream in(path);
  if (!in) return NotFoundError(fmt::format("config file '{}' cannot be read", path));
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    auto trim = [](std::string s) {
      size_t b = s.find_first_not_of(" \t\r");
      size_t e = s.find_last_not_of(" \t\r");
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    line = trim(line);
    if (line.empty()) continue;
    auto eq = line.find('=');
    if (eq == std::string::npos) {
      return InvalidArgumentError(
          fmt::format("{}:{}: expected 'key = value', got '{}'", path, line_no, Excerpt(line)));
    }
    std::string key = trim(line.substr(0, eq));
    std::string value = trim(line.substr(eq + 1));
    auto where = [&] { return fmt::format("{}:{}: {}", path, line_no, key); };
    if (key == "data") {
      config.data_dir = value;
    } else if (key == "campaign-db") {
      config.campaign_db = value;
    } else if (key == "bus") {
      config.bus = value;
    } else if (key == "history") {
      config.history = value;
    } else if (key == "capture") {
      auto c = ParseCaptureSetting(value);
      if (!c.ok()) return c.status().WithContext(where());
      config.capture = *c;
    } else {
      return InvalidArgumentError(fmt::format(
          "{}: unknown key (expected data, campaign-db, bus, history, capture)", where()));
    }
  }
  return Status::OK();
}

}  // namespace ch
