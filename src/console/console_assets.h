// The web console's static files (src/console/assets/), embedded into the binary at build time
// by cmake/EmbedConsoleAssets.cmake, so the binary serves the console with no file beside it.
//
// Thread-safety: immutable data; every function may be called from any thread.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace ch {

// One embedded file.
struct ConsoleAsset {
  // Relative to src/console/assets/, with '/' separators: "index.html", "js/app.js".
  const char* path;
  const unsigned char* data;
  size_t size;

  std::string_view body() const { return {reinterpret_cast<const char*>(data), size}; }
};

// Return every embedded asset, sorted by path.
std::span<const ConsoleAsset> AllConsoleAssets();

// Return the asset at `path` (relative to the assets directory, no leading '/'), or nullptr when
// there is none. Never touches the file system: "../x" and the like simply find nothing.
const ConsoleAsset* FindConsoleAsset(std::string_view path);

}  // namespace ch
