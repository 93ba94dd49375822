// SupportTokens: the bearer tokens that let support staff read the support API (the `support`
// role). Only SHA-256 hashes are kept in memory and in files; a presented token is hashed and
// compared with every known hash in constant time. docs/support-api.md ("Authentication").
//
// The tokens file (`--support-tokens FILE`): one token per line as
//
//   sha256:<64 lowercase hex digits of SHA-256(token)>  [label]
//
// with blank lines and lines starting with '#' ignored; the label (any text after the hash) names
// the holder in logs ("support: request by token 'alice'"). `campaign-history support-token
// create --support-tokens FILE [--label NAME]` appends a new one and prints its secret once.
// The environment variable CAMPAIGN_HISTORY_SUPPORT_TOKENS holds comma-separated entries, each
// either such a hash or a plain token (at least 16 characters), for deployments that inject
// secrets through the environment.
//
// Thread-safety: const methods are safe from any thread.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ch {

inline constexpr const char* kSupportTokensEnv = "CAMPAIGN_HISTORY_SUPPORT_TOKENS";
// A plain token must be at least this long (a generated one is 43 characters).
inline constexpr size_t kMinSupportTokenChars = 16;

class SupportTokens {
 public:
  // Parse a tokens file's text. Fails with InvalidArgument naming `source` and the line.
  static Result<SupportTokens> Parse(std::string_view text, std::string_view source);
  // Read and parse the file at `path` (NotFound when it is missing).
  static Result<SupportTokens> Load(const std::string& path);
  // Parse the environment variable's value (comma-separated hashes or plain tokens).
  static Result<SupportTokens> ParseEnv(std::string_view value);

  // Return "sha256:<hex>" of `token`.
  static std::string Hash(std::string_view token);
  // Return a new random token (32 bytes from the OS's CSPRNG, URL-safe base64, 43 characters).
  static Result<std::string> Generate();

  // Add a plain token (kept only as its hash). Fails with InvalidArgument when too short.
  Status AddPlain(std::string_view token, std::string label = "");
  // Add every token of `other`.
  void Merge(const SupportTokens& other);

  // Return the label of the token that matches `presented` ("" for an unlabeled one), or nullopt
  // when none does. Compares with every hash in constant time (no early exit).
  std::optional<std::string> Check(std::string_view presented) const;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string digest;  // 32 raw bytes
    std::string label;
  };
  std::vector<Entry> entries_;
};

}  // namespace ch
