// The health of a process's bus consumers (Runtime::Consumers) as `serve --metrics-listen`
// exposes it: the JSON of GET /healthz (read back by `status --serve`) and the Prometheus
// metrics of GET /metrics. Documented in docs/operations.md ("Watching it").
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <vector>

#include "app/runtime.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/status.h"

namespace ch {

// 200 with {"status":"ok",...} when no consumer is blocked, 503 with {"status":"blocked",...}
// otherwise. Each consumer: role, subscription, blocked, error (null when not blocked), since
// (RFC 3339 or null), blocked_seconds, retries, held, backoff_seconds and the counters
// delivered, acked, nacked, dead_lettered, errors, dependency_failures.
HealthReply ConsumerHealth(const std::vector<ConsumerReport>& consumers, Timestamp now);

// Write the consumers' metrics (campaign_history_consumer_*, labelled role and subscription).
void WriteConsumerMetrics(const std::vector<ConsumerReport>& consumers, Timestamp now,
                          MetricsWriter& w);

// One consumer as ConsumerHealth reports it, read back (for `status --serve`).
struct ConsumerHealthEntry {
  std::string role;
  std::string subscription;
  bool blocked = false;
  std::string error;  // empty when not blocked
  std::string since;  // RFC 3339, empty when not blocked
  double blocked_seconds = 0;
  int64_t retries = 0;
  int64_t held = 0;
  double backoff_seconds = 0;
  int64_t delivered = 0;
  int64_t acked = 0;
  int64_t dead_lettered = 0;
  int64_t dependency_failures = 0;
};

// Parse the JSON of ConsumerHealth. Fails with InvalidArgument quoting what is wrong.
Result<std::vector<ConsumerHealthEntry>> ParseConsumerHealth(const std::string& json);

}  // namespace ch
