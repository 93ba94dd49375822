#include "api/api_keys.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/text.h"
#include "common/time_util.h"

namespace ch {
namespace {

using json = nlohmann::json;

constexpr std::string_view kSecretPrefix = "chk_";
constexpr size_t kIdHexDigits = 16;
constexpr size_t kSecretBytes = 32;

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 15];
  }
  return out;
}

bool IsLowerHex(std::string_view s) {
  return s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Result<std::string> RandomHex(size_t bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), static_cast<int>(buf.size())) != 1) {
    return InternalError("api keys: OpenSSL RAND_bytes failed (no entropy source?)");
  }
  return Hex(buf.data(), buf.size());
}

std::string Errno(int err) { return std::strerror(err); }

// ---- file format --------------------------------------------------------------------------------

json KeyToJson(const ApiKey& k) {
  json j = {{"id", k.id},
            {"customer_id", k.customer_id ? json(*k.customer_id) : json(nullptr)},
            {"service", k.service()},
            {"sha256", k.sha256_hex},
            {"created_at", k.created_at},
            {"revoked_at", k.revoked_at ? json(*k.revoked_at) : json(nullptr)}};
  return j;
}

Result<ApiKey> KeyFromJson(const json& j) {
  if (!j.is_object()) return InvalidArgumentError("a key must be a JSON object");
  ApiKey k;
  bool service = false, has_service = false;
  for (const auto& [name, v] : j.items()) {
    if (name == "id" && v.is_string()) {
      k.id = v.get<std::string>();
    } else if (name == "customer_id" && (v.is_null() || v.is_number_integer())) {
      if (!v.is_null()) k.customer_id = v.get<int64_t>();
    } else if (name == "service" && v.is_boolean()) {
      service = v.get<bool>();
      has_service = true;
    } else if (name == "sha256" && v.is_string()) {
      k.sha256_hex = v.get<std::string>();
    } else if (name == "created_at" && v.is_string()) {
      k.created_at = v.get<std::string>();
    } else if (name == "revoked_at" && (v.is_null() || v.is_string())) {
      if (!v.is_null()) k.revoked_at = v.get<std::string>();
    } else {
      return InvalidArgumentError(
          fmt::format("{}: unknown field or wrong type ({})", Excerpt(name), v.type_name()));
    }
  }
  if (k.id.size() != 1 + kIdHexDigits || k.id[0] != 'k' || !IsLowerHex(k.id.substr(1))) {
    return InvalidArgumentError(
        fmt::format("id: must be k<16 hex digits> (got '{}')", Excerpt(k.id)));
  }
  if (k.sha256_hex.size() != 64 || !IsLowerHex(k.sha256_hex)) {
    return InvalidArgumentError("sha256: must be 64 lowercase hex digits");
  }
  if (!has_service || service != !k.customer_id.has_value()) {
    return InvalidArgumentError(
        "service: must be true with customer_id null, or false with a customer_id");
  }
  if (k.customer_id && *k.customer_id <= 0) {
    return InvalidArgumentError("customer_id: must be positive");
  }
  return k;
}

Result<std::vector<ApiKey>> ParseKeyFile(const std::string& path, std::istream& in) {
  std::vector<ApiKey> keys;
  std::string line;
  int number = 0;
  bool header = false;
  while (std::getline(in, line)) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto where = [&](std::string_view what) {
      return InvalidArgumentError(fmt::format("{}: line {}: {}", path, number, what));
    };
    if (j.is_discarded()) return where("malformed JSON");
    if (!header) {
      if (!j.is_object() || j.value("format", "") != kApiKeyFileFormat) {
        return where(fmt::format(
            "not an API key file (the first line must be {{\"format\":\"{}\",\"version\":{}}})",
            kApiKeyFileFormat, kApiKeyFileVersion));
      }
      if (!j.contains("version") || j["version"] != kApiKeyFileVersion) {
        return where(fmt::format("format version {} is not supported (this build reads version {})",
                                 j.contains("version") ? j["version"].dump() : "missing",
                                 kApiKeyFileVersion));
      }
      header = true;
      continue;
    }
    Result<ApiKey> key = KeyFromJson(j);
    if (!key.ok()) return where(key.status().message());
    for (const ApiKey& k : keys) {
      if (k.id == key->id) return where(fmt::format("key {} appears twice", k.id));
    }
    keys.push_back(std::move(*key));
  }
  if (!header) return InvalidArgumentError(fmt::format("{}: empty; not an API key file", path));
  return keys;
}

