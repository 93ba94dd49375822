#include "testing/test_util.h"

#include <unistd.h>

#include <cstdlib>
#include <random>

namespace ch::testing {

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    auto p = base / ("ch-test-" + std::to_string(getpid()) + "-" + std::to_string(rd()));
    std::error_code ec;
    if (std::filesystem::create_directory(p, ec)) {
      path_ = p;
      return;
    }
  }
  ADD_FAILURE() << "cannot create a temporary directory";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty() && std::getenv("CH_KEEP_TEMP") == nullptr) {
    std::filesystem::remove_all(path_, ec);
  }
}

std::string BinaryDir() {
  const char* v = std::getenv("CH_BINARY_DIR");
  return v ? v : "";
}
std::string SourceDir() {
  const char* v = std::getenv("CH_SOURCE_DIR");
  return v ? v : "";
}

}  // namespace ch::testing
