#include "api/campaign_api.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "api/http_server_internal.h"
#include "campaign/campaign.h"
#include "common/text.h"
#include "common/time_util.h"

namespace ch {

namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using http_internal::DefaultError;
using http_internal::ElasticPool;
using http_internal::kJson;
using http_internal::ParsePathId;
using http_internal::Quote;
using http_internal::SetError;
using http_internal::ThreadErrorCode;

// ---- routes -------------------------------------------------------------------------------------

// Routes are matched on the path shape alone (any non-empty id segment), so that a malformed id
// is a 400 that names it rather than a 404, and a known path with the wrong method is a 405.
enum class Route { kCustomerCampaigns, kCampaign, kCampaignMove, kHealthz, kMetrics, kUnmatched };
constexpr size_t kRouteCount = 6;

// Route templates: the `route` label of the metrics. Bounded, unlike raw paths.
constexpr std::array<std::string_view, kRouteCount> kRouteLabels = {
    "/v1/customers/{customer_id}/campaigns",
    "/v1/campaigns/{id}",
    "/v1/campaigns/{id}:move",
    "/healthz",
    "/metrics",
    "unmatched",
};

// The methods each route answers (HEAD wherever GET is), as the Allow header lists them.
constexpr std::array<std::string_view, kRouteCount> kAllowed = {
    "GET, HEAD, POST", "GET, HEAD, PATCH, DELETE", "POST", "GET, HEAD", "GET, HEAD", "",
};

struct RouteMatch {
  Route route = Route::kUnmatched;
  // The raw {customer_id} or {id} segment (not yet checked).
  std::string_view id_text;
};

RouteMatch MatchRoute(std::string_view path) {
  constexpr std::string_view kCustomers = "/v1/customers/";
  constexpr std::string_view kCampaigns = "/v1/campaigns/";
  if (path == "/healthz") return {Route::kHealthz, {}};
  if (path == "/metrics") return {Route::kMetrics, {}};
  if (path.starts_with(kCustomers)) {
    std::string_view rest = path.substr(kCustomers.size());
    size_t slash = rest.find('/');
    if (slash != std::string_view::npos && slash > 0 && rest.substr(slash) == "/campaigns") {
      return {Route::kCustomerCampaigns, rest.substr(0, slash)};
    }
    return {};
  }
  if (path.starts_with(kCampaigns)) {
    std::string_view rest = path.substr(kCampaigns.size());
    if (rest.empty() || rest.find('/') != std::string_view::npos) return {};
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos) return {Route::kCampaign, rest};
    if (colon > 0 && rest.substr(colon) == ":move")
      return {Route::kCampaignMove, rest.substr(0, colon)};
    return {};
  }
  return {};
}

bool MethodAllowed(Route route, std::string_view method) {
  switch (route) {
    case Route::kCustomerCampaigns:
      return method == "GET" || method == "POST";
    case Route::kCampaign:
      return method == "GET" || method == "PATCH" || method == "DELETE";
    case Route::kCampaignMove:
      return method == "POST";
    case Route::kHealthz:
    case Route::kMetrics:
      return method == "GET";
    case Route::kUnmatched:
      return false;
  }
  return false;
}

// ---- input helpers ------------------------------------------------------------------------------

// Read an integer JSON value that must fit int64_t.
Result<int64_t> ReadJsonInt(const json& v, std::string_view field) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) {
      return InvalidArgumentError(fmt::format("{}: {} is out of the 64-bit range", field, u));
    }
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return InvalidArgumentError(fmt::format("{}: must be an integer (got {})", field, v.type_name()));
}

Result<json> ParseBodyObject(std::string_view body) {
  if (JsonNestingDepth(body) > kMaxJsonNesting) {
    return InvalidArgumentError(
        fmt::format("body: arrays and objects nest more than {} levels deep", kMaxJsonNesting));
  }
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    return InvalidArgumentError(fmt::format("body: malformed JSON ({})", BriefJsonError(e.what())));
  }
  if (!j.is_object()) {
    return InvalidArgumentError(fmt::format("body: must be a JSON object (got {})", j.type_name()));
  }
  return j;
}

// The actor kinds of design.md; anything else is refused so that history stays attributable.
constexpr std::array<std::string_view, 3> kActorKinds = {"user", "api", "worker"};

