#include "console/console_site.h"

#include "console/console_assets.h"

namespace ch {
namespace {

constexpr std::string_view kIndex = "index.html";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// True when some '/'-separated segment of `rel` is "." or ".." (or empty: "a//b").
bool HasDotSegment(std::string_view rel) {
  while (!rel.empty()) {
    size_t slash = rel.find('/');
    std::string_view seg = rel.substr(0, slash);
    if (seg.empty() || seg == "." || seg == "..") return true;
    if (slash == std::string_view::npos) break;
    rel.remove_prefix(slash + 1);
  }
  return false;
}

// The last segment of `rel` names a file (has an extension), as opposed to a view of the page.
bool LooksLikeFile(std::string_view rel) {
  size_t slash = rel.rfind('/');
  std::string_view last = slash == std::string_view::npos ? rel : rel.substr(slash + 1);
  return last.find('.') != std::string_view::npos;
}

ConsoleResponse WithHeaders(int status, std::string_view type, std::string_view body) {
  ConsoleResponse r;
  r.status = status;
  r.content_type = std::string(type);
  r.body = body;
  r.headers = SecurityHeaders();
  // The assets are not content-hashed: revalidate every time (they are small, and an upgraded
  // binary must not run an old script against a new API).
  r.headers.emplace_back("Cache-Control", "no-cache");
  return r;
}

ConsoleResponse Asset(const ConsoleAsset& a) {
  return WithHeaders(200, ContentTypeFor(a.path), a.body());
}

ConsoleResponse NotFound() {
  return WithHeaders(404, "text/plain; charset=utf-8",
                     "404: no such file in the console (its pages start at /console/)\n");
}

}  // namespace

bool IsConsolePath(std::string_view path) {
  if (path == kConsolePrefix) return true;
  return path.size() > kConsolePrefix.size() &&
         path.substr(0, kConsolePrefix.size()) == kConsolePrefix &&
         path[kConsolePrefix.size()] == '/';
}

ConsoleResponse ServeConsole(std::string_view path) {
  if (path == kConsolePrefix) {
    ConsoleResponse r = WithHeaders(301, "text/plain; charset=utf-8", "moved to /console/\n");
    r.headers.emplace_back("Location", "/console/");
    return r;
  }
  if (!IsConsolePath(path)) return NotFound();
  std::string_view rel = path.substr(kConsolePrefix.size() + 1);
  const ConsoleAsset* index = FindConsoleAsset(kIndex);
  if (rel.empty()) return index ? Asset(*index) : NotFound();
  if (HasDotSegment(rel)) return NotFound();
  if (const ConsoleAsset* a = FindConsoleAsset(rel)) return Asset(*a);
  if (LooksLikeFile(rel) || index == nullptr) return NotFound();
  return Asset(*index);
}

std::vector<std::pair<std::string, std::string>> SecurityHeaders() {
  return {
      // Only the console's own files and API; no inline script or style, no plugins, no
      // framing (clickjacking), no <base> tricks, forms post nowhere else.
      {"Content-Security-Policy",
       "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      // Deep links carry a customer and a campaign: no referrer leaves the console.
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
  };
}

std::string_view ContentTypeFor(std::string_view file_name) {
  struct Type {
    std::string_view ext, type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".ico", "image/x-icon"},
  };
  for (const Type& t : kTypes) {
    if (EndsWith(file_name, t.ext)) return t.type;
  }
  return "application/octet-stream";
}

}  // namespace ch
