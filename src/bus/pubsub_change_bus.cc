#include "bus/pubsub_change_bus.h"

#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <shared_mutex>
#include <thread>

#include "bus/bus_limits.h"
#include "bus/pubsub_internal.h"

namespace ch {

namespace pi = pubsub_internal;

namespace {

// Ack ids per acknowledge / modifyAckDeadline request (keeps requests well under 512 KB).
constexpr size_t kAckIdsPerRequest = 500;
// Pub/Sub's ack deadline range.
constexpr int kMinAckDeadlineSeconds =
    static_cast<int>(kMinSubscriptionAckDeadline.count() / 1000000);
constexpr int kMaxAckDeadlineSeconds = 600;

enum class Verb { kGet, kPut, kPost, kDelete };

std::string_view VerbName(Verb v) {
  switch (v) {
    case Verb::kGet:
      return "GET";
    case Verb::kPut:
      return "PUT";
    case Verb::kPost:
      return "POST";
    case Verb::kDelete:
      return "DELETE";
  }
  return "?";
}

struct Reply {
  int status = 0;
  std::string body;
  bool ok() const { return status >= 200 && status < 300; }
};

// Names are validated (letters, digits, - _ . ~ + %); only '%' needs escaping in a URL path.
std::string EscapePath(std::string_view name) {
  std::string out;
  for (char c : name) {
    if (c == '%') {
      out += "%25";
    } else {
      out += c;
    }
  }
  return out;
}

int DeadlineSeconds(Micros d) {
  auto s = std::chrono::ceil<std::chrono::seconds>(d).count();
  return static_cast<int>(std::clamp<int64_t>(s, 0, kMaxAckDeadlineSeconds));
}

std::string TrimWhitespace(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// Run `command` through the shell; return its standard output. Fails with Unauthenticated (the
// token could not be obtained), naming the command but never printing its output.
Result<std::string> RunTokenCommand(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    return UnauthenticatedError(fmt::format("cannot run access token command '{}'", command));
  }
  std::string out;
  char buf[4096];
  size_t n = 0;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int rc = pclose(pipe);
  if (rc != 0) {
    return UnauthenticatedError(
        fmt::format("access token command '{}' failed (exit status {})", command, rc));
  }
  return TrimWhitespace(std::move(out));
}

}  // namespace

struct PubSubChangeBus::Impl {
  PubSubOptions options;
  std::string endpoint;
  bool use_token = false;

  // Idle keep-alive connections.
  std::mutex pool_mu;
  std::vector<std::unique_ptr<httplib::Client>> idle;

  // The current access token.
  std::mutex token_mu;
  std::string token;
  std::chrono::steady_clock::time_point token_time;

  // What this client ensured, for re-creation after a 404.
  struct KnownSubscription {
    std::string topic;
    SubscriptionOptions options;
  };
  std::mutex known_mu;
  // Publishes hold it shared, a re-creation exclusively: no publish of this client lands in a
  // re-created topic before its subscriptions exist again (those messages would be dropped).
  std::shared_mutex recovery_mu;
  std::set<std::string, std::less<>> known_topics;
  std::map<std::string, KnownSubscription, std::less<>> known_subscriptions;

  std::atomic<int64_t> requests{0}, retries{0}, recreated{0}, token_fetches{0};

  std::string TopicName(std::string_view t) const {
    return fmt::format("projects/{}/topics/{}", options.project, t);
  }
  std::string SubscriptionName(std::string_view s) const {
    return fmt::format("projects/{}/subscriptions/{}", options.project, s);
  }
  std::string TopicPath(std::string_view t) const {
    return fmt::format("/v1/projects/{}/topics/{}", EscapePath(options.project), EscapePath(t));
  }
  std::string SubscriptionPath(std::string_view s) const {
    return fmt::format("/v1/projects/{}/subscriptions/{}", EscapePath(options.project),
                       EscapePath(s));
  }