// ---- atomic update ------------------------------------------------------------------------------

// An exclusive flock on `<path>.lock`, released on destruction.
class FileLock {
 public:
  static Result<std::unique_ptr<FileLock>> Acquire(const std::string& path) {
    std::string lock_path = path + ".lock";
    int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      int err = errno;
      return FailedPreconditionError(
          fmt::format("{}: cannot create the lock file ({})", lock_path, Errno(err)));
    }
    while (::flock(fd, LOCK_EX) != 0) {
      if (errno != EINTR) {
        int err = errno;
        ::close(fd);
        return InternalError(fmt::format("{}: flock failed ({})", lock_path, Errno(err)));
      }
    }
    return std::unique_ptr<FileLock>(new FileLock(fd));
  }
  ~FileLock() { ::close(fd_); }

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

Result<std::vector<ApiKey>> ReadOrEmpty(const std::string& path) {
  Result<std::vector<ApiKey>> keys = ReadApiKeyFile(path);
  if (keys.status().code() == StatusCode::kNotFound) return std::vector<ApiKey>{};
  return keys;
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return InternalError(Errno(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

Status ReplaceFile(const std::string& path, const std::vector<ApiKey>& keys) {
  std::string text = json{{"format", kApiKeyFileFormat}, {"version", kApiKeyFileVersion}}.dump();
  text += '\n';
  for (const ApiKey& k : keys) text += KeyToJson(k).dump() + '\n';
  std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    int err = errno;
    return FailedPreconditionError(fmt::format("{}: cannot write ({})", tmp, Errno(err)));
  }
  Status written = WriteAll(fd, text);
  if (written.ok() && ::fsync(fd) != 0) written = InternalError(Errno(errno));
  ::close(fd);
  if (written.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    written = FailedPreconditionError(Errno(errno));
  }
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    return FailedPreconditionError(
        fmt::format("{}: cannot update the key file ({})", path, written.message()));
  }
  return Status::OK();
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), md.data(), &n, EVP_sha256(), nullptr);
  return Hex(md.data(), n);
}

Result<std::vector<ApiKey>> ReadApiKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) return NotFoundError(fmt::format("{}: no such key file", path));
    return FailedPreconditionError(fmt::format("{}: cannot read ({})", path, Errno(err)));
  }
  return ParseKeyFile(path, in);
}

Result<NewApiKey> CreateApiKey(const std::string& path, std::optional<int64_t> customer_id,
                               Timestamp now) {
  if (customer_id && *customer_id <= 0) {
    return InvalidArgumentError(
        fmt::format("--customer: must be a positive id (got {})", *customer_id));
  }
  ASSIGN_OR_RETURN(auto lock, FileLock::Acquire(path));
  ASSIGN_OR_RETURN(std::vector<ApiKey> keys, ReadOrEmpty(path));
  NewApiKey made;
  for (bool unique = false; !unique;) {
    ASSIGN_OR_RETURN(std::string id_hex, RandomHex(kIdHexDigits / 2));
    made.key.id = "k" + id_hex;
    unique = true;
    for (const ApiKey& k : keys) unique = unique && k.id != made.key.id;
  }
  ASSIGN_OR_RETURN(std::string secret_hex, RandomHex(kSecretBytes));
  made.secret = fmt::format("{}{}_{}", kSecretPrefix, made.key.id, secret_hex);
  made.key.customer_id = customer_id;
  made.key.sha256_hex = Sha256Hex(made.secret);
  made.key.created_at = FormatTimestamp(now);
  keys.push_back(made.key);
  RETURN_IF_ERROR(ReplaceFile(path, keys));
  return made;
}

Status RevokeApiKey(const std::string& path, std::string_view id, Timestamp now) {
  ASSIGN_OR_RETURN(auto lock, FileLock::Acquire(path));
  ASSIGN_OR_RETURN(std::vector<ApiKey> keys, ReadApiKeyFile(path));
  for (ApiKey& k : keys) {
    if (k.id != id) continue;
    if (k.revoked_at) {
      return FailedPreconditionError(fmt::format("key {} was revoked at {}", k.id, *k.revoked_at));
    }
    k.revoked_at = FormatTimestamp(now);
    return ReplaceFile(path, keys);
  }
  return NotFoundError(fmt::format("no key '{}' in {}", Excerpt(id), path));
}

