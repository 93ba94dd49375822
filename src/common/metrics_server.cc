#include "common/metrics_server.h"

#include <fmt/format.h>
#include <httplib.h>

#include <cstdlib>
#include <mutex>
#include <thread>

namespace ch {

struct MetricsServer::Impl {
  MetricsServerOptions options;
  httplib::Server server;
  std::thread thread;
  std::mutex mu;  // serializes Stop
  int port = 0;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsServer::~MetricsServer() { Stop(); }

int MetricsServer::port() const { return impl_->port; }

void MetricsServer::Stop() {
  std::lock_guard lock(impl_->mu);
  if (!impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& host, int port,
                                                            const MetricsServerOptions& options) {
  if (options.registry == nullptr) return InvalidArgumentError("metrics server: no registry");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  httplib::Server& s = impl->server;
  // Scrapes and probes are small and rare: a few threads are plenty.
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  // Only SO_REUSEADDR: httplib's default also sets SO_REUSEPORT, which would let a second
  // process bind the same port silently (and scrapes would reach either).
  s.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  Impl* raw = impl.get();
  s.Get("/metrics", [raw](const httplib::Request&, httplib::Response& res) {
    res.set_content(raw->options.registry->Render(), "text/plain; version=0.0.4");
  });
  s.Get("/healthz", [raw](const httplib::Request&, httplib::Response& res) {
    HealthReply h = raw->options.health ? raw->options.health() : HealthReply{};
    res.status = h.http_status;
    res.set_content(h.json, "application/json");
  });
  for (const char* path : {"/metrics", "/healthz"}) {
    auto refuse = [](const httplib::Request&, httplib::Response& res) {
      res.status = 405;
      res.set_header("Allow", "GET");
      res.set_content("only GET\n", "text/plain");
    };
    s.Post(path, refuse);
    s.Put(path, refuse);
    s.Delete(path, refuse);
    s.Patch(path, refuse);
  }
  int bound = port == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, port) ? port : -1);
  if (bound < 0) {
    return UnavailableError(fmt::format("cannot listen on {}:{} for metrics", host, port));
  }
  impl->port = bound;
  impl->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!raw->server.is_running()) {
    if (std::chrono::steady_clock::now() > deadline) {
      raw->server.stop();
      raw->thread.join();
      return UnavailableError(fmt::format("metrics server on {}:{} did not start", host, bound));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

Result<std::pair<std::string, int>> ParseHostPort(std::string_view flag, std::string_view text) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return InvalidArgumentError(fmt::format("{}: '{}' must be HOST:PORT", flag, text));
  }
  std::string p(text.substr(colon + 1));
  char* end = nullptr;
  long v = std::strtol(p.c_str(), &end, 10);
  if (p.empty() || *end != '\0' || v < 0 || v > 65535) {
    return InvalidArgumentError(fmt::format("{}: '{}' has no valid port (0-65535)", flag, text));
  }
  return std::pair<std::string, int>(std::string(text.substr(0, colon)), static_cast<int>(v));
}

Result<HttpReply> HttpGet(std::string_view url, Micros timeout) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0) {
    return InvalidArgumentError(fmt::format("'{}' is not an http:// URL", url));
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  ASSIGN_OR_RETURN(auto host_port, ParseHostPort("url", authority));
  httplib::Client client(host_port.first, host_port.second);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  client.set_connection_timeout(secs.count(), usecs.count());
  client.set_read_timeout(secs.count(), usecs.count());
  httplib::Result res = client.Get(path);
  if (!res) {
    return UnavailableError(
        fmt::format("no answer from {}: {}", url, httplib::to_string(res.error())));
  }
  return HttpReply{res->status, res->body};
}

}  // namespace ch
