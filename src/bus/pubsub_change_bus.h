// PubSubChangeBus: ChangeBus on Google Cloud Pub/Sub through its public REST API (v1), for the
// scaled-out setup; the same client talks to the Pub/Sub emulator (PUBSUB_EMULATOR_HOST).
//
//   EnsureTopic / EnsureSubscription   GET the resource; PUT it when missing (create_missing);
//                                      409 on create = created by someone else = exists
//   Publish                            POST topics/T:publish, split into requests of at most
//                                      max_batch_messages messages and max_batch_bytes bytes,
//                                      sent one after another (so per-key order holds)
//   Pull                               POST subscriptions/S:pull with returnImmediately, polled
//                                      until `wait` runs out (see below)
//   Ack / Nack / ExtendDeadline        POST :acknowledge / :modifyAckDeadline (0 s = nack)
//
// Delivery semantics: Pub/Sub's -- at least once; per-key order on first delivery only when the
// subscription is ordered AND the publisher sends every message of a key to the same region (on
// the real service use a locational endpoint such as https://us-east1-pubsub.googleapis.com; see
// docs/pubsub.md). delivery_attempt is 0 (unknown): Pub/Sub reports it only for subscriptions
// with a dead-letter policy, and the emulator's dead-lettering is broken (facts.md), so
// BusConsumer counts attempts itself. Pull returns at most what the server hands out in one
// response (100 on the emulator).
//
// Waiting: Pull never leaves a long-poll request hanging (a request abandoned by a client-side
// timeout could take messages with it until their deadline); it asks with returnImmediately and
// sleeps between empty answers, up to pull_poll_interval.
//
// Failures: every request has a connect timeout and an I/O timeout (the emulator never answers
// some requests, e.g. an oversized message). HTTP 429 and 5xx, timeouts and connection errors are
// retried with exponential backoff and full jitter, at most max_attempts times in all; then the
// call fails with Unavailable. 400 -> InvalidArgument with the server's message, 401 ->
// Unauthenticated (after one token refresh and retry), 403 -> PermissionDenied, 404 -> NotFound
// naming the resource. A retried Publish may duplicate messages (at least once).
//
// Recovery: the bus remembers the topics and subscriptions it ensured. When one of them is
// answered with 404 later (the emulator lost its state on a restart; someone deleted it) and
// create_missing is on, the bus creates it again -- a topic together with the subscriptions this
// client ensured on it, so that no message is published into a topic without them -- and repeats
// the call once. Leases of a re-created subscription are gone: Ack/Nack/ExtendDeadline then
// report OK (those messages died with the old subscription).
//
// Authentication: none for a plain http:// endpoint (the emulator); otherwise an OAuth2 access
// token sent as "Authorization: Bearer", taken from the environment variable access_token_env or
// from the standard output of access_token_command (e.g. `gcloud auth print-access-token`),
// refreshed every token_refresh_interval and whenever the server answers 401.
//
// Thread-safety: safe to use from several threads. Each call borrows a keep-alive connection
// (TCP_NODELAY) from a mutex-guarded pool and returns it afterwards; a connection that failed is
// dropped.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "bus/change_bus.h"

namespace ch {

enum class PubSubAuth {
  // No token for http:// endpoints (the emulator), a token for https:// ones.
  kAuto,
  // Never send a token.
  kNone,
  // Always send a token.
  kAccessToken,
};

struct PubSubOptions {
  // The Google Cloud project id. REQUIRES: not empty.
  std::string project;
  // "http[s]://host[:port]". Default: "" = "http://" + $PUBSUB_EMULATOR_HOST when that variable
  // is set, else "https://pubsub.googleapis.com" (global; use a locational endpoint for ordered
  // delivery, see docs/pubsub.md).
  std::string endpoint;
  // Default: kAuto.
  PubSubAuth auth = PubSubAuth::kAuto;
  // Environment variable holding an access token. Default: "CH_PUBSUB_ACCESS_TOKEN".
  std::string access_token_env = "CH_PUBSUB_ACCESS_TOKEN";
  // Shell command printing an access token on stdout; used instead of access_token_env when not
  // empty. Default: "".
  std::string access_token_command;
  // Fetch a fresh token after this long (Google access tokens live an hour). Default: 45 min.
  Micros token_refresh_interval = std::chrono::minutes(45);
  // Create missing topics and subscriptions (and re-create them after a 404). Turn off where
  // IAM forbids creating them: a missing one is then FailedPrecondition naming it. Default: true.
  bool create_missing = true;
  // TCP connect timeout per request. Default: 5 s.
  Micros connect_timeout = std::chrono::seconds(5);
  // Read and write timeout per request (time without progress). Default: 30 s.
  Micros io_timeout = std::chrono::seconds(30);
  // Attempts per request, the first included. REQUIRES: >= 1. Default: 5.
  int max_attempts = 5;
  // Backoff before retry n (n = 1, 2, ...) is uniform in [0, min(max_backoff,
  // initial_backoff * 2^(n-1))] ("full jitter"). Defaults: 100 ms and 5 s.
  Micros initial_backoff = std::chrono::milliseconds(100);
  Micros max_backoff = std::chrono::seconds(5);
  // Publish request limits. Pub/Sub accepts 1,000 messages and 10 MB per request.
  // REQUIRES: 1..1000 and > 0. Defaults: 1000 and 9,000,000 bytes.
  size_t max_batch_messages = 1000;
  size_t max_batch_bytes = 9'000'000;
  // Idle keep-alive connections kept for reuse. Default: 8.
  size_t max_idle_connections = 8;
  // Longest sleep between two empty pulls while Pull waits. Default: 200 ms.
  Micros pull_poll_interval = std::chrono::milliseconds(200);
  // CA bundle for https endpoints. Default: "" = the system's.
  std::string ca_cert_path;
};

struct PubSubStats {
  // HTTP requests sent (retries included).
  int64_t requests = 0;
  // Requests repeated after a retryable failure.
  int64_t retries = 0;
  // Topics and subscriptions created again after a 404.
  int64_t recreated = 0;
  // Access tokens fetched.
  int64_t token_fetches = 0;
};

class PubSubChangeBus final : public ChangeBus {
 public:
  // Check the options and resolve the endpoint; no request is sent. Fails with InvalidArgument
  // for bad options and FailedPrecondition when a token is needed but no source is configured.
  static Result<std::unique_ptr<PubSubChangeBus>> Open(const PubSubOptions& options);
  ~PubSubChangeBus() override;

  Status EnsureTopic(std::string_view topic) override;
  Status EnsureSubscription(std::string_view subscription, std::string_view topic,
                            const SubscriptionOptions& options) override;
  Status Publish(std::string_view topic, std::span<const BusMessage> messages) override;
  Result<std::vector<Delivery>> Pull(std::string_view subscription, size_t max,
                                     Micros wait) override;
  Status Ack(std::string_view subscription, std::span<const std::string> ack_ids) override;
  Status Nack(std::string_view subscription, std::span<const std::string> ack_ids) override;
  Status ExtendDeadline(std::string_view subscription, std::span<const std::string> ack_ids,
                        Micros deadline) override;

  // Delete a topic / subscription (tests, tooling). OK when it does not exist. The bus forgets
  // it (no re-creation after a later 404).
  Status DeleteTopic(std::string_view topic);
  Status DeleteSubscription(std::string_view subscription);

  // The resolved endpoint, e.g. "http://127.0.0.1:8085".
  const std::string& endpoint() const;
  PubSubStats stats() const;

 private:
  struct Impl;
  explicit PubSubChangeBus(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ch
