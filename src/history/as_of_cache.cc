#include "history/as_of_cache.h"

namespace ch {
namespace {

size_t SizeOf(const std::vector<HistoryRecord>& records) {
  size_t n = sizeof(records);
  for (const HistoryRecord& r : records) n += sizeof(r) + r.snapshot.size() + r.actor.size();
  return n;
}

}  // namespace

AsOfCachingHistoryStore::AsOfCachingHistoryStore(HistoryStore& inner, size_t max_bytes)
    : inner_(inner), max_bytes_(max_bytes) {}

AsOfCachingHistoryStore::AsOfCachingHistoryStore(std::unique_ptr<HistoryStore> owned,
                                                 size_t max_bytes)
    : owned_(std::move(owned)), inner_(*owned_), max_bytes_(max_bytes) {}

int64_t AsOfCachingHistoryStore::hits() const {
  std::lock_guard lock(mu_);
  return hits_;
}

Result<std::vector<HistoryRecord>> AsOfCachingHistoryStore::AsOf(int64_t customer_id,
                                                                 Timestamp at) {
  const Key key{customer_id, at};
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second.lru);
      ++hits_;
      return *it->second.records;
    }
  }
  ASSIGN_OR_RETURN(Completeness c, inner_.GetCompleteness());
  ASSIGN_OR_RETURN(std::vector<HistoryRecord> records, inner_.AsOf(customer_id, at));
  // Final only strictly before complete_through (a later transaction may share its microsecond).
  if (!c.complete_through || at >= *c.complete_through) return records;
  size_t bytes = SizeOf(records);
  if (bytes > max_bytes_) return records;
  std::lock_guard lock(mu_);
  if (entries_.contains(key)) return records;
  lru_.push_front(key);
  entries_[key] = {std::make_shared<const std::vector<HistoryRecord>>(records), bytes,
                   lru_.begin()};
  bytes_ += bytes;
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    auto victim = entries_.find(lru_.back());
    bytes_ -= victim->second.bytes;
    entries_.erase(victim);
    lru_.pop_back();
  }
  return records;
}

void AsOfCachingHistoryStore::Forget(int64_t customer_id) {
  std::lock_guard lock(mu_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (customer_id != 0 && it->first.first != customer_id) {
      ++it;
      continue;
    }
    bytes_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    it = entries_.erase(it);
  }
}

Result<int64_t> AsOfCachingHistoryStore::Append(std::span<const HistoryRecord> records) {
  Result<int64_t> r = inner_.Append(records);
  Forget(0);
  return r;
}

// Retention through this store drops the customer's cached answers too (a purge keeps the
// answers at or after its horizon, but an erase removes them all; dropping both is simplest).
Result<int64_t> AsOfCachingHistoryStore::PurgeCustomer(int64_t customer_id, Timestamp before,
                                                       std::string_view actor) {
  Result<int64_t> r = inner_.PurgeCustomer(customer_id, before, actor);
  Forget(customer_id);
  return r;
}

Result<int64_t> AsOfCachingHistoryStore::EraseCustomer(int64_t customer_id,
                                                       std::string_view actor) {
  Result<int64_t> r = inner_.EraseCustomer(customer_id, actor);
  Forget(customer_id);
  return r;
}

}  // namespace ch
