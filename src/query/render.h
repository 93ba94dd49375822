// Renderings of query results (query/query_engine.h): aligned text tables for people and JSON
// for scripts (`--json`). docs/queries.md shows every format with examples; the golden files in
// tests/golden/ pin them down byte for byte.
//
// Conventions of the tables:
//   * times are UTC with millisecond precision ("2026-11-03 14:05:00.123Z");
//   * values are shown as JSON scalars without the quotes of strings, "(absent)" for a missing
//     field, and long strings shortened with "…" (a long string that changed shows only the
//     changed region, "…free [shipping → delivery] today…");
//   * a very large transaction (a create that shifts 2,000 campaigns) is summarized after its
//     first changes ("… 1,995 more: 1,995× priority").
// The JSON renderings carry every value in full and are stable: fields are only ever added.
//
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <string>

#include "query/query_engine.h"

namespace ch {

struct RenderOptions {
  // Longest value shown in a table, in code points, before it is shortened. Default: 60.
  size_t max_value_chars = 60;
  // Changes of one transaction shown before the rest is summarized. Default: 8.
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

// blame: one line per field (value, version, time, actor).
std::string RenderBlameTable(const BlameResult& r, const RenderOptions& options = {});
std::string RenderBlameJson(const BlameResult& r);

// Return a one-line readable form of a change: "priority: 3 → 4", "status: draft → active",
// "content.body: …sale [today → tonight] only…", "content.cta: (absent) → Shop now".
std::string DescribeChange(const FieldChange& change, const RenderOptions& options = {});

}  // namespace ch
