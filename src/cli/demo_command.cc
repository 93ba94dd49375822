// demo: the first thing a new user runs. Everything in one process on SQLite files: sample
// customers seeded, a week of simulated customer edits and scheduler changes captured live, then
// a short tour of the queries on the data it leaves behind. Then it serves the support role
// (support API, and the console at /console/) with a sign-in token it makes, until Ctrl-C;
// --no-serve ends after the tour.
#include <fmt/format.h>
#include <pthread.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "api/support_api.h"
#include "app/history_metrics.h"
#include "campaign/scheduler.h"
#include "cli/cli.h"
#include "common/metrics_server.h"
#include "common/time_util.h"
#include "history/as_of_cache.h"
#include "query/query_engine.h"
#include "query/render.h"
#include "workload/generator.h"
#include "workload/replayer.h"
#include "workload/workload.h"

namespace ch::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMarker = ".campaign-history-demo";

// Make `dir` an empty demo directory. A directory the demo made before is reset; anything else
// that is not empty is left alone and refused.
Status PrepareDemoDir(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    bool empty = fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
    if (!empty) {
      if (!fs::exists(dir / kMarker, ec)) {
        return FailedPreconditionError(
            fmt::format("'{}' already holds data the demo did not create; pass another --data DIR",
                        dir.string()));
      }
      for (const auto& entry : fs::directory_iterator(dir, ec)) fs::remove_all(entry.path(), ec);
    }
  }
  fs::create_directories(dir, ec);
  if (ec) {
    return UnavailableError(fmt::format("cannot create '{}': {}", dir.string(), ec.message()));
  }
  std::ofstream(dir / kMarker) << "created by 'campaign-history demo'; the demo may reset it\n";
  return Status::OK();
}

void ShiftTime(std::optional<Timestamp>& t, Micros by) {
  if (t) *t += by;
}

// Move the campaign schedules of a line from the generator's epoch to the demo's week.
void ShiftSchedules(WorkloadLine& line, Micros by) {
  if (auto* seed = std::get_if<WorkloadSeed>(&line.body)) {
    for (Campaign& c : seed->rows) {
      ShiftTime(c.start_at, by);
      ShiftTime(c.end_at, by);
    }
  } else if (auto* create = std::get_if<WorkloadCreate>(&line.body)) {
    ShiftTime(create->row.start_at, by);
    ShiftTime(create->row.end_at, by);
  } else if (auto* update = std::get_if<WorkloadUpdate>(&line.body)) {
    if (update->set.start_at) ShiftTime(*update->set.start_at, by);
    if (update->set.end_at) ShiftTime(*update->set.end_at, by);
  }
}

// Serve the support role on `listen` over the demo's history with a new token, print its URLs
// and the token, and wait for SIGINT/SIGTERM.
Status ServeSupport(HistoryStore& history, const std::string& listen,
                    const std::string& data_flag) {
  ASSIGN_OR_RETURN(auto address, ParseHostPort("--listen", listen));
  ASSIGN_OR_RETURN(std::string token, SupportTokens::Generate());
  // Blocked here, so the server's threads (started below) leave the signals to sigwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  MetricsRegistry registry;
  registry.Register([&history](MetricsWriter& w) { WriteHistoryMetrics(history, w); });
  SupportApiOptions options;
  RETURN_IF_ERROR(options.tokens.AddPlain(token, "demo"));
  options.registry = &registry;
  AsOfCachingHistoryStore cached(history);
  SupportApiServer server(cached, SystemClock::Default(), std::move(options));
  Status started = server.Start(address.first, address.second);
  if (!started.ok()) {
    return Status(started.code(),
                  fmt::format("{} (pass --listen 127.0.0.1:0 for any free port, or --no-serve)",
                              started.message()));
  }
  std::string base = fmt::format("http://{}:{}", address.first, server.port());
  std::cout << fmt::format(
                   "\nServing the support role (Ctrl-C to stop):\n"
                   "  console:     {0}/console/\n"
                   "  support API: {0}/v1/support/  (OpenAPI: {0}/openapi.json)\n"
                   "  sign-in token (valid while this demo runs): {1}\n"
                   "  e.g. curl -H 'Authorization: Bearer {1}' '{0}/v1/support/search?q=2'\n"
                   "  or, on the same data after Ctrl-C: campaign-history {2} serve --roles "
                   "support --support-tokens FILE\n",
                   base, token, data_flag)
            << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  server.Stop();
  std::cout << "stopped serving\n";
  return Status::OK();
}

