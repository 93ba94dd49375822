// CampaignApiServer: the HTTP/JSON API through which customers' UI and API clients change
// campaigns (the `api` role). Every write goes through CampaignService, so the API adds no
// campaign semantics of its own: it maps HTTP onto service calls and Status codes onto HTTP.
// The endpoints, headers and error format are documented in docs/api.md.
//
//   POST   /v1/customers/{customer_id}/campaigns   create (201, Location, ETag)
//   GET    /v1/customers/{customer_id}/campaigns   list in priority order
//   GET    /v1/campaigns/{id}                      one campaign (ETag: "<version>")
//   PATCH  /v1/campaigns/{id}                      partial update (If-Match: "<version>")
//   POST   /v1/campaigns/{id}:move                 {"priority": N}
//   DELETE /v1/campaigns/{id}                      200 with the last content
//   GET    /healthz                                200 "ok"
//   GET    /metrics                                Prometheus text format
//
// Contracts:
//   * With CampaignApiOptions::keys, every /v1 request needs `Authorization: Bearer <secret>`
//     (401 without, with `WWW-Authenticate`); a customer key sees only its customer (404
//     otherwise, exactly as for a campaign that does not exist). Refusals are logged with the key
//     id, never the secret, and counted in campaign_history_api_auth_failures_total.
//   * Every write has an actor: `api:<key id>` for a customer key; `X-Actor: user:<id>` given by
//     a service key; without keys the `X-Actor` header as sent (`user:<id>`, `api:<key>` or
//     `worker:<name>`, 1-128 characters); a successful write answers with `X-Transaction-Id` and
//     `X-Committed-At` (RFC 3339 UTC, microseconds).
//   * Errors answer {"error":{"code":"INVALID_ARGUMENT","message":"..."}} with
//     HttpStatusFor(code); the API's own checks add 404 (unknown route), 405 (wrong method, with
//     `Allow`) and 413 (body over `max_body_bytes`).
//   * A request that fails changes nothing: the API validates everything it can before calling
//     the service, and the service rolls back whatever it rejects.
//   * No exception escapes a request handler; an unexpected one answers 500 INTERNAL.
//
// Typical use (e.g. `serve --roles api`):
//
//   CampaignService service(store);            // the store and service outlive the server
//   CampaignApiServer api(service, {.max_threads = 128});
//   RETURN_IF_ERROR(api.Start("0.0.0.0", 8080));   // returns once the port accepts connections
//   ... wait for SIGTERM ...
//   api.Stop();                                // stop accepting; finish requests in flight
//
// Thread-safety: Start, Stop and port() may be called from any thread (they are serialized
// internally), but never from inside a request handler (Stop waits for the handlers). Requests
// are served concurrently by a pool of worker threads (see CampaignApiOptions::threads); the
// service must be safe for that (it is).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "api/api_keys.h"
#include "campaign/campaign_service.h"
#include "common/status.h"

namespace ch {

struct CampaignApiOptions {
  // Worker threads started with the server. Each open connection holds one worker while it is
  // open (a keep-alive connection until it has been idle for `keep_alive_timeout`); when every
  // worker is busy and a connection waits, the pool grows, up to `max_threads` (it does not
  // shrink). Beyond that, new connections wait for a worker. REQUIRES: 1 <= threads <=
  // max_threads <= 1024. Default: 8 and 64.
  int threads = 8;
  int max_threads = 64;
  // Largest accepted request body; larger bodies are refused with 413 before they reach a
  // handler (chunked bodies are cut off at the limit). A campaign's content alone may be 64 KiB
  // serialized (and more with \u escapes). REQUIRES: >= 1024. Default: 256 KiB.
  size_t max_body_bytes = 256 * 1024;
  // How long a read (or write) of a request (or response) may stall before the connection is
  // dropped. REQUIRES: > 0. Default: 10 s each.
  std::chrono::milliseconds read_timeout = std::chrono::seconds(10);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(10);
  // An idle keep-alive connection is closed after this long (whole seconds, rounded up). This
  // also bounds how long Stop() waits for idle keep-alive connections. REQUIRES: > 0.
  // Default: 2 s.
  std::chrono::milliseconds keep_alive_timeout = std::chrono::seconds(2);
  // A keep-alive connection is closed after this many requests. REQUIRES: >= 1. Default: 1000.
  int keep_alive_max_requests = 1000;
  // Who may call the /v1 routes. With a keyring, every /v1 request needs
  // `Authorization: Bearer <secret>` of one of its keys: a customer key reads and writes only its
  // customer's campaigns (others are 404) and writes as `api:<key id>`; a service key acts for
  // any customer and must name the end user in `X-Actor: user:<id>` on writes. nullptr trusts
  // `X-Actor` as sent and needs no credentials: for tests and development only (`serve
  // --insecure-trust-actor`). /healthz and /metrics never need credentials. Default: nullptr.
  std::shared_ptr<const ApiKeyring> keys;
};

class CampaignApiServer {
 public:
  // REQUIRES: `service` outlives the server. Does no I/O; Start() opens the socket.
  explicit CampaignApiServer(CampaignService& service, const CampaignApiOptions& options = {});
  CampaignApiServer(const CampaignApiServer&) = delete;
  CampaignApiServer& operator=(const CampaignApiServer&) = delete;
  // Stop()s the server.
  ~CampaignApiServer();

  // Listen on `host` ("127.0.0.1", "0.0.0.0", "::1", a name) and `port` (0 = pick a free port;
  // see port()) and serve in background threads. Returns once the socket accepts connections.
  // A server starts once. Fails with InvalidArgument for bad options or port, Unavailable when
  // the address cannot be bound (e.g. in use), FailedPrecondition when called a second time.
  Status Start(const std::string& host, int port);

  // Stop accepting connections, let the requests in flight finish (their responses are sent),
  // then return. Connections idle in keep-alive are closed; Stop may wait up to
  // `keep_alive_timeout` for them. Idempotent; a no-op before Start.
  void Stop();

  // Return the bound port (the chosen one when Start was given 0), or 0 before Start.
  int port() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
