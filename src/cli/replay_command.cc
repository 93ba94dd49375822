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
namespace {

struct ReplayArgs {
  std::string ops;
  bool resume = false;
  bool wait = false;
  std::string wait_timeout = "10m";
  bool quiet = false;
  bool no_publish = false;
};

// Print each applied op as one line, flushed at once: a reader at the other end of a pipe sees
// each op as soon as it is committed.
Status PrintOp(const ReplayedOp& op) {
  std::string line = FormatReplayLine(op);
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fflush(stdout);
  return Status::OK();
}

void PrintResume(const ResumeInfo& info) {
  std::cerr << fmt::format(
      "replay: resuming after op seq {}: {} ops already applied (the last one committed {})\n",
      info.position.seq, info.applied_lines, FormatTimestamp(info.position.recorded_at));
}

std::string SummaryLine(const ReplaySummary& s, bool waited) {
  std::string out =
      fmt::format("replayed {} ops ({} lines), {} versions", s.ops, s.lines, s.versions);
  if (s.skipped > 0) out += fmt::format("; skipped {} ops already applied", s.skipped);
  if (waited) out += ", all queryable";
  return out;
}

// Start this process's publisher when this setup is published in-process (the embedded setup).
Status MaybeStartPublisher(Runtime& runtime, const ReplayArgs& args) {
  if (args.no_publish || runtime.config().bus != "embedded" ||
      runtime.config().capture == CaptureSetting::kNone) {
    spdlog::info("replay: publisher not running in this process");
    return Status::OK();
  }
  ASSIGN_OR_RETURN(bool publishing, runtime.StartPublisher());
  spdlog::info(publishing ? "replay: publisher running in this process"
                          : "replay: another process publishes this setup; this one takes over "
                            "if that one stops first");
  return Status::OK();
}

Status RunReplay(Context& ctx, const ReplayArgs& args) {
  ASSIGN_OR_RETURN(Micros wait_timeout, ParseDuration(args.wait_timeout));
  ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
  ASSIGN_OR_RETURN(CampaignService * service, runtime->Service());
  // Remember the versions of every campaign this replay commits: --wait waits until the
  // history holds them, whatever the topology.
  CommittedVersions tracker;
  service->AddObserver(&tracker);
  // On the embedded setup this process publishes live; with Pub/Sub, `serve` processes do.
  RETURN_IF_ERROR(MaybeStartPublisher(*runtime, args));
  ReplayerOptions options;
  options.resume = args.resume;
  options.on_resume = PrintResume;
  Replayer replayer(*service, options);
  auto on_op = [&](const ReplayedOp& op) { return args.quiet ? Status::OK() : PrintOp(op); };
  Result<ReplaySummary> summary = replayer.ReplayFile(args.ops, on_op);
  Status status = summary.status();
  if (status.ok() && args.wait) {
    status = runtime->WaitForVersions(tracker.ranges(), wait_timeout);
  }
  runtime->StopAll();
  if (!status.ok()) return status;
  std::cerr << SummaryLine(*summary, args.wait) << "\n";
  return Status::OK();
}

}  // namespace

void RegisterReplay(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "replay",
      "Apply a workload (JSON lines) through the campaign service, one transaction per op, "
      "printing {\"seq\",\"committed_at\",\"versions\"} per applied op as it commits. The campaign "
      "database records each applied op with it: running a file again fails (nothing applied) "
      "unless --resume, which skips the applied ops");
  auto args = std::make_shared<ReplayArgs>();
  cmd->add_option("--ops", args->ops, "Workload file ('-' for standard input)")->required();
  cmd->add_flag("--resume", args->resume,
                "Skip the ops of this workload that the campaign database records as applied "
                "(after a crash or a rejected line), checking they are the same, and apply the "
                "rest");
  cmd->add_flag("--wait", args->wait,
                "Return only when everything committed is queryable in the history store");
  cmd->add_option("--wait-timeout", args->wait_timeout, "Give up waiting after this long")
      ->capture_default_str();
  cmd->add_flag("--quiet", args->quiet, "Do not print a line per op");
  cmd->add_flag("--no-publish", args->no_publish,
                "Only capture: leave the changes for a separate publisher process "
                "('serve --roles publisher')");
  cmd->callback(
      [&ctx, args] { ctx.action = [&ctx, args]() -> Status { return RunReplay(ctx, *args); }; });
}

}  // namespace ch::cli
