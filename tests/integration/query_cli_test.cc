// The query commands end to end, as a support engineer uses them on a realistic customer (the
// small preset's big customer: 100 campaigns, thousands of versions, most of them priority
// shifts): paging and filters of as-of, timeline pages that never cut a transaction, causes of
// shift-only versions in log and blame, search, relative times, explanations of empty answers,
// full values, global flags after the command, wide characters in tables, --json everywhere.
#include <fmt/format.h>

#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "common/text.h"
#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::RunCommand;
using ::ch::testing::TempDir;
using Json = nlohmann::json;

struct Outcome {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

class QueryCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::ch::testing::BinaryDir().empty()) return;
    dir_ = new TempDir();
    data_ = dir_->File("data");
    std::string ops = dir_->File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(ops);
    auto r = RunCommand(
        fmt::format("'{}' --data '{}' replay --ops '{}' --wait --quiet", Bin(), data_, ops));
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  }

  static std::string Bin() { return ::ch::testing::BinaryDir() + "/campaign-history"; }

  // Run `args` after --data DIR; stdout and stderr apart.
  static Outcome Run(const std::string& args) {
    std::string err = dir_->File("stderr.txt");
    auto r = RunCommand(fmt::format("{{ '{}' --data '{}' {} 2>'{}'; }}", Bin(), data_, args, err));
    Outcome o{r.code, r.output, ""};
    std::ifstream f(err);
    o.err.assign(std::istreambuf_iterator<char>(f), {});
    return o;
  }
  static Json RunJson(const std::string& args) {
    Outcome o = Run(args);
    EXPECT_EQ(o.code, 0) << args << "\n" << o.out << o.err;
    Json j = Json::parse(o.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << args << ": not JSON:\n" << o.out;
    return j;
  }

  static TempDir* dir_;
  static std::string data_;
};

TempDir* QueryCliTest::dir_ = nullptr;
std::string QueryCliTest::data_;

// The big customer of the small preset.
constexpr int kBig = 1;

TEST_F(QueryCliTest, GlobalFlagsWorkAfterTheCommandToo) {
  auto before = RunCommand(
      fmt::format("'{}' --data '{}' as-of --customer 2 --at now --json 2>/dev/null", Bin(), data_));
  auto after = RunCommand(
      fmt::format("'{}' as-of --customer 2 --at now --data '{}' --json 2>/dev/null", Bin(), data_));
  ASSERT_EQ(before.code, 0) << before.output;
  ASSERT_EQ(after.code, 0) << after.output;
  EXPECT_EQ(Json::parse(after.output)["campaigns"], Json::parse(before.output)["campaigns"]);
  EXPECT_FALSE(Json::parse(after.output)["campaigns"].empty());
  auto log_level =
      RunCommand(fmt::format("'{}' status --json --log-level error --data '{}'", Bin(), data_));
  EXPECT_EQ(log_level.code, 0) << log_level.output;
}

