// PATCH round-trip latency through CampaignApiServer over localhost: one keep-alive client
// (TCP_NODELAY), an in-memory store, the system clock, a customer API key (so each request pays
// for authentication and the tenant check). Prints median / p90 / p99 / max.
//
//   campaign_api_bench [requests=5000] [campaigns=100]
//
// Numbers, not a test: run it on a quiet machine and quote the load it ran under.
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "api/campaign_api.h"
#include "campaign/campaign_service.h"
#include "campaign/in_memory_campaign_store.h"

int main(int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  const int requests = argc > 1 ? std::atoi(argv[1]) : 5000;
  const int campaigns = argc > 2 ? std::atoi(argv[2]) : 100;
  if (requests < 1 || campaigns < 1) {
    std::fprintf(stderr, "usage: %s [requests>=1] [campaigns>=1]\n", argv[0]);
    return 2;
  }

  ch::InMemoryCampaignStore store;
  ch::CampaignService service(store);
  // A customer key of customer 1, as `api-key create --customer 1` would make one.
  const std::string secret = "chk_k00000000000000b1_" + std::string(64, '7');
  ch::ApiKey key{.id = "k00000000000000b1", .customer_id = 1, .sha256_hex = ch::Sha256Hex(secret)};
  ch::CampaignApiServer server(service, {.keys = ch::ApiKeyring::FromKeys({key})});
  if (ch::Status s = server.Start("127.0.0.1", 0); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  httplib::Client client("127.0.0.1", server.port());
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  const httplib::Headers headers = {{"Authorization", "Bearer " + secret}};

  for (int i = 0; i < campaigns; ++i) {
    auto r = client.Post("/v1/customers/1/campaigns", headers,
                         "{\"name\":\"c" + std::to_string(i) + "\",\"content\":{\"title\":\"t\"}}",
                         "application/json");
    if (!r || r->status != 201) {
      std::fprintf(stderr, "create failed\n");
      return 1;
    }
  }

  std::vector<double> micros;
  micros.reserve(static_cast<size_t>(requests));
  const int warmup = std::min(200, requests);
  for (int i = -warmup; i < requests; ++i) {
    std::string path = "/v1/campaigns/" + std::to_string(1 + (i + warmup) % campaigns);
    std::string body = "{\"name\":\"n" + std::to_string(i) +
                       "\",\"frequency_cap\":" + std::to_string((i + warmup) % 100) + "}";
    auto t0 = Clock::now();
    auto r = client.Patch(path, headers, body, "application/json");
    auto t1 = Clock::now();
    if (!r || r->status != 200) {
      std::fprintf(stderr, "PATCH failed: %s\n", r ? r->body.c_str() : "no response");
      return 1;
    }
    if (i >= 0) micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  server.Stop();

  std::sort(micros.begin(), micros.end());
  auto pct = [&](double p) {
    size_t idx = static_cast<size_t>(p * static_cast<double>(micros.size() - 1));
    return micros[idx];
  };
  std::printf(
      "PATCH round trips: %d over localhost (keep-alive, in-memory store, %d campaigns)\n"
      "  median %.1f us   p90 %.1f us   p99 %.1f us   max %.1f us\n",
      requests, campaigns, pct(0.5), pct(0.9), pct(0.99), micros.back());
  return 0;
}
