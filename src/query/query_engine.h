// QueryEngine: the five support queries -- as-of, log, diff, timeline, blame -- over any
// HistoryStore, with results as plain structs. Rendering them for people (tables) and scripts
// (JSON) is query/render.h's job; docs/queries.md specifies the semantics and output formats.
//
// Semantics shared by every query (the same on every store, because they are built only from
// the HistoryStore primitives):
//   * A campaign's state at T is its record with the greatest (event_time, version) whose
//     event_time <= T. A delete record means "absent from T on"; so does "no record yet".
//   * Absent is an OK answer, never an error: a campaign missing at T is simply missing.
//   * Errors: a campaign with no history at all is NotFound (naming it); a version that is not
//     stored is NotFound (naming it); a range whose start is after its end is InvalidArgument.
//   * Field paths name top-level snapshot fields ("priority", "status") and, inside content,
//     sub-fields joined with dots ("content.body", "content.cta.url").
//   * Bookkeeping fields -- version, updated_at, updated_by -- change with every version; diffs
//     report them in a header (the versions, times and actors), not as field changes. The
//     RFC 6902 patch, by contrast, is exact: applying it to the "from" snapshot gives the "to".
//   * In notify capture a record may stand for several versions (missed_versions > 0); a change
//     made in a missed version is attributed to the next captured one.
//
// Thread-safety: a QueryEngine holds no mutable state; it is as thread-safe as its store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"

namespace ch {

// One field that differs between two snapshots. Values are compact JSON text; nullopt means the
// field is absent on that side (the whole campaign absent, or the key missing).
struct FieldChange {
  // "priority", "name", "content.body", ...
  std::string path;
  std::optional<std::string> before;
  std::optional<std::string> after;

  bool operator==(const FieldChange&) const = default;
};

// Return the field changes from `before` to `after` (snapshot JSON texts; "" means absent),
// bookkeeping fields (version, updated_at, updated_by) excluded: first the paths of `after` in
// its order, then the paths only `before` has, in its order. Fails with InvalidArgument when a
// non-empty text is not JSON.
Result<std::vector<FieldChange>> DiffSnapshots(std::string_view before, std::string_view after);

// Return the RFC 6902 JSON Patch (as compact JSON text, an array) that turns `before` into
// `after` ("" means absent, i.e. JSON null: a patch from or to absent replaces the root).
Result<std::string> SnapshotPatch(std::string_view before, std::string_view after);

// A point in one campaign's history as a user names it: a version ("12", "v12") or a moment
// (RFC 3339, see common/time_util.h).
struct VersionRef {
  std::optional<int64_t> version;
  std::optional<Timestamp> at;
  // The text it was parsed from (for messages and output headers).
  std::string text;

  // Parse "12" / "v12" as a version (>= 1) and anything else as a moment. Fails with
  // InvalidArgument naming the text when it is neither.
  static Result<VersionRef> Parse(std::string_view text);
  static VersionRef Version(int64_t v);
  static VersionRef At(Timestamp t);
};

// A campaign at one side of a diff: the resolved record (nullopt before the campaign existed)
// and whether the campaign exists there (false also when the record is a delete).
struct ResolvedState {
  VersionRef ref;
  std::optional<HistoryRecord> record;
  bool exists = false;
};

// ---- results ------------------------------------------------------------------------------------

struct AsOfResult {
  int64_t customer_id = 0;
  // The moment asked for.
  Timestamp at{};
  // The moment answered: `at`, or -- when `at` lies past what the history is complete through
  // -- complete_through (see QueryEngine::AsOf).
  Timestamp answered_at{};
  // The history's completeness when it answered (history/completeness.h).
  Completeness completeness;
  // The customer's campaigns that existed at answered_at, by priority then id; snapshots
  // verbatim.
  std::vector<HistoryRecord> campaigns;

