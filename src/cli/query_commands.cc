// The support queries: as-of, log, diff, timeline, blame (docs/queries.md), and status.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "capture/pg_logical_source.h"
#include "cli/cli.h"
#include "cli/serve_status.h"
#include "common/time_util.h"
#include "history/history_store.h"
#include "query/cursor.h"
#include "query/query_engine.h"
#include "query/render.h"

namespace ch::cli {
namespace {

// Parse a time flag: RFC 3339 (see time_util.h) or a moment relative to the clock ("now",
// "now-2h", "yesterday 14:00"). Errors name the flag.
Result<Timestamp> ParseTimeFlag(std::string_view flag, const std::string& text, Clock& clock) {
  Result<Timestamp> t = ParseTimeExpression(text, clock);
  if (!t.ok()) return t.status().WithContext(flag);
  return t;
}

Result<TimeRange> ParseRange(const std::optional<std::string>& from,
                             const std::optional<std::string>& to, Clock& clock) {
  TimeRange range;
  if (from) {
    ASSIGN_OR_RETURN(range.from, ParseTimeFlag("--from", *from, clock));
  }
  if (to) {
    ASSIGN_OR_RETURN(range.to, ParseTimeFlag("--to", *to, clock));
  }
  if (range.from && range.to && *range.from > *range.to) {
    return InvalidArgumentError(fmt::format(
        "--from {} is after --to {}", FormatTimestamp(*range.from), FormatTimestamp(*range.to)));
  }
  return range;
}

// Open the history for a query. On the embedded setup, first move what the outbox still holds
// into the history (when no other process is publishing), so a query sees every commit.
Result<HistoryStore*> OpenForQuery(Runtime& runtime) {
  Result<PublishStats> caught_up = runtime.CatchUp();
  if (!caught_up.ok()) {
    spdlog::warn("could not bring the history up to date first: {}", caught_up.status().ToString());
  } else if (caught_up->stored > 0) {
    spdlog::info("moved {} captured changes into the history first", caught_up->stored);
  }
  return runtime.History(/*create=*/false);
}

void Print(const std::string& text) {
  std::cout << text;
  if (!text.empty() && text.back() != '\n') std::cout << '\n';
  std::cout.flush();
}

// End the process successfully right after a read-only command printed its answer, without
// running destructors: nothing is written after the answer (the catch-up before the query
// committed its own transactions), so what remains is freeing a 2,000-campaign answer's
// thousands of strings, unmapping the history file and closing SQLite connections -- work the
// kernel does anyway when the process ends (measured in docs/benchmarks.md, "as-of speed").
// SQLite treats a connection that was never closed like one of a crashed process: the WAL stays
// valid and the next opener recovers it.
[[noreturn]] void ExitAfterAnswer() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(0);
}

// Tell the reader on stderr how complete the answer is: when it is for an earlier moment than
// asked (the history is complete only through then), or when completeness cannot be known
// (notify capture). Silent when the answer is exact.
void NoteCompleteness(const AsOfResult& r) {
  const Completeness& c = r.completeness;
  if (r.clamped()) {
    std::cerr << fmt::format(
        "note: the history is complete through {}; this is customer {} as of then, not {} (later "
        "transactions are still arriving: {} partly stored, {} waiting for an earlier one); "
        "--wait waits for them\n",
        FormatTimestamp(*c.complete_through), r.customer_id, FormatTimestamp(r.at),
        c.partial_transactions, c.waiting_transactions);
    return;
  }
  if (c.complete_through) return;
  for (const HistoryRecord& rec : r.campaigns) {
    if (rec.capture == CaptureMode::kNotify) {
      std::cerr << "note: notify capture records what it finds when it reads a campaign: versions "
                   "may be missing (missed_versions) and how complete the history is cannot be "
                   "known\n";
      return;
    }
  }
}

// Wait until the history is complete through `at` (moving the embedded outbox into it on the
// way). Fails with DeadlineExceeded saying how far it got.
Status WaitUntilComplete(Runtime& runtime, HistoryStore& history, Timestamp at, Micros timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(Completeness c, history.GetCompleteness());
    if (c.complete_through && *c.complete_through >= at) return Status::OK();
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError(fmt::format(
          "--wait: after {} s the history is complete only through {} (asked for {}; {} "
          "transactions partly stored, {} waiting for an earlier one, {} records held back). Is a "
          "publisher running, and is capture 'log'?",
          std::chrono::duration_cast<std::chrono::seconds>(timeout).count(),
          c.complete_through ? FormatTimestamp(*c.complete_through) : std::string("nothing yet"),
          FormatTimestamp(at), c.partial_transactions, c.waiting_transactions, c.held_records));
    }
    if (Result<PublishStats> moved = runtime.CatchUp(); !moved.ok()) return moved.status();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// The engine names its parameters the way the support API does ("limit: ...", "cursor: ...",
// "status: ...", "q: ..."); on the command line they are flags.
Status WithFlagNames(const Status& s) {
  std::string_view m = s.message();
  for (std::string_view p : {"limit", "cursor", "status", "name"}) {
    if (m.substr(0, p.size() + 1) == std::string(p) + ":") {
      return Status(s.code(), "--" + std::string(m));
    }
  }
  if (m.substr(0, 2) == "q:") return Status(s.code(), "query:" + std::string(m.substr(2)));
  return s;
}

// Say on stderr why an answer is empty ("no customer 7 in the history").
void Note(const std::string& note) {
  if (!note.empty()) std::cerr << "note: " << note << "\n";
}

Status CheckId(std::string_view flag, int64_t id) {
  if (id <= 0)
    return InvalidArgumentError(fmt::format("{}: must be a positive id (got {})", flag, id));
  return Status::OK();
}

// The newest audit entries `status` shows.
constexpr int64_t kStatusAuditEntries = 10;

std::string AuditJson(const std::vector<AuditEntry>& audit) {
  nlohmann::json out = nlohmann::json::array();
  for (const AuditEntry& e : audit) {
    nlohmann::json j = {{"at", FormatTimestamp(e.at)},
                        {"actor", e.actor},
                        {"action", e.action},
                        {"customer_id", e.customer_id},
                        {"records", e.records}};
    j["before"] = e.before ? nlohmann::json(FormatTimestamp(*e.before)) : nlohmann::json();
    out.push_back(std::move(j));
  }
  return out.dump();
}

std::string AuditText(const std::vector<AuditEntry>& audit) {
  if (audit.empty()) return "";
  std::string out = "\naudit:     (newest first)";
  for (const AuditEntry& e : audit) {
    std::string what = e.before ? fmt::format("purge before {}", FormatTimestamp(*e.before))
                                : std::string(e.action);
    out += fmt::format("\n  {}  {}  customer {}  {}  {} record(s)", FormatTimestamp(e.at), e.actor,
                       e.customer_id, what, e.records);
  }
  return out;
}

}  // namespace