  std::unique_ptr<httplib::Client> NewClient() const {
    auto c = std::make_unique<httplib::Client>(endpoint);
    c->set_connection_timeout(options.connect_timeout);
    c->set_read_timeout(options.io_timeout);
    c->set_write_timeout(options.io_timeout);
    c->set_keep_alive(true);
    // Without TCP_NODELAY every keep-alive request waits ~50 ms (Nagle + delayed ACK; facts.md).
    c->set_tcp_nodelay(true);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    if (!options.ca_cert_path.empty()) c->set_ca_cert_path(options.ca_cert_path);
#endif
    return c;
  }

  std::unique_ptr<httplib::Client> Acquire() {
    {
      std::lock_guard lock(pool_mu);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    return NewClient();
  }

  void Release(std::unique_ptr<httplib::Client> c) {
    std::lock_guard lock(pool_mu);
    if (idle.size() < options.max_idle_connections) idle.push_back(std::move(c));
  }

  // Return the access token, fetching a new one when forced, missing or old.
  Result<std::string> Token(bool force) {
    std::lock_guard lock(token_mu);
    auto now = std::chrono::steady_clock::now();
    if (!force && !token.empty() && now - token_time < options.token_refresh_interval) {
      return token;
    }
    std::string fresh;
    if (!options.access_token_command.empty()) {
      ASSIGN_OR_RETURN(fresh, RunTokenCommand(options.access_token_command));
    } else {
      const char* env = std::getenv(options.access_token_env.c_str());
      fresh = TrimWhitespace(env ? env : "");
    }
    token_fetches++;
    if (fresh.empty()) {
      return UnauthenticatedError(
          fmt::format("no Pub/Sub access token: {} is empty",
                      options.access_token_command.empty()
                          ? "$" + options.access_token_env
                          : "the output of '" + options.access_token_command + "'"));
    }
    token = std::move(fresh);
    token_time = now;
    return token;
  }

  void SleepBackoff(int retry) {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    Micros ceiling = pi::BackoffCeiling(retry, options.initial_backoff, options.max_backoff);
    std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(ceiling.count(), 0));
    std::this_thread::sleep_for(Micros(dist(rng)));
  }

  // Send one request, repeating it on transport errors, 429 and 5xx (at most max_attempts times
  // in all) and once after refreshing the token on 401. Returns the final answer, whatever its
  // status; fails with Unavailable when every attempt failed.
  Result<Reply> Send(Verb verb, const std::string& path, const std::string& body) {
    std::string last_error;
    bool refreshed = false;
    int attempt = 0;
    while (attempt < options.max_attempts) {
      ++attempt;
      if (attempt > 1) {
        retries++;
        SleepBackoff(attempt - 1);
      }
      httplib::Headers headers;
      if (use_token) {
        ASSIGN_OR_RETURN(std::string t, Token(false));
        headers.emplace("Authorization", "Bearer " + t);
      }
      std::unique_ptr<httplib::Client> client = Acquire();
      requests++;
      std::optional<Reply> reply;
      try {
        httplib::Result res = [&] {
          switch (verb) {
            case Verb::kGet:
              return client->Get(path, headers);
            case Verb::kPut:
              return client->Put(path, headers, body, "application/json");
            case Verb::kPost:
              return client->Post(path, headers, body, "application/json");
            case Verb::kDelete:
              return client->Delete(path, headers);
          }
          return client->Get(path, headers);
        }();
        if (res) {
          reply = Reply{res->status, std::move(res->body)};
        } else {
          last_error = fmt::format("{} {}{}: {}", VerbName(verb), endpoint, path,
                                   httplib::to_string(res.error()));
        }
      } catch (const std::exception& e) {
        last_error = fmt::format("{} {}{}: {}", VerbName(verb), endpoint, path, e.what());
      }
      if (!reply) continue;  // the connection is dropped, not pooled
      Release(std::move(client));
      if (reply->status == 401 && use_token && !refreshed) {
        refreshed = true;
        --attempt;  // a token refresh does not count as a failed attempt
        RETURN_IF_ERROR(Token(true).status());
        continue;
      }
      if (pi::IsRetryableHttp(reply->status)) {
        last_error = pi::StatusFromHttp(reply->status, reply->body, VerbName(verb), path).message();
        continue;
      }
      return *std::move(reply);
    }
    return UnavailableError(
        fmt::format("Pub/Sub unavailable after {} attempt(s): {}", attempt, last_error));
  }