Result<std::string> ActorFrom(const httplib::Request& req) {
  constexpr std::string_view kExample = "e.g. user:42 or api:key-7";
  if (!req.has_header("X-Actor")) {
    return InvalidArgumentError(
        fmt::format("X-Actor: header required on every write ({})", kExample));
  }
  if (req.get_header_value_count("X-Actor") > 1) {
    return InvalidArgumentError("X-Actor: give the header once");
  }
  std::string actor = req.get_header_value("X-Actor");
  Status valid = ValidateActor(actor);
  if (!valid.ok()) {
    // ValidateActor names the field "actor"; here it is the header.
    std::string_view message = valid.message();
    if (message.starts_with("actor: ")) message.remove_prefix(7);
    return InvalidArgumentError(fmt::format("X-Actor: {}", message));
  }
  for (unsigned char ch : actor) {
    if (ch < 0x20 || ch == 0x7f) {
      return InvalidArgumentError("X-Actor: must not contain control characters");
    }
  }
  size_t colon = actor.find(':');
  bool kind_ok = false;
  if (colon != std::string::npos && colon + 1 < actor.size()) {
    std::string_view kind(actor.data(), colon);
    for (std::string_view k : kActorKinds) kind_ok = kind_ok || kind == k;
  }
  if (!kind_ok) {
    return InvalidArgumentError(fmt::format(
        "X-Actor: must be user:<id>, api:<key> or worker:<name> (got {})", Quote(actor)));
  }
  return actor;
}

// If-Match: "<version>" -> expect_version; "*" or absent -> no precondition.
Result<std::optional<int64_t>> ExpectedVersionFrom(const httplib::Request& req) {
  if (!req.has_header("If-Match")) return std::optional<int64_t>();
  const std::string header = req.get_header_value("If-Match");
  std::string_view v = header;
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v == "*") return std::optional<int64_t>();
  if (v.size() >= 3 && v.front() == '"' && v.back() == '"') {
    auto version = ParsePathId(v.substr(1, v.size() - 2), "If-Match");
    if (version.ok()) return std::optional<int64_t>(*version);
  }
  return InvalidArgumentError(fmt::format(
      "If-Match: must be one quoted version as the ETag gives it, e.g. \"3\" (got {})", Quote(v)));
}

// The body of POST /v1/customers/{customer_id}/campaigns: the campaign's fields, as a patch
// names them, plus an optional explicit `id` and an optional `customer_id` equal to the path's.
Result<Campaign> ParseCreateBody(std::string_view body, int64_t customer_id) {
  ASSIGN_OR_RETURN(json j, ParseBodyObject(body));
  Campaign draft;
  draft.customer_id = customer_id;
  json fields = json::object();
  for (auto& [key, v] : j.items()) {
    if (key == "id") {
      ASSIGN_OR_RETURN(draft.id, ReadJsonInt(v, "id"));
      if (draft.id <= 0) {
        return InvalidArgumentError(
            fmt::format("id: must be positive (got {}); leave it out to get a new id", draft.id));
      }
    } else if (key == "customer_id") {
      ASSIGN_OR_RETURN(int64_t cid, ReadJsonInt(v, "customer_id"));
      if (cid != customer_id) {
        return InvalidArgumentError(fmt::format(
            "customer_id: {} differs from the customer in the path ({})", cid, customer_id));
      }
    } else if (key == "priority") {
      return InvalidArgumentError(
          "priority: a new campaign always starts at priority 1; move it afterwards "
          "(POST /v1/campaigns/{id}:move)");
    } else if (key == "version" || key == "created_at" || key == "updated_at") {
      return InvalidArgumentError(fmt::format("{}: read-only (set by the service)", key));
    } else {
      fields[key] = std::move(v);
    }
  }
  // The remaining fields read exactly as in a patch (same names, types and messages).
  ASSIGN_OR_RETURN(CampaignPatch patch, ParseCampaignPatch(fields.dump()));
  ApplyPatch(patch, draft);
  return draft;
}

Result<int64_t> ParseMoveBody(std::string_view body) {
  ASSIGN_OR_RETURN(json j, ParseBodyObject(body));
  std::optional<int64_t> priority;
  for (const auto& [key, v] : j.items()) {
    if (key != "priority") {
      return InvalidArgumentError(
          fmt::format("{}: unknown field (a move takes only priority)", Excerpt(key)));
    }
    ASSIGN_OR_RETURN(priority, ReadJsonInt(v, "priority"));
  }
  if (!priority) return InvalidArgumentError("priority: missing");
  return *priority;
}

// ---- responses ----------------------------------------------------------------------------------

std::string ETag(int64_t version) { return fmt::format("\"{}\"", version); }

void SetCampaign(httplib::Response& res, int http_status, const Campaign& c) {
  res.status = http_status;
  res.body = CampaignToJson(c);
  res.set_header("Content-Type", kJson);
}

