#include "api/support_api.h"

#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include "api/http_server_internal.h"
#include "api/response_cache.h"
#include "common/text.h"
#include "common/time_util.h"
#include "console/console_site.h"
#include "query/cursor.h"
#include "query/query_engine.h"
#include "query/render.h"

namespace ch {
namespace {

using http_internal::kJson;
using http_internal::ParsePathId;
using http_internal::Quote;
using SteadyClock = std::chrono::steady_clock;

// ---- one call -----------------------------------------------------------------------------------

// A matched request: the path's {placeholders} by name and the query parameters.
struct Call {
  const httplib::Request& req;
  std::map<std::string, std::string, std::less<>> path;

  // The single value of query parameter `name`, or nullopt when absent.
  std::optional<std::string> Get(std::string_view name) const {
    auto it = req.params.find(std::string(name));
    if (it == req.params.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> All(std::string_view name) const {
    std::vector<std::string> out;
    auto [b, e] = req.params.equal_range(std::string(name));
    for (auto it = b; it != e; ++it) out.push_back(it->second);
    return out;
  }
};

struct Services {
  HistoryStore& history;
  const Clock& clock;
  // Final as-of answers, rendered (null: none kept).
  ResponseCache* rendered = nullptr;
};

// A 200 answer: a JSON body rendered for this request, or one kept in Services::rendered.
struct Reply {
  Reply(std::string b) : body(std::move(b)) {}  // NOLINT(google-explicit-constructor)
  Reply(std::shared_ptr<const CachedBody> c, std::string k)
      : cached(std::move(c)), cache_key(std::move(k)) {}
  std::string body;
  std::shared_ptr<const CachedBody> cached;
  std::string cache_key;
};

// A handler answers 200 with a JSON body or fails with the Status to answer.
using Handler = Result<Reply> (*)(const Services&, const Call&);

// ---- parameters ---------------------------------------------------------------------------------

Result<int64_t> PathId(const Call& c, std::string_view name) {
  return ParsePathId(c.path.find(name)->second, name);
}

Result<Timestamp> TimeParam(const Call& c, std::string_view name, const Clock& clock,
                            std::optional<std::string_view> fallback = std::nullopt) {
  std::optional<std::string> text = c.Get(name);
  if (!text && !fallback) {
    return InvalidArgumentError(fmt::format(
        "{}: required (RFC 3339 like 2026-11-03T14:05:00Z, or now, now-2h, yesterday 14:00)",
        name));
  }
  Result<Timestamp> t = ParseTimeExpression(text ? *text : std::string(*fallback), clock);
  if (!t.ok()) return t.status().WithContext(name);
  return t;
}

Result<std::optional<TimeRange>> RangeParams(const Call& c, const Clock& clock, bool from_required,
                                             bool to_defaults_to_now) {
  TimeRange range;
  if (from_required || c.Get("from")) {
    ASSIGN_OR_RETURN(range.from, TimeParam(c, "from", clock));
  }
  if (to_defaults_to_now || c.Get("to")) {
    ASSIGN_OR_RETURN(range.to, TimeParam(c, "to", clock, "now"));
  }
  if (range.from && range.to && *range.from > *range.to) {
    return InvalidArgumentError(fmt::format("from: {} is after to {}", FormatTimestamp(*range.from),
                                            FormatTimestamp(*range.to)));
  }
  return std::optional<TimeRange>(range);
}

Result<std::optional<int64_t>> LimitParam(const Call& c, int64_t max) {
  std::optional<std::string> text = c.Get("limit");
  if (!text) return std::optional<int64_t>();
  int64_t v = 0;
  const char* end = text->data() + text->size();
  auto [p, ec] = std::from_chars(text->data(), end, v);
  if (text->empty() || ec != std::errc() || p != end || v < 1 || v > max) {
    return InvalidArgumentError(
        fmt::format("limit: must be an integer from 1 to {} (got {})", max, Quote(*text)));
  }
  return std::optional<int64_t>(v);
}

Result<std::string> ChoiceParam(const Call& c, std::string_view name,
                                std::initializer_list<std::string_view> choices) {
  std::optional<std::string> v = c.Get(name);
  if (!v) return std::string(*choices.begin());
  for (std::string_view choice : choices) {
    if (*v == choice) return *v;
  }
  return InvalidArgumentError(
      fmt::format("{}: must be {} (got {})", name, fmt::join(choices, " or "), Quote(*v)));
}

// ---- the routes ---------------------------------------------------------------------------------

// What an as-of body depends on besides its request: the completeness it reports.
std::string CompletenessKey(const Completeness& c) {
  return fmt::format("{} {} {} {} {} {}", c.through_seq,
                     c.complete_through ? c.complete_through->time_since_epoch().count() : -1,
                     c.partial_transactions, c.held_records, c.waiting_transactions, c.conflicts);
}

std::string AsOfKey(int64_t customer, Timestamp at, const AsOfOptions& o) {
  return fmt::format("as-of\n{}\n{}\n{}\n{}\n{}\n{}", customer, at.time_since_epoch().count(),
                     o.limit, o.cursor, fmt::join(o.statuses, ","), o.name);
}

// The rendered answer kept under `key`, if it is still what QueryEngine::AsOf would answer: the
// engine's refusals (an erased customer, a moment before a purge) are checked as it checks them,
// and the history's completeness, which the body reports, must be the one it was rendered with.
// Null when it must be rendered afresh.
Result<std::shared_ptr<const CachedBody>> KeptAsOf(const Services& s, const std::string& key,
                                                   int64_t customer, Timestamp at) {
  if (s.rendered == nullptr) return nullptr;
  std::shared_ptr<const CachedBody> kept = s.rendered->Find(key);
  if (!kept) return nullptr;
  ASSIGN_OR_RETURN(bool erased, s.history.Erased(customer));
  if (erased) return nullptr;
  ASSIGN_OR_RETURN(std::optional<Timestamp> purged, s.history.PurgedBefore(customer));
  if (purged && at < *purged) return nullptr;
  ASSIGN_OR_RETURN(Completeness c, s.history.GetCompleteness());
  if (kept->validity() != CompletenessKey(c)) return nullptr;
  s.rendered->CountHit();
  return kept;
}

Result<AsOfOptions> AsOfParams(const Call& c) {
  AsOfOptions options;
  ASSIGN_OR_RETURN(std::optional<int64_t> limit, LimitParam(c, kMaxAsOfLimit));
  options.limit = limit.value_or(0);
  options.cursor = c.Get("cursor").value_or("");
  for (const std::string& v : c.All("status")) {
    for (size_t start = 0; start <= v.size();) {
      size_t comma = std::min(v.find(',', start), v.size());
      options.statuses.push_back(v.substr(start, comma - start));
      start = comma + 1;
    }
  }
  options.name = c.Get("name").value_or("");
  return options;
}

// An as-of answer is kept rendered once it is final: the moment answered lies strictly before
// complete_through (history/as_of_cache.h says why nothing can change it then).
Result<Reply> HandleAsOf(const Services& s, const Call& c) {
  ASSIGN_OR_RETURN(int64_t customer, PathId(c, "customer"));
  ASSIGN_OR_RETURN(AsOfOptions options, AsOfParams(c));
  // As the CLI: a cursor continues its answer at its own moment, so `at` may be left out, and a
  // relative one ("now") means that moment too.
  std::optional<std::string> at_text = c.Get("at");
  Timestamp at;
  if (!options.cursor.empty() && (!at_text || IsRelativeTime(*at_text))) {
    ASSIGN_OR_RETURN(AsOfCursor cursor, DecodeAsOfCursor(options.cursor));
    at = cursor.at;
  } else {
    ASSIGN_OR_RETURN(at, TimeParam(c, "at", s.clock));
  }
  std::string key = AsOfKey(customer, at, options);
  ASSIGN_OR_RETURN(std::shared_ptr<const CachedBody> kept, KeptAsOf(s, key, customer, at));
  if (kept) return Reply(std::move(kept), std::move(key));
  QueryEngine engine(s.history);
  ASSIGN_OR_RETURN(AsOfResult r, engine.AsOf(customer, at, options));
  std::string body = RenderAsOfJson(r);
  const std::optional<Timestamp>& complete = r.completeness.complete_through;
  if (s.rendered == nullptr || !complete || r.answered_at >= *complete) return body;
  std::shared_ptr<const CachedBody> entry =
      s.rendered->Put(key, std::move(body), CompletenessKey(r.completeness));
  return Reply(std::move(entry), std::move(key));
}

Result<Reply> HandleTimeline(const Services& s, const Call& c) {
  ASSIGN_OR_RETURN(int64_t customer, PathId(c, "customer"));
  ASSIGN_OR_RETURN(std::optional<TimeRange> range, RangeParams(c, s.clock, true, true));
  TimelineOptions options;
  ASSIGN_OR_RETURN(std::optional<int64_t> limit, LimitParam(c, kMaxTimelineLimit));
  options.limit = limit.value_or(kDefaultTimelineLimit);
  options.cursor = c.Get("cursor").value_or("");
  ASSIGN_OR_RETURN(std::string shifts, ChoiceParam(c, "shifts", {"fold", "show"}));
  options.show_shifts = shifts == "show";
  QueryEngine engine(s.history);
  ASSIGN_OR_RETURN(TimelineResult r, engine.Timeline(customer, *range, options));
  return RenderTimelineJson(r);
}

Result<Reply> HandleLog(const Services& s, const Call& c) {
  ASSIGN_OR_RETURN(int64_t id, PathId(c, "id"));
  ASSIGN_OR_RETURN(std::optional<TimeRange> range, RangeParams(c, s.clock, false, false));
  LogOptions options;
  ASSIGN_OR_RETURN(std::string shifts, ChoiceParam(c, "shifts", {"annotate", "hide"}));
  if (shifts == "hide") options.shifts = ShiftDisplay::kHide;
  QueryEngine engine(s.history);
  ASSIGN_OR_RETURN(LogResult r, engine.Log(id, *range, options));
  return RenderLogJson(r);
}

Result<VersionRef> RefParam(const Call& c, std::string_view name, const Clock& clock,
                            std::optional<std::string_view> fallback) {
  std::optional<std::string> text = c.Get(name);
  if (!text && !fallback) {
    return InvalidArgumentError(
        fmt::format("{}: required (a version number like 3, or a moment)", name));
  }
  Result<VersionRef> r = VersionRef::Parse(text ? *text : std::string(*fallback), clock);
  if (!r.ok()) return r.status().WithContext(name);
  return r;
}

Result<Reply> HandleDiff(const Services& s, const Call& c) {
  ASSIGN_OR_RETURN(int64_t id, PathId(c, "id"));
  ASSIGN_OR_RETURN(VersionRef from, RefParam(c, "from", s.clock, std::nullopt));
  ASSIGN_OR_RETURN(VersionRef to, RefParam(c, "to", s.clock, "now"));
  QueryEngine engine(s.history);
  ASSIGN_OR_RETURN(DiffResult r, engine.Diff(id, from, to));
  return RenderDiffJson(r);
}

Result<Reply> HandleBlame(const Services& s, const Call& c) {
  ASSIGN_OR_RETURN(int64_t id, PathId(c, "id"));
  ASSIGN_OR_RETURN(Timestamp at, TimeParam(c, "at", s.clock, "now"));
  QueryEngine engine(s.history);
  ASSIGN_OR_RETURN(BlameResult r, engine.Blame(id, at));
  return RenderBlameJson(r);
}

Result<Reply> HandleSearch(const Services& s, const Call& c) {
  std::optional<std::string> q = c.Get("q");
  if (!q) {
    return InvalidArgumentError("q: required (a customer id, a campaign id or part of a name)");
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> limit, LimitParam(c, kMaxSearchLimit));
  QueryEngine engine(s.history);
  ASSIGN_OR_RETURN(SearchResult r, engine.Search(*q, limit.value_or(kDefaultSearchLimit)));
  return RenderSearchJson(r);
}

// The routes of the support role. To add one (e.g. the console's static files under
// /console/...: needs_token false, served by a handler that sets its own content type -- see
// Impl::Dispatch, which answers /healthz, /metrics and /openapi.json the same way), add a row
// here and describe it in kOpenApi below; support_api_test checks that the two agree.
struct Route {
  std::string_view path;  // template: literal segments and {name} placeholders
  std::vector<std::string_view> params;
  // Parameters that may be given more than once.
  std::vector<std::string_view> repeatable;
  bool needs_token;
  Handler handler;  // null: answered by Impl::Dispatch itself
};

const std::vector<Route>& Routes() {
  static const std::vector<Route> routes = {
      {"/v1/support/customers/{customer}/as-of",
       {"at", "limit", "cursor", "status", "name"},
       {"status"},
       true,
       &HandleAsOf},
      {"/v1/support/customers/{customer}/timeline",
       {"from", "to", "limit", "cursor", "shifts"},
       {},
       true,
       &HandleTimeline},
      {"/v1/support/campaigns/{id}/log", {"from", "to", "shifts"}, {}, true, &HandleLog},
      {"/v1/support/campaigns/{id}/diff", {"from", "to"}, {}, true, &HandleDiff},
      {"/v1/support/campaigns/{id}/blame", {"at"}, {}, true, &HandleBlame},
      {"/v1/support/search", {"q", "limit"}, {}, true, &HandleSearch},
      {"/openapi.json", {}, {}, false, nullptr},
      {"/healthz", {}, {}, false, nullptr},
      {"/metrics", {}, {}, false, nullptr},
  };
  return routes;
}

std::vector<std::string_view> Segments(std::string_view path) {
  std::vector<std::string_view> out;
  size_t start = 1;  // paths start with '/'
  while (start <= path.size()) {
    size_t slash = std::min(path.find('/', start), path.size());
    out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

// Match `path` against the templates; fill `call_path` with the placeholders.
const Route* MatchRoute(std::string_view path,
                        std::map<std::string, std::string, std::less<>>* call_path) {
  if (path.empty() || path.front() != '/') return nullptr;
  std::vector<std::string_view> got = Segments(path);
  for (const Route& r : Routes()) {
    std::vector<std::string_view> want = Segments(r.path);
    if (want.size() != got.size()) continue;
    std::map<std::string, std::string, std::less<>> names;
    bool ok = true;
    for (size_t i = 0; ok && i < want.size(); ++i) {
      if (want[i].starts_with('{')) {
        ok = !got[i].empty();
        names[std::string(want[i].substr(1, want[i].size() - 2))] = std::string(got[i]);
      } else {
        ok = want[i] == got[i];
      }
    }
    if (!ok) continue;
    if (call_path) *call_path = std::move(names);
    return &r;
  }
  return nullptr;
}

Status CheckParams(const Route& route, const httplib::Request& req) {
  for (auto it = req.params.begin(); it != req.params.end();
       it = req.params.upper_bound(it->first)) {
    const std::string& key = it->first;
    bool known = false;
    for (std::string_view p : route.params) known = known || key == p;
    if (!known) {
      std::string allowed =
          route.params.empty() ? "none" : fmt::format("{}", fmt::join(route.params, ", "));
      return InvalidArgumentError(
          fmt::format("{}: unknown query parameter (accepted: {})", Quote(key), allowed));
    }
    bool repeatable = false;
    for (std::string_view p : route.repeatable) repeatable = repeatable || key == p;
    if (!repeatable && req.params.count(key) > 1) {
      return InvalidArgumentError(fmt::format("{}: give the parameter once", key));
    }
  }
  return Status::OK();
}

// ---- metrics ------------------------------------------------------------------------------------

class SupportMetrics {
 public:
  static constexpr std::array<double, 14> kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

  void Record(std::string_view route, std::string_view method, int status,
              std::string_view error_code, std::optional<double> seconds) {
    std::lock_guard lock(mu_);
    ++requests_[{std::string(route), KnownMethod(method), status}];
    if (!error_code.empty()) ++errors_[std::string(error_code)];
    if (seconds) {
      Histogram& h = latency_[std::string(route)];
      size_t b = 0;
      while (b < kBuckets.size() && *seconds > kBuckets[b]) ++b;
      ++h.counts[b];
      h.sum += *seconds;
      ++h.count;
    }
  }

  std::string Render() const {
    std::lock_guard lock(mu_);
    std::string out =
        "# HELP campaign_history_support_requests_total Support API requests answered, by route "
        "template, method and status.\n"
        "# TYPE campaign_history_support_requests_total counter\n";
    for (const auto& [key, n] : requests_) {
      const auto& [route, method, status] = key;
      out += fmt::format(
          "campaign_history_support_requests_total{{route=\"{}\",method=\"{}\",status=\"{}\"}} "
          "{}\n",
          route, method, status, n);
    }
    out +=
        "# HELP campaign_history_support_errors_total Support API error answers, by error code.\n"
        "# TYPE campaign_history_support_errors_total counter\n";
    for (const auto& [code, n] : errors_) {
      out += fmt::format("campaign_history_support_errors_total{{code=\"{}\"}} {}\n", code, n);
    }
    out +=
        "# HELP campaign_history_support_request_duration_seconds Time from routing a request "
        "to having written its response, by route template.\n"
        "# TYPE campaign_history_support_request_duration_seconds histogram\n";
    for (const auto& [route, h] : latency_) {
      int64_t cumulative = 0;
      for (size_t b = 0; b <= kBuckets.size(); ++b) {
        cumulative += h.counts[b];
        std::string le = b < kBuckets.size() ? fmt::format("{}", kBuckets[b]) : "+Inf";
        out += fmt::format(
            "campaign_history_support_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} "
            "{}\n",
            route, le, cumulative);
      }
      out +=
          fmt::format("campaign_history_support_request_duration_seconds_sum{{route=\"{}\"}} {}\n",
                      route, h.sum);
      out += fmt::format(
          "campaign_history_support_request_duration_seconds_count{{route=\"{}\"}} {}\n", route,
          h.count);
    }
    return out;
  }

 private:
  struct Histogram {
    std::array<int64_t, kBuckets.size() + 1> counts{};
    double sum = 0;
    int64_t count = 0;
  };
  static std::string KnownMethod(std::string_view m) {
    for (std::string_view k : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
      if (m == k) return std::string(k);
    }
    return "OTHER";
  }

  mutable std::mutex mu_;
  std::map<std::tuple<std::string, std::string, int>, int64_t> requests_;  // guarded by mu_
  std::map<std::string, int64_t> errors_;                                  // guarded by mu_
  std::map<std::string, Histogram> latency_;                               // guarded by mu_
};

std::string KeptAnswerMetrics(const ResponseCache::Stats& k) {
  return fmt::format(
      "# HELP campaign_history_support_kept_answer_hits_total As-of requests answered with a "
      "kept rendered body.\n"
      "# TYPE campaign_history_support_kept_answer_hits_total counter\n"
      "campaign_history_support_kept_answer_hits_total {}\n"
      "# HELP campaign_history_support_kept_answers Final as-of answers kept rendered.\n"
      "# TYPE campaign_history_support_kept_answers gauge\n"
      "campaign_history_support_kept_answers {}\n"
      "# HELP campaign_history_support_kept_answer_bytes Memory of the kept answers (bodies and "
      "their compressed forms).\n"
      "# TYPE campaign_history_support_kept_answer_bytes gauge\n"
      "campaign_history_support_kept_answer_bytes {}\n",
      k.hits, k.entries, k.bytes);
}

// Set by the pre-routing handler and the error path, read by the logger (same thread).
thread_local std::optional<SteadyClock::time_point> t_start;
thread_local std::string t_error_code;
// The request's Accept-Encoding as the client sent it (before DropBrotli).
thread_local std::string t_accept_encoding;

// The error answers of this server, which the metrics count by code.
void SetError(httplib::Response& res, const Status& status) {
  t_error_code = std::string(StatusCodeName(status.code()));
  http_internal::SetError(res, status);
}
void SetError(httplib::Response& res, int http_status, std::string_view code,
              std::string_view message) {
  t_error_code = std::string(code);
  http_internal::SetError(res, http_status, code, message);
}

constexpr std::string_view kRealm = "Bearer realm=\"campaign-history support\"";

// Remove "br" from the request's Accept-Encoding (see the pre-routing handler).
void DropBrotli(httplib::Request& req) {
  t_accept_encoding.clear();
  if (!req.has_header("Accept-Encoding")) return;
  std::string accepted = req.get_header_value("Accept-Encoding");
  t_accept_encoding = accepted;
  std::string kept;
  size_t start = 0;
  while (start <= accepted.size()) {
    size_t comma = accepted.find(',', start);
    if (comma == std::string::npos) comma = accepted.size();
    std::string item = accepted.substr(start, comma - start);
    size_t b = item.find_first_not_of(' ');
    size_t e = b == std::string::npos ? b : item.find_first_of(" ;", b);
    std::string name =
        b == std::string::npos ? "" : item.substr(b, e == std::string::npos ? e : e - b);
    if (!name.empty() && name != "br") kept += (kept.empty() ? "" : ", ") + item.substr(b);
    start = comma + 1;
  }
  req.headers.erase("Accept-Encoding");
  if (!kept.empty()) req.headers.emplace("Accept-Encoding", kept);
}

// The web console's files (console/console_site.h): no token needed -- the page asks for one and
// sends it with each API call -- and only GET and HEAD. The console's own headers (its
// Content-Security-Policy, Cache-Control) replace the API's defaults.
void ServeConsoleRequest(const httplib::Request& req, httplib::Response& res) {
  if (req.method != "GET" && req.method != "HEAD") {
    res.set_header("Allow", "GET, HEAD");
    SetError(res, 405, "UNIMPLEMENTED",
             fmt::format("{} is not allowed on the console (GET, HEAD)", Quote(req.method)));
    return;
  }
  ConsoleResponse page = ServeConsole(req.path);
  for (const auto& [name, value] : page.headers) {
    res.headers.erase(name);
    res.set_header(name, value);
  }
  res.status = page.status;
  res.set_content(page.body.data(), page.body.size(), page.content_type);
}

}  // namespace

// ---- the server ---------------------------------------------------------------------------------

class SupportApiServer::Impl {
 public:
  Impl(HistoryStore& history, const Clock& clock, SupportApiOptions options)
      : services_{history, clock},
        options_(std::move(options)),
        rendered_(options_.rendered_bytes) {
    if (options_.rendered_bytes > 0) services_.rendered = &rendered_;
  }
  ~Impl() { Stop(); }

  Status Start(const std::string& host, int port);
  void Stop();
  int port() const { return port_.load(); }

 private:
  void Configure();
  void Handle(const httplib::Request& req, httplib::Response& res);
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  // Answer with a kept body, in the coding the client prefers, without copying it.
  void ServeKept(const Reply& reply, httplib::Response& res);
  // Return true when the request carries a known token; otherwise answer 401.
  bool Authenticate(const httplib::Request& req, httplib::Response& res);

  Services services_;
  const SupportApiOptions options_;
  ResponseCache rendered_;
  SupportMetrics metrics_;
  httplib::Server server_;
  std::mutex lifecycle_mu_;
  std::thread listener_;  // guarded by lifecycle_mu_
  bool started_ = false;  // guarded by lifecycle_mu_
  std::atomic<bool> listener_done_{false};
  std::atomic<int> port_{0};
};

Status SupportApiServer::Impl::Start(const std::string& host, int port) {
  std::lock_guard lock(lifecycle_mu_);
  if (started_) return FailedPreconditionError("support: the server was already started");
  if (options_.tokens.empty()) {
    return FailedPreconditionError(
        fmt::format("support: no support tokens configured: give --support-tokens FILE (lines "
                    "sha256:<hex>; 'campaign-history support-token create' makes one) or set {}",
                    kSupportTokensEnv));
  }
  if (options_.threads < 1 || options_.max_threads < options_.threads ||
      options_.max_threads > 1024) {
    return InvalidArgumentError(fmt::format(
        "support: need 1 <= threads <= max_threads <= 1024 (got threads {}, max_threads {})",
        options_.threads, options_.max_threads));
  }
  Configure();
  ASSIGN_OR_RETURN(int bound, http_internal::BindAndListen(server_, host, port, "support",
                                                           listener_, listener_done_));
  started_ = true;
  port_ = bound;
  spdlog::info("support: listening on {}:{} ({} tokens)", host, bound, options_.tokens.size());
  return Status::OK();
}

void SupportApiServer::Impl::Stop() {
  std::lock_guard lock(lifecycle_mu_);
  if (!listener_.joinable()) return;
  server_.stop();
  listener_.join();
  spdlog::info("support: stopped");
}

void SupportApiServer::Impl::Configure() {
  size_t min_threads = static_cast<size_t>(options_.threads);
  size_t max_threads = static_cast<size_t>(options_.max_threads);
  server_.new_task_queue = [min_threads, max_threads] {
    return new http_internal::ElasticPool(min_threads, max_threads);
  };
  server_.set_tcp_nodelay(true);
  http_internal::SetReuseAddrOnly(server_);
  // Read-only: no request needs a body.
  constexpr size_t kMaxBody = 64 * 1024;
  server_.set_payload_max_length(kMaxBody);
  server_.set_read_timeout(10, 0);
  server_.set_write_timeout(10, 0);
  server_.set_keep_alive_timeout(2);
  // httplib closes a keep-alive connection after 5 requests by default: a console or a script
  // paging through a customer would pay a new connection every fifth request.
  server_.set_keep_alive_max_count(100);
  server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_start = SteadyClock::now();
    t_error_code.clear();
    // httplib (0.11) prefers brotli whenever a client accepts it, as every browser does, and
    // compresses at brotli's highest quality: the console waited 15 s for a 1.4 MB timeline on
    // this machine (curl, which asks for no encoding, 0.9 s). Leave the client gzip, which is
    // fast. The request object is httplib's own non-const local, so changing it is defined.
    DropBrotli(const_cast<httplib::Request&>(req));
    // A request with a body (never needed here) goes through the handlers below, so that httplib
    // reads the body first and the keep-alive connection stays in step.
    if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    Handle(req, res);
    return httplib::Server::HandlerResponse::Handled;
  });
  auto plain = [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); };
  server_.Get(".*", plain);
  server_.Post(".*", plain);
  server_.Put(".*", plain);
  server_.Patch(".*", plain);
  server_.Delete(".*", plain);
  server_.Options(".*", plain);
  server_.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        auto [code, message] = http_internal::DefaultError(res.status, kMaxBody);
        t_error_code = std::string(code);
        http_internal::SetError(res, res.status, code, message);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server_.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        t_error_code = "INTERNAL";
        http_internal::SetError(res, 500, "INTERNAL", "unexpected error");
      });
  server_.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    std::optional<double> seconds;
    if (t_start) {
      seconds = std::chrono::duration<double>(SteadyClock::now() - *t_start).count();
      t_start.reset();
    }
    const Route* route = MatchRoute(req.path, nullptr);
    std::string_view label = route                     ? std::string_view(route->path)
                             : IsConsolePath(req.path) ? std::string_view("/console/*")
                                                       : std::string_view("unmatched");
    metrics_.Record(label, req.method, res.status, t_error_code, seconds);
    t_error_code.clear();
  });
}

