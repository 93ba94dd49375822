#include "console/console_assets.h"

#include <algorithm>

namespace ch {

const ConsoleAsset* FindConsoleAsset(std::string_view path) {
  std::span<const ConsoleAsset> all = AllConsoleAssets();
  auto it = std::lower_bound(all.begin(), all.end(), path,
                             [](const ConsoleAsset& a, std::string_view p) { return a.path < p; });
  if (it == all.end() || std::string_view(it->path) != path) return nullptr;
  return &*it;
}

}  // namespace ch
