// SupportApiServer: the read-only HTTP API of the `support` role, through which support staff
// (and the web console) ask the history the questions the CLI's query commands answer. Every
// JSON body is exactly what the CLI prints with --json for the same inputs: both call the
// renderings of query/render.h (RenderAsOfJson, ...). docs/support-api.md documents it.
//
//   GET /v1/support/customers/{customer}/as-of?at=T[&limit=N&cursor=C&status=S&name=TEXT]
//   GET /v1/support/customers/{customer}/timeline?from=T[&to=T&limit=N&cursor=C&shifts=fold|show]
//   GET /v1/support/campaigns/{id}/log[?from=T&to=T&shifts=annotate|hide]
//   GET /v1/support/campaigns/{id}/diff?from=A[&to=B]        (versions or moments)
//   GET /v1/support/campaigns/{id}/blame[?at=T]
//   GET /v1/support/search?q=TEXT[&limit=N]
//   GET /openapi.json    the OpenAPI 3 document of these routes (no token needed)
//   GET /healthz         200 {"status":"ok"} (or the health callback's answer)
//   GET /metrics         Prometheus text: requests by route/method/status, latencies, errors
//
// Contracts:
//   * /v1/support/* needs `Authorization: Bearer <token>` of a known token (SupportTokens);
//     without one, or with a wrong one: 401 UNAUTHENTICATED with `WWW-Authenticate: Bearer`.
//     Tokens are never logged or echoed.
//   * Errors answer {"error":{"code":"INVALID_ARGUMENT","message":"at: ..."}} (as the campaign
//     API): a bad parameter (id, time, cursor, limit, an unknown or repeated parameter) is a 400
//     naming it; an unknown route 404; another method than GET/HEAD 405 with `Allow`.
//   * Every answer says how complete the history is (complete_through, complete).
//   * Nothing here writes: a request changes nothing, whatever it holds.
//
// Thread-safety: Start, Stop and port() from any thread (not from a handler). Requests are served
// concurrently; the history store must be safe for that (HistoryStore is), and each request gets
// its own QueryEngine.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/support_tokens.h"
#include "common/clock.h"
#include "common/metrics.h"
#include "common/metrics_server.h"
#include "common/status.h"
#include "history/history_store.h"

namespace ch {

struct SupportApiOptions {
  // Who may read /v1/support/*. REQUIRES: not empty (Start refuses to serve without tokens).
  SupportTokens tokens;
  // Worker threads (the pool grows up to max_threads while connections wait). REQUIRES:
  // 1 <= threads <= max_threads <= 1024.
  int threads = 4;
  int max_threads = 64;
  // More metrics for /metrics (e.g. the history's; may be null). Must outlive the server.
  const MetricsRegistry* registry = nullptr;
  // Memory for final as-of answers kept rendered (and their gzip/brotli forms), so that the
  // same answer is not rendered again; 0 keeps none (api/response_cache.h).
  size_t rendered_bytes = 64 << 20;
  // What /healthz answers. Default: always 200 {"status":"ok"}.
  std::function<HealthReply()> health;
};

// One route of the server, as the OpenAPI document must describe it.
struct SupportRouteInfo {
  std::string method;                     // "GET"
  std::string path;                       // "/v1/support/customers/{customer}/as-of"
  std::vector<std::string> query_params;  // accepted query parameters
  bool needs_token = false;
};

// Return every route the server answers (HEAD is implied wherever GET is).
std::vector<SupportRouteInfo> SupportApiRoutes();

// Return the OpenAPI 3 document served at /openapi.json.
std::string_view SupportOpenApiJson();

class SupportApiServer {
 public:
  // REQUIRES: `history` and `clock` outlive the server. Does no I/O.
  SupportApiServer(HistoryStore& history, const Clock& clock, SupportApiOptions options);
  SupportApiServer(const SupportApiServer&) = delete;
  SupportApiServer& operator=(const SupportApiServer&) = delete;
  ~SupportApiServer();

  // Listen on host:port (0 = any free port) and serve in background threads; returns once the
  // port accepts connections. Fails with FailedPrecondition when no token is configured or when
  // started twice, InvalidArgument for bad options, Unavailable when the address cannot be bound.
  Status Start(const std::string& host, int port);
  // Stop accepting, finish the requests in flight. Idempotent.
  void Stop();
  // The bound port (0 before Start).
  int port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
