#include "workload/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/time_util.h"
#include "workload/workload.h"

namespace ch {
namespace {

using Json = nlohmann::json;

// xoshiro256** seeded through splitmix64: small, fast, and the same on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : s_) {
      x += 0x9E3779B97F4A7C15ULL;
      uint64_t z = x;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
      s = z ^ (z >> 31);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n); unbiased (rejection of the incomplete last block). REQUIRES: n > 0.
  uint64_t Below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % n;
  }

  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  int64_t Int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1));
  }

  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Exponentially distributed with the given mean.
  double Exp(double mean) { return -std::log(1.0 - Uniform()) * mean; }

  template <typename T, size_t N>
  const T& Choice(const std::array<T, N>& a) {
    return a[Below(N)];
  }
  template <typename T>
  const T& Choice(const std::vector<T>& v) {
    return v[Below(v.size())];
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// Relative weights of events (a burst event expands into 5-20 ops), in draw order.
// The same values as the reference generator's EVENT_WEIGHTS.
constexpr std::array<std::pair<std::string_view, double>, 5> kEventWeights = {{
    {"update", 0.60},
    {"burst", 0.02},
    {"reorder", 0.12},
    {"create", 0.07},
    {"delete", 0.07},
}};

constexpr std::array<std::string_view, 15> kTriggers = {
    "app_open",          "session_start",         "cart_abandoned",    "purchase_completed",
    "page_view:pricing", "page_view:checkout",    "signup_completed",  "level_up",
    "push_opened",       "subscription_expiring", "search_no_results", "wishlist_added",
    "idle_30s",          "first_purchase",        "trial_day_7"};
constexpr std::array<std::string_view, 15> kSegments = {
    "all_users",       "new_users", "returning",   "vip",          "churn_risk",
    "cart_abandoners", "high_ltv",  "trial_users", "inactive_30d", "locale:de",
    "locale:fr",       "locale:ja", "ios",         "android",      "web"};
constexpr std::array<std::string_view, 3> kWorkers = {"worker:scheduler", "worker:expiry",
                                                      "worker:ab-test"};
constexpr std::array<std::string_view, 10> kButtons = {
    "Shop now", "Learn more",  "Claim offer", "Upgrade",         "Try it",
    "Continue", "Get started", "View deals",  "Remind me later", "Open"};
constexpr std::array<std::string_view, 6> kKinds = {"Banner",      "Modal",   "Slide-up",
                                                    "Full-screen", "Tooltip", "Survey"};
// Non-ASCII words: accented Latin, Cyrillic, CJK, emoji (incl. a multi-code-point one).
constexpr std::array<std::string_view, 18> kIntlWords = {
    "café",     "crème",       "brûlée", "naïve",   "Grüße",  "señor",
    "jalapeño", "smörgåsbord", "façade", "Ünïcødé", "日本語", "セール",
    "скидка",   "€5",          "🎉",      "🔥",       "✨",      "👋🏽"};
// Words that need escaping in JSON or HTML.
constexpr std::array<std::string_view, 4> kEscapeWords = {"\"quoted\"", "back\\slash",
                                                          "<b>bold</b>", "50% & more"};

std::vector<std::string_view> SplitWords(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(' ', i);
    if (j == std::string_view::npos) j = text.size();
    out.push_back(text.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

constexpr std::string_view kWordText =
    "summer sale free shipping today only new arrivals limited offer members "
    "exclusive discount unlock premium upgrade your plan save now don't miss "
    "out get started welcome back we missed you check latest features try "
    "pro trial days left complete profile earn rewards points invite friends "
    "bonus flash deal ends midnight bundle collection favorites restocked "
    "popular near you personalized picks recommended based on activity "
    "update app version improved performance tips tricks learn how tutorial "
    "guide level achievement streak keep going daily goal reached congrats "
    "thank you for being loyal customer special gift inside open reveal "
    "spin the wheel win prizes survey feedback rate us review help center "
    "support chat available hours holiday season black friday cyber monday "
    "spring autumn winter collection launch event join webinar live stream "
    "subscribe newsletter notifications enable push stay informed secure "
    "account two factor verify email password reset cart items waiting "
    "checkout complete order tracking delivered return policy easy";

// Code points in UTF-8 `s`.
size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Return the byte offset just after the first `n` code points of `s` (or s.size()).
size_t OffsetOfCodePoint(std::string_view s, size_t n) {
  size_t count = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (count == n) return i;
      ++count;
    }
  }
  return s.size();
}

void TruncateCodePoints(std::string& s, size_t n) { s.resize(OffsetOfCodePoint(s, n)); }

// Remove the last code point of non-empty `s`.
void PopCodePoint(std::string& s) {
  while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
  if (!s.empty()) s.pop_back();
}

char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

// Capitalize the first (ASCII) letter of every word.
std::string TitleCase(std::string s) {
  bool start = true;
  for (char& c : s) {
    if (start) c = Upper(c);
    start = c == ' ';
  }
  return s;
}

std::string Join(const std::vector<std::string>& words) {
  std::string s;
  for (size_t i = 0; i < words.size(); ++i) {
    if (i) s += ' ';
    s += words[i];
  }
  return s;
}

// "YYYY-MM-DDThh:mm:ssZ" (whole seconds, like the reference generator).
std::string Iso(int64_t micros) {
  std::string s = FormatTimestamp(FromUnixMicros(micros));
  return s.substr(0, 19) + "Z";
}

constexpr int64_t kSecond = 1'000'000;
constexpr int64_t kHour = 3600 * kSecond;
constexpr int64_t kDay = 24 * kHour;
// 2024-01-01T00:00:00Z, the simulated start (as in the reference generator).
constexpr int64_t kEpochMicros = 1'704'067'200LL * kSecond;

class Gen {
 public:
  Gen(const GeneratorOptions& o, std::ostream& out) : o_(o), out_(out), rng_(o.seed) {
    words_ = SplitWords(kWordText);
    for (const auto& [name, weight] : kEventWeights) stats_.counts[std::string(name)] = 0;
    stats_.counts["seed"] = 0;
  }

  Result<GeneratorStats> Run();

 private:
  // ---- value generators ----------------------------------------------------------------------
  std::string Word() {
    if (o_.unicode_share > 0 && rng_.Uniform() < o_.unicode_share / 10) {
      return std::string(rng_.Choice(kIntlWords));
    }
    return std::string(rng_.Choice(words_));
  }

  std::string Words(int64_t lo, int64_t hi) {
    int64_t n = rng_.Int(lo, hi);
    std::vector<std::string> w;
    for (int64_t i = 0; i < n; ++i) w.push_back(std::string(rng_.Choice(words_)));
    return Join(w);
  }

  // Title-cased words; now and then with a non-ASCII word, more rarely one that needs escaping.
  std::string Phrase(int64_t lo, int64_t hi) {
    std::string s = TitleCase(Words(lo, hi));
    if (rng_.Uniform() < o_.unicode_share) {
      std::string extra(rng_.Uniform() < 0.3 ? rng_.Choice(kEscapeWords) : rng_.Choice(kIntlWords));
      s = rng_.Uniform() < 0.5 ? extra + " " + s : s + " " + extra;
    }
    return s;
  }

  std::string Body() {
    auto target = static_cast<size_t>(rng_.Int(200, 800));
    std::vector<std::string> parts;
    size_t size = 0;
    while (size < target) {
      parts.push_back(Word());
      size += CodePoints(parts.back()) + 1;
    }
    std::string s = Join(parts);
    TruncateCodePoints(s, target);
    s[0] = Upper(s[0]);
    return s;
  }

  std::string ImageUrl() {
    return fmt::format("https://cdn.example.com/img/{:08x}.png", rng_.Next() >> 32);
  }

  Json Content() {
    Json c = Json::object();
    c["title"] = Phrase(2, 6);
    c["body"] = Body();
    c["button_text"] = std::string(rng_.Choice(kButtons));
    c["image_url"] = ImageUrl();
    return c;
  }

  std::string UserActor(int64_t customer_id) {
    return fmt::format("user:{}", customer_id * 100 + rng_.Int(0, 9));
  }

  std::string Actor(int64_t customer_id) {
    if (rng_.Uniform() < 0.12) return std::string(rng_.Choice(kWorkers));
    return UserActor(customer_id);
  }

  std::string Name(int64_t id) {
    std::string kind(rng_.Choice(kKinds));
    return fmt::format("{}: {} #{}", kind, Phrase(1, 4), id);
  }

  // Sets start_at / end_at of `obj` (null or whole hours around now).
  void Schedule(Json& obj) {
    if (rng_.Uniform() < 0.3) {
      obj["start_at"] = nullptr;
      obj["end_at"] = nullptr;
      return;
    }
    int64_t start = now_ + rng_.Int(-72, 240) * kHour;
    start -= ((start % kHour) + kHour) % kHour;
    obj["start_at"] = Iso(start);
    if (rng_.Uniform() < 0.4) {
      obj["end_at"] = nullptr;
    } else {
      obj["end_at"] = Iso(start + rng_.Int(1, 60) * kDay);
    }
  }

  Json NewRow(int64_t customer_id, int64_t priority) {
    int64_t id = next_id_++;
    Json row = Json::object();
    row["id"] = id;
    row["customer_id"] = customer_id;
    row["name"] = Name(id);
    row["status"] = rng_.Uniform() < 0.7 ? "draft" : "active";
    row["priority"] = priority;
    row["trigger_event"] = std::string(rng_.Choice(kTriggers));
    row["audience_segment"] = std::string(rng_.Choice(kSegments));
    Schedule(row);
    row["frequency_cap"] = rng_.Int(0, 10);
    row["content"] = Content();
    row["updated_by"] = UserActor(customer_id);
    return row;
  }

  // A small edit, like a user typing: replace/insert/delete a few words; 200-800 code points;
  // never returns `body` unchanged.
  std::string EditBody(const std::string& body) {
    std::vector<std::string> words;
    for (std::string_view w : SplitWords(body)) words.emplace_back(w);
    if (words.empty()) words.emplace_back();
    int64_t edits = rng_.Int(1, 3);
    for (int64_t e = 0; e < edits; ++e) {
      size_t i = rng_.Below(words.size());
      double x = rng_.Uniform();
      if (x < 0.5) {
        words[i] = Word();
      } else if (x < 0.8 || CodePoints(Join(words)) < 220) {
        words.insert(words.begin() + static_cast<std::ptrdiff_t>(i), Word());
      } else if (words.size() > 1) {
        words.erase(words.begin() + static_cast<std::ptrdiff_t>(i));
      }
    }
    std::string s = Join(words);
    TruncateCodePoints(s, 800);
    while (CodePoints(s) < 200) s += " " + Word();
    if (s == body) {
      bool ends_x = s.back() == 'x';
      PopCodePoint(s);
      s += ends_x ? 'y' : 'x';
    }
    return s;
  }

  // ---- emit ----------------------------------------------------------------------------------
  Status Emit(Json obj) {
    obj["seq"] = seq_++;
    obj["at"] = Iso(now_);
    // Keys come out sorted (nlohmann::json is ordered by key); strings as raw UTF-8.
    line_ = obj.dump();
    line_ += '\n';
    out_.write(line_.data(), static_cast<std::streamsize>(line_.size()));
    stats_.bytes += static_cast<int64_t>(line_.size());
    ++stats_.lines;
    if (!out_.good()) return UnavailableError("cannot write the workload: output stream failed");
    return Status::OK();
  }

  void Tick(double mean_s) { now_ += static_cast<int64_t>(rng_.Exp(mean_s) * 1e6); }

  void Count(int64_t versions) {
    stats_.expected_versions += versions;
    stats_.max_op_versions = std::max(stats_.max_op_versions, versions);
  }

  static Json ShiftJson(int64_t delta, int64_t lo, std::optional<int64_t> hi, int64_t n) {
    Json s = Json::object();
    s["delta"] = delta;
    s["lo"] = lo;
    s["hi"] = hi ? Json(*hi) : Json(nullptr);
    s["n"] = n;
    return s;
  }

  // ---- ops -----------------------------------------------------------------------------------
  Status SeedCustomer(int64_t c, int64_t n) {
    std::vector<Json> rows;
    auto& order = order_[c];
    for (int64_t p = 1; p <= n; ++p) {
      Json row = NewRow(c, p);
      int64_t id = row["id"].get<int64_t>();
      order.push_back(id);
      rows_[id] = row;
      rows.push_back(std::move(row));
    }
    for (size_t i = 0; i < rows.size(); i += 500) {
      size_t end = std::min(rows.size(), i + 500);
      Json line = Json::object();
      line["op"] = "seed";
      line["customer_id"] = c;
      line["rows"] = Json::array();
      for (size_t k = i; k < end; ++k) line["rows"].push_back(std::move(rows[k]));
      auto count = static_cast<int64_t>(end - i);
      line["versions"] = count;
      RETURN_IF_ERROR(Emit(std::move(line)));
      stats_.expected_versions += count;
      stats_.seed_rows += count;
      ++stats_.counts["seed"];
    }
    return Status::OK();
  }

  Result<int64_t> OpCreate(int64_t c) {
    auto& order = order_[c];
    auto n = static_cast<int64_t>(order.size());
    Json row = NewRow(c, 1);
    int64_t id = row["id"].get<int64_t>();
    order.insert(order.begin(), id);
    Json line = Json::object();
    line["op"] = "create";
    line["customer_id"] = c;
    line["actor"] = row["updated_by"];
    line["shift"] = ShiftJson(1, 1, std::nullopt, n);
    line["row"] = row;
    line["versions"] = n + 1;
    rows_[id] = std::move(row);
    RETURN_IF_ERROR(Emit(std::move(line)));
    return n + 1;
  }

  Json RandomUpdateSet(const Json& row) {
    static constexpr std::array<std::string_view, 8> kFields = {
        "name",     "status",        "trigger_event", "audience_segment",
        "schedule", "frequency_cap", "content",       "content"};
    // Sample k distinct positions (partial Fisher-Yates); "content" twice doubles its odds.
    std::array<int, 8> idx = {0, 1, 2, 3, 4, 5, 6, 7};
    int64_t k = rng_.Int(1, 3);
    Json s = Json::object();
    for (int64_t i = 0; i < k; ++i) {
      size_t j = static_cast<size_t>(i) + rng_.Below(8 - static_cast<uint64_t>(i));
      std::swap(idx[static_cast<size_t>(i)], idx[j]);
      std::string_view f = kFields[static_cast<size_t>(idx[static_cast<size_t>(i)])];
      int64_t id = row["id"].get<int64_t>();
      if (f == "name") {
        s["name"] = Name(id);
      } else if (f == "status") {
        std::string cur = row["status"].get<std::string>();
        static constexpr std::array<std::string_view, 3> kFromDraft = {"active", "active", "ended"};
        static constexpr std::array<std::string_view, 3> kFromActive = {"paused", "ended",
                                                                        "paused"};
        static constexpr std::array<std::string_view, 3> kFromPaused = {"active", "active",
                                                                        "ended"};
        static constexpr std::array<std::string_view, 2> kFromEnded = {"draft", "active"};
        std::string_view next;
        if (cur == "draft") {
          next = rng_.Choice(kFromDraft);
        } else if (cur == "active") {
          next = rng_.Choice(kFromActive);
        } else if (cur == "paused") {
          next = rng_.Choice(kFromPaused);
        } else {
          next = rng_.Choice(kFromEnded);
        }
        s["status"] = std::string(next);
      } else if (f == "trigger_event") {
        s["trigger_event"] = OtherThan(kTriggers, row["trigger_event"].get<std::string>());
      } else if (f == "audience_segment") {
        s["audience_segment"] = OtherThan(kSegments, row["audience_segment"].get<std::string>());
      } else if (f == "schedule") {
        Schedule(s);
      } else if (f == "frequency_cap") {
        s["frequency_cap"] = (row["frequency_cap"].get<int64_t>() + rng_.Int(1, 10)) % 11;
      } else {
        s["content"] = EditContent(row["content"]);
      }
    }
    if (s.contains("status") && rng_.Uniform() < 0.5) {
      s["updated_by"] = "worker:scheduler";
    } else {
      s["updated_by"] = Actor(row["customer_id"].get<int64_t>());
    }
    bool changes = false;
    for (const auto& [key, value] : s.items()) changes = changes || row[key] != value;
    if (!changes) {
      // Every update must really change the row (a no-op UPDATE creates no version in some
      // systems), so force a small content edit.
      Json c = row["content"];
      c["body"] = EditBody(c["body"].get<std::string>());
      s["content"] = std::move(c);
    }
    return s;
  }

  template <size_t N>
  std::string OtherThan(const std::array<std::string_view, N>& all, const std::string& cur) {
    std::vector<std::string_view> rest;
    for (std::string_view x : all) {
      if (x != cur) rest.push_back(x);
    }
    return std::string(rng_.Choice(rest));
  }

  Json EditContent(const Json& content) {
    Json c = content;
    double x = rng_.Uniform();
    if (x < 0.6) {
      c["body"] = EditBody(c["body"].get<std::string>());
    } else if (x < 0.8) {
      c["title"] = Phrase(2, 6);
    } else if (x < 0.9) {
      std::vector<std::string_view> rest;
      std::string cur = c["button_text"].get<std::string>();
      for (std::string_view b : kButtons) {
        if (b != cur) rest.push_back(b);
      }
      c["button_text"] = std::string(rng_.Choice(rest));
    } else {
      c["image_url"] = ImageUrl();
    }
    return c;
  }

  Result<int64_t> OpUpdate(int64_t c) {
    int64_t id = rng_.Choice(order_[c]);
    Json& row = rows_[id];
    Json s = RandomUpdateSet(row);
    for (const auto& [key, value] : s.items()) row[key] = value;
    Json line = Json::object();
    line["op"] = "update";
    line["customer_id"] = c;
    line["id"] = id;
    line["actor"] = s["updated_by"];
    line["set"] = std::move(s);
    line["versions"] = 1;
    RETURN_IF_ERROR(Emit(std::move(line)));
    return 1;
  }

  // Return the number of ops (lines) written.
  Result<int64_t> OpBurst(int64_t c, int64_t budget) {
    int64_t id = rng_.Choice(order_[c]);
    Json& row = rows_[id];
    std::string who = UserActor(c);
    int64_t n = std::min(rng_.Int(5, 20), budget);
    ++burst_id_;
    for (int64_t j = 0; j < n; ++j) {
      Json content = row["content"];
      content["body"] = EditBody(content["body"].get<std::string>());
      Json s = Json::object();
      s["content"] = std::move(content);
      s["updated_by"] = who;
      if (j == 0 && rng_.Uniform() < 0.3) s["name"] = Name(id);
      for (const auto& [key, value] : s.items()) row[key] = value;
      Json line = Json::object();
      line["op"] = "burst";
      line["customer_id"] = c;
      line["id"] = id;
      line["set"] = std::move(s);
      line["actor"] = who;
      line["burst_id"] = burst_id_;
      line["burst_pos"] = j;
      line["burst_len"] = n;
      line["versions"] = 1;
      RETURN_IF_ERROR(Emit(std::move(line)));
      ++stats_.counts["burst"];
      if (j + 1 < n) now_ += rng_.Int(300, 4000) * 1000;
    }
    return n;
  }

  int64_t ReorderTarget(int64_t a, int64_t n) {
    while (true) {
      double x = rng_.Uniform();
      int64_t b;
      if (x < 0.5) {  // drag by a few positions
        int64_t dir = rng_.Below(2) == 0 ? -1 : 1;
        b = a + dir * rng_.Int(1, 10);
      } else if (x < 0.8) {  // pin near the top
        b = rng_.Int(1, std::min<int64_t>(3, n));
      } else {  // anywhere
        b = rng_.Int(1, n);
      }
      b = std::max<int64_t>(1, std::min(n, b));
      if (b != a) return b;
    }
  }

  Result<int64_t> OpReorder(int64_t c) {
    auto& order = order_[c];
    auto n = static_cast<int64_t>(order.size());
    int64_t a = rng_.Int(1, n);
    int64_t b = ReorderTarget(a, n);
    int64_t id = order[static_cast<size_t>(a - 1)];
    Json shift = b < a ? ShiftJson(1, b, a - 1, a - b) : ShiftJson(-1, a + 1, b, b - a);
    int64_t shifted = std::abs(a - b);
    order.erase(order.begin() + (a - 1));
    order.insert(order.begin() + (b - 1), id);
    std::string who = Actor(c);
    rows_[id]["updated_by"] = who;
    Json line = Json::object();
    line["op"] = "reorder";
    line["customer_id"] = c;
    line["id"] = id;
    line["from"] = a;
    line["to"] = b;
    line["shift"] = std::move(shift);
    line["updated_by"] = who;
    line["actor"] = who;
    line["versions"] = shifted + 1;
    RETURN_IF_ERROR(Emit(std::move(line)));
    return shifted + 1;
  }

  Result<int64_t> OpDelete(int64_t c) {
    auto& order = order_[c];
    int64_t p = rng_.Int(1, static_cast<int64_t>(order.size()));
    int64_t id = order[static_cast<size_t>(p - 1)];
    order.erase(order.begin() + (p - 1));
    rows_.erase(id);
    int64_t k = static_cast<int64_t>(order.size()) - (p - 1);
    Json line = Json::object();
    line["op"] = "delete";
    line["customer_id"] = c;
    line["id"] = id;
    line["priority"] = p;
    // Derived, not drawn (as in the reference generator).
    line["actor"] = fmt::format("user:{}", c * 100 + id % 10);
    line["shift"] = ShiftJson(-1, p + 1, std::nullopt, k);
    line["versions"] = k + 1;
    RETURN_IF_ERROR(Emit(std::move(line)));
    return k + 1;
  }

  std::string_view PickEvent(int64_t c) {
    auto n = static_cast<double>(order_[c].size());
    double target = static_cast<double>(target_[c]);
    if (n == 0) return "create";
    std::array<double, kEventWeights.size()> w{};
    double sum = 0;
    for (size_t i = 0; i < kEventWeights.size(); ++i) {
      auto [name, weight] = kEventWeights[i];
      // Steady-state feedback: creates and deletes balance around the target size.
      if (name == "create") weight *= target / n;
      if (name == "delete") weight *= n / target;
      if (n < 2 && (name == "reorder" || name == "delete")) weight = 0;
      w[i] = weight;
      sum += weight;
    }
    double x = rng_.Uniform() * sum;
    for (size_t i = 0; i < w.size(); ++i) {
      x -= w[i];
      if (x < 0) return kEventWeights[i].first;
    }
    return "update";
  }

  const GeneratorOptions& o_;
  std::ostream& out_;
  Rng rng_;
  std::vector<std::string_view> words_;
  int64_t now_ = kEpochMicros;
  int64_t next_id_ = 1;
  int64_t seq_ = 0;
  int64_t burst_id_ = 0;
  // customer -> campaign ids by priority (index 0 = priority 1).
  std::unordered_map<int64_t, std::vector<int64_t>> order_;
  // campaign id -> current row (JSON, as written).
  std::unordered_map<int64_t, Json> rows_;
  std::unordered_map<int64_t, int64_t> target_;
  GeneratorStats stats_;
  std::string line_;
};

Result<GeneratorStats> Gen::Run() {
  std::vector<int64_t> big, small;
  for (int64_t c = 1; c <= o_.big_customers; ++c) {
    big.push_back(c);
    target_[c] = o_.big_campaigns;
  }
  for (int64_t c = o_.big_customers + 1; c <= o_.big_customers + o_.customers; ++c) {
    small.push_back(c);
    target_[c] = o_.campaigns_per_customer;
  }
  Json params = Json::object();
  params["generator"] = "campaign-history (C++)";
  params["seed"] = o_.seed;
  params["preset"] = o_.preset;
  params["customers"] = o_.customers;
  params["campaigns_per_customer"] = o_.campaigns_per_customer;
  params["big_customers"] = o_.big_customers;
  params["big_campaigns"] = o_.big_campaigns;
  params["big_op_share"] = o_.big_op_share;
  params["ops"] = o_.ops;
  params["unicode_share"] = o_.unicode_share;
  params["event_weights"] = Json::object();
  for (const auto& [name, weight] : kEventWeights) params["event_weights"][name] = weight;
  Json header = Json::object();
  header["op"] = "header";
  header["format"] = std::string(kWorkloadFormat);
  header["params"] = std::move(params);
  header["big_customers"] = big;
  RETURN_IF_ERROR(Emit(std::move(header)));

  for (int64_t c : big) RETURN_IF_ERROR(SeedCustomer(c, target_[c]));
  for (int64_t c : small) RETURN_IF_ERROR(SeedCustomer(c, target_[c]));

  int64_t ops = 0;
  std::map<int64_t, int64_t> per_big;
  for (int64_t c : big) per_big[c] = 0;
  while (ops < o_.ops) {
    Tick(20.0);
    int64_t c;
    if (!big.empty() && (small.empty() || rng_.Uniform() < o_.big_op_share)) {
      c = rng_.Choice(big);
    } else {
      c = rng_.Choice(small);
    }
    std::string_view ev = PickEvent(c);
    int64_t k = 1;
    if (ev == "burst") {
      ASSIGN_OR_RETURN(k, OpBurst(c, o_.ops - ops));
      stats_.expected_versions += k;
      stats_.max_op_versions = std::max<int64_t>(stats_.max_op_versions, 1);
    } else {
      int64_t v = 0;
      if (ev == "update") {
        ASSIGN_OR_RETURN(v, OpUpdate(c));
      } else if (ev == "reorder") {
        ASSIGN_OR_RETURN(v, OpReorder(c));
      } else if (ev == "create") {
        ASSIGN_OR_RETURN(v, OpCreate(c));
      } else {
        ASSIGN_OR_RETURN(v, OpDelete(c));
      }
      ++stats_.counts[std::string(ev)];
      Count(v);
    }
    ops += k;
    if (auto it = per_big.find(c); it != per_big.end()) it->second += k;
  }
  stats_.ops = ops;
  stats_.campaigns_final = static_cast<int64_t>(rows_.size());

  Json footer = Json::object();
  footer["op"] = "footer";
  footer["ops"] = ops;
  footer["counts"] = stats_.counts;
  footer["seed_rows"] = stats_.seed_rows;
  footer["expected_versions"] = stats_.expected_versions;
  footer["max_op_versions"] = stats_.max_op_versions;
  footer["campaigns_ever"] = next_id_ - 1;
  footer["campaigns_final"] = stats_.campaigns_final;
  Json big_ops = Json::object();
  Json big_final = Json::object();
  for (int64_t c : big) {
    big_ops[std::to_string(c)] = per_big[c];
    big_final[std::to_string(c)] = static_cast<int64_t>(order_[c].size());
  }
  footer["big_customer_ops"] = std::move(big_ops);
  footer["big_customer_final_campaigns"] = std::move(big_final);
  RETURN_IF_ERROR(Emit(std::move(footer)));
  out_.flush();
  if (!out_.good()) return UnavailableError("cannot write the workload: output stream failed");
  return stats_;
}

}  // namespace

