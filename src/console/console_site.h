// ConsoleSite: what the support role's HTTP server answers for the web console's URLs, with no
// HTTP library in sight (the server copies the answer into its own response type).
//
//   GET /console                   -> 301 to /console/
//   GET /console/                  -> index.html
//   GET /console/<asset>           -> that embedded asset (console/console_assets.h)
//   GET /console/customers/...     -> index.html: the console is a single page that reads its
//                                     state from the URL (/console/customers/2?at=T&campaign=7),
//                                     so every path without a file extension gets index.html
//   anything else under /console/  -> 404 (a missing file with an extension, a ".." segment)
//
// Every answer carries the security headers (SecurityHeaders()): a Content-Security-Policy that
// allows only the console's own scripts, styles and API (no inline script, no other origin, no
// framing), nosniff, no referrer.
//
// Thread-safety: pure functions over immutable data.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ch {

// The mount point of the console. DO NOT CHANGE (deep links in tickets use it).
inline constexpr std::string_view kConsolePrefix = "/console";

struct ConsoleResponse {
  int status = 200;
  std::string content_type;
  // The body: an embedded asset (static storage) or a short literal.
  std::string_view body;
  // Security headers, Cache-Control, and Location for a redirect.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Return true when `path` (a URL path without query) belongs to the console: "/console" or
// anything under "/console/".
bool IsConsolePath(std::string_view path);

// Return the answer to GET `path`. REQUIRES: IsConsolePath(path).
ConsoleResponse ServeConsole(std::string_view path);

// Return the headers every console answer carries.
std::vector<std::pair<std::string, std::string>> SecurityHeaders();

// Return the Content-Type for a file name, by its extension ("app.js" -> "text/javascript;
// charset=utf-8"); "application/octet-stream" for an unknown one.
std::string_view ContentTypeFor(std::string_view file_name);

}  // namespace ch