void SetCommitHeaders(httplib::Response& res, const CommitInfo& info) {
  res.set_header("X-Transaction-Id", info.transaction_id);
  res.set_header("X-Committed-At", FormatTimestamp(info.committed_at));
}

// ---- metrics ------------------------------------------------------------------------------------

// Request counts by (route, method, status), a latency histogram by (route, method), and what
// the writes committed. Rendered in the Prometheus text format (version 0.0.4).
class ApiMetrics {
 public:
  // Upper bounds of the latency buckets, in seconds (+Inf is implicit).
  static constexpr std::array<double, 14> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

  void RecordRequest(Route route, std::string_view method, int http_status,
                     std::optional<double> seconds) {
    std::string m = KnownMethod(method);
    std::lock_guard lock(mu_);
    ++requests_[{static_cast<int>(route), m, http_status}];
    if (seconds) {
      Histogram& h = latency_[{static_cast<int>(route), m}];
      size_t b = 0;
      while (b < kBuckets.size() && *seconds > kBuckets[b]) ++b;
      ++h.counts[b];
      h.sum += *seconds;
      ++h.count;
    }
  }

  void RecordError(std::string_view code) {
    std::lock_guard lock(mu_);
    ++errors_[std::string(code)];
  }
  void RecordAuthFailure(std::string_view reason) {
    std::lock_guard lock(mu_);
    ++auth_failures_[std::string(reason)];
  }

  void RecordCommit(ChangeOp op, const CommitInfo& info) {
    writes_[static_cast<size_t>(op)].fetch_add(1, std::memory_order_relaxed);
    versions_.fetch_add(static_cast<int64_t>(info.changes.size()), std::memory_order_relaxed);
  }
  void RecordMove(const CommitInfo& info) {
    moves_.fetch_add(1, std::memory_order_relaxed);
    versions_.fetch_add(static_cast<int64_t>(info.changes.size()), std::memory_order_relaxed);
  }

  std::string Render() const {
    std::string out;
    out +=
        "# HELP campaign_history_api_requests_total HTTP requests answered, by route template, "
        "method and status.\n"
        "# TYPE campaign_history_api_requests_total counter\n";
    std::map<std::pair<int, std::string>, Histogram> latency;
    {
      std::lock_guard lock(mu_);
      for (const auto& [key, n] : requests_) {
        const auto& [route, method, status] = key;
        out += fmt::format(
            "campaign_history_api_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} {}\n",
            kRouteLabels[route], method, status, n);
      }
      latency = latency_;
      RenderCounts(out, "errors_total", "Error responses, by error code.", "code", errors_);
      RenderCounts(out, "auth_failures_total",
                   "Requests refused for their credentials or their scope, by reason (missing, "
                   "malformed, unknown_key, wrong_secret, revoked, wrong_customer, actor_refused).",
                   "reason", auth_failures_);
    }
    out +=
        "# HELP campaign_history_api_request_duration_seconds Time from routing a request to "
        "having written its response.\n"
        "# TYPE campaign_history_api_request_duration_seconds histogram\n";
    for (const auto& [key, h] : latency) {
      std::string labels =
          fmt::format("route=\"{}\",method=\"{}\"", kRouteLabels[key.first], key.second);
      int64_t cumulative = 0;
      for (size_t b = 0; b <= kBuckets.size(); ++b) {
        cumulative += h.counts[b];
        std::string le = b < kBuckets.size() ? fmt::format("{}", kBuckets[b]) : "+Inf";
        out +=
            fmt::format("campaign_history_api_request_duration_seconds_bucket{{{},le=\"{}\"}} {}\n",
                        labels, le, cumulative);
      }
      out += fmt::format("campaign_history_api_request_duration_seconds_sum{{{}}} {}\n", labels,
                         h.sum);
      out += fmt::format("campaign_history_api_request_duration_seconds_count{{{}}} {}\n", labels,
                         h.count);
    }
    out +=
        "# HELP campaign_history_api_writes_total Write actions committed through the API, by "
        "operation.\n"
        "# TYPE campaign_history_api_writes_total counter\n";
    for (ChangeOp op : {ChangeOp::kCreated, ChangeOp::kUpdated, ChangeOp::kDeleted}) {
      out += fmt::format("campaign_history_api_writes_total{{op=\"{}\"}} {}\n", OpLabel(op),
                         writes_[static_cast<size_t>(op)].load());
    }
    out += fmt::format("campaign_history_api_writes_total{{op=\"moved\"}} {}\n", moves_.load());
    out +=
        "# HELP campaign_history_api_campaign_versions_written_total Campaign versions committed "
        "through the API (shifted campaigns included).\n"
        "# TYPE campaign_history_api_campaign_versions_written_total counter\n";
    out +=
        fmt::format("campaign_history_api_campaign_versions_written_total {}\n", versions_.load());
    return out;
  }

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size() + 1> counts{};
    double sum = 0;
    int64_t count = 0;
  };

  static void RenderCounts(std::string& out, std::string_view name, std::string_view help,
                           std::string_view label, const std::map<std::string, int64_t>& counts) {
    out +=
        fmt::format("# HELP campaign_history_api_{} {}\n# TYPE campaign_history_api_{} counter\n",
                    name, help, name);
    for (const auto& [value, n] : counts) {
      out += fmt::format("campaign_history_api_{}{{{}=\"{}\"}} {}\n", name, label, value, n);
    }
  }

 public:
  static std::string KnownMethod(std::string_view m) {
    for (std::string_view k : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
      if (m == k) return std::string(k);
    }
    return "OTHER";
  }

 private:
  static std::string_view OpLabel(ChangeOp op) { return ChangeOpName(op); }

  mutable std::mutex mu_;
  std::map<std::tuple<int, std::string, int>, int64_t> requests_;  // guarded by mu_
  std::map<std::pair<int, std::string>, Histogram> latency_;       // guarded by mu_
  std::map<std::string, int64_t> errors_;                          // guarded by mu_
  std::map<std::string, int64_t> auth_failures_;                   // guarded by mu_
  std::array<std::atomic<int64_t>, 3> writes_{};
  std::atomic<int64_t> moves_{0};
  std::atomic<int64_t> versions_{0};
};

