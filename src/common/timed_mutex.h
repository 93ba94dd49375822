// TimedMutex: a mutex whose lock can time out, for the writer locks of the campaign stores.
//
// TimedMutex would do, but libstdc++ implements its try_lock_for with
// pthread_mutex_clocklock, which ThreadSanitizer (clang 14) does not intercept: every timed lock
// looks unlocked to it and each unlock is reported as "unlock of an unlocked mutex", which hides
// real findings. This one is built on std::mutex and std::condition_variable, which every tool
// understands. It meets the standard's TimedLockable requirements (std::unique_lock works).
//
// Thread-safety: like TimedMutex; not recursive.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace ch {

class TimedMutex {
 public:
  TimedMutex() = default;
  TimedMutex(const TimedMutex&) = delete;
  TimedMutex& operator=(const TimedMutex&) = delete;

  void lock() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return !locked_; });
    locked_ = true;
  }

  bool try_lock() {
    std::lock_guard<std::mutex> l(mu_);
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  template <class Rep, class Period>
  bool try_lock_for(const std::chrono::duration<Rep, Period>& timeout) {
    return try_lock_until(std::chrono::steady_clock::now() + timeout);
  }

  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::unique_lock<std::mutex> l(mu_);
    if (!cv_.wait_until(l, deadline, [this] { return !locked_; })) return false;
    locked_ = true;
    return true;
  }

  void unlock() {
    {
      std::lock_guard<std::mutex> l(mu_);
      locked_ = false;
    }
    cv_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool locked_ = false;
};

}  // namespace ch
