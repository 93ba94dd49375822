#include "api/response_cache.h"

#include <brotli/encode.h>
#include <zlib.h>

#include <cctype>
#include <utility>

#include "common/text.h"

namespace ch {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// False for "q=0", "q=0.0", "q=0.000"; true otherwise (including a missing or malformed q).
bool Accepted(std::string_view params) {
  while (!params.empty()) {
    size_t semi = params.find(';');
    std::string_view p = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    if (p.empty() || (p[0] != 'q' && p[0] != 'Q')) continue;
    std::string_view rest = Trim(p.substr(1));
    if (rest.empty() || rest[0] != '=') continue;
    std::string_view v = Trim(rest.substr(1));
    if (v.empty() || v[0] != '0') return true;
    for (char ch : v.substr(1)) {
      if (ch != '.' && ch != '0') return true;
    }
    return false;
  }
  return true;
}

std::string Gzip(std::string_view data) {
  z_stream z{};
  // 15 + 16: a gzip wrapper, 32 KiB window.
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : std::string();
}

std::string Brotli(std::string_view data) {
  size_t size = BrotliEncoderMaxCompressedSize(data.size());
  if (size == 0) return {};
  std::string out(size, '\0');
  if (!BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, data.size(),
                             reinterpret_cast<const uint8_t*>(data.data()), &size,
                             reinterpret_cast<uint8_t*>(out.data()))) {
    return {};
  }
  out.resize(size);
  return out;
}

}  // namespace

ContentCoding PreferredCoding(std::string_view accept_encoding) {
  bool gzip = false, brotli = false;
  while (!accept_encoding.empty()) {
    size_t comma = accept_encoding.find(',');
    std::string_view item = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view name = Trim(item.substr(0, semi));
    bool ok = semi == std::string_view::npos || Accepted(item.substr(semi + 1));
    if (EqualsNoCase(name, "br")) brotli = ok;
    if (EqualsNoCase(name, "gzip") || EqualsNoCase(name, "x-gzip")) gzip = ok;
    if (name == "*" && ok) gzip = brotli = true;
  }
  return brotli ? ContentCoding::kBrotli : gzip ? ContentCoding::kGzip : ContentCoding::kIdentity;
}

std::string_view ContentCodingName(ContentCoding c) {
  switch (c) {
    case ContentCoding::kGzip:
      return "gzip";
    case ContentCoding::kBrotli:
      return "br";
    case ContentCoding::kIdentity:
      break;
  }
  return "";
}

std::string Compress(ContentCoding c, std::string_view data) {
  switch (c) {
    case ContentCoding::kGzip:
      return Gzip(data);
    case ContentCoding::kBrotli:
      return Brotli(data);
    case ContentCoding::kIdentity:
      break;
  }
  return std::string(data);
}

// ---- CachedBody ---------------------------------------------------------------------------------

const CachedBody::Form& CachedBody::FormFor(ContentCoding c) const {
  Form& f = c == ContentCoding::kGzip ? gzip_ : brotli_;
  std::call_once(f.once, [&] { f.bytes = Compress(c, identity_); });
  return f;
}

const std::string& CachedBody::Get(ContentCoding c) const {
  if (c == ContentCoding::kIdentity) return identity_;
  const Form& f = FormFor(c);
  return f.bytes.empty() ? identity_ : f.bytes;
}

ContentCoding CachedBody::Actual(ContentCoding c) const {
  if (c == ContentCoding::kIdentity || FormFor(c).bytes.empty()) return ContentCoding::kIdentity;
  return c;
}

// ---- ResponseCache ------------------------------------------------------------------------------

std::shared_ptr<const CachedBody> ResponseCache::Find(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.body;
}

std::shared_ptr<const CachedBody> ResponseCache::Put(const std::string& key, std::string body,
                                                     std::string validity) {
  auto entry = std::make_shared<const CachedBody>(std::move(body), std::move(validity));
  const size_t bytes = key.size() + entry->Get(ContentCoding::kIdentity).size() +
                       entry->validity().size() + sizeof(Entry) + sizeof(CachedBody);
  if (bytes > max_bytes_ / 4) return entry;
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(key); it != entries_.end()) EraseLocked(it);
  lru_.push_front(key);
  entries_[key] = Entry{entry, bytes, false, false, lru_.begin()};
  bytes_ += bytes;
  EvictLocked();
  return entry;
}

void ResponseCache::Served(const std::string& key, const CachedBody& body, ContentCoding c) {
  if (c == ContentCoding::kIdentity) return;
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.body.get() != &body) return;
  bool& counted = c == ContentCoding::kGzip ? it->second.counted_gzip : it->second.counted_brotli;
  if (counted) return;
  counted = true;
  // Get(c) was called by the caller before Served, so the form is made and immutable.
  const size_t extra = body.Get(c).size();
  it->second.bytes += extra;
  bytes_ += extra;
  EvictLocked();
}

void ResponseCache::CountHit() {
  std::lock_guard lock(mu_);
  ++hits_;
}

ResponseCache::Stats ResponseCache::stats() const {
  std::lock_guard lock(mu_);
  return {hits_, static_cast<int64_t>(entries_.size()), bytes_};
}

void ResponseCache::EraseLocked(std::map<std::string, Entry>::iterator it) {
  bytes_ -= it->second.bytes;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

void ResponseCache::EvictLocked() {
  while (bytes_ > max_bytes_ && !lru_.empty()) EraseLocked(entries_.find(lru_.back()));
}

}  // namespace ch
