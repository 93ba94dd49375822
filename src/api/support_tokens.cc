#include "api/support_tokens.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <fstream>
#include <sstream>

namespace ch {
namespace {

constexpr std::string_view kPrefix = "sha256:";

std::string RawDigest(std::string_view token) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), d.data());
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

std::string Hex(std::string_view raw) {
  std::string out;
  for (unsigned char c : raw) out += fmt::format("{:02x}", c);
  return out;
}

// "sha256:<64 hex>" -> 32 raw bytes.
std::optional<std::string> ParseHash(std::string_view text) {
  if (!text.starts_with(kPrefix)) return std::nullopt;
  text.remove_prefix(kPrefix.size());
  if (text.size() != 2 * SHA256_DIGEST_LENGTH) return std::nullopt;
  std::string raw;
  for (size_t i = 0; i < text.size(); i += 2) {
    int v = 0;
    for (char c : text.substr(i, 2)) {
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
      if (d < 0) return std::nullopt;
      v = v * 16 + d;
    }
    raw += static_cast<char>(v);
  }
  return raw;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::string SupportTokens::Hash(std::string_view token) {
  return std::string(kPrefix) + Hex(RawDigest(token));
}

Result<std::string> SupportTokens::Generate() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return InternalError("support token: the random generator failed");
  }
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out += kAlphabet[(acc >> bits) & 63];
    }
  }
  if (bits > 0) out += kAlphabet[(acc << (6 - bits)) & 63];
  return out;
}

Result<SupportTokens> SupportTokens::Parse(std::string_view text, std::string_view source) {
  SupportTokens tokens;
  size_t line_no = 0;
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    ++line_no;
    std::string_view l = Trim(line);
    if (l.empty() || l.front() == '#') continue;
    size_t space = l.find_first_of(" \t");
    std::string_view hash = l.substr(0, space);
    std::optional<std::string> raw = ParseHash(hash);
    if (!raw) {
      // Do not echo the line: it may be a secret pasted by mistake.
      return InvalidArgumentError(fmt::format(
          "{} line {}: expected sha256:<64 lowercase hex digits> [label] (plain tokens are not "
          "accepted in a file; 'support-token create' writes one)",
          source, line_no));
    }
    std::string label(space == std::string_view::npos ? "" : Trim(l.substr(space)));
    tokens.entries_.push_back({std::move(*raw), std::move(label)});
  }
  return tokens;
}

Result<SupportTokens> SupportTokens::Load(const std::string& path) {
  std::ifstream f(path);
  if (!f) return NotFoundError(fmt::format("--support-tokens: cannot read '{}'", path));
  std::stringstream ss;
  ss << f.rdbuf();
  return Parse(ss.str(), fmt::format("--support-tokens {}", path));
}

Result<SupportTokens> SupportTokens::ParseEnv(std::string_view value) {
  SupportTokens tokens;
  size_t index = 0;
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view item = Trim(value.substr(0, comma));
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    ++index;
    if (item.empty()) continue;
    if (std::optional<std::string> raw = ParseHash(item)) {
      tokens.entries_.push_back({std::move(*raw), ""});
      continue;
    }
    Status added = tokens.AddPlain(item);
    if (!added.ok()) {
      return InvalidArgumentError(
          fmt::format("{}: entry {}: {}", kSupportTokensEnv, index, added.message()));
    }
  }
  return tokens;
}

Status SupportTokens::AddPlain(std::string_view token, std::string label) {
  if (token.size() < kMinSupportTokenChars) {
    return InvalidArgumentError(
        fmt::format("a support token must be at least {} characters", kMinSupportTokenChars));
  }
  entries_.push_back({RawDigest(token), std::move(label)});
  return Status::OK();
}

void SupportTokens::Merge(const SupportTokens& other) {
  entries_.insert(entries_.end(), other.entries_.begin(), other.entries_.end());
}

std::optional<std::string> SupportTokens::Check(std::string_view presented) const {
  const std::string digest = RawDigest(presented);
  const Entry* match = nullptr;
  for (const Entry& e : entries_) {
    // Every entry is compared in full, whatever matched before.
    bool equal = CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0;
    if (equal && match == nullptr) match = &e;
  }
  if (match == nullptr) return std::nullopt;
  return match->label;
}

}  // namespace ch
