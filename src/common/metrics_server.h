// MetricsServer: the operations endpoint of a long-running process (`serve --metrics-listen`):
//
//   GET /metrics   the registry in the Prometheus text format, 200
//   GET /healthz   the health callback's answer: 200 when healthy, 503 when not, with its JSON
//   anything else  404 (405 for another method on the two paths)
//
// Thread-safety: Start/Stop/port may be called from any thread (not from a handler). Requests are
// served by a small pool of threads; the registry's collectors and the health callback must be
// safe to call from them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "common/clock.h"
#include "common/metrics.h"
#include "common/status.h"

namespace ch {

// What /healthz answers: an HTTP status and a JSON body.
struct HealthReply {
  int http_status = 200;
  std::string json = R"({"status":"ok"})";
};

struct MetricsServerOptions {
  // REQUIRES: not null; must outlive the server.
  const MetricsRegistry* registry = nullptr;
  // Called for each GET /healthz. Default: always healthy.
  std::function<HealthReply()> health;
};

class MetricsServer {
 public:
  // Listen on host:port (port 0: any free port) and serve on background threads. Returns once
  // the port accepts connections. Fails with Unavailable naming the address when it cannot bind.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& host, int port,
                                                      const MetricsServerOptions& options);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The port it listens on.
  int port() const;
  // Stop listening and wait for the requests in flight. Idempotent.
  void Stop();

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The answer of an HTTP GET.
struct HttpReply {
  int status = 0;
  std::string body;
};

// GET `url` (http://HOST:PORT/PATH). Fails with InvalidArgument for a URL that is not http://,
// Unavailable naming the URL when there is no answer within `timeout`.
Result<HttpReply> HttpGet(std::string_view url, Micros timeout);

// Parse "HOST:PORT" (port 0-65535). Fails with InvalidArgument naming `flag` and the value.
Result<std::pair<std::string, int>> ParseHostPort(std::string_view flag, std::string_view text);

}  // namespace ch
