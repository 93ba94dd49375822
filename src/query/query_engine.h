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
//   * Causes (query/cause.h): every version knows what its transaction did. Shift-only versions
//     (priority moved by one because another campaign was created, moved or deleted) are folded
//     under the transaction's primary change: timeline leads each transaction with it, log and
//     blame annotate (or hide) shift-only versions with it. Finding the cause of one version
//     reads only that transaction's records, without their snapshots, plus the snapshots of the
//     few it needs (TransactionCauseOf).
//   * Empty answers say why (`note`): an unknown customer, a moment before its history starts,
//     a window without changes, filters that matched nothing.
//
// Thread-safety: not thread-safe (it memoizes causes); use one engine per thread or request. It
// is cheap to make.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "history/history_store.h"
#include "query/cause.h"

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
  // As above, with moments relative to `clock` accepted too ("now", "now-2h", "yesterday
  // 14:00": common/time_util.h ParseTimeExpression).
  static Result<VersionRef> Parse(std::string_view text, const Clock& clock);
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

// Paging and filters of an as-of answer.
struct AsOfOptions {
  // At most this many campaigns (0 = all of them). REQUIRES: 0..kMaxAsOfLimit.
  int64_t limit = 0;
  // Continue after a previous page: its next_cursor (query/cursor.h). The answer is then at the
  // moment of the first page; `at` must equal the moment that page was asked for.
  std::string cursor;
  // Keep only campaigns with one of these statuses (draft, active, paused, ended); empty = any.
  std::vector<std::string> statuses;
  // Keep only campaigns whose name contains this text (ASCII letters compared without case);
  // empty = any.
  std::string name;
};

inline constexpr int64_t kMaxAsOfLimit = 100000;

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
  // verbatim. With a limit or filters: this page of the ones that match.
  std::vector<HistoryRecord> campaigns;
  // Campaigns that existed at answered_at, and how many of them match the filters (all pages).
  int64_t existing = 0;
  int64_t matching = 0;
  // How many matching campaigns come before this page.
  int64_t offset = 0;
  // Where the next page starts; empty on the last page.
  std::string next_cursor;
  // Why the answer is empty, in words ("no customer 7 in the history"); empty otherwise.
  std::string note;

  // True when the answer is for an earlier moment than the one asked for.
  bool clamped() const { return answered_at != at; }
};

// What log and blame do with shift-only versions.
enum class ShiftDisplay {
  // Show them, each with its cause.
  kAnnotate,
  // Leave them out (log: counted in hidden_shifts).
  kHide,
};

struct LogOptions {
  ShiftDisplay shifts = ShiftDisplay::kAnnotate;
};

struct LogEntry {
  HistoryRecord record;
  // What this version did (query/cause.h).
  ChangeKind kind = ChangeKind::kEdited;
  // Its transaction's cause: set for shift-only versions, and for a move of a swap of
  // neighbours (whose other half it names).
  std::optional<TransactionCause> cause;
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
  // The history's completeness when it answered (for range.to).
  Completeness completeness;
  // Shift-only versions left out (ShiftDisplay::kHide).
  int64_t hidden_shifts = 0;
  // Why there are no entries, in words; empty otherwise.
  std::string note;
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
  // The history's completeness when it answered.
  Completeness completeness;
};

struct TimelineChange {
  int64_t campaign_id = 0;
  int64_t version = 0;
  ChangeOp event_type = ChangeOp::kUpdated;
  ChangeKind kind = ChangeKind::kEdited;
  // The campaign's priority before and after (before: nullopt for a create; after: nullopt for
  // a delete).
  std::optional<int64_t> priority_from;
  std::optional<int64_t> priority_to;
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
  // What the transaction did: its primary changes, and how many versions it only shifted.
  TransactionCause cause;
  // Its changes: the primary ones first (by campaign id), then -- with show_shifts -- the
  // shift-only ones (by campaign id).
  std::vector<TimelineChange> changes;
};

struct TimelineOptions {
  // At most this many transactions. A transaction is never cut: it comes whole or on the next
  // page. REQUIRES: 1..kMaxTimelineLimit.
  int64_t limit = 50;
  // Continue after a previous page: its next_cursor (query/cursor.h).
  std::string cursor;
  // List the shift-only changes too (they are always counted in each group's cause).
  bool show_shifts = false;
};

struct TimelineResult {
  int64_t customer_id = 0;
  TimeRange range;
  int64_t limit = 0;
  // Whole transactions in commit order, at most `limit`.
  std::vector<TimelineGroup> groups;
  // The history's completeness when it answered (for range.to).
  Completeness completeness;
  // True when more transactions exist in the range than were returned; next_cursor then says
  // where the next page starts.
  bool truncated = false;
  std::string next_cursor;
  // Why there are no groups, in words; empty otherwise.
  std::string note;
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
  // What that version did; for a shift-only one (it can only have set `priority`), its cause:
  // who moved which other campaign.
  ChangeKind kind = ChangeKind::kEdited;
  std::optional<TransactionCause> cause;
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
  // The history's completeness when it answered.
  Completeness completeness;
};

// Limits of a timeline query (in transactions).
inline constexpr int64_t kDefaultTimelineLimit = 50;
inline constexpr int64_t kMaxTimelineLimit = 100000;

