// `dead-letters`: what the dead-letter topics hold, and --redrive to republish it once the cause
// is fixed (docs/operations.md "Dead letters").
//
// Each dead-letter topic has a keeping subscription, created with the topic by the consumer that
// dead-letters (TopologyOptions::dead_letter_subscription): Pub/Sub delivers a message only to
// the subscriptions that exist when it is published. Listing leases every message of it (so a
// second pull does not return the same ones), reads them, and nacks them all at the end: they
// stay for the next listing. --redrive publishes each to the topic it came from, without the
// dead-letter attributes, and acknowledges it on the keeping subscription only once that
// publish succeeded (a crash in between republishes it again: the history is idempotent).
#include <fmt/format.h>

#include <chrono>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "capture/change_event.h"
#include "cli/cli.h"
#include "common/time_util.h"
#include "history/history_record.h"

namespace ch::cli {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The attributes BusConsumer adds when it dead-letters a message (bus_consumer.h).
constexpr const char* kDeadLetterAttributes[] = {"dead_letter_reason", "dead_letter_attempts",
                                                 "source_subscription", "dead_letter_message_id"};

struct DeadLetterTopic {
  std::string topic;         // the dead-letter topic
  std::string subscription;  // its keeping subscription
  std::string source_topic;  // where --redrive republishes
  bool history = false;      // messages are history records (else change messages)
};

struct Listed {
  DeadLetterTopic where;
  bool exists = true;  // the keeping subscription exists
  std::vector<Delivery> messages;
  std::vector<std::string> duplicate_ack_ids;  // a message delivered twice: the extra handles
  bool more = false;                           // stopped at --limit
  int64_t redriven = 0;
};

std::string Attribute(const BusMessage& m, const std::string& key) {
  auto it = m.attributes.find(key);
  return it == m.attributes.end() ? "" : it->second;
}

// A short description of what the message is about: its first change (or record).
struct FirstChange {
  bool decoded = false;
  int64_t campaign_id = 0, customer_id = 0, version = 0;
  std::string op;
  size_t changes = 0;
  std::string text;
};

FirstChange Describe(const BusMessage& m, bool history) {
  FirstChange f;
  if (history) {
    Result<HistoryRecord> r = HistoryRecordFromJson(m.data);
    if (r.ok()) {
      f = {true,
           r->campaign_id,
           r->customer_id,
           r->version,
           std::string(ChangeOpName(r->event_type)),
           1,
           ""};
    }
  } else {
    Result<std::vector<ChangeEvent>> e = DecodeChangeMessages(m.data);
    if (e.ok() && !e->empty()) {
      const ChangeEvent& c = e->front();
      f = {
          true, c.campaign_id, c.customer_id, c.version, std::string(ChangeOpName(c.op)), e->size(),
          ""};
    }
  }
  if (f.decoded) {
    f.text = fmt::format("campaign {} v{} {} (customer {})", f.campaign_id, f.version, f.op,
                         f.customer_id);
    if (f.changes > 1) f.text += fmt::format(" +{} more", f.changes - 1);
  } else {
    std::string head = m.data.substr(0, 40);
    for (char& c : head) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '.';
    }
    f.text = fmt::format("undecodable: \"{}\"{}", head, m.data.size() > 40 ? "..." : "");
  }
  return f;
}

// Lease up to `limit` messages of the keeping subscription.
Status Collect(ChangeBus& bus, size_t limit, Listed& out) {
  std::set<std::string> seen;
  auto last_extension = std::chrono::steady_clock::now();
  bool first = true;
  while (out.messages.size() < limit) {
    size_t want = std::min<size_t>(limit - out.messages.size(), 1000);
    Result<std::vector<Delivery>> got =
        bus.Pull(out.where.subscription, want, first ? seconds(2) : milliseconds(500));
    first = false;
    if (got.status().code() == StatusCode::kNotFound && out.messages.empty()) {
      out.exists = false;
      return Status::OK();
    }
    if (!got.ok()) return got.status();
    if (got->empty()) return Status::OK();
    for (Delivery& d : *got) {
      if (!d.message_id.empty() && !seen.insert(d.message_id).second) {
        out.duplicate_ack_ids.push_back(d.ack_id);
      } else {
        out.messages.push_back(std::move(d));
      }
    }
    // Keep what was read leased while reading on (a long list outlasts the ack deadline).
    if (std::chrono::steady_clock::now() - last_extension > seconds(5)) {
      std::vector<std::string> ids;
      for (const Delivery& d : out.messages) ids.push_back(d.ack_id);
      bus.ExtendDeadline(out.where.subscription, ids, seconds(60)).IgnoreError();
      last_extension = std::chrono::steady_clock::now();
    }
  }
  out.more = true;
  return Status::OK();
}

