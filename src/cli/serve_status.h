// `status --serve URL`: the state of the bus consumers of running `serve` processes, read from
// their GET /healthz (serve --metrics-listen; app/consumer_health.h). Its own section of the
// status output, so that the rest of `status` can change independently.
//
// Thread-safety: functions of the calling thread.
#pragma once

#include <string>
#include <vector>

#include "app/consumer_health.h"
#include "common/status.h"

namespace ch::cli {

// What one serve process reported.
struct ServeStatus {
  std::string url;  // as given
  std::vector<ConsumerHealthEntry> consumers;
  std::string json;  // the /healthz answer as it came
};

// GET <url>/healthz (200 and 503 are both answers). Fails with Unavailable naming the URL when
// the process does not answer, InvalidArgument for a bad URL or answer.
Result<ServeStatus> FetchServeStatus(const std::string& url);

// The section for people: one line per consumer, e.g.
//   serve http://127.0.0.1:9090: publisher 'campaign-changes-publisher' BLOCKED for 34.2 s
//   (since ...), 12 failed tries, holding 1000 messages, next try within 10.0 s:
//   RESOURCE_EXHAUSTED: history store: ...
std::string RenderServeStatusText(const std::vector<ServeStatus>& serves);
// The same as a JSON array (for status --json: "serve":[...]): per process its url and its
// /healthz answer (status, consumers).
std::string RenderServeStatusJson(const std::vector<ServeStatus>& serves);

}  // namespace ch::cli