  Status EnsureTopicRemote(std::string_view topic) {
    std::string name = TopicName(topic);
    ASSIGN_OR_RETURN(Reply get, Send(Verb::kGet, TopicPath(topic), ""));
    if (get.ok()) return Status::OK();
    if (get.status != 404) return pi::StatusFromHttp(get.status, get.body, "get topic", name);
    if (!options.create_missing) {
      return FailedPreconditionError(fmt::format(
          "Pub/Sub topic {} does not exist and creating it is off (create_missing=false): create "
          "it first (gcloud pubsub topics create {} --project {})",
          name, topic, options.project));
    }
    ASSIGN_OR_RETURN(Reply put, Send(Verb::kPut, TopicPath(topic), "{}"));
    if (put.ok() || put.status == 409) return Status::OK();
    return pi::StatusFromHttp(put.status, put.body, "create topic", name);
  }

  // Check that an existing subscription (its GET body) matches what is asked for.
  Status CheckSubscription(std::string_view subscription, std::string_view topic,
                           const SubscriptionOptions& o, const std::string& body) {
    try {
      nlohmann::json j = nlohmann::json::parse(body);
      std::string existing_topic = j.value("topic", "");
      bool ordered = j.value("enableMessageOrdering", false);
      if (existing_topic != TopicName(topic)) {
        return FailedPreconditionError(
            fmt::format("Pub/Sub subscription {} exists on topic {}, not on {}",
                        SubscriptionName(subscription), existing_topic, TopicName(topic)));
      }
      if (ordered != o.ordered) {
        return FailedPreconditionError(fmt::format(
            "Pub/Sub subscription {} exists with message ordering {}, requested {}",
            SubscriptionName(subscription), ordered ? "on" : "off", o.ordered ? "on" : "off"));
      }
      return Status::OK();
    } catch (const std::exception& e) {
      return InternalError(fmt::format("malformed Pub/Sub subscription {}: {}",
                                       SubscriptionName(subscription), e.what()));
    }
  }

  Status EnsureSubscriptionRemote(std::string_view subscription, std::string_view topic,
                                  const SubscriptionOptions& o) {
    std::string name = SubscriptionName(subscription);
    ASSIGN_OR_RETURN(Reply get, Send(Verb::kGet, SubscriptionPath(subscription), ""));
    if (get.ok()) return CheckSubscription(subscription, topic, o, get.body);
    if (get.status != 404) {
      return pi::StatusFromHttp(get.status, get.body, "get subscription", name);
    }
    if (!options.create_missing) {
      return FailedPreconditionError(fmt::format(
          "Pub/Sub subscription {} does not exist and creating it is off (create_missing=false): "
          "create it first (gcloud pubsub subscriptions create {} --topic {}{} --project {})",
          name, subscription, topic, o.ordered ? " --enable-message-ordering" : "",
          options.project));
    }
    nlohmann::json req = {
        {"topic", TopicName(topic)},
        {"ackDeadlineSeconds", std::max(kMinAckDeadlineSeconds, DeadlineSeconds(o.ack_deadline))},
        {"enableMessageOrdering", o.ordered},
    };
    ASSIGN_OR_RETURN(Reply put, Send(Verb::kPut, SubscriptionPath(subscription), req.dump()));
    if (put.ok()) return Status::OK();
    if (put.status == 409) {  // created concurrently: check it is the same
      ASSIGN_OR_RETURN(Reply again, Send(Verb::kGet, SubscriptionPath(subscription), ""));
      if (again.ok()) return CheckSubscription(subscription, topic, o, again.body);
      return pi::StatusFromHttp(again.status, again.body, "get subscription", name);
    }
    if (put.status == 404) {
      return NotFoundError(fmt::format("Pub/Sub topic {} not found (creating subscription {})",
                                       TopicName(topic), name));
    }
    return pi::StatusFromHttp(put.status, put.body, "create subscription", name);
  }