// ---- keyring ------------------------------------------------------------------------------------

namespace {

std::shared_ptr<const std::unordered_map<std::string, ApiKey>> ToMap(std::vector<ApiKey> keys) {
  auto map = std::make_shared<std::unordered_map<std::string, ApiKey>>();
  for (ApiKey& k : keys) {
    std::string id = k.id;
    map->emplace(std::move(id), std::move(k));
  }
  return map;
}

// Identifies a version of the file: inode, size and modification time (ns).
std::string FileStamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "missing";
  return fmt::format("{}:{}:{}.{}", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

ApiKeyring::ApiKeyring(std::string path, std::shared_ptr<const KeyMap> keys)
    : path_(std::move(path)), keys_(std::move(keys)) {}

Result<std::shared_ptr<ApiKeyring>> ApiKeyring::Load(const std::string& path) {
  std::string stamp = FileStamp(path);
  ASSIGN_OR_RETURN(std::vector<ApiKey> keys, ReadApiKeyFile(path));
  auto ring = std::shared_ptr<ApiKeyring>(new ApiKeyring(path, ToMap(std::move(keys))));
  ring->file_stamp_ = stamp;
  ring->last_check_ms_ = SteadyMillis();
  return ring;
}

std::shared_ptr<ApiKeyring> ApiKeyring::FromKeys(std::vector<ApiKey> keys) {
  return std::shared_ptr<ApiKeyring>(new ApiKeyring("", ToMap(std::move(keys))));
}

std::shared_ptr<const ApiKeyring::KeyMap> ApiKeyring::Current() const {
  std::lock_guard lock(mu_);
  if (path_.empty()) return keys_;
  int64_t now = SteadyMillis();
  if (now - last_check_ms_ < 1000) return keys_;
  last_check_ms_ = now;
  std::string stamp = FileStamp(path_);
  if (stamp == file_stamp_) return keys_;
  Result<std::vector<ApiKey>> keys = ReadApiKeyFile(path_);
  if (!keys.ok()) {
    spdlog::error("api keys: keeping the {} keys loaded before: {}", keys_->size(),
                  keys.status().ToString());
  } else {
    keys_ = ToMap(std::move(*keys));
    spdlog::info("api keys: reloaded {} ({} keys)", path_, keys_->size());
  }
  file_stamp_ = stamp;
  return keys_;
}

size_t ApiKeyring::size() const { return Current()->size(); }

std::optional<ApiKey> ApiKeyring::Authenticate(std::string_view secret, Refusal* refusal) const {
  auto refuse = [&](std::string reason, std::string key_id, std::string message) {
    if (refusal) *refusal = {std::move(reason), std::move(key_id), UnauthenticatedError(message)};
    return std::nullopt;
  };
  // chk_<id>_<64 hex>
  const size_t id_len = 1 + kIdHexDigits;
  const size_t total = kSecretPrefix.size() + id_len + 1 + kSecretBytes * 2;
  if (secret.size() != total || !secret.starts_with(kSecretPrefix) ||
      secret[kSecretPrefix.size() + id_len] != '_') {
    return refuse("malformed", "", "Authorization: not an API key of this server (chk_...)");
  }
  std::string id(secret.substr(kSecretPrefix.size(), id_len));
  auto keys = Current();
  auto it = keys->find(id);
  if (it == keys->end()) return refuse("unknown_key", "", "Authorization: invalid API key");
  std::string digest = Sha256Hex(secret);
  const ApiKey& key = it->second;
  if (digest.size() != key.sha256_hex.size() ||
      CRYPTO_memcmp(digest.data(), key.sha256_hex.data(), digest.size()) != 0) {
    return refuse("wrong_secret", key.id, "Authorization: invalid API key");
  }
  if (key.revoked_at) {
    return refuse("revoked", key.id, fmt::format("Authorization: key {} was revoked", key.id));
  }
  return key;
}

}  // namespace ch
