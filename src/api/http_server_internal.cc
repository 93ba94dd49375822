#include "api/http_server_internal.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/text.h"

namespace ch::http_internal {

std::string Quote(std::string_view text) { return fmt::format("'{}'", Excerpt(text)); }

Result<int64_t> ParsePathId(std::string_view text, std::string_view what) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, v);
  bool digits_only =
      !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  if (!digits_only || ec != std::errc() || p != end || v <= 0) {
    return InvalidArgumentError(
        fmt::format("{}: must be a positive 64-bit integer (got {})", what, Quote(text)));
  }
  return v;
}

std::string ErrorJson(std::string_view code, std::string_view message) {
  using json = nlohmann::json;
  json j = {{"error", {{"code", code}, {"message", message}}}};
  // Messages may echo client bytes; never throw on invalid UTF-8.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SetError(httplib::Response& res, int http_status, std::string_view code,
              std::string_view message) {
  res.status = http_status;
  res.body = ErrorJson(code, message);
  ThreadErrorCode() = code;
  res.set_header("Content-Type", kJson);
}

Result<int> BindAndListen(httplib::Server& server, const std::string& host, int port,
                          std::string_view role, std::thread& listener, std::atomic<bool>& done) {
  if (port < 0 || port > 65535) {
    return InvalidArgumentError(fmt::format("{}: port must be 0..65535 (got {})", role, port));
  }
  errno = 0;
  int bound =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    int err = errno;
    return UnavailableError(fmt::format("{}: cannot listen on {}:{} ({})", role, host, port,
                                        err != 0 ? std::strerror(err) : "bind failed"));
  }
  done = false;
  listener = std::thread([&server, &done, role = std::string(role)] {
    if (!server.listen_after_bind()) spdlog::error("{}: the listener stopped with an error", role);
    done = true;
  });
  // listen_after_bind marks the server running first thing; until then stop() would be a
  // no-op, so this returns only once stop() can take effect.
  while (!server.is_running() && !done) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (!server.is_running() && done) {
    listener.join();
    return UnavailableError(
        fmt::format("{}: the listener on {}:{} stopped at once", role, host, bound));
  }
  return bound;
}

std::string_view& ThreadErrorCode() {
  thread_local std::string_view code;
  return code;
}

void SetError(httplib::Response& res, const Status& status) {
  SetError(res, HttpStatusFor(status.code()), StatusCodeName(status.code()), status.message());
}

std::pair<std::string_view, std::string> DefaultError(int http_status, size_t max_body) {
  switch (http_status) {
    case 400:
      return {"INVALID_ARGUMENT", "malformed HTTP request"};
    case 413:
      return {"RESOURCE_EXHAUSTED",
              fmt::format("request body exceeds the {}-byte limit", max_body)};
    case 414:
      return {"INVALID_ARGUMENT", "request URI too long"};
    case 416:
      return {"OUT_OF_RANGE", "range not satisfiable"};
    default:
      return {http_status < 500 ? "INVALID_ARGUMENT" : "INTERNAL",
              fmt::format("HTTP {}", http_status)};
  }
}

ElasticPool::ElasticPool(size_t min_threads, size_t max_threads) : max_threads_(max_threads) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < min_threads; ++i) threads_.emplace_back([this] { Work(); });
}

ElasticPool::~ElasticPool() { shutdown(); }

void ElasticPool::enqueue(std::function<void()> fn) {
  std::lock_guard lock(mu_);
  jobs_.push_back(std::move(fn));
  if (!shutdown_ && jobs_.size() > idle_ && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { Work(); });
  } else {
    cv_.notify_one();
  }
}

void ElasticPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

void ElasticPool::Work() {
  for (;;) {
    std::function<void()> fn;
    {
      std::unique_lock lock(mu_);
      ++idle_;
      cv_.wait(lock, [&] { return shutdown_ || !jobs_.empty(); });
      --idle_;
      if (jobs_.empty()) return;  // shutting down and nothing left
      fn = std::move(jobs_.front());
      jobs_.pop_front();
    }
    fn();
  }
}

void SetReuseAddrOnly(httplib::Server& server) {
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
}

}  // namespace ch::http_internal
