// Pieces shared by the HTTP servers of the api and support roles (campaign_api.cc,
// support_api.cc): the elastic worker pool, the JSON error body, httplib's own errors mapped to
// it, and the path-id check. Internal: includes httplib.h, so only .cc files of ch_api include it.
#pragma once

#include <httplib.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"

namespace ch::http_internal {

inline constexpr const char* kJson = "application/json";

// Echo at most an excerpt of client input in a message: 'text'.
std::string Quote(std::string_view text);

// Parse a path segment as a positive 64-bit id. Fails with InvalidArgument naming `what`.
Result<int64_t> ParsePathId(std::string_view text, std::string_view what);

// {"error":{"code":...,"message":...}}; never throws on invalid UTF-8 in the message.
std::string ErrorJson(std::string_view code, std::string_view message);

// Answer `res` with an error. It also sets ThreadErrorCode() to `code`.
void SetError(httplib::Response& res, int http_status, std::string_view code,
              std::string_view message);
// HttpStatusFor(status.code()) with the status's code name and message.
void SetError(httplib::Response& res, const Status& status);

// The code of the last error SetError answered on this thread (e.g. the `code` label of an
// errors metric): a server clears it when a request starts and reads it when it is logged, both
// on the request's worker thread. `code` must be static (a literal or StatusCodeName).
std::string_view& ThreadErrorCode();

// Bind `server` to host:port (port 0: any free one), then serve it on a new thread stored in
// `listener`, which sets `done` when it ends; return the bound port once the server runs (so that
// stop() takes effect). Messages start with `role` ("api", "support"). Fails with
// InvalidArgument for a port outside 0..65535, Unavailable when it cannot listen.
Result<int> BindAndListen(httplib::Server& server, const std::string& host, int port,
                          std::string_view role, std::thread& listener, std::atomic<bool>& done);

// The error for responses that httplib itself produced (no handler ran): bad request lines,
// bodies over the limit, and so on.
std::pair<std::string_view, std::string> DefaultError(int http_status, size_t max_body);

// httplib serves each connection on one task of its TaskQueue for as long as the connection is
// open, keep-alive included, so a fixed pool lets idle keep-alive connections starve new ones
// (with httplib's ThreadPool(8), a 9th client waited the whole keep-alive timeout). This pool
// starts `min_threads` workers and adds one whenever a connection would otherwise wait, up to
// `max_threads`.
class ElasticPool final : public httplib::TaskQueue {
 public:
  ElasticPool(size_t min_threads, size_t max_threads);
  ~ElasticPool() override;

  void enqueue(std::function<void()> fn) override;
  // Serve the connections already accepted, then join every worker.
  void shutdown() override;

 private:
  void Work();

  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;  // guarded by mu_
  std::vector<std::thread> threads_;        // guarded by mu_
  size_t idle_ = 0;                         // workers waiting for a job; guarded by mu_
  bool shutdown_ = false;                   // guarded by mu_
};

// Only SO_REUSEADDR: httplib's default also sets SO_REUSEPORT, which would let a second server
// bind a port already in use instead of failing.
void SetReuseAddrOnly(httplib::Server& server);

}  // namespace ch::http_internal