// One hit of a search: a customer or a campaign.
struct SearchHit {
  // "customer" (an id that is a customer's) or "campaign" (an id, or a name that contains the
  // text). DO NOT CHANGE (JSON).
  std::string kind;
  // How it matched: "customer id", "campaign id", "name".
  std::string matched;
  int64_t customer_id = 0;
  // Campaign hits: the campaign and its latest record's name, status and version; `deleted`
  // when that record is its delete.
  int64_t campaign_id = 0;
  std::string name;
  std::string status;
  int64_t version = 0;
  bool deleted = false;
  // Customer hits: campaigns ever seen and those not deleted.
  int64_t campaigns = 0;
  int64_t live_campaigns = 0;
  // The latest change (a campaign's, or the customer's).
  Timestamp last_change{};
};

struct SearchResult {
  std::string query;
  // Customers first, then campaigns by customer and campaign id.
  std::vector<SearchHit> hits;
  // True when more hits exist than `limit`.
  bool truncated = false;
  // Why there are no hits, in words; empty otherwise.
  std::string note;
  // The history's completeness when it answered.
  Completeness completeness;
};

inline constexpr int64_t kDefaultSearchLimit = 50;
inline constexpr int64_t kMaxSearchLimit = 10000;

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
  Result<AsOfResult> AsOf(int64_t customer_id, Timestamp at) { return AsOf(customer_id, at, {}); }
  // As above, one page of the campaigns that match the filters (AsOfOptions). Fails with
  // InvalidArgument for a limit out of range, an unknown status, or a cursor that is not one of
  // an as-of answer at `at`.
  Result<AsOfResult> AsOf(int64_t customer_id, Timestamp at, const AsOfOptions& options);

  // Return the campaign's versions with event_time in `range`, each diffed against the version
  // before it. Fails with NotFound for a campaign without history, InvalidArgument when
  // range.from > range.to.
  Result<LogResult> Log(int64_t campaign_id, const TimeRange& range,
                        const LogOptions& options = {});

  // Return the difference between two points of the campaign's history. A version must be
  // stored (else NotFound naming it); a moment resolves to the latest record at or before it and
  // may be "absent" (before creation, after a delete). Fails with NotFound for a campaign
  // without history.
  Result<DiffResult> Diff(int64_t campaign_id, const VersionRef& from, const VersionRef& to);

  // Return the customer's changes with event_time in `range`, whole transactions in commit
  // order, each led by its primary changes, at most options.limit transactions
  // (1..kMaxTimelineLimit, else InvalidArgument) starting after options.cursor. Fails with
  // InvalidArgument when range.from > range.to or the cursor is not a timeline cursor. An
  // unknown customer gives an empty timeline. Cost: the records of the page's transactions,
  // plus the previous version of each campaign whose previous version lies before the page.
  Result<TimelineResult> Timeline(int64_t customer_id, const TimeRange& range,
                                  const TimelineOptions& options = {});

  // Return, for each field of the campaign as of `at`, the version, time and actor that last set
  // it. Fails with NotFound for a campaign without history.
  Result<BlameResult> Blame(int64_t campaign_id, Timestamp at);

  // Return the cause of the transaction that wrote `r` (query/cause.h). Reads the transaction's
  // records without snapshots, then the snapshots (and previous versions) of its created and
  // deleted records and of its two ends by priority -- where a moved campaign lands -- and only
  // when those explain nothing, the whole transaction. Memoized per engine.
  Result<TransactionCause> TransactionCauseOf(const HistoryRecord& r);

  // Return the customers and campaigns that `text` names: a customer id, a campaign id, or part
  // of a campaign's (latest) name, ASCII letters compared without case; at most `limit`
  // (1..kMaxSearchLimit) hits. Fails with InvalidArgument for empty text or a bad limit. Cost:
  // a name search reads every campaign's latest record.
  Result<SearchResult> Search(std::string_view text, int64_t limit = kDefaultSearchLimit);

 private:
  struct CauseKey {
    int64_t customer_id;
    Timestamp time;
    std::string transaction_id;
    auto operator<=>(const CauseKey&) const = default;
  };
  // Return the kind of `r` (diffed against `previous`) and, when it moved by exactly one, its
  // transaction's cause, which decides between shifted and moved.
  Result<std::pair<ChangeKind, std::optional<TransactionCause>>> KindOf(
      const HistoryRecord& r, const std::optional<HistoryRecord>& previous);
  // Describe the customer's history for an empty answer: "no customer 7 in the history"; "the
  // history of customer 2 starts at A" when `until` is before its first change; "the last
  // change of customer 2 was at B" when `since` is after its last; else "the history of
  // customer 2 runs from A to B".
  Result<std::string> CustomerNote(int64_t customer_id, std::optional<Timestamp> until,
                                   std::optional<Timestamp> since);

  // Return the campaign's stored record with the highest version below `version`, or nullopt.
  Result<std::optional<HistoryRecord>> Previous(const HistoryRecord& r);
  // NotFound unless the campaign has history.
  Status RequireCampaign(int64_t campaign_id);
  Result<ResolvedState> Resolve(int64_t campaign_id, const VersionRef& ref);

  HistoryStore& store_;
  std::map<CauseKey, TransactionCause> causes_;
};

}  // namespace ch
