#include "cli/serve_status.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "common/metrics_server.h"

namespace ch::cli {

Result<ServeStatus> FetchServeStatus(const std::string& url) {
  std::string base = url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.ends_with("/healthz")) base.resize(base.size() - 8);
  Result<HttpReply> reply = HttpGet(base + "/healthz", std::chrono::seconds(5));
  if (!reply.ok()) return reply.status().WithContext("--serve");
  if (reply->status != 200 && reply->status != 503) {
    return UnavailableError(
        fmt::format("--serve: {}/healthz answered HTTP {} (is it a serve --metrics-listen "
                    "address?)",
                    base, reply->status));
  }
  Result<std::vector<ConsumerHealthEntry>> consumers = ParseConsumerHealth(reply->body);
  if (!consumers.ok()) return consumers.status().WithContext("--serve " + base);
  return ServeStatus{url, std::move(*consumers), reply->body};
}

std::string RenderServeStatusText(const std::vector<ServeStatus>& serves) {
  std::string out;
  for (const ServeStatus& s : serves) {
    if (s.consumers.empty()) {
      out += fmt::format("\nserve:     {}: no bus consumer in this process", s.url);
    }
    for (const ConsumerHealthEntry& c : s.consumers) {
      out += fmt::format("\nserve:     {}: {} '{}' ", s.url, c.role, c.subscription);
      if (c.blocked) {
        out += fmt::format(
            "BLOCKED for {:.1f} s (since {}), {} failed tries, holding {} messages, next try "
            "within {:.1f} s: {}",
            c.blocked_seconds, c.since, c.retries, c.held, c.backoff_seconds, c.error);
      } else {
        out +=
            fmt::format("ok, {} messages acknowledged, {} dead-lettered", c.acked, c.dead_lettered);
      }
    }
  }
  return out;
}

std::string RenderServeStatusJson(const std::vector<ServeStatus>& serves) {
  nlohmann::json out = nlohmann::json::array();
  for (const ServeStatus& s : serves) {
    nlohmann::json health = nlohmann::json::parse(s.json, nullptr, /*allow_exceptions=*/false);
    health["url"] = s.url;
    out.push_back(std::move(health));
  }
  return out.dump();
}

}  // namespace ch::cli