  // After a 404 on `topic`: create it again with the subscriptions this client ensured on it.
  // Returns false when the topic is not one this client ensured (or re-creation is off).
  Result<bool> RecoverTopic(std::string_view topic) {
    std::vector<std::pair<std::string, KnownSubscription>> subs;
    {
      std::lock_guard lock(known_mu);
      if (!options.create_missing || !known_topics.contains(topic)) return false;
      for (const auto& [name, s] : known_subscriptions) {
        if (s.topic == topic) subs.emplace_back(name, s);
      }
    }
    std::unique_lock recovering(recovery_mu);
    RETURN_IF_ERROR(EnsureTopicRemote(topic));
    for (const auto& [name, s] : subs) {
      RETURN_IF_ERROR(EnsureSubscriptionRemote(name, s.topic, s.options));
    }
    recreated++;
    return true;
  }

  // After a 404 on `subscription`: create its topic and it again.
  Result<bool> RecoverSubscription(std::string_view subscription) {
    KnownSubscription s;
    {
      std::lock_guard lock(known_mu);
      auto it = known_subscriptions.find(subscription);
      if (!options.create_missing || it == known_subscriptions.end()) return false;
      s = it->second;
      known_topics.insert(s.topic);
    }
    ASSIGN_OR_RETURN(bool done, RecoverTopic(s.topic));
    if (!done) RETURN_IF_ERROR(EnsureSubscriptionRemote(subscription, s.topic, s.options));
    return true;
  }

  Result<std::vector<Delivery>> PullOnce(std::string_view subscription, size_t max) {
    nlohmann::json req = {{"maxMessages", std::min<size_t>(max, 1000)},
                          {"returnImmediately", true}};
    std::string path = SubscriptionPath(subscription) + ":pull";
    ASSIGN_OR_RETURN(Reply reply, Send(Verb::kPost, path, req.dump()));
    if (reply.status == 404) {
      ASSIGN_OR_RETURN(bool recovered, RecoverSubscription(subscription));
      if (recovered) {
        ASSIGN_OR_RETURN(reply, Send(Verb::kPost, path, req.dump()));
      }
    }
    if (!reply.ok()) {
      return pi::StatusFromHttp(reply.status, reply.body, "pull from",
                                SubscriptionName(subscription));
    }
    return pi::ParsePullResponse(reply.body);
  }

