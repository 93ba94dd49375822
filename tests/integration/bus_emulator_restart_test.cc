// PubSubChangeBus and BusConsumer survive a restart of the Pub/Sub emulator.
//
// The test kills the process listening on PUBSUB_EMULATOR_HOST's port (found through /proc),
// checks that Publish and Pull fail with Unavailable while it is down, restarts it on the same
// port with "$CH_PUBSUB_EMULATOR --host=HOST --port=PORT" and checks that the SAME client objects
// recover: the emulator lost every topic and subscription, and PubSubChangeBus re-creates the
// ones it ensured when they answer 404 (see pubsub_change_bus.h, "Recovery"). A guard restarts
// the emulator whenever the test ends with it down, failed assertions included.
//
// The emulator is shared by other tests: ctest runs this one alone (RUN_SERIAL, bus.cmake).
// Skipped unless PUBSUB_EMULATOR_HOST and CH_PUBSUB_EMULATOR are set (scripts/services.sh).
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "bus/bus_consumer.h"
#include "bus/pubsub_change_bus.h"
#include "testing/test_util.h"
#include "tests/integration/emulator_control.h"

namespace ch {
namespace {

using ::ch::testing::EmulatorControl;
using ::ch::testing::StatusIs;
using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(BusEmulatorRestartTest, ClientRecoversWithoutARestartOfItsOwn) {
  const char* host_port = std::getenv("PUBSUB_EMULATOR_HOST");
  const char* launcher = std::getenv("CH_PUBSUB_EMULATOR");
  if (host_port == nullptr || *host_port == '\0') {
    GTEST_SKIP() << "PUBSUB_EMULATOR_HOST is not set (scripts/services.sh start pubsub)";
  }
  if (launcher == nullptr || *launcher == '\0') {
    GTEST_SKIP() << "CH_PUBSUB_EMULATOR (the emulator launcher, to restart it) is not set";
  }
  std::string hp(host_port);
  size_t colon = hp.rfind(':');
  ASSERT_NE(colon, std::string::npos) << hp;
  std::string host = hp.substr(0, colon);
  int port = std::stoi(hp.substr(colon + 1));
  EmulatorControl emulator(host, port, launcher);  // restores the emulator on every exit path
  ASSERT_TRUE(emulator.Answers()) << "the emulator at " << hp << " does not answer";

  const char* project = std::getenv("CH_TEST_PUBSUB_PROJECT");
  ASSERT_OK_AND_ASSIGN(auto bus, PubSubChangeBus::Open({.project = project ? project : "ch-test",
                                                        .connect_timeout = seconds(1),
                                                        .io_timeout = seconds(10),
                                                        .max_attempts = 3,
                                                        .initial_backoff = milliseconds(50),
                                                        .max_backoff = milliseconds(200)}));
  std::string suffix =
      fmt::format("{}-{}", getpid(), std::chrono::steady_clock::now().time_since_epoch().count());
  std::string topic = "rs-changes-" + suffix, sub = "rs-workers-" + suffix,
              dlq = "rs-dead-" + suffix;
  ASSERT_OK(bus->EnsureTopic(topic));
  ASSERT_OK(bus->EnsureSubscription(sub, topic, {.ack_deadline = seconds(30), .ordered = true}));
  ASSERT_OK(bus->EnsureTopic(dlq));

  std::mutex mu;
  std::set<std::string> handled;
  ASSERT_OK_AND_ASSIGN(auto consumer,
                       BusConsumer::Create({.bus = bus.get(),
                                            .subscription = sub,
                                            .dead_letter_topic = dlq,
                                            .pull_wait = milliseconds(200),
                                            .ack_deadline = seconds(30),
                                            .initial_backoff = milliseconds(50),
                                            .max_backoff = milliseconds(500)},
                                           [&](std::span<const Delivery> batch) {
                                             std::lock_guard lock(mu);
                                             for (const Delivery& d : batch) {
                                               handled.insert(d.message.data);
                                             }
                                             return std::vector<Status>(batch.size());
                                           }));
  auto publish = [&](std::string_view prefix) {
    std::vector<BusMessage> m;
    for (int i = 0; i < 100; ++i) {
      m.push_back({.data = fmt::format("{}-{}", prefix, i),
                   .ordering_key = fmt::format("campaign-{}", i % 5)});
    }
    return bus->Publish(topic, m);
  };
  auto wait_handled = [&](size_t n) {
    auto deadline = std::chrono::steady_clock::now() + seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (handled.size() >= n) return true;
      }
      std::this_thread::sleep_for(milliseconds(20));
    }
    return false;
  };

  ASSERT_OK(consumer->Start());
  ASSERT_OK(publish("before"));
  ASSERT_TRUE(wait_handled(100)) << "messages published before the restart were not consumed";

  // Down: every call fails with Unavailable (after its bounded retries); the consumer keeps
  // running, counting errors and backing off.
  int64_t errors_before = consumer->stats().errors;
  ASSERT_OK(emulator.Kill());
  auto down_since = std::chrono::steady_clock::now();
  EXPECT_THAT(publish("lost"), StatusIs(StatusCode::kUnavailable));
  EXPECT_THAT(bus->Pull(sub, 10, Micros(0)), StatusIs(StatusCode::kUnavailable));
  std::vector<std::string> ids = {"stale"};
  EXPECT_THAT(bus->Ack(sub, ids), StatusIs(StatusCode::kUnavailable));
  EXPECT_LT(std::chrono::steady_clock::now() - down_since, seconds(10))
      << "failing calls must give up quickly, not hang";
  while (consumer->stats().errors == errors_before &&
         std::chrono::steady_clock::now() - down_since < seconds(10)) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_GT(consumer->stats().errors, errors_before);
  EXPECT_TRUE(consumer->running());
  EXPECT_THAT(consumer->last_error(), StatusIs(StatusCode::kUnavailable));

  // Back (empty): the same objects carry on; topic and subscription are re-created on the 404s.
  ASSERT_OK(emulator.Start());
  ASSERT_OK(publish("after"));
  ASSERT_TRUE(wait_handled(200)) << "messages published after the restart were not consumed";
  consumer->Stop();
  EXPECT_GE(bus->stats().recreated, 1);
  {
    std::lock_guard lock(mu);
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(handled.contains(fmt::format("after-{}", i)));
  }
  bus->DeleteSubscription(sub).IgnoreError();
  bus->DeleteTopic(topic).IgnoreError();
  bus->DeleteTopic(dlq).IgnoreError();
}

}  // namespace
}  // namespace ch