// When the worker thread began routing the current request (set by the pre-routing handler,
// consumed by the logger, which httplib calls on the same thread once the response is written).
thread_local std::optional<SteadyClock::time_point> t_request_start;

}  // namespace

// ---- the server ---------------------------------------------------------------------------------

class CampaignApiServer::Impl {
 public:
  Impl(CampaignService& service, const CampaignApiOptions& options)
      : service_(service), options_(options) {}

  ~Impl() { Stop(); }

  Status Start(const std::string& host, int port);
  void Stop();
  int port() const { return port_.load(); }

 private:
  void Configure();

  // Entry points from httplib. Never throw.
  void Handle(const httplib::Request& req, httplib::Response& res, std::string_view body);
  void HandleWithReader(const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& reader);

  // Route and run one request; may throw (Handle catches).
  void Dispatch(const httplib::Request& req, httplib::Response& res, std::string_view body);

  // Authentication and scope (only with options_.keys). Each answers the refusal itself and
  // returns false when the request may not go on.
  bool Authenticate(const httplib::Request& req, Route route, httplib::Response& res,
                    std::optional<ApiKey>& key);
  bool CustomerVisible(const httplib::Request& req, Route route, const ApiKey* key,
                       int64_t customer_id, httplib::Response& res);
  bool CampaignVisible(const httplib::Request& req, Route route, const ApiKey* key, int64_t id,
                       httplib::Response& res);
  // The actor of a write, from the key and X-Actor; answers 400/403 and returns nullopt if none.
  std::optional<std::string> WriteActor(const httplib::Request& req, Route route, const ApiKey* key,
                                        httplib::Response& res);
  void Refuse(const httplib::Request& req, Route route, httplib::Response& res,
              const Status& status, std::string_view reason, std::string_view key_id);

  void Create(int64_t customer_id, const std::string& actor, httplib::Response& res,
              std::string_view body);
  void List(int64_t customer_id, httplib::Response& res);
  void Get(int64_t id, httplib::Response& res);
  void Update(int64_t id, const std::string& actor, const httplib::Request& req,
              httplib::Response& res, std::string_view body);
  void Move(int64_t id, const std::string& actor, const httplib::Request& req,
            httplib::Response& res, std::string_view body);
  void Delete(int64_t id, const std::string& actor, const httplib::Request& req,
              httplib::Response& res);

  CampaignService& service_;
  const CampaignApiOptions options_;
  ApiMetrics metrics_;
  httplib::Server server_;

  std::mutex lifecycle_mu_;
  std::thread listener_;  // guarded by lifecycle_mu_
  bool started_ = false;  // guarded by lifecycle_mu_
  std::atomic<bool> listener_done_{false};
  std::atomic<int> port_{0};
};

