// Renderings of query results (query/query_engine.h): aligned text tables for people and JSON
// for scripts (`--json`). docs/queries.md shows every format with examples; the golden files in
// tests/golden/ pin them down byte for byte.
//
// Conventions of the tables:
//   * times are UTC with millisecond precision ("2026-11-03 14:05:00.123Z");
//   * values are shown as JSON scalars without the quotes of strings, "(absent)" for a missing
//     field, and long strings shortened with "…" (a long string that changed shows only the
//     changed region, "…free [shipping → delivery] today…");
//   * columns are aligned by display width (query tables hold CJK and emoji: text.h
//     DisplayWidth), and cells are shortened by width too;
//   * shift-only versions are folded under their cause: a timeline transaction reads
//     "user:501 created c510 'Campaign 10'" followed by "+ 10 campaigns shifted down by one",
//     a log or blame entry "moved 6 → 7 because user:501 created c510 'Campaign 10'".
// The JSON renderings carry every value in full. They are what the support API answers, byte for
// byte (src/api/support_api.h): each says how complete the history is for the moment asked
// ("complete_through", "complete"). Fields are only ever added, except where docs/queries.md
// says otherwise.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>

#include "query/query_engine.h"

namespace ch {

struct RenderOptions {
  // Longest value shown in a table, in columns, before it is shortened. Default: 60.
  size_t max_value_chars = 60;
  // Show every value in full (no shortening, whole strings on both sides of a change).
  // Default: false.
  bool full = false;
  // Shift-only changes of one transaction listed (timeline with shifts shown) before the rest
  // is summarized. Default: 8.
  size_t max_changes_per_group = 8;
};

// as-of: a table (priority, id, name, status, version, updated at/by, trigger, segment, schedule)
// and a JSON array of the snapshots exactly as stored, in priority order.
std::string RenderAsOfTable(const AsOfResult& r, const RenderOptions& options = {});
std::string RenderAsOfJson(const AsOfResult& r);

// log: one block per version (header line, then its field changes) and JSON with every version's
// changes and RFC 6902 patch.
std::string RenderLogTable(const LogResult& r, const RenderOptions& options = {});
std::string RenderLogJson(const LogResult& r);

// diff: a header naming both sides (version, time, actor; or why a side is absent), the changed
// fields, and JSON with the RFC 6902 patch.
std::string RenderDiffTable(const DiffResult& r, const RenderOptions& options = {});
std::string RenderDiffJson(const DiffResult& r);

// timeline: one block per transaction (time, transaction id, actors, its changes).
std::string RenderTimelineTable(const TimelineResult& r, const RenderOptions& options = {});
std::string RenderTimelineJson(const TimelineResult& r);

// blame: one line per field (value, version, time, actor; for a priority set by a shift, its
// cause).
std::string RenderBlameTable(const BlameResult& r, const RenderOptions& options = {});
std::string RenderBlameJson(const BlameResult& r);

// search: one line per hit.
std::string RenderSearchTable(const SearchResult& r, const RenderOptions& options = {});
std::string RenderSearchJson(const SearchResult& r);

// Return what a transaction did, as a sentence: "user:206 created c2019 'Spring sale'",
// "user:5 moved c12 'Cart reminder' 9 → 2", "user:5 deleted c7 'Old promo'",
// "user:3 edited c4 'Welcome': status, content.body", "user:5 moved c12 'A' 3 → 4 and c40 'B'
// 4 → 3" (neighbours that swapped).
std::string DescribeCause(const TransactionCause& cause, const RenderOptions& options = {});

// Return why a shift-only version moved: "moved 6 → 7 because user:206 created c2019 'Spring
// sale'".
std::string DescribeShift(int64_t from, int64_t to, const TransactionCause& cause,
                          const RenderOptions& options = {});

// Return a one-line readable form of a change: "priority: 3 → 4", "status: draft → active",
// "content.body: …sale [today → tonight] only…", "content.cta: (absent) → Shop now".
std::string DescribeChange(const FieldChange& change, const RenderOptions& options = {});

}  // namespace ch