void RegisterQueries(CLI::App& app, Context& ctx) {
  struct Args {
    int64_t customer = 0;
    int64_t campaign = 0;
    std::optional<std::string> at;
    std::optional<std::string> from, to;
    std::optional<int64_t> limit;
    std::string cursor;
    std::vector<std::string> statuses;
    std::string name;
    std::string shifts;
    std::string query;
    bool json = false;
    bool full = false;
    size_t width = 60;
    std::optional<double> wait_s;
  };
  auto args = std::make_shared<Args>();
  auto common = [args](CLI::App* cmd) {
    cmd->add_flag("--json", args->json, "Machine-readable JSON instead of a table");
    cmd->add_option("--width", args->width, "Longest value shown in a table cell (columns)")
        ->capture_default_str()
        ->check(CLI::Range(size_t{8}, size_t{100000}));
    cmd->add_flag("--full", args->full,
                  "Show every value in full in tables (URLs, bodies: no shortening)");
    cmd->footer(
        "Times: RFC 3339 (2026-11-03T14:05:00Z, 2026-11-03 14:05), now, now-2h, today, "
        "yesterday 14:00 (UTC days). Global flags (--data DIR, ...) may come before or after "
        "the command.");
  };
  auto render_options = [args] {
    RenderOptions o;
    o.max_value_chars = args->width;
    o.full = args->full;
    return o;
  };

  auto* as_of = app.add_subcommand(
      "as-of", "A customer's campaigns exactly as they were at a moment, in priority order");
  as_of->add_option("--customer", args->customer, "Customer id")->required()->check(IdFlag());
  as_of->add_option("--at", args->at,
                    "The moment (e.g. 2026-11-03T14:05:00Z, now, now-2h, yesterday 14:00); "
                    "required unless --cursor continues an answer");
  as_of->add_option("--limit", args->limit, "At most this many campaigns (a page) [default: all]")
      ->check(CLI::Range(int64_t{1}, kMaxAsOfLimit));
  as_of->add_option("--cursor", args->cursor,
                    "Continue after the page that printed this cursor (same moment)");
  as_of
      ->add_option("--status", args->statuses,
                   "Only campaigns with this status (draft, active, paused, ended); repeatable "
                   "or comma-separated")
      ->delimiter(',');
  as_of->add_option("--name", args->name,
                    "Only campaigns whose name contains this text (ASCII letters without case)");
  as_of
      ->add_option("--wait", args->wait_s,
                   "Wait up to this many seconds until the history is complete through --at "
                   "(else the answer is for the moment it is complete through, said on stderr)")
      ->expected(0, 1)
      ->default_str("60")
      ->check(CLI::Range(0.0, 86400.0));
  common(as_of);
  as_of->callback([&ctx, args, render_options] {
    ctx.action = [&ctx, args, render_options]() -> Status {
      RETURN_IF_ERROR(CheckId("--customer", args->customer));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      AsOfOptions options;
      options.limit = args->limit.value_or(0);
      options.cursor = args->cursor;
      options.statuses = args->statuses;
      options.name = args->name;
      // A cursor continues the answer at its own moment: --at may be left out, and a relative
      // one ("now") means that moment too.
      Timestamp at;
      if (!args->cursor.empty() && (!args->at || IsRelativeTime(*args->at))) {
        Result<AsOfCursor> c = DecodeAsOfCursor(args->cursor);
        if (!c.ok()) return c.status().WithContext("--cursor");
        at = c->at;
      } else if (!args->at) {
        return InvalidArgumentError("--at: required (the moment to show; e.g. --at now)");
      } else {
        ASSIGN_OR_RETURN(at, ParseTimeFlag("--at", *args->at, runtime->clock()));
      }
      ASSIGN_OR_RETURN(HistoryStore * history, OpenForQuery(*runtime));
      if (args->wait_s) {
        RETURN_IF_ERROR(WaitUntilComplete(
            *runtime, *history, at,
            std::chrono::duration_cast<Micros>(std::chrono::duration<double>(*args->wait_s))));
      }
      QueryEngine engine(*history);
      Result<AsOfResult> r = engine.AsOf(args->customer, at, options);
      if (!r.ok()) return WithFlagNames(r.status());
      NoteCompleteness(*r);
      Note(r->note);
      Print(args->json ? RenderAsOfJson(*r) : RenderAsOfTable(*r, render_options()));
      if (!std::cout) return InternalError("could not write the answer to stdout");
      ExitAfterAnswer();
    };
  });

  auto* log = app.add_subcommand(
      "log", "One campaign's versions in order, each with what changed from the one before");
  log->add_option("--campaign", args->campaign, "Campaign id")->required()->check(IdFlag());
  log->add_option("--from", args->from, "Only versions at or after this moment");
  log->add_option("--to", args->to, "Only versions at or before this moment");
  log->add_option("--shifts", args->shifts,
                  "Versions that only moved because another campaign was created, moved or "
                  "deleted: annotate (each with its cause) or hide [default: annotate]")
      ->check(CLI::IsMember({"annotate", "hide"}));
  common(log);
  log->callback([&ctx, args, render_options] {
    ctx.action = [&ctx, args, render_options]() -> Status {
      RETURN_IF_ERROR(CheckId("--campaign", args->campaign));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(TimeRange range, ParseRange(args->from, args->to, runtime->clock()));
      ASSIGN_OR_RETURN(HistoryStore * history, OpenForQuery(*runtime));
      QueryEngine engine(*history);
      LogOptions options;
      if (args->shifts == "hide") options.shifts = ShiftDisplay::kHide;
      ASSIGN_OR_RETURN(LogResult r, engine.Log(args->campaign, range, options));
      Note(r.note);
      Print(args->json ? RenderLogJson(r) : RenderLogTable(r, render_options()));
      return Status::OK();
    };
  });

  auto* diff = app.add_subcommand(
      "diff",
      "What changed in a campaign between two versions or two moments (RFC 6902 JSON Patch with "
      "--json)");
  diff->add_option("--campaign", args->campaign, "Campaign id")->required()->check(IdFlag());
  diff->add_option("--from", args->from, "A version number (e.g. 3) or a moment")->required();
  diff->add_option("--to", args->to, "A version number or a moment [default: now]");
  common(diff);
  diff->callback([&ctx, args, render_options] {
    ctx.action = [&ctx, args, render_options]() -> Status {
      RETURN_IF_ERROR(CheckId("--campaign", args->campaign));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      auto ref = [&](std::string_view flag, const std::string& text) -> Result<VersionRef> {
        Result<VersionRef> r = VersionRef::Parse(text, runtime->clock());
        if (!r.ok()) return r.status().WithContext(flag);
        return r;
      };
      ASSIGN_OR_RETURN(VersionRef from, ref("--from", *args->from));
      ASSIGN_OR_RETURN(VersionRef to, ref("--to", args->to.value_or("now")));
      ASSIGN_OR_RETURN(HistoryStore * history, OpenForQuery(*runtime));
      QueryEngine engine(*history);
      ASSIGN_OR_RETURN(DiffResult r, engine.Diff(args->campaign, from, to));
      Print(args->json ? RenderDiffJson(r) : RenderDiffTable(r, render_options()));
      return Status::OK();
    };
  });

  auto* timeline = app.add_subcommand(
      "timeline",
      "A customer's changes in a time window, one transaction at a time, each led by what was "
      "done (shift-only changes folded under it)");
  timeline->add_option("--customer", args->customer, "Customer id")->required()->check(IdFlag());
  timeline->add_option("--from", args->from, "Window start (e.g. 2026-11-03, yesterday, now-2h)")
      ->required();
  timeline->add_option("--to", args->to, "Window end [default: now]");
  timeline
      ->add_option("--limit", args->limit,
                   fmt::format("At most this many transactions (a page; a transaction is never "
                               "cut) [default: {}]",
                               kDefaultTimelineLimit))
      ->check(CLI::Range(int64_t{1}, kMaxTimelineLimit));
  timeline->add_option("--cursor", args->cursor,
                       "Continue after the page that printed this cursor");
  timeline
      ->add_option("--shifts", args->shifts,
                   "Shift-only changes: fold (counted under their transaction's cause) or show "
                   "(listed too) [default: fold]")
      ->check(CLI::IsMember({"fold", "show"}));
  common(timeline);
  timeline->callback([&ctx, args, render_options] {
    ctx.action = [&ctx, args, render_options]() -> Status {
      RETURN_IF_ERROR(CheckId("--customer", args->customer));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(TimeRange range,
                       ParseRange(args->from, args->to.value_or("now"), runtime->clock()));
      ASSIGN_OR_RETURN(HistoryStore * history, OpenForQuery(*runtime));
      QueryEngine engine(*history);
      TimelineOptions options;
      options.limit = args->limit.value_or(kDefaultTimelineLimit);
      options.cursor = args->cursor;
      options.show_shifts = args->shifts == "show";
      Result<TimelineResult> r = engine.Timeline(args->customer, range, options);
      if (!r.ok()) return WithFlagNames(r.status());
      Note(r->note);
      Print(args->json ? RenderTimelineJson(*r) : RenderTimelineTable(*r, render_options()));
      return Status::OK();
    };
  });

  auto* blame = app.add_subcommand(
      "blame",
      "For each field of a campaign, the version, time and actor that last set it (a priority "
      "set by another campaign's create, move or delete says so)");
  blame->add_option("--campaign", args->campaign, "Campaign id")->required()->check(IdFlag());
  blame->add_option("--at", args->at, "As of this moment [default: now]");
  common(blame);
  blame->callback([&ctx, args, render_options] {
    ctx.action = [&ctx, args, render_options]() -> Status {
      RETURN_IF_ERROR(CheckId("--campaign", args->campaign));
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(Timestamp at,
                       ParseTimeFlag("--at", args->at.value_or("now"), runtime->clock()));
      ASSIGN_OR_RETURN(HistoryStore * history, OpenForQuery(*runtime));
      QueryEngine engine(*history);
      ASSIGN_OR_RETURN(BlameResult r, engine.Blame(args->campaign, at));
      Print(args->json ? RenderBlameJson(r) : RenderBlameTable(r, render_options()));
      return Status::OK();
    };
  });

  auto* search = app.add_subcommand(
      "search", "Find a customer or campaign: a customer id, a campaign id, or part of a name");
  search->add_option("query", args->query, "What to look for")->required();
  search
      ->add_option("--limit", args->limit,
                   fmt::format("At most this many hits [default: {}]", kDefaultSearchLimit))
      ->check(CLI::Range(int64_t{1}, kMaxSearchLimit));
  common(search);
  search->callback([&ctx, args, render_options] {
    ctx.action = [&ctx, args, render_options]() -> Status {
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(HistoryStore * history, OpenForQuery(*runtime));
      QueryEngine engine(*history);
      Result<SearchResult> r =
          engine.Search(args->query, args->limit.value_or(kDefaultSearchLimit));
      if (!r.ok()) return WithFlagNames(r.status());
      Note(r->note);
      Print(args->json ? RenderSearchJson(*r) : RenderSearchTable(*r, render_options()));
      return Status::OK();
    };
  });
}