Result<GeneratorOptions> GeneratorPreset(std::string_view name) {
  GeneratorOptions o;
  if (name == "small") {
    o.preset = "small";
    o.customers = 19;
    o.campaigns_per_customer = 5;
    o.big_customers = 1;
    o.big_campaigns = 100;
    o.big_op_share = 0.2;
    o.ops = 2000;
    return o;
  }
  if (name == "large") {
    o.preset = "large";
    o.customers = 200;
    o.campaigns_per_customer = 10;
    o.big_customers = 1;
    o.big_campaigns = 2000;
    o.big_op_share = 0.02;
    o.ops = 200000;
    return o;
  }
  return InvalidArgumentError(
      fmt::format("unknown workload preset '{}' (expected small or large)", name));
}

Status ValidateGeneratorOptions(const GeneratorOptions& o) {
  auto bad = [](std::string_view field, std::string_view what) {
    return InvalidArgumentError(fmt::format("generator option '{}': {}", field, what));
  };
  if (o.customers < 0) return bad("customers", "must be >= 0");
  if (o.big_customers < 0) return bad("big_customers", "must be >= 0");
  if (o.customers + o.big_customers == 0) {
    return bad("customers", "need at least one customer (customers + big_customers >= 1)");
  }
  if (o.customers > 0 && o.campaigns_per_customer < 1) {
    return bad("campaigns_per_customer", "must be >= 1");
  }
  if (o.big_customers > 0 && o.big_campaigns < 1) return bad("big_campaigns", "must be >= 1");
  if (!(o.big_op_share >= 0.0 && o.big_op_share <= 1.0)) {
    return bad("big_op_share", "must be within [0, 1]");
  }
  if (!(o.unicode_share >= 0.0 && o.unicode_share <= 1.0)) {
    return bad("unicode_share", "must be within [0, 1]");
  }
  if (o.ops < 0) return bad("ops", "must be >= 0");
  return Status::OK();
}

Result<GeneratorStats> GenerateWorkload(const GeneratorOptions& options, std::ostream& out) {
  RETURN_IF_ERROR(ValidateGeneratorOptions(options));
  // nlohmann-json may throw (e.g. on invalid UTF-8, which the generator never produces); keep
  // the no-exceptions contract anyway.
  try {
    Gen gen(options, out);
    return gen.Run();
  } catch (const std::exception& e) {
    return InternalError(fmt::format("workload generator failed: {}", e.what()));
  }
}

Result<GeneratorStats> GenerateWorkloadFile(const GeneratorOptions& options,
                                            const std::string& path) {
  RETURN_IF_ERROR(ValidateGeneratorOptions(options));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out.is_open()) {
    return UnavailableError(fmt::format("cannot open '{}' for writing the workload", path));
  }
  Result<GeneratorStats> stats = GenerateWorkload(options, out);
  if (!stats.ok()) return stats.status().WithContext(path);
  out.close();
  if (out.fail()) return UnavailableError(fmt::format("cannot write the workload to '{}'", path));
  return stats;
}

}  // namespace ch
