#include "app/history_metrics.h"

#include <spdlog/spdlog.h>

namespace ch {

void WriteHistoryMetrics(HistoryStore& history, MetricsWriter& w) {
  Result<Completeness> c = history.GetCompleteness();
  if (!c.ok()) {
    spdlog::debug("metrics: history store: {}", c.status().ToString());
    return;
  }
  w.Add("campaign_history_history_conflicts", MetricType::kGauge,
        "Versions received again with other content, kept as evidence: a version number was "
        "reused (docs/operations.md, Conflicting versions).",
        {}, static_cast<double>(c->conflicts));
  w.Add("campaign_history_history_held_records", MetricType::kGauge,
        "Records held back until every change of their transaction has arrived.", {},
        static_cast<double>(c->held_records));
}

}  // namespace ch
