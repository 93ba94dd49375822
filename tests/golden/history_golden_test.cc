// Golden tests for the query renderings and the history record format.
//
// queries/NAME.jsonl is a small story told as campaign operations (create, update, reorder,
// delete) followed by queries; a replayer turns the operations into history records the way the
// campaign service would (a create shifts every other campaign of the customer down, in the same
// transaction), loads them into every store, runs each query and compares the rendered output
// with queries/NAME.expected. Both stores must render identically.
//
// formats/history-record-vN.jsonl holds rows as released with schema_version N; they must keep
// decoding to what formats/history-record-vN.expected says.
//
// Regenerate the expected files (after checking the diff!) with CH_UPDATE_GOLDEN=1.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/time_util.h"
#include "history/in_memory_history_store.h"
#include "history/sqlite_history_store.h"
#include "query/query_engine.h"
#include "query/render.h"
#include "testing/test_util.h"

namespace ch {
namespace {

namespace fs = std::filesystem;
using OJson = nlohmann::ordered_json;
using Json = nlohmann::json;

fs::path GoldenDir() {
  std::string src = ::ch::testing::SourceDir();
  return fs::path(src.empty() ? "." : src) / "tests" / "golden";
}

bool Updating() {
  const char* v = std::getenv("CH_UPDATE_GOLDEN");
  return v != nullptr && std::string(v) == "1";
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Compare `actual` with the expected file, or rewrite it when updating.
void CheckGolden(const fs::path& expected_path, const std::string& actual) {
  if (Updating()) {
    std::ofstream out(expected_path, std::ios::binary);
    out << actual;
    return;
  }
  ASSERT_TRUE(fs::exists(expected_path))
      << expected_path << " is missing; run with CH_UPDATE_GOLDEN=1 to create it";
  std::string expected = ReadFile(expected_path);
  EXPECT_EQ(actual, expected) << "output differs from " << expected_path
                              << " (CH_UPDATE_GOLDEN=1 regenerates it after review)";
}

// ---- the replayer ----------------------------------------------------------------------------

// One campaign's current row, kept as the canonical snapshot fields.
struct Row {
  OJson fields;  // everything except bookkeeping and content, in canonical order
  Json content = Json::object();
  int64_t version = 0;
  std::string created_at;
  std::string updated_at;
  std::string updated_by;

  std::string Snapshot(int64_t priority) const {
    OJson j;
    for (const char* key : {"id", "customer_id", "name", "status"}) j[key] = fields[key];
    j["priority"] = priority;
    for (const char* key :
         {"trigger_event", "audience_segment", "start_at", "end_at", "frequency_cap"}) {
      j[key] = fields[key];
    }
    j["version"] = version;
    j["created_at"] = created_at;
    j["updated_at"] = updated_at;
    j["updated_by"] = updated_by;
    j["content"] = content;  // sorted keys, as CanonicalContent writes them
    return j.dump(-1, ' ', false, OJson::error_handler_t::strict);
  }
};

class Replayer {
 public:
  // Apply one operation line; return its history records.
  Result<std::vector<HistoryRecord>> Apply(const Json& op) {
    try {
      return ApplyOrThrow(op);
    } catch (const Json::exception& e) {
      return InvalidArgumentError(fmt::format("bad operation {}: {}", op.dump(), e.what()));
    }
  }

 private:
  std::vector<HistoryRecord> ApplyOrThrow(const Json& op) {
    const std::string kind = op.at("op");
    at_ = *ParseTimestamp(op.at("at").get<std::string>());
    actor_ = op.at("actor");
    tx_ = op.value("tx", "");
    capture_ = op.value("capture", "log") == "notify" ? CaptureMode::kNotify : CaptureMode::kLog;
    missed_ = op.value("missed", 0);
    out_.clear();
    if (kind == "create") {
      int64_t customer = op.at("customer_id");
      int64_t id = op.at("id");
      auto& order = order_[customer];
      for (size_t i = 0; i < order.size(); ++i) Touch(order[i], ChangeOp::kUpdated, i + 2);
      Row& row = rows_[id];
      row.fields = OJson{{"id", id},
                         {"customer_id", customer},
                         {"name", ""},
                         {"status", "draft"},
                         {"trigger_event", "app_open"},
                         {"audience_segment", "all_users"},
                         {"start_at", nullptr},
                         {"end_at", nullptr},
                         {"frequency_cap", 0}};
      row.created_at = FormatTimestamp(at_);
      Set(row, op.value("set", Json::object()));
      order.insert(order.begin(), id);
      customer_of_[id] = customer;
      Touch(id, ChangeOp::kCreated, 1);
    } else if (kind == "update") {
      int64_t id = op.at("id");
      Set(rows_.at(id), op.at("set"));
      Touch(id, ChangeOp::kUpdated, Position(id));
    } else if (kind == "reorder") {
      int64_t id = op.at("id");
      size_t to = op.at("to");
      auto& order = order_[customer_of_.at(id)];
      size_t from = Position(id);
      order.erase(order.begin() + static_cast<long>(from - 1));
      order.insert(order.begin() + static_cast<long>(to - 1), id);
      for (size_t p = std::min(from, to); p <= std::max(from, to); ++p) {
        Touch(order[p - 1], ChangeOp::kUpdated, p);
      }
    } else if (kind == "delete") {
      int64_t id = op.at("id");
      auto& order = order_[customer_of_.at(id)];
      size_t p = Position(id);
      Emit(id, ChangeOp::kDeleted, p);
      order.erase(order.begin() + static_cast<long>(p - 1));
      for (size_t i = p - 1; i < order.size(); ++i) Touch(order[i], ChangeOp::kUpdated, i + 1);
    } else {
      throw Json::other_error::create(501, "unknown op " + kind, nullptr);
    }
    return out_;
  }

  size_t Position(int64_t id) {
    auto& order = order_[customer_of_.at(id)];
    return static_cast<size_t>(std::find(order.begin(), order.end(), id) - order.begin()) + 1;
  }

  static void Set(Row& row, const Json& set) {
    for (auto it = set.begin(); it != set.end(); ++it) {
      if (it.key() == "content") {
        row.content = it.value();
      } else {
        row.fields[it.key()] = it.value();
      }
    }
  }

  // A new version of `id` at priority `p` stamped by this operation's actor.
  void Touch(int64_t id, ChangeOp op, size_t p) {
    Row& row = rows_.at(id);
    row.version += 1 + missed_;
    row.updated_at = FormatTimestamp(at_);
    row.updated_by = actor_;
    Emit(id, op, p);
  }

  void Emit(int64_t id, ChangeOp op, size_t p) {
    const Row& row = rows_.at(id);
    HistoryRecord r;
    r.customer_id = customer_of_.at(id);
    r.campaign_id = id;
    r.version = op == ChangeOp::kDeleted ? row.version + 1 : row.version;
    r.event_time = at_;
    r.event_type = op;
    r.actor = actor_;
    r.transaction_id = tx_;
    r.capture = capture_;
    r.missed_versions = capture_ == CaptureMode::kNotify ? missed_ : 0;
    r.priority = static_cast<int64_t>(p);
    r.snapshot = row.Snapshot(r.priority);
    out_.push_back(std::move(r));
  }

  std::map<int64_t, Row> rows_;
  std::map<int64_t, std::vector<int64_t>> order_;  // customer -> ids by priority
  std::map<int64_t, int64_t> customer_of_;
  Timestamp at_{};
  std::string actor_;
  std::string tx_;
  CaptureMode capture_ = CaptureMode::kLog;
  int64_t missed_ = 0;
  std::vector<HistoryRecord> out_;
};

// ---- queries ---------------------------------------------------------------------------------

std::optional<Timestamp> OptTime(const Json& q, const char* key) {
  if (!q.contains(key) || q[key].is_null()) return std::nullopt;
  return *ParseTimestamp(q[key].get<std::string>());
}

// Run one query line and render it (errors render as "error: CODE: message").
std::string RunQuery(QueryEngine& engine, const Json& q) {
  const std::string name = q.at("query");
  const bool json = q.value("json", false);
  RenderOptions options;
  options.full = q.value("full", false);
  auto render = [&](auto&& result, auto table, auto as_json) -> std::string {
    if (!result.ok()) return "error: " + result.status().ToString() + "\n";
    return json ? as_json(*result) : table(*result, options);
  };
  if (name == "as-of") {
    AsOfOptions ao;
    ao.limit = q.value("limit", int64_t{0});
    ao.name = q.value("name", "");
    if (q.contains("status")) ao.statuses = {q.at("status").get<std::string>()};
    return render(engine.AsOf(q.at("customer_id"), *OptTime(q, "at"), ao), RenderAsOfTable,
                  RenderAsOfJson);
  }
  if (name == "search") {
    return render(engine.Search(q.at("q").get<std::string>()), RenderSearchTable, RenderSearchJson);
  }
  if (name == "log") {
    LogOptions lo;
    if (q.value("shifts", "annotate") == "hide") lo.shifts = ShiftDisplay::kHide;
    return render(engine.Log(q.at("campaign_id"), {OptTime(q, "from"), OptTime(q, "to")}, lo),
                  RenderLogTable, RenderLogJson);
  }
  if (name == "diff") {
    auto a = VersionRef::Parse(q.at("a").get<std::string>());
    auto b = VersionRef::Parse(q.at("b").get<std::string>());
    if (!a.ok()) return "error: " + a.status().ToString() + "\n";
    if (!b.ok()) return "error: " + b.status().ToString() + "\n";
    return render(engine.Diff(q.at("campaign_id"), *a, *b), RenderDiffTable, RenderDiffJson);
  }
  if (name == "timeline") {
    TimelineOptions to;
    to.limit = q.value("limit", kDefaultTimelineLimit);
    to.show_shifts = q.value("shifts", "fold") == "show";
    return render(engine.Timeline(q.at("customer_id"), {OptTime(q, "from"), OptTime(q, "to")}, to),
                  RenderTimelineTable, RenderTimelineJson);
  }
  if (name == "blame") {
    return render(engine.Blame(q.at("campaign_id"), *OptTime(q, "at")), RenderBlameTable,
                  RenderBlameJson);
  }
  return "error: unknown query " + name + "\n";
}

class QueryGoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(QueryGoldenTest, RendersAsExpected) {
  const fs::path dir = GoldenDir() / "queries";
  const fs::path input = dir / (GetParam() + ".jsonl");
  std::ifstream in(input);
  ASSERT_TRUE(in.good()) << input;
  ::ch::testing::TempDir tmp;
  FakeClock clock(*ParseTimestamp("2026-12-01T00:00:00Z"));
  InMemoryHistoryStore memory(InMemoryHistoryOptions{&clock});
  SqliteHistoryOptions so;
  so.path = tmp.File("golden.db");
  so.clock = &clock;
  so.synchronous = "OFF";
  so.merge_threshold_rows = 4;  // exercise the merge path along the way
  ASSERT_OK_AND_ASSIGN(auto sqlite, SqliteHistoryStore::Open(so));
  QueryEngine on_memory(memory);
  QueryEngine on_sqlite(*sqlite);
  Replayer replayer;
  std::string output;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << input << ":" << line_no << ": not JSON";
    if (j.contains("op")) {
      ASSERT_OK_AND_ASSIGN(std::vector<HistoryRecord> records, replayer.Apply(j));
      ASSERT_OK(memory.Append(records));
      ASSERT_OK(sqlite->Append(records));
      continue;
    }
    std::string a = RunQuery(on_memory, j);
    std::string b = RunQuery(on_sqlite, j);
    EXPECT_EQ(a, b) << input << ":" << line_no << ": the stores disagree";
    output += "=== " + line + "\n" + a + "\n";
  }
  CheckGolden(dir / (GetParam() + ".expected"), output);
}

std::vector<std::string> QueryCases() {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(GoldenDir() / "queries", ec)) return names;
  for (const auto& e : fs::directory_iterator(GoldenDir() / "queries", ec)) {
    if (e.path().extension() == ".jsonl") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(Cases, QueryGoldenTest, ::testing::ValuesIn(QueryCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           std::replace_if(
                               n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return n;
                         });

// ---- the history record format ---------------------------------------------------------------

class HistoryRecordGoldenTest : public ::testing::TestWithParam<int> {};

TEST_P(HistoryRecordGoldenTest, ReleasedRowsStillDecode) {
  const fs::path dir = GoldenDir() / "formats";
  const std::string name = fmt::format("history-record-v{}", GetParam());
  std::ifstream in(dir / (name + ".jsonl"));
  ASSERT_TRUE(in.good()) << name;
  std::string output;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto m = DecodeHistoryMessage(line);
    if (!m.ok()) {
      output += "error: " + m.status().ToString() + "\n";
      continue;
    }
    if (m->heartbeat) {
      output += fmt::format("heartbeat seq {} at {}\n", m->heartbeat->seq,
                            FormatTimestamp(m->heartbeat->at));
      continue;
    }
    const HistoryRecord& r = *m->record;
    output += DebugString(r) + fmt::format(" at {} ingested {}", FormatTimestamp(r.event_time),
                                           FormatTimestamp(r.ingested_at));
    if (r.txn_seq != 0) output += fmt::format(" txn {} of {}", r.txn_seq, r.txn_changes);
    output += "\n  snapshot " + r.snapshot + "\n";
    // Writing it again gives a row that decodes to the same record.
    auto again = HistoryRecordFromJson(HistoryRecordToJson(r));
    ASSERT_OK(again);
    EXPECT_EQ(*again, r) << line;
  }
  CheckGolden(dir / (name + ".expected"), output);
}

// Every released schema_version keeps its golden file.
INSTANTIATE_TEST_SUITE_P(EveryVersion, HistoryRecordGoldenTest,
                         ::testing::Range(1, kHistoryRecordSchemaVersion + 1));

}  // namespace
}  // namespace ch