  // True when the answer is for an earlier moment than the one asked for.
  bool clamped() const { return answered_at != at; }
};

struct LogEntry {
  HistoryRecord record;
  // The version this entry is diffed against: the campaign's previous stored version (even when
  // it lies before the requested range), or nullopt for the first one.
  std::optional<int64_t> previous_version;
  // Field changes from the previous version (all fields, as additions, for the first one). A
  // delete's snapshot is the last content, so its changes are normally empty.
  std::vector<FieldChange> changes;
  // RFC 6902 patch from the previous snapshot to this record's (from null for the first one),
  // compact JSON: applied in order, the patches rebuild every snapshot of the log.
  std::string patch;
};

struct LogResult {
  int64_t campaign_id = 0;
  int64_t customer_id = 0;
  TimeRange range;
  // In version order.
  std::vector<LogEntry> entries;
};

struct DiffResult {
  int64_t campaign_id = 0;
  int64_t customer_id = 0;
  ResolvedState from;
  ResolvedState to;
  // Field changes from `from` to `to` (absent sides count as no fields).
  std::vector<FieldChange> changes;
  // RFC 6902 patch from the `from` snapshot to the `to` snapshot (absent = null), compact JSON.
  std::string patch;
};

struct TimelineChange {
  int64_t campaign_id = 0;
  int64_t version = 0;
  ChangeOp event_type = ChangeOp::kUpdated;
  Timestamp event_time{};
  std::string actor;
  int64_t missed_versions = 0;
  // Paths of the fields this version changed (empty for creates and deletes).
  std::vector<std::string> fields;
};

struct TimelineGroup {
  // Empty when the records carried none (each such record is its own group).
  std::string transaction_id;
  // Commit time of the group's first change.
  Timestamp time{};
  // Distinct actors, in order of appearance.
  std::vector<std::string> actors;
  std::vector<TimelineChange> changes;
};

struct TimelineResult {
  int64_t customer_id = 0;
  TimeRange range;
  int64_t limit = 0;
  // Groups in commit order; together at most `limit` changes.
  std::vector<TimelineGroup> groups;
  // True when more changes exist in the range than were returned.
  bool truncated = false;
};

struct BlameEntry {
  std::string path;
  // Current value, compact JSON.
  std::string value;
  // The record that last set it.
  int64_t version = 0;
  Timestamp event_time{};
  std::string actor;
  std::string transaction_id;
};

struct BlameResult {
  int64_t campaign_id = 0;
  int64_t customer_id = 0;
  Timestamp at{};
  // The record in effect at `at` (nullopt before the campaign existed).
  std::optional<HistoryRecord> state;
  // False before creation and after a delete; the entries then describe the last content (after
  // a delete) or are empty (before creation).
  bool exists = false;
  // Top-level fields in snapshot order (bookkeeping excluded), content sub-fields in place of
  // "content".
  std::vector<BlameEntry> entries;
};

// Limits of a timeline query.
inline constexpr int64_t kDefaultTimelineLimit = 200;
inline constexpr int64_t kMaxTimelineLimit = 100000;

// ---- the engine ---------------------------------------------------------------------------------

class QueryEngine {
 public:
  // REQUIRES: `store` outlives the engine.
  explicit QueryEngine(HistoryStore& store) : store_(store) {}
  QueryEngine(const QueryEngine&) = delete;
  QueryEngine& operator=(const QueryEngine&) = delete;

  // Return the customer's campaigns as they were at `at`: exactly, when the history is complete
  // through `at` (or completeness is unknown: notify capture, older files). When `at` lies past
  // complete_through, a later transaction of the customer may be stored while an earlier one is
  // still on its way, and an answer at `at` could be a state that never existed (two campaigns at
  // one priority); the answer is then the state at complete_through, which did exist, and says so
  // (answered_at, clamped()). An unknown customer, or a moment before its first change, gives an
  // empty answer. Fails with FailedPrecondition for a moment before the customer's purge horizon
  // (HistoryStore::PurgeCustomer: what is left cannot say), NotFound for an erased customer.
  Result<AsOfResult> AsOf(int64_t customer_id, Timestamp at);

  // Return the campaign's versions with event_time in `range`, each diffed against the version
  // before it. Fails with NotFound for a campaign without history, InvalidArgument when
  // range.from > range.to.
  Result<LogResult> Log(int64_t campaign_id, const TimeRange& range);

  // Return the difference between two points of the campaign's history. A version must be
  // stored (else NotFound naming it); a moment resolves to the latest record at or before it and
  // may be "absent" (before creation, after a delete). Fails with NotFound for a campaign
  // without history.
  Result<DiffResult> Diff(int64_t campaign_id, const VersionRef& from, const VersionRef& to);

  // Return the customer's changes with event_time in `range`, grouped by transaction, at most
  // `limit` changes (1..kMaxTimelineLimit, else InvalidArgument). Fails with InvalidArgument
  // when range.from > range.to. An unknown customer gives an empty timeline.
  Result<TimelineResult> Timeline(int64_t customer_id, const TimeRange& range,
                                  int64_t limit = kDefaultTimelineLimit);

  // Return, for each field of the campaign as of `at`, the version, time and actor that last set
  // it. Fails with NotFound for a campaign without history.
  Result<BlameResult> Blame(int64_t campaign_id, Timestamp at);

 private:
  // Return the campaign's stored record with the highest version below `version`, or nullopt.
  Result<std::optional<HistoryRecord>> Previous(const HistoryRecord& r);
  // NotFound unless the campaign has history.
  Status RequireCampaign(int64_t campaign_id);
  Result<ResolvedState> Resolve(int64_t campaign_id, const VersionRef& ref);

  HistoryStore& store_;
};

}  // namespace ch
