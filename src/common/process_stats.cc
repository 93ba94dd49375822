#include "common/process_stats.h"

#include <fstream>
#include <string>

namespace ch {
namespace {
int64_t ReadStatusKib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      return std::stoll(line.substr(key.size())) * 1024;
    }
  }
  return 0;
}
}  // namespace

int64_t PeakRssBytes() { return ReadStatusKib("VmHWM:"); }
int64_t CurrentRssBytes() { return ReadStatusKib("VmRSS:"); }

}  // namespace ch
