#include "common/timed_mutex.h"

#include <atomic>
#include <thread>
#include <vector>

#include "testing/test_util.h"

namespace ch {
namespace {

using namespace std::chrono_literals;

TEST(TimedMutexTest, ATimedLockTimesOutWhileHeldAndSucceedsOnceFree) {
  TimedMutex mu;
  std::unique_lock<TimedMutex> held(mu);
  std::atomic<bool> got{true};
  std::thread([&] { got = mu.try_lock_for(20ms); }).join();
  EXPECT_FALSE(got);
  EXPECT_FALSE(mu.try_lock());
  held.unlock();
  std::unique_lock<TimedMutex> again(mu, std::defer_lock);
  EXPECT_TRUE(again.try_lock_for(1ms));
}

TEST(TimedMutexTest, AWaiterGetsTheLockWhenItIsReleased) {
  TimedMutex mu;
  std::unique_lock<TimedMutex> held(mu);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    got = mu.try_lock_for(10s);
    if (got) mu.unlock();
  });
  std::this_thread::sleep_for(5ms);
  held.unlock();
  waiter.join();
  EXPECT_TRUE(got);
}

// Many threads incrementing under the lock: no lost update (TSan also checks the ordering).
TEST(TimedMutexTest, ExcludesEveryOtherHolder) {
  TimedMutex mu;
  int counter = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (i % 2 == 0) {
          std::lock_guard<TimedMutex> l(mu);
          ++counter;
        } else {
          std::unique_lock<TimedMutex> l(mu, std::defer_lock);
          ASSERT_TRUE(l.try_lock_for(10s));
          ++counter;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, 4000);
}

}  // namespace
}  // namespace ch