void SupportApiServer::Impl::Handle(const httplib::Request& req, httplib::Response& res) {
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Cache-Control", "no-store");
  try {
    Dispatch(req, res);
  } catch (const std::exception& e) {
    // The message may hold client input; log it, answer without it.
    spdlog::error("support: {} {} failed: {}", req.method, Quote(req.path), e.what());
    SetError(res, InternalError("unexpected error"));
  } catch (...) {
    spdlog::error("support: {} {} failed with a non-standard exception", req.method,
                  Quote(req.path));
    SetError(res, InternalError("unexpected error"));
  }
}

bool SupportApiServer::Impl::Authenticate(const httplib::Request& req, httplib::Response& res) {
  auto refuse = [&](std::string_view why, bool invalid_token) {
    spdlog::info("support: refused {} {}: {}", req.method, Quote(req.path), why);
    res.set_header("WWW-Authenticate", invalid_token
                                           ? std::string(kRealm) + ", error=\"invalid_token\""
                                           : std::string(kRealm));
    SetError(res, UnauthenticatedError(std::string(why)));
    return false;
  };
  if (!req.has_header("Authorization")) {
    return refuse("Authorization: a support token is required (Authorization: Bearer <token>)",
                  false);
  }
  if (req.get_header_value_count("Authorization") > 1) {
    return refuse("Authorization: give the header once", false);
  }
  const std::string header = req.get_header_value("Authorization");
  std::string_view v = header;
  constexpr std::string_view kBearer = "bearer ";
  bool bearer = v.size() > kBearer.size() && StartsWithNoCase(v, kBearer);
  if (!bearer) return refuse("Authorization: must be 'Bearer <token>'", false);
  v.remove_prefix(kBearer.size());
  while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
  while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
  if (!options_.tokens.Check(v)) return refuse("Authorization: the token is not valid", true);
  return true;
}