Status CampaignApiServer::Impl::Start(const std::string& host, int port) {
  std::lock_guard lock(lifecycle_mu_);
  if (started_) return FailedPreconditionError("api: the server was already started");
  if (options_.threads < 1 || options_.max_threads < options_.threads ||
      options_.max_threads > 1024) {
    return InvalidArgumentError(fmt::format(
        "api: need 1 <= threads <= max_threads <= 1024 (got threads {}, max_threads {})",
        options_.threads, options_.max_threads));
  }
  if (options_.max_body_bytes < 1024) {
    return InvalidArgumentError(
        fmt::format("api: max_body_bytes must be >= 1024 (got {})", options_.max_body_bytes));
  }
  if (options_.read_timeout.count() <= 0 || options_.write_timeout.count() <= 0 ||
      options_.keep_alive_timeout.count() <= 0) {
    return InvalidArgumentError("api: read, write and keep-alive timeouts must be positive");
  }
  if (options_.keep_alive_max_requests < 1) {
    return InvalidArgumentError(fmt::format("api: keep_alive_max_requests must be >= 1 (got {})",
                                            options_.keep_alive_max_requests));
  }
  Configure();
  ASSIGN_OR_RETURN(int bound, http_internal::BindAndListen(server_, host, port, "api", listener_,
                                                           listener_done_));
  started_ = true;
  port_ = bound;
  spdlog::info("api: listening on {}:{} ({}-{} threads)", host, bound, options_.threads,
               options_.max_threads);
  return Status::OK();
}

void CampaignApiServer::Impl::Stop() {
  std::lock_guard lock(lifecycle_mu_);
  if (!listener_.joinable()) return;
  // Closes the listening socket; listen_after_bind then drains the thread pool (requests in
  // flight finish and are answered) and returns.
  server_.stop();
  listener_.join();
  spdlog::info("api: stopped");
}

void CampaignApiServer::Impl::Configure() {
  size_t min_threads = static_cast<size_t>(options_.threads);
  size_t max_threads = static_cast<size_t>(options_.max_threads);
  server_.new_task_queue = [min_threads, max_threads] {
    return new ElasticPool(min_threads, max_threads);
  };
  server_.set_tcp_nodelay(true);
  // Only SO_REUSEADDR: httplib's default also sets SO_REUSEPORT, which would let a second
  // server bind a port already in use instead of failing.
  http_internal::SetReuseAddrOnly(server_);
  server_.set_payload_max_length(options_.max_body_bytes);
  auto split = [](std::chrono::milliseconds d) {
    return std::pair<time_t, time_t>(d.count() / 1000, (d.count() % 1000) * 1000);
  };
  auto [rs, rus] = split(options_.read_timeout);
  server_.set_read_timeout(rs, rus);
  auto [ws, wus] = split(options_.write_timeout);
  server_.set_write_timeout(ws, wus);
  server_.set_keep_alive_timeout(
      static_cast<time_t>((options_.keep_alive_timeout.count() + 999) / 1000));
  server_.set_keep_alive_max_count(static_cast<size_t>(options_.keep_alive_max_requests));

  // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3); answer it
  // here, before httplib would try to read a body until the connection closes.
  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_request_start = SteadyClock::now();
    ThreadErrorCode() = {};
    if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    Handle(req, res, {});
    return httplib::Server::HandlerResponse::Handled;
  });
  // Requests with a body: read it ourselves so the size limit also holds for chunked bodies.
  auto with_reader = [this](const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& reader) {
    HandleWithReader(req, res, reader);
  };
  auto plain = [this](const httplib::Request& req, httplib::Response& res) {
    Handle(req, res, req.body);
  };
  server_.Post(".*", httplib::Server::HandlerWithContentReader(with_reader));
  server_.Put(".*", httplib::Server::HandlerWithContentReader(with_reader));
  server_.Patch(".*", httplib::Server::HandlerWithContentReader(with_reader));
  server_.Delete(".*", httplib::Server::HandlerWithContentReader(with_reader));
  server_.Get(".*", plain);
  server_.Options(".*", plain);

  // Responses that no handler wrote (httplib's own 400/413/414) get the JSON error body too.
  size_t max_body = options_.max_body_bytes;
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        auto [code, message] = DefaultError(res.status, max_body);
        SetError(res, res.status, code, message);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        SetError(res, 500, "INTERNAL", "unexpected error");
      });
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    std::optional<double> seconds;
    if (t_request_start) {
      seconds = std::chrono::duration<double>(SteadyClock::now() - *t_request_start).count();
      t_request_start.reset();
    }
    metrics_.RecordRequest(MatchRoute(req.path).route, req.method, res.status, seconds);
    if (res.status >= 400)
      metrics_.RecordError(ThreadErrorCode().empty() ? "UNKNOWN" : ThreadErrorCode());
    ThreadErrorCode() = {};
  });
}