// Republish to the source topic, then acknowledge, in chunks.
Status Redrive(ChangeBus& bus, Listed& l) {
  constexpr size_t kChunk = 500;
  for (size_t i = 0; i < l.messages.size(); i += kChunk) {
    size_t end = std::min(l.messages.size(), i + kChunk);
    std::vector<BusMessage> out;
    std::vector<std::string> ids;
    for (size_t j = i; j < end; ++j) {
      BusMessage m = l.messages[j].message;
      std::string original = Attribute(m, "dead_letter_message_id");
      for (const char* a : kDeadLetterAttributes) m.attributes.erase(a);
      if (!original.empty()) m.attributes["redriven_message_id"] = original;
      out.push_back(std::move(m));
      ids.push_back(l.messages[j].ack_id);
    }
    Status s = bus.Publish(l.where.source_topic, out);
    if (!s.ok()) {
      return s.WithContext(fmt::format("redriving to '{}' ({} of {} republished)",
                                       l.where.source_topic, l.redriven, l.messages.size()));
    }
    l.redriven += static_cast<int64_t>(out.size());
    Status acked = bus.Ack(l.where.subscription, ids);
    if (!acked.ok()) {
      // Republished but still kept: a later redrive republishes them again (harmless).
      return acked.WithContext(fmt::format("acknowledging {} redriven message(s) on '{}'",
                                           ids.size(), l.where.subscription));
    }
  }
  return Status::OK();
}

// Hand back what was leased and not redriven.
void Release(ChangeBus& bus, const Listed& l) {
  std::vector<std::string> ids = l.duplicate_ack_ids;
  for (size_t j = static_cast<size_t>(l.redriven); j < l.messages.size(); ++j) {
    ids.push_back(l.messages[j].ack_id);
  }
  if (!ids.empty()) bus.Nack(l.where.subscription, ids).IgnoreError();
}

std::string Truncate(std::string s, size_t max) {
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s + "...";
}

std::string RenderText(const std::vector<Listed>& all, bool redrive) {
  std::string out;
  for (const Listed& l : all) {
    if (!l.exists) {
      out += fmt::format(
          "{}: no keeping subscription '{}' (serve creates it with the topic; what was "
          "dead-lettered before it existed cannot be listed)\n",
          l.where.topic, l.where.subscription);
      continue;
    }
    out += fmt::format(
        "{} (kept in {}): {}{}\n", l.where.topic, l.where.subscription,
        l.messages.empty() ? std::string("none") : fmt::format("{} message(s)", l.messages.size()),
        l.more ? ", maybe more (--limit)" : "");
    for (const Delivery& d : l.messages) {
      out += fmt::format(
          "  {}  message {}  attempts {}  {}\n    reason: {}\n", FormatTimestamp(d.publish_time),
          Attribute(d.message, "dead_letter_message_id"),
          Attribute(d.message, "dead_letter_attempts"), Describe(d.message, l.where.history).text,
          Truncate(Attribute(d.message, "dead_letter_reason"), 200));
    }
    if (redrive && !l.messages.empty()) {
      out += fmt::format("  redriven {} message(s) to {}\n", l.redriven, l.where.source_topic);
    }
  }
  return out;
}

