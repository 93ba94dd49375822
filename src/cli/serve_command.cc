#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "campaign/scheduler.h"
#include "cli/cli.h"
#include "common/time_util.h"

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

}  // namespace

void RegisterServe(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "serve",
      "Run long-lived roles until SIGTERM/SIGINT (then finish the work in flight and exit): "
      "publisher (drain captured changes into the history), scheduler (end campaigns whose "
      "end_at passed, as worker:scheduler)");
  struct Args {
    std::string roles = "publisher";
    std::string scheduler_interval = "60s";
    size_t batch_size = 2000;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--roles", args->roles, "Comma-separated roles: publisher, scheduler")
      ->capture_default_str();
  cmd->add_option("--scheduler-interval", args->scheduler_interval,
                  "How often the scheduler looks for campaigns to end")
      ->capture_default_str();
  cmd->add_option("--batch-size", args->batch_size, "Captured changes per publisher batch")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{100000}));
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      bool publisher = false, scheduler = false;
      std::stringstream ss(args->roles);
      std::string role;
      while (std::getline(ss, role, ',')) {
        if (role == "publisher") {
          publisher = true;
        } else if (role == "scheduler") {
          scheduler = true;
        } else {
          return InvalidArgumentError(
              fmt::format("--roles: unknown role '{}' (available: publisher, scheduler)", role));
        }
      }
      if (!publisher && !scheduler) return InvalidArgumentError("--roles: no role given");
      ASSIGN_OR_RETURN(Micros interval, ParseDuration(args->scheduler_interval));
      if (interval.count() <= 0) return InvalidArgumentError("--scheduler-interval: must be > 0");

      // Block the stop signals before any thread starts so only sigtimedwait sees them.
      sigset_t set;
      sigemptyset(&set);
      sigaddset(&set, SIGTERM);
      sigaddset(&set, SIGINT);
      pthread_sigmask(SIG_BLOCK, &set, nullptr);

      RuntimeOptions options;
      ASSIGN_OR_RETURN(options.config, ctx.ResolveConfig());
      options.publish_batch = args->batch_size;
      // Crash tests: CH_TEST_CRASH_AT=<point>:<n> kills this process (SIGKILL) the n-th time the
      // publisher reaches <point> (after_poll, after_append). Never set in production.
      if (const char* crash = std::getenv("CH_TEST_CRASH_AT")) {
        std::string spec(crash);
        auto colon = spec.find(':');
        std::string point = spec.substr(0, colon);
        int remaining = colon == std::string::npos ? 1 : std::atoi(spec.c_str() + colon + 1);
        auto counter = std::make_shared<std::atomic<int>>(remaining);
        options.TEST_publisher_hook = [point, counter](std::string_view at) {
          if (at == point && counter->fetch_sub(1) <= 1) ::kill(::getpid(), SIGKILL);
        };
      }
      ASSIGN_OR_RETURN(auto runtime, Runtime::Create(options));

      std::unique_ptr<Scheduler> sched;
      if (scheduler) {
        ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
        sched = std::make_unique<Scheduler>(*service, runtime->clock());
        sched->Start(interval);
        spdlog::info("serve: scheduler running every {}", args->scheduler_interval);
      }
      bool publishing = false;
      bool stop = false;
      while (!stop) {
        if (publisher && !publishing) {
          ASSIGN_OR_RETURN(publishing, runtime->StartPublisher());
          if (publishing) {
            spdlog::info("serve: publisher running");
          } else {
            spdlog::info("serve: another process publishes this history; standing by");
          }
        }
        stop = WaitForStopSignal(std::chrono::seconds(1));
      }
      spdlog::info("serve: stopping");
      if (sched) sched->Stop();
      runtime->StopPublisher();
      PublishStats stats = runtime->PublisherStats();
      std::cerr << fmt::format("serve: stopped; published {} changes ({} new records)\n",
                               stats.events, stats.stored);
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