void SupportApiServer::Impl::Dispatch(const httplib::Request& req, httplib::Response& res) {
  // Every /v1/support path needs a token, known route or not: an unauthenticated caller learns
  // nothing about what exists.
  std::string_view path = req.path;
  if (IsConsolePath(path)) return ServeConsoleRequest(req, res);
  if ((path == "/v1/support" || path.starts_with("/v1/support/")) && !Authenticate(req, res)) {
    return;
  }
  Call call{req, {}};
  const Route* route = MatchRoute(path, &call.path);
  if (route == nullptr) {
    SetError(res,
             NotFoundError(fmt::format("no route for {} {}", Quote(req.method), Quote(req.path))));
    return;
  }
  if (req.method == "OPTIONS") {
    res.status = 204;
    res.set_header("Allow", "GET, HEAD, OPTIONS");
    return;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    res.set_header("Allow", "GET, HEAD");
    SetError(res, 405, "UNIMPLEMENTED",
             fmt::format("{} is not allowed on {} (the support API only reads: GET, HEAD)",
                         Quote(req.method), route->path));
    return;
  }
  if (Status s = CheckParams(*route, req); !s.ok()) return SetError(res, s);
  if (route->handler != nullptr) {
    Result<Reply> reply = route->handler(services_, call);
    if (!reply.ok()) return SetError(res, reply.status());
    res.status = 200;
    if (reply->cached) return ServeKept(*reply, res);
    res.body = std::move(reply->body);
    res.set_header("Content-Type", kJson);
    return;
  }
  if (route->path == "/openapi.json") {
    res.status = 200;
    res.set_content(std::string(SupportOpenApiJson()), kJson);
  } else if (route->path == "/healthz") {
    HealthReply h = options_.health ? options_.health() : HealthReply{};
    res.status = h.http_status;
    res.set_content(h.json, kJson);
  } else if (route->path == "/metrics") {
    std::string text = metrics_.Render() + KeptAnswerMetrics(rendered_.stats());
    if (options_.registry != nullptr) text += options_.registry->Render();
    res.status = 200;
    res.set_content(text, "text/plain; version=0.0.4");
  } else {
    SetError(res, InternalError("unrouted request"));
  }
}