TEST_F(QueryCliTest, AsOfPagesFollowEachOtherAndAddUpToTheWhole) {
  Json whole = RunJson(fmt::format("as-of --customer {} --at now --json", kBig));
  const Json& all = whole["campaigns"];
  ASSERT_GT(all.size(), 60u);
  EXPECT_EQ(whole["existing"], all.size());
  EXPECT_FALSE(whole["complete_through"].is_null()) << "each answer says how complete it is";
  EXPECT_EQ(whole["complete"], true);
  // --at is the moment of the first page; later pages follow the cursor alone.
  const std::string at = whole["answered_at"];
  Json paged = Json::array();
  std::string cursor;
  int pages = 0;
  do {
    std::string args = fmt::format("as-of --customer {} --limit 25 --json", kBig);
    args += cursor.empty() ? " --at " + at : " --cursor " + cursor;
    Json page = RunJson(args);
    ASSERT_LE(page["campaigns"].size(), 25u);
    EXPECT_EQ(page["offset"], paged.size());
    for (const Json& c : page["campaigns"]) paged.push_back(c);
    cursor = page["next_cursor"].is_null() ? "" : page["next_cursor"].get<std::string>();
    ++pages;
  } while (!cursor.empty() && pages < 100);
  EXPECT_EQ(pages, static_cast<int>((all.size() + 24) / 25));
  EXPECT_EQ(paged, all);
  // The table prints the cursor of the next page.
  Outcome table = Run(fmt::format("as-of --customer {} --at {} --limit 10", kBig, at));
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find(fmt::format("campaigns 1–10 of {}", all.size())), std::string::npos)
      << table.out;
  size_t next = table.out.find("next page: --cursor ");
  ASSERT_NE(next, std::string::npos) << table.out;
  std::string printed = table.out.substr(next + 20, table.out.find('\n', next) - next - 20);
  Json second =
      RunJson(fmt::format("as-of --customer {} --at now --cursor {} --json", kBig, printed));
  ASSERT_FALSE(second["campaigns"].empty());
  EXPECT_EQ(second["campaigns"][0], all[10]) << "--at now with a cursor means the cursor's moment";
  // A cursor with another absolute moment, or a cursor that is not one, is refused.
  Outcome other =
      Run(fmt::format("as-of --customer {} --at 2000-01-01 --cursor {}", kBig, printed));
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.err.find("--cursor"), std::string::npos) << other.err;
  Outcome junk = Run(fmt::format("as-of --customer {} --cursor not-a-cursor", kBig));
  EXPECT_EQ(junk.code, 2);
  EXPECT_NE(junk.err.find("--cursor"), std::string::npos) << junk.err;
}

TEST_F(QueryCliTest, AsOfFiltersByStatusAndName) {
  Json whole = RunJson(fmt::format("as-of --customer {} --at now --json", kBig));
  std::map<std::string, int> by_status;
  for (const Json& c : whole["campaigns"]) by_status[c["status"]]++;
  ASSERT_GE(by_status.size(), 2u);
  for (const auto& [status, n] : by_status) {
    Json only =
        RunJson(fmt::format("as-of --customer {} --at now --status {} --json", kBig, status));
    EXPECT_EQ(only["campaigns"].size(), static_cast<size_t>(n)) << status;
    EXPECT_EQ(only["matching"], n);
    EXPECT_EQ(only["existing"], whole["campaigns"].size());
    for (const Json& c : only["campaigns"]) EXPECT_EQ(c["status"], status);
  }
  // Two statuses, comma-separated.
  auto it = by_status.begin();
  std::string two = it->first + "," + std::next(it)->first;
  Json both = RunJson(fmt::format("as-of --customer {} --at now --status {} --json", kBig, two));
  EXPECT_EQ(both["matching"], it->second + std::next(it)->second);
  // A name: part of one, in another case.
  std::string name = whole["campaigns"][3]["name"];
  std::string part = name.substr(0, std::min<size_t>(name.size(), 6));
  std::string upper = part;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  Json named = RunJson(fmt::format("as-of --customer {} --at now --name '{}' --json", kBig, upper));
  ASSERT_FALSE(named["campaigns"].empty());
  bool found = false;
  for (const Json& c : named["campaigns"]) {
    found = found || c["id"] == whole["campaigns"][3]["id"];
  }
  EXPECT_TRUE(found) << upper;
  Outcome none = Run(fmt::format("as-of --customer {} --at now --name zzz-no-such-name", kBig));
  EXPECT_EQ(none.code, 0);
  EXPECT_NE(none.err.find("note: none of the"), std::string::npos) << none.err;
  Outcome bad = Run(fmt::format("as-of --customer {} --at now --status on", kBig));
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--status: 'on' is not a status"), std::string::npos) << bad.err;
}

