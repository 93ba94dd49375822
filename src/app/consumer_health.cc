#include "app/consumer_health.h"

#include <fmt/format.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "common/time_util.h"

namespace ch {
namespace {

double Seconds(Micros d) { return std::chrono::duration<double>(d).count(); }

double BlockedSeconds(const BusConsumerStats& s, Timestamp now) {
  return s.blocked && now > s.blocked_since ? Seconds(now - s.blocked_since) : 0;
}

}  // namespace

HealthReply ConsumerHealth(const std::vector<ConsumerReport>& consumers, Timestamp now) {
  nlohmann::json list = nlohmann::json::array();
  bool blocked = false;
  for (const ConsumerReport& c : consumers) {
    const BusConsumerStats& s = c.stats;
    blocked = blocked || s.blocked;
    list.push_back({
        {"role", c.role},
        {"subscription", c.subscription},
        {"blocked", s.blocked},
        {"error", s.blocked ? nlohmann::json(s.blocking_error.ToString()) : nlohmann::json()},
        {"since", s.blocked ? nlohmann::json(FormatTimestamp(s.blocked_since)) : nlohmann::json()},
        {"blocked_seconds", BlockedSeconds(s, now)},
        {"retries", s.retries},
        {"held", s.held},
        {"backoff_seconds", Seconds(s.backoff)},
        {"delivered", s.delivered},
        {"acked", s.acked},
        {"nacked", s.nacked},
        {"dead_lettered", s.dead_lettered},
        {"errors", s.errors},
        {"dependency_failures", s.dependency_failures},
    });
  }
  nlohmann::json body = {{"status", blocked ? "blocked" : "ok"}, {"consumers", list}};
  return HealthReply{blocked ? 503 : 200, body.dump()};
}

void WriteConsumerMetrics(const std::vector<ConsumerReport>& consumers, Timestamp now,
                          MetricsWriter& w) {
  for (const ConsumerReport& c : consumers) {
    const BusConsumerStats& s = c.stats;
    const MetricLabels who = {{"role", c.role}, {"subscription", c.subscription}};
    auto with = [&](const char* outcome) {
      MetricLabels l = who;
      l.emplace_back("outcome", outcome);
      return l;
    };
    constexpr const char* kMessages =
        "Messages of the subscription by what became of them (delivered counts each pull once).";
    w.Add("campaign_history_consumer_messages_total", MetricType::kCounter, kMessages,
          with("delivered"), static_cast<double>(s.delivered));
    w.Add("campaign_history_consumer_messages_total", MetricType::kCounter, kMessages,
          with("acked"), static_cast<double>(s.acked));
    w.Add("campaign_history_consumer_messages_total", MetricType::kCounter, kMessages,
          with("nacked"), static_cast<double>(s.nacked));
    w.Add("campaign_history_consumer_messages_total", MetricType::kCounter, kMessages,
          with("dead_lettered"), static_cast<double>(s.dead_lettered));
    w.Add("campaign_history_consumer_errors_total", MetricType::kCounter,
          "Failed bus calls and handler batches.", who, static_cast<double>(s.errors));
    w.Add("campaign_history_consumer_dependency_failures_total", MetricType::kCounter,
          "Tries that failed because the bus or a store the consumer depends on failed.", who,
          static_cast<double>(s.dependency_failures));
    w.Add("campaign_history_consumer_backoffs_total", MetricType::kCounter,
          "Backoff pauses taken after failed tries.", who, static_cast<double>(s.backoffs));
    w.Add("campaign_history_consumer_blocked", MetricType::kGauge,
          "1 while a failing dependency blocks the consumer (it holds its messages and retries).",
          who, s.blocked ? 1 : 0);
    w.Add("campaign_history_consumer_blocked_seconds", MetricType::kGauge,
          "How long the consumer has been blocked (0 when it is not).", who,
          BlockedSeconds(s, now));
    w.Add("campaign_history_consumer_held_messages", MetricType::kGauge,
          "Messages held for a retry because a dependency failed.", who,
          static_cast<double>(s.held));
    w.Add("campaign_history_consumer_backoff_seconds", MetricType::kGauge,
          "Ceiling of the current backoff pause (0 when not backing off).", who,
          Seconds(s.backoff));
  }
}

Result<std::vector<ConsumerHealthEntry>> ParseConsumerHealth(const std::string& json) {
  auto bad = [&](std::string_view what) {
    return InvalidArgumentError(fmt::format("health answer {}: {}", what,
                                            json.substr(0, std::min<size_t>(json.size(), 200))));
  };
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("consumers") || !j["consumers"].is_array()) {
    return bad("is not a consumer health object");
  }
  std::vector<ConsumerHealthEntry> out;
  try {
    for (const nlohmann::json& c : j["consumers"]) {
      ConsumerHealthEntry e;
      e.role = c.at("role").get<std::string>();
      e.subscription = c.at("subscription").get<std::string>();
      e.blocked = c.at("blocked").get<bool>();
      if (c.at("error").is_string()) e.error = c["error"].get<std::string>();
      if (c.at("since").is_string()) e.since = c["since"].get<std::string>();
      e.blocked_seconds = c.at("blocked_seconds").get<double>();
      e.retries = c.at("retries").get<int64_t>();
      e.held = c.at("held").get<int64_t>();
      e.backoff_seconds = c.at("backoff_seconds").get<double>();
      e.delivered = c.at("delivered").get<int64_t>();
      e.acked = c.at("acked").get<int64_t>();
      e.dead_lettered = c.at("dead_lettered").get<int64_t>();
      e.dependency_failures = c.at("dependency_failures").get<int64_t>();
      out.push_back(std::move(e));
    }
  } catch (const nlohmann::json::exception& e) {
    return bad(fmt::format("has a bad consumer ({})", e.what()));
  }
  return out;
}

}  // namespace ch
