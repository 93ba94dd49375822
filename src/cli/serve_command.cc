#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "api/campaign_api.h"
#include "api/support_api.h"
#include "app/consumer_health.h"
#include "app/crash_point.h"
#include "app/history_metrics.h"
#include "campaign/scheduler.h"
#include "capture/change_event.h"
#include "cli/cli.h"
#include "common/metrics_server.h"
#include "common/time_util.h"
#include "history/as_of_cache.h"

namespace ch::cli {
namespace {

// Wait for SIGTERM or SIGINT for up to `timeout`. Return true when one arrived.
// REQUIRES: both signals blocked in every thread (done before any thread starts).
bool WaitForStopSignal(Micros timeout) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  timespec ts{static_cast<time_t>(timeout.count() / 1000000),
              static_cast<long>((timeout.count() % 1000000) * 1000)};
  int sig = sigtimedwait(&set, nullptr, &ts);
  return sig == SIGTERM || sig == SIGINT;
}

// Return the history store this process writes (publisher to the store, or sink), opened, or
// nullptr when it writes none.
Result<HistoryStore*> WrittenHistory(Runtime& runtime, const std::set<std::string>& roles) {
  const bool writes = roles.contains("sink") ||
                      (roles.contains("publisher") && !runtime.topology().publish_to_topic);
  if (!writes) return static_cast<HistoryStore*>(nullptr);
  return runtime.History();
}

// The keyring of the api role, or nullptr with --insecure-trust-actor (and a warning).
Result<std::shared_ptr<const ApiKeyring>> ApiKeysFor(const std::string& file, bool insecure) {
  if (!file.empty() && insecure) {
    return InvalidArgumentError("--api-keys and --insecure-trust-actor exclude each other");
  }
  if (insecure) {
    spdlog::warn(
        "serve: --insecure-trust-actor: the api trusts X-Actor as sent and needs no credentials; "
        "for development only");
    return std::shared_ptr<const ApiKeyring>();
  }
  if (file.empty()) {
    return InvalidArgumentError(
        "--roles api needs --api-keys FILE (create one with 'campaign-history api-key create "
        "--customer C --api-keys FILE'); for development without credentials, "
        "--insecure-trust-actor");
  }
  Result<std::shared_ptr<ApiKeyring>> ring = ApiKeyring::Load(file);
  if (!ring.ok()) return ring.status().WithContext("--api-keys");
  spdlog::info("serve: api keys from {} ({} keys)", file, (*ring)->size());
  return std::shared_ptr<const ApiKeyring>(*ring);
}

}  // namespace