std::string Quote(const std::string& s) {
  if (s.find_first_of(" '\"$\\") == std::string::npos) return s;
  return "'" + s + "'";
}

}  // namespace

void RegisterDemo(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "demo",
      "Seed sample customers, simulate a week of customer edits and scheduler changes with live "
      "capture, then tour the queries (SQLite files in --data)");
  struct Args {
    int64_t ops = 1500;
    uint64_t seed = 7;
    int64_t days = 7;
    std::string listen = "127.0.0.1:8080";
    bool no_serve = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--ops", args->ops, "Simulated operations")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{50}, int64_t{1000000}));
  cmd->add_option("--seed", args->seed, "Random seed")->capture_default_str();
  cmd->add_option("--days", args->days, "Simulated days of history ending now")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{3650}));
  cmd->add_option("--listen", args->listen,
                  "After the tour, serve the support API and console here (port 0: any free one)")
      ->capture_default_str();
  cmd->add_flag("--no-serve", args->no_serve, "End after the tour instead of serving");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      ASSIGN_OR_RETURN(BackendConfig config, ctx.ResolveConfig());
      if (!config.campaign_db.empty() || !config.history.empty() || config.bus != "embedded") {
        return InvalidArgumentError(
            "demo runs the embedded setup only: use --data DIR (not --campaign-db, --history or "
            "--bus)");
      }
      if (config.capture != CaptureSetting::kLog) {
        return InvalidArgumentError("demo shows lossless capture: --capture must be log");
      }
      fs::path dir = config.data_dir;
      RETURN_IF_ERROR(PrepareDemoDir(dir));

      // A simulated clock: the demo's week ends now, so the times it prints are recent.
      Timestamp now = SystemClock::Default().Now();
      Timestamp start =
          std::chrono::floor<std::chrono::hours>(now) - std::chrono::hours(24 * args->days);
      FakeClock clock(start);

      ASSIGN_OR_RETURN(GeneratorOptions gen, GeneratorPreset("small"));
      gen.seed = args->seed;
      gen.customers = 5;
      gen.campaigns_per_customer = 6;
      gen.big_customers = 1;
      gen.big_campaigns = 40;
      gen.big_op_share = 0.3;
      gen.ops = args->ops;
      std::ostringstream text;
      RETURN_IF_ERROR(GenerateWorkload(gen, text).status());
      ASSIGN_OR_RETURN(std::vector<WorkloadLine> lines, ParseWorkloadText(text.str(), "demo"));
      Timestamp first_at = lines.front().at, last_at = lines.back().at;
      double span = std::max<double>(1, (last_at - first_at).count());
      double week = static_cast<double>(
          Micros(std::chrono::hours(24 * args->days) - std::chrono::hours(1)).count());
      Micros schedule_shift = start - first_at;

      RuntimeOptions options;
      options.config = config;
      options.clock = &clock;
      ASSIGN_OR_RETURN(auto runtime, Runtime::Create(options));
      ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
      ASSIGN_OR_RETURN(bool publishing, runtime->StartPublisher());
      if (!publishing) return FailedPreconditionError("another process publishes this history");
      Scheduler scheduler(*service, clock);

      std::cout << fmt::format(
          "campaign-history demo: {} customers, a week of edits simulated from {} to {}\n"
          "  (a simulated clock drives commit times; every change is captured live into the "
          "history)\n\n",
          gen.customers + gen.big_customers, FormatTimestampHuman(start),
          FormatTimestampHuman(now));
      Replayer replayer(*service);
      int64_t ended = 0, versions = 0, ops = 0;
      Timestamp next_sweep = start + std::chrono::hours(1);
      for (WorkloadLine& line : lines) {
        Timestamp t = start + Micros(static_cast<int64_t>(
                                  static_cast<double>((line.at - first_at).count()) / span * week));
        if (t > clock.Now()) clock.Set(t);
        // The scheduler wakes every simulated hour and ends what has run its course.
        while (next_sweep <= clock.Now()) {
          Timestamp keep = clock.Now();
          clock.Set(next_sweep);
          ASSIGN_OR_RETURN(int64_t n, scheduler.RunOnce());
          ended += n;
          versions += n;
          clock.Set(std::max(keep, clock.Now()));
          next_sweep += std::chrono::hours(1);
        }
        ShiftSchedules(line, schedule_shift);
        ASSIGN_OR_RETURN(std::optional<ReplayedOp> op, replayer.Apply(line));
        if (op) {
          versions += op->versions;
          ++ops;
        }
      }
      RETURN_IF_ERROR(runtime->WaitCaughtUp(std::chrono::minutes(5)));
      runtime->StopPublisher();
      Timestamp end = clock.Now();
      std::cout << fmt::format(
          "applied {} operations (customer edits, reorders, creates, deletes), the scheduler ended "
          "{} campaigns;\n{} versions committed, all of them now in the history.\n",
          ops, ended, versions);

      ASSIGN_OR_RETURN(HistoryStore * history, runtime->History());
      QueryEngine engine(*history);
      const int64_t customer = 2;
      Timestamp t1 = start + std::chrono::hours(24 * std::max<int64_t>(1, args->days / 3));
      t1 = std::chrono::floor<std::chrono::hours>(t1);
      ASSIGN_OR_RETURN(AsOfResult before, engine.AsOf(customer, t1));
      ASSIGN_OR_RETURN(AsOfResult after, engine.AsOf(customer, end));
      std::cout << "\n== 1. Customer " << customer << " as of " << FormatTimestampHuman(t1)
                << " ==\n"
                << RenderAsOfTable(before);
      std::cout << "\n== 2. The same customer now ==\n" << RenderAsOfTable(after);

      // A campaign that exists at both moments and changed in between.
      std::optional<int64_t> changed;
      for (const HistoryRecord& a : after.campaigns) {
        for (const HistoryRecord& b : before.campaigns) {
          if (a.campaign_id == b.campaign_id && a.version != b.version) {
            changed = a.campaign_id;
            break;
          }
        }
        if (changed) break;
      }
      if (!changed && !after.campaigns.empty()) changed = after.campaigns.front().campaign_id;
      std::string data_flag = "--data " + Quote(dir.string());
      std::string t1_text = FormatTimestamp(t1);
      if (changed) {
        ASSIGN_OR_RETURN(DiffResult diff,
                         engine.Diff(*changed, VersionRef::At(t1), VersionRef::At(end)));
        std::cout << "\n== 3. What changed in campaign " << *changed << " between them ==\n"
                  << RenderDiffTable(diff);
        TimeRange recent;
        recent.from = end - std::chrono::hours(24 * 2);
        ASSIGN_OR_RETURN(LogResult log, engine.Log(*changed, recent));
        if (log.entries.size() > 6) {
          log.entries.erase(log.entries.begin(), log.entries.end() - 6);
        }
        std::cout << "\n== 4. Campaign " << *changed << "'s latest versions ==\n"
                  << RenderLogTable(log);
      }
      std::cout << "\nThe data stays in " << dir.string() << ". Try next:\n"
                << fmt::format("  campaign-history {} as-of --customer {} --at {}\n", data_flag,
                               customer, t1_text)
                << fmt::format("  campaign-history {} timeline --customer {} --from {}\n",
                               data_flag, customer, t1_text);
      if (changed) {
        std::cout << fmt::format("  campaign-history {} blame --campaign {}\n", data_flag, *changed)
                  << fmt::format(
                         "  campaign-history {} diff --campaign {} --from 1 --to 3 --json\n",
                         data_flag, *changed)
                  << fmt::format("  campaign-history {} log --campaign {}\n", data_flag, *changed);
      }
      std::cout << fmt::format("  campaign-history {} as-of --customer 1 --at now --json\n",
                               data_flag)
                << "(customer 1 is the big one; customers 1-" << gen.customers + gen.big_customers
                << " exist; 'campaign-history --help' lists every command)\n";
      if (args->no_serve) return Status::OK();
      return ServeSupport(*history, args->listen, data_flag);
    };
  });
}

}  // namespace ch::cli
