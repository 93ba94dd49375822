// ResponseCache: rendered response bodies that can be served again as they are, with their gzip
// and brotli forms made once, on first demand. The support API keeps its final as-of answers here
// (support_api.cc, HandleAsOf): a 2,000-campaign answer is ~2 MB of JSON, and rendering it (and
// copying its snapshots out of the as-of cache) for every request cost more than sending it.
//
// The cache knows nothing of what a body means: the caller decides what is final and what a key
// holds, and checks on each hit that the body still holds (`validity`, e.g. the completeness it
// was rendered with). Memory is bounded by `max_bytes` over the bodies and their compressed forms;
// the least recently used entries go first. A body larger than max_bytes / 4 is not kept.
//
// Thread-safety: every method from any thread. A CachedBody is immutable apart from its lazily
// made compressed forms, which are made once (std::call_once) and then only read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace ch {

enum class ContentCoding { kIdentity, kGzip, kBrotli };

// The coding to answer with for an Accept-Encoding header: brotli if accepted, else gzip, else
// identity. A coding given "q=0" is refused; "*" accepts both.
ContentCoding PreferredCoding(std::string_view accept_encoding);
// "gzip", "br" or "" (identity).
std::string_view ContentCodingName(ContentCoding c);

// Compress `data` with gzip (RFC 1952, zlib level 6) or brotli (quality 5: at brotli's default
// of 11 a 1.4 MB body took seconds). Returns an empty string if the compressor fails.
std::string Compress(ContentCoding c, std::string_view data);

class CachedBody {
 public:
  CachedBody(std::string identity, std::string validity)
      : identity_(std::move(identity)), validity_(std::move(validity)) {}
  // The body in coding `c` (compressing it on first use). Identity if compression failed.
  const std::string& Get(ContentCoding c) const;
  // The coding Get(c) actually returns.
  ContentCoding Actual(ContentCoding c) const;
  const std::string& validity() const { return validity_; }

 private:
  struct Form {
    std::once_flag once;
    std::string bytes;
  };
  const Form& FormFor(ContentCoding c) const;

  const std::string identity_;
  const std::string validity_;
  mutable Form gzip_, brotli_;
};

class ResponseCache {
 public:
  explicit ResponseCache(size_t max_bytes = 64 << 20) : max_bytes_(max_bytes) {}

  // The entry under `key`, or null. The caller checks its validity() before serving it (and
  // replaces a stale one with Put).
  std::shared_ptr<const CachedBody> Find(const std::string& key);
  // Keep `body` under `key` (replacing an older entry), valid while the caller's validity equals
  // `validity`. Returns the entry to serve from, kept or not.
  std::shared_ptr<const CachedBody> Put(const std::string& key, std::string body,
                                        std::string validity);
  // Account for a compressed form made after Put (CachedBody::Get does not know its cache).
  void Served(const std::string& key, const CachedBody& body, ContentCoding c);

  // Count an entry served from the cache (the caller decides what a hit is).
  void CountHit();

  struct Stats {
    int64_t hits = 0;
    int64_t entries = 0;
    size_t bytes = 0;
  };
  Stats stats() const;

 private:
  struct Entry {
    std::shared_ptr<const CachedBody> body;
    size_t bytes = 0;
    bool counted_gzip = false, counted_brotli = false;
    std::list<std::string>::iterator lru;
  };
  void EraseLocked(std::map<std::string, Entry>::iterator it);
  void EvictLocked();

  const size_t max_bytes_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;  // guarded by mu_
  std::list<std::string> lru_;            // most recent first; guarded by mu_
  size_t bytes_ = 0;                      // guarded by mu_
  int64_t hits_ = 0;                      // guarded by mu_
};

}  // namespace ch