  // POST `verb` (":acknowledge" / ":modifyAckDeadline") for the handles, in chunks.
  Status AckLike(std::string_view subscription, std::span<const std::string> ack_ids,
                 std::string_view verb, std::optional<int> deadline_seconds) {
    RETURN_IF_ERROR(ValidateBusName("subscription", subscription));
    std::string path = SubscriptionPath(subscription) + std::string(verb);
    for (size_t begin = 0; begin < ack_ids.size(); begin += kAckIdsPerRequest) {
      size_t end = std::min(ack_ids.size(), begin + kAckIdsPerRequest);
      nlohmann::json req = {
          {"ackIds", std::vector<std::string>(ack_ids.begin() + begin, ack_ids.begin() + end)}};
      if (deadline_seconds) req["ackDeadlineSeconds"] = *deadline_seconds;
      std::string body;
      try {
        body = req.dump();
      } catch (const std::exception& e) {
        return InvalidArgumentError(fmt::format("malformed ack id: {}", e.what()));
      }
      ASSIGN_OR_RETURN(Reply reply, Send(Verb::kPost, path, body));
      if (reply.status == 404) {
        // The subscription is gone, and its leases with it: nothing is left to acknowledge.
        ASSIGN_OR_RETURN(bool recovered, RecoverSubscription(subscription));
        if (recovered) return Status::OK();
      }
      if (!reply.ok()) {
        return pi::StatusFromHttp(reply.status, reply.body, std::string(verb.substr(1)),
                                  SubscriptionName(subscription));
      }
    }
    return Status::OK();
  }
};

PubSubChangeBus::PubSubChangeBus(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PubSubChangeBus::~PubSubChangeBus() = default;

Result<std::unique_ptr<PubSubChangeBus>> PubSubChangeBus::Open(const PubSubOptions& options) {
  if (options.project.empty()) return InvalidArgumentError("Pub/Sub: project is empty");
  if (options.max_attempts < 1) return InvalidArgumentError("Pub/Sub: max_attempts must be >= 1");
  if (options.max_batch_messages < 1 || options.max_batch_messages > 1000) {
    return InvalidArgumentError(fmt::format("Pub/Sub: max_batch_messages must be 1-1000, got {}",
                                            options.max_batch_messages));
  }
  if (options.max_batch_bytes == 0) {
    return InvalidArgumentError("Pub/Sub: max_batch_bytes must be > 0");
  }
  if (options.io_timeout <= Micros(0) || options.connect_timeout <= Micros(0)) {
    return InvalidArgumentError("Pub/Sub: timeouts must be > 0");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::string endpoint = options.endpoint;
  if (endpoint.empty()) {
    const char* host = std::getenv("PUBSUB_EMULATOR_HOST");
    endpoint = (host && *host) ? pi::EmulatorEndpoint(host) : "https://pubsub.googleapis.com";
  }
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  bool https = endpoint.starts_with("https://");
  if (!https && !endpoint.starts_with("http://")) {
    return InvalidArgumentError(
        fmt::format("Pub/Sub endpoint '{}' must start with http:// or https://", endpoint));
  }
  impl->endpoint = endpoint;
  impl->use_token =
      options.auth == PubSubAuth::kAccessToken || (options.auth == PubSubAuth::kAuto && https);
  if (impl->use_token && options.access_token_command.empty()) {
    const char* token = std::getenv(options.access_token_env.c_str());
    if (token == nullptr || *token == '\0') {
      return FailedPreconditionError(
          fmt::format("Pub/Sub at {} needs an access token: set ${} (e.g. export {}=$(gcloud auth "
                      "print-access-token)) or configure an access token command",
                      endpoint, options.access_token_env, options.access_token_env));
    }
  }
  try {
    if (!impl->NewClient()->is_valid()) {
      return InvalidArgumentError(fmt::format("Pub/Sub endpoint '{}' is not usable", endpoint));
    }
  } catch (const std::exception& e) {
    return InvalidArgumentError(fmt::format("Pub/Sub endpoint '{}': {}", endpoint, e.what()));
  }
  return std::unique_ptr<PubSubChangeBus>(new PubSubChangeBus(std::move(impl)));
}

Status PubSubChangeBus::EnsureTopic(std::string_view topic) {
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  RETURN_IF_ERROR(impl_->EnsureTopicRemote(topic));
  std::lock_guard lock(impl_->known_mu);
  impl_->known_topics.emplace(topic);
  return Status::OK();
}

Status PubSubChangeBus::EnsureSubscription(std::string_view subscription, std::string_view topic,
                                           const SubscriptionOptions& options) {
  RETURN_IF_ERROR(ValidateBusName("subscription", subscription));
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  RETURN_IF_ERROR(ValidateLeaseDuration("ack deadline", options.ack_deadline, false));
  RETURN_IF_ERROR(impl_->EnsureSubscriptionRemote(subscription, topic, options));
  std::lock_guard lock(impl_->known_mu);
  impl_->known_subscriptions.insert_or_assign(std::string(subscription),
                                              Impl::KnownSubscription{std::string(topic), options});
  return Status::OK();
}

Status PubSubChangeBus::Publish(std::string_view topic, std::span<const BusMessage> messages) {
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  RETURN_IF_ERROR(ValidateMessages(messages));
  std::string path = impl_->TopicPath(topic) + ":publish";
  for (auto [begin, end] : pi::PlanBatches(messages, impl_->options.max_batch_messages,
                                           impl_->options.max_batch_bytes)) {
    ASSIGN_OR_RETURN(std::string body, pi::PublishBody(messages.subspan(begin, end - begin)));
    auto send = [&]() -> Result<Reply> {
      std::shared_lock publishing(impl_->recovery_mu);
      return impl_->Send(Verb::kPost, path, body);
    };
    ASSIGN_OR_RETURN(Reply reply, send());
    if (reply.status == 404) {
      ASSIGN_OR_RETURN(bool recovered, impl_->RecoverTopic(topic));
      if (recovered) {
        ASSIGN_OR_RETURN(reply, send());
      }
    }
    if (!reply.ok()) {
      Status s =
          pi::StatusFromHttp(reply.status, reply.body, "publish to", impl_->TopicName(topic));
      if (begin > 0) {
        s = s.WithContext(
            fmt::format("after {} of {} messages were published", begin, messages.size()));
      }
      return s;
    }
  }
  return Status::OK();
}

Result<std::vector<Delivery>> PubSubChangeBus::Pull(std::string_view subscription, size_t max,
                                                    Micros wait) {
  RETURN_IF_ERROR(ValidateBusName("subscription", subscription));
  if (max == 0) return std::vector<Delivery>{};
  auto deadline = std::chrono::steady_clock::now() + wait;
  Micros sleep = std::chrono::milliseconds(10);
  while (true) {
    ASSIGN_OR_RETURN(std::vector<Delivery> got, impl_->PullOnce(subscription, max));
    auto now = std::chrono::steady_clock::now();
    if (!got.empty() || now >= deadline) return got;
    std::this_thread::sleep_for(
        std::min<Micros>(sleep, std::chrono::duration_cast<Micros>(deadline - now)));
    sleep = std::min(sleep * 2, impl_->options.pull_poll_interval);
  }
}

Status PubSubChangeBus::Ack(std::string_view subscription, std::span<const std::string> ack_ids) {
  return impl_->AckLike(subscription, ack_ids, ":acknowledge", std::nullopt);
}

Status PubSubChangeBus::Nack(std::string_view subscription, std::span<const std::string> ack_ids) {
  return impl_->AckLike(subscription, ack_ids, ":modifyAckDeadline", 0);
}

Status PubSubChangeBus::ExtendDeadline(std::string_view subscription,
                                       std::span<const std::string> ack_ids, Micros deadline) {
  RETURN_IF_ERROR(ValidateLeaseDuration("ack deadline extension", deadline, true));
  return impl_->AckLike(subscription, ack_ids, ":modifyAckDeadline", DeadlineSeconds(deadline));
}

Status PubSubChangeBus::DeleteTopic(std::string_view topic) {
  RETURN_IF_ERROR(ValidateBusName("topic", topic));
  {
    std::lock_guard lock(impl_->known_mu);
    impl_->known_topics.erase(std::string(topic));
  }
  ASSIGN_OR_RETURN(Reply reply, impl_->Send(Verb::kDelete, impl_->TopicPath(topic), ""));
  if (reply.ok() || reply.status == 404) return Status::OK();
  return pi::StatusFromHttp(reply.status, reply.body, "delete topic", impl_->TopicName(topic));
}

Status PubSubChangeBus::DeleteSubscription(std::string_view subscription) {
  RETURN_IF_ERROR(ValidateBusName("subscription", subscription));
  {
    std::lock_guard lock(impl_->known_mu);
    impl_->known_subscriptions.erase(std::string(subscription));
  }
  ASSIGN_OR_RETURN(Reply reply,
                   impl_->Send(Verb::kDelete, impl_->SubscriptionPath(subscription), ""));
  if (reply.ok() || reply.status == 404) return Status::OK();
  return pi::StatusFromHttp(reply.status, reply.body, "delete subscription",
                            impl_->SubscriptionName(subscription));
}

const std::string& PubSubChangeBus::endpoint() const { return impl_->endpoint; }

PubSubStats PubSubChangeBus::stats() const {
  return PubSubStats{.requests = impl_->requests.load(),
                     .retries = impl_->retries.load(),
                     .recreated = impl_->recreated.load(),
                     .token_fetches = impl_->token_fetches.load()};
}

}  // namespace ch
