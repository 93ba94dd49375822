// The history store's own metrics, as `serve --metrics-listen` exposes them on GET /metrics next
// to the consumers' (consumer_health.h). Documented in docs/operations.md ("Watching it").
//
//   campaign_history_history_conflicts       gauge: (campaign_id, version) pairs received again
//                                             with other content and kept as evidence -- a
//                                             version number was reused ("Conflicting versions")
//   campaign_history_history_held_records    gauge: records held back until their transaction
//                                             is complete
//
// Thread-safety: safe from any thread (HistoryStore is).
#pragma once

#include "common/metrics.h"
#include "history/history_store.h"

namespace ch {

// Write the history store's metrics (read with GetCompleteness when scraped). Writes nothing
// when the store cannot answer: a missing sample is what Prometheus expects then, and the
// consumers' metrics say why the store fails.
void WriteHistoryMetrics(HistoryStore& history, MetricsWriter& w);

}  // namespace ch