void SupportApiServer::Impl::ServeKept(const Reply& reply, httplib::Response& res) {
  ContentCoding coding = reply.cached->Actual(PreferredCoding(t_accept_encoding));
  const std::string& bytes = reply.cached->Get(coding);
  rendered_.Served(reply.cache_key, *reply.cached, coding);
  res.set_header("Vary", "Accept-Encoding");
  if (coding != ContentCoding::kIdentity) {
    res.set_header("Content-Encoding", std::string(ContentCodingName(coding)));
  }
  // A provider of known length: httplib writes these bytes as they are (it compresses only
  // bodies and chunked providers), and the entry lives as long as the response needs it.
  res.set_content_provider(bytes.size(), kJson,
                           [body = reply.cached, data = bytes.data(), size = bytes.size()](
                               size_t offset, size_t length, httplib::DataSink& sink) {
                             if (offset >= size) return false;
                             return sink.write(data + offset, std::min(length, size - offset));
                           });
}

// ---- public -------------------------------------------------------------------------------------

std::vector<SupportRouteInfo> SupportApiRoutes() {
  std::vector<SupportRouteInfo> out;
  for (const Route& r : Routes()) {
    SupportRouteInfo info{"GET", std::string(r.path), {}, r.needs_token};
    for (std::string_view p : r.params) info.query_params.emplace_back(p);
    out.push_back(std::move(info));
  }
  return out;
}

SupportApiServer::SupportApiServer(HistoryStore& history, const Clock& clock,
                                   SupportApiOptions options)
    : impl_(std::make_unique<Impl>(history, clock, std::move(options))) {}

SupportApiServer::~SupportApiServer() = default;

Status SupportApiServer::Start(const std::string& host, int port) {
  return impl_->Start(host, port);
}

void SupportApiServer::Stop() { impl_->Stop(); }

int SupportApiServer::port() const { return impl_->port(); }

}  // namespace ch