void CampaignApiServer::Impl::HandleWithReader(const httplib::Request& req, httplib::Response& res,
                                               const httplib::ContentReader& reader) {
  std::string body;
  bool too_large = false;
  bool read = false;
  try {
    read = reader([&](const char* data, size_t n) {
      if (body.size() + n > options_.max_body_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
  } catch (const std::exception& e) {
    spdlog::warn("api: reading a request body failed: {}", e.what());
  }
  if (too_large || res.status == 413) {
    // httplib already skipped a declared over-long body; a chunked one stops mid-stream, so the
    // connection cannot be reused (httplib closes it when the leftover bytes fail to parse).
    SetError(res, 413, "RESOURCE_EXHAUSTED",
             fmt::format("request body exceeds the {}-byte limit", options_.max_body_bytes));
    return;
  }
  if (!read) {
    SetError(res, 400, "INVALID_ARGUMENT", "could not read the request body");
    return;
  }
  res.status = -1;
  Handle(req, res, body);
}

void CampaignApiServer::Impl::Handle(const httplib::Request& req, httplib::Response& res,
                                     std::string_view body) {
  try {
    Dispatch(req, res, body);
  } catch (const std::exception& e) {
    // The details stay in the log; the client learns only that it was our fault.
    spdlog::error("api: {} {} failed: {}", Excerpt(req.method), Excerpt(req.path),
                  Excerpt(e.what()));
    SetError(res, InternalError("unexpected error (logged)"));
  } catch (...) {
    spdlog::error("api: {} {} failed with a non-standard exception", Excerpt(req.method),
                  Excerpt(req.path));
    SetError(res, InternalError("unexpected error"));
  }
}

void CampaignApiServer::Impl::Dispatch(const httplib::Request& req, httplib::Response& res,
                                       std::string_view body) {
  RouteMatch m = MatchRoute(req.path);
  if (m.route == Route::kUnmatched) {
    SetError(res, NotFoundError(fmt::format("no route for {} {}", req.method, Quote(req.path))));
    return;
  }
  std::string_view allowed = kAllowed[static_cast<size_t>(m.route)];
  std::string_view method = req.method == "HEAD" ? std::string_view("GET") : req.method;
  if (method == "OPTIONS") {
    res.status = 204;
    res.set_header("Allow", std::string(allowed) + ", OPTIONS");
    return;
  }
  if (!MethodAllowed(m.route, method)) {
    res.set_header("Allow", std::string(allowed));
    SetError(res, 405, "UNIMPLEMENTED",
             fmt::format("{} is not allowed on {} (allowed: {})", req.method,
                         kRouteLabels[static_cast<size_t>(m.route)], allowed));
    return;
  }

  if (m.route == Route::kHealthz) {
    res.status = 200;
    res.set_content("ok", "text/plain");
    return;
  }
  if (m.route == Route::kMetrics) {
    res.status = 200;
    res.set_content(metrics_.Render(), "text/plain; version=0.0.4");
    return;
  }
  // Every /v1 route: credentials first, then the path, then the scope, then the actor.
  std::optional<ApiKey> key;
  if (options_.keys && !Authenticate(req, m.route, res, key)) return;
  const bool write = method != "GET";
  switch (m.route) {
    case Route::kCustomerCampaigns: {
      auto customer_id = ParsePathId(m.id_text, "customer_id");
      if (!customer_id.ok()) return SetError(res, customer_id.status());
      if (!CustomerVisible(req, m.route, key ? &*key : nullptr, *customer_id, res)) return;
      if (!write) return List(*customer_id, res);
      std::optional<std::string> actor = WriteActor(req, m.route, key ? &*key : nullptr, res);
      if (!actor) return;
      return Create(*customer_id, *actor, res, body);
    }
    case Route::kCampaign:
    case Route::kCampaignMove: {
      auto id = ParsePathId(m.id_text, "id");
      if (!id.ok()) return SetError(res, id.status());
      if (!CampaignVisible(req, m.route, key ? &*key : nullptr, *id, res)) return;
      if (!write) return Get(*id, res);
      std::optional<std::string> actor = WriteActor(req, m.route, key ? &*key : nullptr, res);
      if (!actor) return;
      if (m.route == Route::kCampaignMove) return Move(*id, *actor, req, res, body);
      if (method == "PATCH") return Update(*id, *actor, req, res, body);
      return Delete(*id, *actor, req, res);
    }
    case Route::kHealthz:
    case Route::kMetrics:
    case Route::kUnmatched:
      break;
  }
  SetError(res, InternalError("unrouted request"));
}

// ---- authentication and scope -------------------------------------------------------------------

void CampaignApiServer::Impl::Refuse(const httplib::Request& req, Route route,
                                     httplib::Response& res, const Status& status,
                                     std::string_view reason, std::string_view key_id) {
  metrics_.RecordAuthFailure(reason);
  // Route template and key id only: never the secret, and no raw client bytes in the log.
  spdlog::warn("api: refused {} {} from {}: {} ({})", ApiMetrics::KnownMethod(req.method),
               kRouteLabels[static_cast<size_t>(route)], Excerpt(req.remote_addr), reason,
               key_id.empty() ? std::string("no known key") : fmt::format("key {}", key_id));
  SetError(res, status);
  if (status.code() == StatusCode::kUnauthenticated) {
    res.set_header("WWW-Authenticate",
                   reason == "missing"
                       ? "Bearer realm=\"campaign-history\""
                       : "Bearer realm=\"campaign-history\", error=\"invalid_token\"");
  }
}

bool CampaignApiServer::Impl::Authenticate(const httplib::Request& req, Route route,
                                           httplib::Response& res, std::optional<ApiKey>& key) {
  if (!req.has_header("Authorization")) {
    Refuse(req, route, res,
           UnauthenticatedError(
               "Authorization: credentials required (Authorization: Bearer <API key>)"),
           "missing", "");
    return false;
  }
  const std::string header = req.get_header_value("Authorization");
  std::string_view v = header;
  constexpr std::string_view kBearer = "bearer ";
  bool bearer = v.size() > kBearer.size() && req.get_header_value_count("Authorization") == 1 &&
                StartsWithNoCase(v, kBearer);
  if (!bearer) {
    Refuse(req, route, res,
           UnauthenticatedError("Authorization: expected one header 'Bearer <API key>'"),
           "malformed", "");
    return false;
  }
  v.remove_prefix(kBearer.size());
  ApiKeyring::Refusal refusal;
  key = options_.keys->Authenticate(v, &refusal);
  if (!key) {
    Refuse(req, route, res, refusal.status, refusal.reason, refusal.key_id);
    return false;
  }
  return true;
}

bool CampaignApiServer::Impl::CustomerVisible(const httplib::Request& req, Route route,
                                              const ApiKey* key, int64_t customer_id,
                                              httplib::Response& res) {
  if (key == nullptr || key->service() || *key->customer_id == customer_id) return true;
  // The same answer whether or not the customer exists.
  Refuse(req, route, res, NotFoundError(fmt::format("customer {} not found", customer_id)),
         "wrong_customer", key->id);
  return false;
}

bool CampaignApiServer::Impl::CampaignVisible(const httplib::Request& req, Route route,
                                              const ApiKey* key, int64_t id,
                                              httplib::Response& res) {
  if (key == nullptr || key->service()) return true;
  // A campaign never changes customer and ids are never reused, so checking before the write
  // holds for the write too.
  auto row = service_.Get(id);
  if (!row.ok()) {
    SetError(res, row.status());
    return false;
  }
  if (row->has_value() && (*row)->customer_id == *key->customer_id) return true;
  // Byte for byte the answer for a campaign that does not exist (Get below).
  Status not_found = NotFoundError(fmt::format("campaign {} not found", id));
  if (row->has_value()) {
    Refuse(req, route, res, not_found, "wrong_customer", key->id);
  } else {
    SetError(res, not_found);
  }
  return false;
}

std::optional<std::string> CampaignApiServer::Impl::WriteActor(const httplib::Request& req,
                                                               Route route, const ApiKey* key,
                                                               httplib::Response& res) {
  if (key != nullptr && !key->service()) {
    // A customer key writes as itself; X-Actor may only repeat that.
    if (!req.has_header("X-Actor") || req.get_header_value("X-Actor") == key->actor()) {
      return key->actor();
    }
    Refuse(req, route, res,
           PermissionDeniedError(fmt::format(
               "X-Actor: a customer key writes as {}; leave the header out (only a service key "
               "names an end user)",
               key->actor())),
           "actor_refused", key->id);
    return std::nullopt;
  }
  auto actor = ActorFrom(req);
  if (!actor.ok()) {
    SetError(res, key != nullptr ? InvalidArgumentError(fmt::format(
                                       "{} (a service key names the end user: X-Actor: user:<id>)",
                                       actor.status().message()))
                                 : actor.status());
    return std::nullopt;
  }
  if (key != nullptr && !actor->starts_with("user:")) {
    Refuse(req, route, res,
           PermissionDeniedError(fmt::format(
               "X-Actor: a service key acts for an end user and must name them as user:<id> "
               "(got {})",
               Quote(*actor))),
           "actor_refused", key->id);
    return std::nullopt;
  }
  return *actor;
}

// ---- handlers -----------------------------------------------------------------------------------

void CampaignApiServer::Impl::Create(int64_t customer_id, const std::string& actor,
                                     httplib::Response& res, std::string_view body) {
  auto draft = ParseCreateBody(body, customer_id);
  if (!draft.ok()) return SetError(res, draft.status());
  WriteContext ctx{.actor = actor};
  auto info = service_.Create(*draft, ctx);
  if (!info.ok()) return SetError(res, info.status());
  metrics_.RecordCommit(ChangeOp::kCreated, *info);
  const Campaign& row = *info->row;
  SetCampaign(res, 201, row);
  res.set_header("Location", fmt::format("/v1/campaigns/{}", row.id));
  res.set_header("ETag", ETag(row.version));
  SetCommitHeaders(res, *info);
}

void CampaignApiServer::Impl::List(int64_t customer_id, httplib::Response& res) {
  auto rows = service_.List(customer_id);
  if (!rows.ok()) return SetError(res, rows.status());
  std::string out = "{\"campaigns\":[";
  for (size_t i = 0; i < rows->size(); ++i) {
    if (i > 0) out += ',';
    out += CampaignToJson((*rows)[i]);
  }
  out += "]}";
  res.status = 200;
  res.body = std::move(out);
  res.set_header("Content-Type", kJson);
}

void CampaignApiServer::Impl::Get(int64_t id, httplib::Response& res) {
  auto row = service_.Get(id);
  if (!row.ok()) return SetError(res, row.status());
  if (!row->has_value()) {
    return SetError(res, NotFoundError(fmt::format("campaign {} not found", id)));
  }
  SetCampaign(res, 200, **row);
  res.set_header("ETag", ETag((*row)->version));
}

void CampaignApiServer::Impl::Update(int64_t id, const std::string& actor,
                                     const httplib::Request& req, httplib::Response& res,
                                     std::string_view body) {
  auto expect_version = ExpectedVersionFrom(req);
  if (!expect_version.ok()) return SetError(res, expect_version.status());
  auto patch = ParseCampaignPatch(body);
  if (!patch.ok()) return SetError(res, patch.status());
  WriteContext ctx{.actor = actor, .expect_version = *expect_version};
  auto info = service_.Update(id, *patch, ctx);
  if (!info.ok()) return SetError(res, info.status());
  metrics_.RecordCommit(ChangeOp::kUpdated, *info);
  SetCampaign(res, 200, *info->row);
  res.set_header("ETag", ETag(info->row->version));
  SetCommitHeaders(res, *info);
}

void CampaignApiServer::Impl::Move(int64_t id, const std::string& actor,
                                   const httplib::Request& req, httplib::Response& res,
                                   std::string_view body) {
  auto expect_version = ExpectedVersionFrom(req);
  if (!expect_version.ok()) return SetError(res, expect_version.status());
  auto priority = ParseMoveBody(body);
  if (!priority.ok()) return SetError(res, priority.status());
  WriteContext ctx{.actor = actor, .expect_version = *expect_version};
  auto info = service_.Move(id, *priority, ctx);
  if (!info.ok()) return SetError(res, info.status());
  metrics_.RecordMove(*info);
  SetCampaign(res, 200, *info->row);
  res.set_header("ETag", ETag(info->row->version));
  SetCommitHeaders(res, *info);
}

void CampaignApiServer::Impl::Delete(int64_t id, const std::string& actor,
                                     const httplib::Request& req, httplib::Response& res) {
  auto expect_version = ExpectedVersionFrom(req);
  if (!expect_version.ok()) return SetError(res, expect_version.status());
  WriteContext ctx{.actor = actor, .expect_version = *expect_version};
  auto info = service_.Delete(id, ctx);
  if (!info.ok()) return SetError(res, info.status());
  metrics_.RecordCommit(ChangeOp::kDeleted, *info);
  SetCampaign(res, 200, *info->row);  // the last content before the delete
  SetCommitHeaders(res, *info);
}

// ---- public wrapper -----------------------------------------------------------------------------

CampaignApiServer::CampaignApiServer(CampaignService& service, const CampaignApiOptions& options)
    : impl_(std::make_unique<Impl>(service, options)) {}

CampaignApiServer::~CampaignApiServer() = default;

Status CampaignApiServer::Start(const std::string& host, int port) {
  return impl_->Start(host, port);
}

void CampaignApiServer::Stop() { impl_->Stop(); }

int CampaignApiServer::port() const { return impl_->port(); }

}  // namespace ch
