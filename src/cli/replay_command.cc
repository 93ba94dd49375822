#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "app/committed_versions.h"
#include "cli/cli.h"
#include "common/time_util.h"
#include "workload/replayer.h"
#include "workload/workload.h"

namespace ch::cli {
void RegisterReplay(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "replay",
      "Apply a workload (JSON lines) through the campaign service, one transaction per op, "
      "printing {\"seq\",\"committed_at\",\"versions\"} per applied op");
  struct Args {
    std::string ops;
    bool wait = false;
    std::string wait_timeout = "10m";
    bool quiet = false;
    bool no_publish = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("--ops", args->ops, "Workload file ('-' for stdin)")->required();
  cmd->add_flag("--wait", args->wait,
                "Return only when everything committed is queryable in the history store");
  cmd->add_option("--wait-timeout", args->wait_timeout, "Give up waiting after this long")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "Do not print a line per op");
  cmd->add_flag("--no-publish", args->no_publish,
                "Only capture: leave the changes for a separate publisher process "
                "('serve --roles publisher')");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      ASSIGN_OR_RETURN(Micros wait_timeout, ParseDuration(args->wait_timeout));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
      // Remember the versions of every campaign this replay commits: --wait waits until the
      // history holds them, whatever the topology.
      CommittedVersions tracker;
      service->AddObserver(&tracker);
      // On the embedded setup this process publishes live; with Pub/Sub, `serve` processes do.
      bool publishing = false;
      if (!args->no_publish && runtime->config().bus == "embedded" &&
          runtime->config().capture != CaptureSetting::kNone) {
        ASSIGN_OR_RETURN(publishing, runtime->StartPublisher());
      }
      spdlog::info("replay: publisher {}",
                   publishing ? "running in this process" : "not running in this process");
      Replayer replayer(*service);
      std::string buffer;
      auto on_op = [&](const ReplayedOp& op) -> Status {
        if (!args->quiet) {
          buffer = FormatReplayLine(op);
          buffer += '\n';
          std::fwrite(buffer.data(), 1, buffer.size(), stdout);
        }
        return Status::OK();
      };
      Result<ReplaySummary> summary = replayer.ReplayFile(args->ops, on_op);
      std::fflush(stdout);
      Status status = summary.status();
      if (status.ok() && args->wait) {
        status = runtime->WaitForVersions(tracker.ranges(), wait_timeout);
      }
      runtime->StopAll();
      if (!status.ok()) return status;
      std::cerr << fmt::format("replayed {} ops ({} lines), {} versions{}\n", summary->ops,
                               summary->lines, summary->versions,
                               args->wait ? ", all queryable" : "");
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