void RegisterServe(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "serve",
      "Run long-lived roles until SIGTERM/SIGINT, then finish the work in flight and exit. Roles: "
      "api (the campaign HTTP API), support (the read-only support API), capture (captured changes "
      "-> change topic), publisher "
      "(changes -> history), sink (history topic -> history store), scheduler (ends campaigns "
      "whose end_at passed)");
  struct Args {
    std::string roles = "publisher";
    std::string listen = "127.0.0.1:8080";
    std::string metrics_listen;
    std::string support_listen;
    std::string support_tokens;
    std::string scheduler_interval = "60s";
    std::string publish_to = "history";
    size_t batch_size = 2000;
    bool no_create = false;
    std::string ack_deadline = "20s";
    std::string api_keys;
    bool insecure_trust_actor = false;
    TopologyOptions topology;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--roles", args->roles,
                  "Comma-separated roles: api, support, capture, publisher, sink, scheduler")
      ->capture_default_str();
  cmd->add_option("--listen", args->listen, "api, or support without api: HOST:PORT to listen on")
      ->capture_default_str();
  cmd->add_option("--support-listen", args->support_listen,
                  "support: HOST:PORT to listen on [default: --listen; required when api runs "
                  "in the same process]");
  cmd->add_option("--support-tokens", args->support_tokens,
                  "support: file of the bearer tokens' hashes (lines sha256:<hex> [label]; "
                  "'support-token create' adds one); CAMPAIGN_HISTORY_SUPPORT_TOKENS adds more");
  cmd->add_option("--api-keys", args->api_keys,
                  "api: the key file (see 'api-key create'); every /v1 request then needs "
                  "Authorization: Bearer <secret>. Required with the api role unless "
                  "--insecure-trust-actor");
  cmd->add_flag("--insecure-trust-actor", args->insecure_trust_actor,
                "api: DEVELOPMENT ONLY: no credentials; trust X-Actor as sent, so anyone who can "
                "reach the port writes as anyone, for any customer");
  cmd->add_option("--metrics-listen", args->metrics_listen,
                  "HOST:PORT for GET /metrics (Prometheus) and GET /healthz (503 while a consumer "
                  "is blocked by a failing dependency); read by 'status --serve' [default: off]");
  cmd->add_option("--scheduler-interval", args->scheduler_interval,
                  "How often the scheduler looks for campaigns to end")
      ->capture_default_str();
  cmd->add_option("--publish-to", args->publish_to,
                  "publisher output: history (the --history store) or topic (the history topic, "
                  "for a BigQuery subscription or a sink)")
      ->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "Captured changes per publisher batch")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  cmd->add_flag("--no-create", args->no_create,
                "Do not create missing topics and subscriptions (where IAM forbids it)");
  cmd->add_option("--changes-topic", args->topology.changes_topic, "Change topic")
      ->capture_default_str();
  cmd->add_option("--history-topic", args->topology.history_topic, "History record topic")
      ->capture_default_str();
  cmd->add_option("--slot", args->topology.slot, "PostgreSQL replication slot")
      ->capture_default_str();
  cmd->add_option("--publication", args->topology.publication, "PostgreSQL publication")
      ->capture_default_str();
  cmd->add_option("--changes-per-message", args->topology.changes_per_message,
                  "capture: changes of one customer packed into one bus message (1 = one each)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, kMaxChangeBatchChanges));
  cmd->add_option("--max-attempts", args->topology.max_attempts,
                  "Failed attempts before a message is dead-lettered")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  cmd->add_option("--ack-deadline", args->ack_deadline,
                  "Pub/Sub ack deadline of the subscriptions created here and of the consumers' "
                  "leases (10s..600s): how long a crashed consumer's messages wait for redelivery")
      ->capture_default_str();
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      std::set<std::string> roles;
      std::stringstream ss(args->roles);
      std::string role;
      while (std::getline(ss, role, ',')) {
        if (role != "api" && role != "support" && role != "capture" && role != "publisher" &&
            role != "sink" && role != "scheduler") {
          return InvalidArgumentError(
              fmt::format("--roles: unknown role '{}' (available: api, support, capture, "
                          "publisher, sink, scheduler)",
                          role));
        }
        roles.insert(role);
      }
      if (roles.empty()) return InvalidArgumentError("--roles: no role given");
      ASSIGN_OR_RETURN(Micros interval, ParseDuration(args->scheduler_interval));
      Result<Micros> ack_deadline_or = ParseDuration(args->ack_deadline);
      if (!ack_deadline_or.ok()) return ack_deadline_or.status().WithContext("--ack-deadline");
      const Micros ack_deadline = *ack_deadline_or;
      if (ack_deadline < std::chrono::seconds(10) || ack_deadline > std::chrono::seconds(600)) {
        return InvalidArgumentError(fmt::format(
            "--ack-deadline: '{}' is outside 10s..600s (Pub/Sub's limits)", args->ack_deadline));
      }
      args->topology.ack_deadline = ack_deadline;
      if (interval.count() <= 0) return InvalidArgumentError("--scheduler-interval: must be > 0");
      if (args->publish_to != "history" && args->publish_to != "topic") {
        return InvalidArgumentError(fmt::format(
            "--publish-to: unknown output '{}' (expected history or topic)", args->publish_to));
      }
      std::string host = args->listen;
      int port = 0;
      std::shared_ptr<const ApiKeyring> keys;
      if (roles.contains("api")) {
        ASSIGN_OR_RETURN(std::tie(host, port), ParseHostPort("--listen", args->listen));
        ASSIGN_OR_RETURN(keys, ApiKeysFor(args->api_keys, args->insecure_trust_actor));
      }
      // The support role serves on a port of its own: on --listen when it runs without api,
      // otherwise on --support-listen (two servers cannot share one port).
      std::optional<std::pair<std::string, int>> support_address;
      SupportTokens support_tokens;
      if (roles.contains("support")) {
        if (args->support_listen.empty() && roles.contains("api")) {
          return InvalidArgumentError(
              "--support-listen: required when api and support run in one process (api serves "
              "on --listen)");
        }
        const std::string& listen =
            args->support_listen.empty() ? args->listen : args->support_listen;
        ASSIGN_OR_RETURN(
            support_address,
            ParseHostPort(args->support_listen.empty() ? "--listen" : "--support-listen", listen));
        ASSIGN_OR_RETURN(support_tokens, LoadSupportTokens(args->support_tokens));
        if (support_tokens.empty()) {
          return FailedPreconditionError(
              fmt::format("support: no support tokens configured: give --support-tokens FILE "
                          "('campaign-history "
                          "support-token create --support-tokens FILE' makes one) or set {}",
                          kSupportTokensEnv));
        }
      }
      std::optional<std::pair<std::string, int>> metrics_address;
      if (!args->metrics_listen.empty()) {
        ASSIGN_OR_RETURN(metrics_address, ParseHostPort("--metrics-listen", args->metrics_listen));
      }

      // Block the stop signals before any thread starts so only sigtimedwait sees them.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);

      RuntimeOptions options;
      ASSIGN_OR_RETURN(options.config, ctx.ResolveConfig());
      options.publish_batch = args->batch_size;
      options.topology = args->topology;
      options.topology.create_missing = !args->no_create;
      options.topology.publish_to_topic = args->publish_to == "topic";
      // Crash tests: CH_TEST_CRASH_AT=<point>[:<n>] (app/crash_point.h). Never set in production.
      if (const char* crash = std::getenv("CH_TEST_CRASH_AT")) {
        ASSIGN_OR_RETURN(options.TEST_publisher_hook, MakeCrashPointHook(crash));
        options.TEST_capture_hook = options.TEST_publisher_hook;
      }
      ASSIGN_OR_RETURN(auto runtime, Runtime::Create(options));

      std::unique_ptr<Scheduler> sched;
      std::unique_ptr<CampaignApiServer> api;
      if (roles.contains("api") || roles.contains("scheduler")) {
        ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
        if (roles.contains("scheduler")) {
          sched = std::make_unique<Scheduler>(*service, runtime->clock());
          sched->Start(interval);
          spdlog::info("serve: scheduler running every {}", args->scheduler_interval);
        }
        if (roles.contains("api")) {
          api = std::make_unique<CampaignApiServer>(*service, CampaignApiOptions{.keys = keys});
          RETURN_IF_ERROR(api->Start(host, port));
          std::cerr << fmt::format("serve: api listening on http://{}:{}\n", host, api->port());
        }
      }
      MetricsRegistry support_registry;
      std::unique_ptr<AsOfCachingHistoryStore> support_history;
      std::unique_ptr<SupportApiServer> support;
      if (support_address) {
        ASSIGN_OR_RETURN(HistoryStore * history, runtime->History(/*create=*/false));
        support_registry.Register(
            [history](MetricsWriter& w) { WriteHistoryMetrics(*history, w); });
        Runtime* rt = runtime.get();
        SupportApiOptions support_options;
        support_options.tokens = std::move(support_tokens);
        support_options.registry = &support_registry;
        support_options.health = [rt] {
          return ConsumerHealth(rt->Consumers(), rt->clock().Now());
        };
        // Answers at final moments are remembered: paging through a big customer asks the same
        // as-of once per page (history/as_of_cache.h).
        support_history = std::make_unique<AsOfCachingHistoryStore>(*history);
        support = std::make_unique<SupportApiServer>(*support_history, runtime->clock(),
                                                     std::move(support_options));
        RETURN_IF_ERROR(support->Start(support_address->first, support_address->second));
        std::cerr << fmt::format("serve: support API on http://{}:{}/v1/support/\n",
                                 support_address->first, support->port());
      }
      if (roles.contains("capture")) {
        ASSIGN_OR_RETURN(bool relaying, runtime->StartCapture());
        if (!relaying) {
          spdlog::info(
              "serve: capture has nothing to relay here ({}: the publisher reads the "
              "capture directly, or capture is not 'log')",
              runtime->embedded_direct() ? "embedded setup" : "notify/none");
        }
      }
      if (roles.contains("sink")) RETURN_IF_ERROR(runtime->StartSink());
      bool publishing = !roles.contains("publisher");
      // Started once the roles are (Runtime::Consumers reads what they created).
      MetricsRegistry registry;
      std::unique_ptr<MetricsServer> metrics;
      bool stop = false;
      while (!stop) {
        if (!publishing) {
          ASSIGN_OR_RETURN(publishing, runtime->StartPublisher());
          if (!publishing) {
            spdlog::info("serve: another process publishes this history; standing by");
          }
        }
        if (metrics_address && !metrics) {
          Runtime* rt = runtime.get();
          registry.Register([rt](MetricsWriter& w) {
            WriteConsumerMetrics(rt->Consumers(), rt->clock().Now(), w);
          });
          ASSIGN_OR_RETURN(HistoryStore * history, WrittenHistory(*runtime, roles));
          if (history != nullptr) {
            registry.Register([history](MetricsWriter& w) { WriteHistoryMetrics(*history, w); });
          }
          ASSIGN_OR_RETURN(metrics,
                           MetricsServer::Start(metrics_address->first, metrics_address->second,
                                                {.registry = &registry, .health = [rt] {
                                                   return ConsumerHealth(rt->Consumers(),
                                                                         rt->clock().Now());
                                                 }}));
          std::cerr << fmt::format("serve: metrics on http://{}:{}/metrics and /healthz\n",
                                   metrics_address->first, metrics->port());
        }
        stop = WaitForStopSignal(std::chrono::seconds(1));
      }
      spdlog::info("serve: stopping");
      if (metrics) metrics->Stop();
      if (api) api->Stop();
      if (support) support->Stop();
      if (sched) sched->Stop();
      runtime->StopAll();
      std::cerr << "serve: stopped; " << runtime->RoleStats() << "\n";
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