TEST_F(QueryCliTest, TimelinePagesAreWholeTransactionsLedByWhatWasDone) {
  Json whole = RunJson(fmt::format(
      "timeline --customer {} --from 2000-01-01 --limit 100000 --shifts show --json", kBig));
  const Json& txns = whole["transactions"];
  ASSERT_GT(txns.size(), 100u);
  EXPECT_EQ(whole["truncated"], false);
  std::map<std::string, int> kinds;
  for (const Json& t : txns) {
    // Never cut: every change of the transaction is there, the primary ones first.
    EXPECT_EQ(t["changes"].size(), t["cause"]["changes"].get<size_t>()) << t["transaction_id"];
    ASSERT_FALSE(t["cause"]["primary"].empty()) << t.dump();
    EXPECT_NE(t["changes"][0]["kind"], "shifted") << t["transaction_id"];
    for (const Json& p : t["cause"]["primary"]) kinds[p["kind"]]++;
  }
  for (const char* k : {"created", "deleted", "edited", "moved"}) {
    EXPECT_GT(kinds[k], 0) << "the workload has " << k << " transactions";
  }
  // Pages of 7 transactions (shifts folded) give the same transactions in the same order.
  std::vector<std::string> paged;
  std::string cursor;
  for (int pages = 0; pages < 1000; ++pages) {
    std::string args =
        fmt::format("timeline --customer {} --from 2000-01-01 --limit 7 --json", kBig);
    if (!cursor.empty()) args += " --cursor " + cursor;
    Json page = RunJson(args);
    ASSERT_LE(page["transactions"].size(), 7u);
    for (const Json& t : page["transactions"]) {
      paged.push_back(t["transaction_id"]);
      for (const Json& c : t["changes"]) EXPECT_NE(c["kind"], "shifted") << "folded by default";
    }
    if (page["next_cursor"].is_null()) break;
    cursor = page["next_cursor"];
    if (pages > 3) break;  // enough to show the pages join; the rest is the engine's test
  }
  ASSERT_GE(paged.size(), 28u);
  for (size_t i = 0; i < paged.size(); ++i) EXPECT_EQ(paged[i], txns[i]["transaction_id"]);
  // The table leads with the sentence and folds the shifts.
  Outcome table = Run(fmt::format("timeline --customer {} --from 2000-01-01 --limit 40", kBig));
  ASSERT_EQ(table.code, 0) << table.err;
  EXPECT_NE(table.out.find(" created c"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("other campaigns shifted down by one"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("next page: --cursor "), std::string::npos) << table.out;
}

TEST_F(QueryCliTest, LogAndBlameSayWhyAPriorityMoved) {
  Json whole = RunJson(fmt::format("as-of --customer {} --at now --json", kBig));
  int64_t id = whole["campaigns"][whole["campaigns"].size() / 2]["id"];
  Json log = RunJson(fmt::format("log --campaign {} --json", id));
  int shifted = 0;
  for (const Json& v : log["versions"]) {
    if (v["kind"] != "shifted") continue;
    ++shifted;
    ASSERT_TRUE(v["cause"].is_object()) << v.dump();
    ASSERT_FALSE(v["cause"]["primary"].empty());
    for (const Json& p : v["cause"]["primary"]) {
      EXPECT_NE(p["campaign_id"], id) << "a shift is caused by another campaign";
    }
    EXPECT_EQ(v["cause"]["transaction_id"], v["transaction_id"]);
  }
  EXPECT_GT(shifted, 0);
  Outcome table = Run(fmt::format("log --campaign {}", id));
  EXPECT_NE(table.out.find(" because "), std::string::npos) << table.out;
  Json hidden = RunJson(fmt::format("log --campaign {} --shifts hide --json", id));
  EXPECT_EQ(hidden["hidden_shifts"], shifted);
  EXPECT_EQ(hidden["versions"].size() + shifted, log["versions"].size());
  // Blame's priority: credited to the version that set it, and when that was a shift, who
  // changed which other campaign.
  Json blame = RunJson(fmt::format("blame --campaign {} --json", id));
  bool saw_priority = false;
  for (const Json& f : blame["fields"]) {
    if (f["path"] != "priority") continue;
    saw_priority = true;
    if (f["kind"] == "shifted") {
      ASSERT_TRUE(f["cause"].is_object()) << f.dump();
      EXPECT_NE(f["cause"]["primary"][0]["campaign_id"], id);
      Outcome t = Run(fmt::format("blame --campaign {}", id));
      EXPECT_NE(t.out.find("shifted: "), std::string::npos) << t.out;
    } else {
      EXPECT_TRUE(f["cause"].is_null()) << f.dump();
    }
  }
  EXPECT_TRUE(saw_priority);
}

TEST_F(QueryCliTest, SearchFindsCustomersAndCampaignsByIdAndName) {
  Json whole = RunJson(fmt::format("as-of --customer {} --at now --json", kBig));
  const Json& c = whole["campaigns"][0];
  Json by_id = RunJson(fmt::format("search {} --json", c["id"].get<int64_t>()));
  bool campaign = false;
  for (const Json& h : by_id["hits"]) {
    campaign = campaign || (h["kind"] == "campaign" && h["campaign_id"] == c["id"] &&
                            h["customer_id"] == kBig && h["matched"] == "campaign id");
  }
  EXPECT_TRUE(campaign) << by_id.dump();
  Json customer = RunJson("search 2 --json");
  ASSERT_FALSE(customer["hits"].empty());
  EXPECT_EQ(customer["hits"][0]["kind"], "customer");
  EXPECT_EQ(customer["hits"][0]["customer_id"], 2);
  std::string name = c["name"];
  Json by_name = RunJson(fmt::format("search '{}' --json", name.substr(0, 8)));
  bool named = false;
  for (const Json& h : by_name["hits"]) named = named || h["campaign_id"] == c["id"];
  EXPECT_TRUE(named) << by_name.dump();
  Outcome table = Run(fmt::format("search '{}'", name.substr(0, 8)));
  EXPECT_NE(table.out.find("MATCHED"), std::string::npos) << table.out;
  Outcome nothing = Run("search zzz-nothing-is-called-this");
  EXPECT_EQ(nothing.code, 0);
  EXPECT_NE(nothing.err.find("note: nothing matches 'zzz-nothing-is-called-this'"),
            std::string::npos)
      << nothing.err;
  Outcome overflow = Run("search 99999999999999999999");
  EXPECT_EQ(overflow.code, 2);
  EXPECT_NE(overflow.err.find("too large for an id"), std::string::npos) << overflow.err;
}

TEST_F(QueryCliTest, RelativeTimesAreAcceptedWhereverATimeIs) {
  // The history was written moments ago: an hour ago it had not started.
  Outcome hour_ago = Run("as-of --customer 2 --at now-1h --json");
  ASSERT_EQ(hour_ago.code, 0) << hour_ago.err;
  EXPECT_TRUE(Json::parse(hour_ago.out)["campaigns"].empty());
  EXPECT_NE(hour_ago.err.find("note: the history of customer 2 starts at "), std::string::npos)
      << hour_ago.err;
  Json recent = RunJson("timeline --customer 2 --from now-1h --to now --limit 1000 --json");
  Json all = RunJson("timeline --customer 2 --from 2000-01-01 --limit 1000 --json");
  EXPECT_EQ(recent["transactions"], all["transactions"]);
  for (const std::string& args :
       {std::string("blame --campaign 1 --at now"),
        std::string("blame --campaign 1 --at 'now - 0s'"),
        std::string("log --campaign 1 --from yesterday --to 'today 23:59'"),
        std::string("diff --campaign 1 --from 1 --to now-0s"),
        std::string("as-of --customer 2 --at 'yesterday 14:00'"),
        std::string("timeline --customer 2 --from today")}) {
    Outcome o = Run(args);
    EXPECT_EQ(o.code, 0) << args << "\n" << o.err;
  }
  Outcome bad = Run("as-of --customer 2 --at now-2x");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("--at: invalid time 'now-2x'"), std::string::npos) << bad.err;
}

TEST_F(QueryCliTest, EmptyAnswersSayWhyAndOverflowingIdsAreBadInput) {
  Outcome unknown = Run("as-of --customer 777 --at now");
  EXPECT_EQ(unknown.code, 0);
  EXPECT_NE(unknown.err.find("note: no customer 777 in the history"), std::string::npos)
      << unknown.err;
  Json j = RunJson("as-of --customer 777 --at now --json");
  EXPECT_EQ(j["note"], "no customer 777 in the history");
  Outcome window = Run("timeline --customer 2 --from 2000-01-01 --to 2000-01-02");
  EXPECT_EQ(window.code, 0);
  EXPECT_NE(window.err.find("note: the history of customer 2 starts at "), std::string::npos)
      << window.err;
  for (const std::string& args :
       {std::string("as-of --customer 99999999999999999999 --at now"),
        std::string("log --campaign 99999999999999999999"),
        std::string("timeline --customer 18446744073709551617 --from today"),
        std::string("blame --campaign -99999999999999999999")}) {
    Outcome o = Run(args);
    EXPECT_EQ(o.code, 2) << args << "\n" << o.out << o.err;
    EXPECT_TRUE(o.err.find("--customer") != std::string::npos ||
                o.err.find("--campaign") != std::string::npos)
        << args << "\n"
        << o.err;
    EXPECT_TRUE(o.out.empty()) << args << ": no answer for bad input\n" << o.out;
  }
}

TEST_F(QueryCliTest, FullShowsWholeValuesInDiffs) {
  // Find a change of a long string in some log.
  for (int64_t id = 1; id <= 200; ++id) {
    Json log = RunJson(fmt::format("log --campaign {} --json", id));
    for (const Json& v : log["versions"]) {
      if (v["previous_version"].is_null()) continue;
      for (const Json& c : v["changes"]) {
        if (!c.contains("after") || !c["after"].is_string() || !c.contains("before") ||
            c["after"].get<std::string>().size() < 100) {
          continue;
        }
        std::string args =
            fmt::format("diff --campaign {} --from {} --to {}", id,
                        v["previous_version"].get<int64_t>(), v["version"].get<int64_t>());
        Outcome cut = Run(args);
        Outcome full = Run(args + " --full");
        ASSERT_EQ(full.code, 0) << full.err;
        EXPECT_NE(cut.out.find("…"), std::string::npos) << cut.out;
        EXPECT_NE(full.out.find(c["after"].get<std::string>()), std::string::npos) << full.out;
        EXPECT_NE(full.out.find(c["before"].get<std::string>()), std::string::npos) << full.out;
        return;
      }
    }
  }
  FAIL() << "no change of a long string in the workload";
}

TEST_F(QueryCliTest, TablesAlignWideCharactersByDisplayWidth) {
  // The generator puts CJK and emoji into some names; every customer's as-of table must keep its
  // STATUS column aligned.
  int wide_rows = 0;
  for (int customer = 1; customer <= 20; ++customer) {
    Outcome o = Run(fmt::format("as-of --customer {} --at now --width 200", customer));
    ASSERT_EQ(o.code, 0) << o.err;
    std::vector<std::string> lines;
    for (size_t start = 0, end; (end = o.out.find('\n', start)) != std::string::npos;
         start = end + 1) {
      lines.push_back(o.out.substr(start, end - start));
    }
    if (lines.size() < 3) continue;
    size_t header = lines[1].find("STATUS");
    ASSERT_NE(header, std::string::npos) << o.out;
    const size_t column = DisplayWidth(lines[1].substr(0, header));
    for (size_t i = 2; i < lines.size(); ++i) {
      std::string name_and_rest = lines[i];
      if (DisplayWidth(name_and_rest) != Utf8Length(name_and_rest)) ++wide_rows;
      bool aligned = false;
      for (const char* s : {"  draft", "  active", "  paused", "  ended"}) {
        size_t at = name_and_rest.find(s);
        if (at != std::string::npos && DisplayWidth(name_and_rest.substr(0, at + 2)) == column) {
          aligned = true;
        }
      }
      EXPECT_TRUE(aligned) << "customer " << customer << ":\n" << lines[1] << "\n" << lines[i];
    }
  }
  EXPECT_GT(wide_rows, 0) << "no wide characters in any table: the check checked nothing";
}

}  // namespace
}  // namespace ch
