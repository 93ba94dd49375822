// API keys of the campaign API (`serve --roles api --api-keys FILE`; docs/api.md,
// "Authentication").
//
// A key belongs to one customer (it reads and writes that customer's campaigns only, and writes
// as `api:<key id>`), or it is a service key (the customer UI's backend: it acts for any customer
// and names the end user in `X-Actor: user:<id>`). The secret is shown once, when the key is
// created; the key file holds only its SHA-256.
//
//   secret   chk_<key id>_<64 hex digits: 32 bytes from OpenSSL's RAND_bytes>
//   key id   k<16 hex digits> (random; not secret: it is the actor and appears in logs)
//
// Key file: JSON lines, UTF-8. The first line names the format and its version; every other
// non-empty line is one key:
//
//   {"format":"campaign-history-api-keys","version":1}
//   {"created_at":"…","customer_id":7,"id":"k3f0c…","revoked_at":null,"service":false,
//    "sha256":"<64 hex>"}                                  (one line in the file)
//   {"created_at":"…","customer_id":null,"id":"k9a1d…","revoked_at":null,"service":true,
//    "sha256":"<64 hex>"}
//
// Fields may come in any order; an unknown field is refused (a new field means a new version).
//
// Why SHA-256 without salt or pepper: a secret carries 256 random bits, so a stolen file cannot be
// brute-forced and equal secrets never occur; salts and slow hashes protect low-entropy passwords.
//
// Changes (CreateApiKey, RevokeApiKey) hold an exclusive lock on `<FILE>.lock`, read the file,
// write `<FILE>.tmp.<pid>` (mode 0600), fsync it and rename it over FILE: readers see the old or
// the new file, never a partial one, and concurrent changes never lose a key.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"

namespace ch {

inline constexpr std::string_view kApiKeyFileFormat = "campaign-history-api-keys";
inline constexpr int kApiKeyFileVersion = 1;

struct ApiKey {
  std::string id;
  // The one customer the key acts for; nullopt for a service key.
  std::optional<int64_t> customer_id;
  std::string sha256_hex;  // of the whole secret, lowercase hex
  std::string created_at;  // RFC 3339 UTC
  std::optional<std::string> revoked_at;

  bool service() const { return !customer_id.has_value(); }
  std::string actor() const { return "api:" + id; }
};

struct NewApiKey {
  ApiKey key;
  std::string secret;  // shown once; stored nowhere
};

// Read and check a key file. NotFound when it does not exist; InvalidArgument (naming the line)
// when it is not a key file of a version this build reads.
Result<std::vector<ApiKey>> ReadApiKeyFile(const std::string& path);

// Add a new key to `path` (created, mode 0600, when missing) and return it with its secret.
// `customer_id` nullopt makes a service key. REQUIRES: customer_id, when given, > 0.
Result<NewApiKey> CreateApiKey(const std::string& path, std::optional<int64_t> customer_id,
                               Timestamp now);

// Mark key `id` revoked (it authenticates nothing from then on). NotFound for an unknown id;
// FailedPrecondition when already revoked.
Status RevokeApiKey(const std::string& path, std::string_view id, Timestamp now);

// The keys a server accepts, looked up by the key id inside a secret. Thread-safe. A keyring
// loaded from a file re-reads it (at most once a second) when it changed, so keys created or
// revoked while the server runs take effect within a second or two; a file that became
// unreadable or invalid keeps the keys last loaded (and logs why).
class ApiKeyring {
 public:
  static Result<std::shared_ptr<ApiKeyring>> Load(const std::string& path);
  static std::shared_ptr<ApiKeyring> FromKeys(std::vector<ApiKey> keys);

  struct Refusal {
    std::string reason;  // metric label: malformed, unknown_key, wrong_secret, revoked
    std::string key_id;  // the key's id when the secret named an existing key
    Status status;       // Unauthenticated, with a message for the client (never the secret)
  };
  // The key `secret` belongs to, or why it is refused.
  std::optional<ApiKey> Authenticate(std::string_view secret, Refusal* refusal) const;

  size_t size() const;

 private:
  using KeyMap = std::unordered_map<std::string, ApiKey>;
  ApiKeyring(std::string path, std::shared_ptr<const KeyMap> keys);
  std::shared_ptr<const KeyMap> Current() const;

  const std::string path_;
  mutable std::mutex mu_;
  mutable std::shared_ptr<const KeyMap> keys_;  // guarded by mu_
  mutable int64_t last_check_ms_ = 0;           // guarded by mu_
  mutable std::string file_stamp_;              // guarded by mu_: inode, size, mtime
};

// The lowercase hex SHA-256 of `data`.
std::string Sha256Hex(std::string_view data);

}  // namespace ch