std::string RenderJson(const std::vector<Listed>& all) {
  nlohmann::json topics = nlohmann::json::array();
  for (const Listed& l : all) {
    nlohmann::json messages = nlohmann::json::array();
    for (const Delivery& d : l.messages) {
      FirstChange f = Describe(d.message, l.where.history);
      nlohmann::json first;  // null when undecodable
      if (f.decoded) {
        first = {{"campaign_id", f.campaign_id},
                 {"customer_id", f.customer_id},
                 {"version", f.version},
                 {"op", f.op},
                 {"changes", f.changes}};
      }
      std::string attempts = Attribute(d.message, "dead_letter_attempts");
      messages.push_back({{"dead_lettered_at", FormatTimestamp(d.publish_time)},
                          {"message_id", Attribute(d.message, "dead_letter_message_id")},
                          {"source_subscription", Attribute(d.message, "source_subscription")},
                          {"attempts", attempts.empty() ? 0 : std::atoll(attempts.c_str())},
                          {"reason", Attribute(d.message, "dead_letter_reason")},
                          {"first_change", first},
                          {"bytes", d.message.data.size()}});
    }
    topics.push_back({{"topic", l.where.topic},
                      {"subscription", l.where.subscription},
                      {"exists", l.exists},
                      {"messages", messages},
                      {"more", l.more},
                      {"redriven", l.redriven}});
  }
  return nlohmann::json{{"dead_letter_topics", topics}}.dump();
}

}  // namespace

Result<int64_t> EraseDeadLetters(ChangeBus& bus, const TopologyOptions& t, int64_t customer_id) {
  std::vector<Listed> all = {
      {.where = {t.dead_letter_topic, t.dead_letter_subscription, t.changes_topic, false}},
      {.where = {t.history_dead_letter_topic, t.history_dead_letter_subscription, t.history_topic,
                 true}}};
  int64_t removed = 0;
  for (Listed& l : all) {
    // Every message is looked at: a kept message of the customer left behind would survive.
    Status s = Collect(bus, std::numeric_limits<size_t>::max(), l);
    std::vector<std::string> ids;
    std::vector<Delivery> kept;
    for (Delivery& d : l.messages) {
      FirstChange f = Describe(d.message, l.where.history);
      if (f.decoded && f.customer_id == customer_id) {
        ids.push_back(d.ack_id);
      } else {
        kept.push_back(std::move(d));
      }
    }
    if (s.ok() && !ids.empty()) s = bus.Ack(l.where.subscription, ids);
    if (s.ok()) removed += static_cast<int64_t>(ids.size());
    l.messages = std::move(kept);
    Release(bus, l);
    if (!s.ok()) return s.WithContext(l.where.subscription);
  }
  return removed;
}

void RegisterDeadLetters(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "dead-letters",
      "List what the dead-letter topics hold (reason, attempts, first change); --redrive "
      "republishes it to the topic it came from once the cause is fixed");
  struct Args {
    bool json = false;
    bool redrive = false;
    size_t limit = 1000;
    TopologyOptions topology;
  };
  auto args = std::make_shared<Args>();
  cmd->add_flag("--json", args->json, "Machine-readable JSON");
  cmd->add_flag("--redrive", args->redrive,
                "Republish every listed message to its source topic and remove it from the "
                "dead-letter topic");
  cmd->add_option("--limit", args->limit, "At most this many messages per dead-letter topic")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1000000}));
  cmd->add_option("--changes-topic", args->topology.changes_topic,
                  "Change topic (where change dead letters are redriven)")
      ->capture_default_str();
  cmd->add_option("--history-topic", args->topology.history_topic,
                  "History record topic (where history dead letters are redriven)")
      ->capture_default_str();
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args]() -> Status {
      ASSIGN_OR_RETURN(auto runtime, ctx.MakeRuntime());
      ASSIGN_OR_RETURN(ChangeBus * bus, runtime->Bus());
      const TopologyOptions& t = args->topology;
      std::vector<Listed> all = {
          {.where = {t.dead_letter_topic, t.dead_letter_subscription, t.changes_topic, false}},
          {.where = {t.history_dead_letter_topic, t.history_dead_letter_subscription,
                     t.history_topic, true}}};
      Status failed;
      for (Listed& l : all) {
        failed = Collect(*bus, args->limit, l);
        if (failed.ok() && args->redrive) failed = Redrive(*bus, l);
        Release(*bus, l);
        if (!failed.ok()) {
          failed = failed.WithContext(l.where.subscription);
          break;
        }
      }
      std::cout << (args->json ? RenderJson(all) + "\n" : RenderText(all, args->redrive));
      std::cout.flush();
      return failed;
    };
  });
}

}  // namespace ch::cli
