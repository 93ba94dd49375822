#include "testing/reference_generator.h"

#include <fmt/format.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace ch::testing {
namespace {

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Return the last `max_bytes` of the file at `path` ("" when it cannot be read).
std::string Tail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string s = text.str();
  return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
}

}  // namespace

std::string ReferenceGeneratorPath() {
  const char* path = std::getenv("CH_REFERENCE_GENERATOR");
  return path != nullptr ? path : "";
}

Status RunReferenceGenerator(const ReferenceRun& run, const std::string& out) {
  const std::string err = out + ".stderr";
  const std::string cmd = fmt::format("{} {} {} --out {}", run.interpreter,
                                      ShellQuote(run.generator), run.args, ShellQuote(out));
  const int status = std::system(fmt::format("{} 2>{}", cmd, ShellQuote(err)).c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = status == -1          ? "could not be started"
                      : WIFSIGNALED(status) ? fmt::format("died of signal {}", WTERMSIG(status))
                                            : fmt::format("exited {}", WEXITSTATUS(status));
    return InternalError(
        fmt::format("reference generator failed ({}): {}\n{}", how, cmd, Tail(err, 1000)));
  }
  std::error_code ec;
  if (std::filesystem::file_size(out, ec) == 0 || ec) {
    return InternalError(
        fmt::format("reference generator wrote nothing to {}: {}\n{}", out, cmd, Tail(err, 1000)));
  }
  return Status::OK();
}

}  // namespace ch::testing