void RegisterStatus(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "status", "What the history holds and how many captured changes wait to be published");
  auto json = std::make_shared<bool>(false);
  auto slot = std::make_shared<std::string>("campaign_history");
  auto serves = std::make_shared<std::vector<std::string>>();
  cmd->add_flag("--json", *json, "Machine-readable JSON");
  cmd->add_option("--serve", *serves,
                  "http://HOST:PORT of a serve --metrics-listen: report its consumers (blocked "
                  "by a failing dependency or not); repeatable");
  cmd->add_option("--slot", *slot,
                  "Log capture on PostgreSQL: the replication slot whose lag to report")
      ->capture_default_str();
  cmd->callback([&ctx, json, slot, serves] {
    ctx.action = [&ctx, json, slot, serves]() -> Status {
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(HistoryStore * history, runtime->History(/*create=*/false));
      ASSIGN_OR_RETURN(HistoryStats stats, history->Stats());
      ASSIGN_OR_RETURN(Completeness done, history->GetCompleteness());
      ASSIGN_OR_RETURN(std::vector<AuditEntry> audit, history->AuditLog(kStatusAuditEntries));
      int64_t backlog = 0;
      if (runtime->config().capture == CaptureSetting::kLog) {
        Result<int64_t> b = runtime->Backlog();
        if (b.ok()) backlog = *b;
      }
      // Log capture on PostgreSQL waits in the replication slot, not in an outbox: report the
      // slot's lag. This asks the campaign database, so an unreachable one is an error (naming
      // it) rather than a silent "backlog 0".
      std::optional<PgSlotStatus> lag;
      ASSIGN_OR_RETURN(BackendUrl campaign_db,
                       ParseBackendUrl("--campaign-db", runtime->config().CampaignDbUrl()));
      if (campaign_db.scheme == UrlScheme::kPostgres &&
          runtime->config().capture == CaptureSetting::kLog) {
        ASSIGN_OR_RETURN(lag, PgLogicalSource::SlotStatus(campaign_db.target, *slot));
      }
      std::vector<ServeStatus> serve_status;
      for (const std::string& url : *serves) {
        ASSIGN_OR_RETURN(ServeStatus s, FetchServeStatus(url));
        serve_status.push_back(std::move(s));
      }
      auto time = [](const std::optional<Timestamp>& t) {
        return t ? FormatTimestamp(*t) : std::string("-");
      };
      if (*json) {
        std::string slot_json;
        if (lag) {
          slot_json = fmt::format(
              R"(,"capture_slot":{{"slot":"{}","exists":{},"active":{},"unconfirmed_wal_bytes":{}}})",
              *slot, lag->exists, lag->active, lag->unconfirmed_wal_bytes);
        }
        auto json_time = [&](const std::optional<Timestamp>& t) {
          return t ? "\"" + time(t) + "\"" : std::string("null");
        };
        if (!serve_status.empty()) {
          slot_json += fmt::format(R"(,"serve":{})", RenderServeStatusJson(serve_status));
        }
        slot_json += R"(,"audit":)" + AuditJson(audit);
        Print(fmt::format(
            R"({{"records":{},"campaigns":{},"customers":{},"first_event":{},"last_event":{},"bytes":{},"backlog":{},"complete_through":{},"completeness":{{"through_txn_seq":{},"partial_transactions":{},"waiting_transactions":{},"held_records":{},"conflicts":{}}}{}}})",
            stats.records, stats.campaigns, stats.customers, json_time(stats.first_event),
            json_time(stats.last_event), stats.bytes, backlog, json_time(done.complete_through),
            done.through_seq, done.partial_transactions, done.waiting_transactions,
            done.held_records, done.conflicts, slot_json));
      } else {
        std::string slot_text;
        if (lag && !lag->exists) {
          slot_text =
              fmt::format("\ncapture:   slot '{}' does not exist (run 'capture setup')", *slot);
        } else if (lag) {
          slot_text = fmt::format("\ncapture:   slot '{}' {}, {:.1f} MiB of WAL not yet relayed",
                                  *slot, lag->active ? "read by a relay" : "not read by any relay",
                                  lag->unconfirmed_wal_bytes / 1048576.0);
        }
        std::string complete =
            done.complete_through ? fmt::format("{} (every transaction up to #{})",
                                                time(done.complete_through), done.through_seq)
                                  : std::string("unknown (no log-captured transaction stored yet)");
        if (done.partial_transactions + done.waiting_transactions > 0) {
          complete += fmt::format(
              "; after it: {} transactions partly stored ({} records held back), {} complete but "
              "waiting for an earlier one",
              done.partial_transactions, done.held_records, done.waiting_transactions);
        }
        std::string conflicts;
        if (done.conflicts > 0) {
          conflicts = fmt::format(
              "\nconflicts: {} versions received again with other content (a version number "
              "was reused: docs/operations.md, \"Conflicting versions\")",
              done.conflicts);
        }
        Print(fmt::format(
            "history:   {}\nrecords:   {}\ncampaigns: {}\ncustomers: {}\nfirst:     {}\n"
            "last:      {}\ncomplete:  {}\nsize:      {:.1f} MiB\nbacklog:   {} captured changes "
            "not yet in the history{}{}",
            RedactUrlPassword(runtime->config().HistoryUrl()), stats.records, stats.campaigns,
            stats.customers, time(stats.first_event), time(stats.last_event), complete,
            stats.bytes / 1048576.0, backlog, slot_text + RenderServeStatusText(serve_status),
            conflicts + AuditText(audit)));
      }
      return Status::OK();
    };
  });
}

}  // namespace ch::cli
