#include "campaign/in_memory_campaign_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace ch {

class InMemoryCampaignStore::Transaction final : public CampaignTransaction {
 public:
  Transaction(InMemoryCampaignStore& store, std::unique_lock<TimedMutex> lock,
              Timestamp commit_time, std::string transaction_id)
      : store_(store),
        lock_(std::move(lock)),
        commit_time_(commit_time),
        transaction_id_(std::move(transaction_id)),
        max_id_(store.state_.max_id),
        previous_commit_time_(store.last_commit_time_),
        previous_transaction_id_(store.last_transaction_id_) {}

  ~Transaction() override {
    if (done_) return;
    // A rollback gives back its stamp, as SQLite's does (the stamp is stored in the database):
    // both stores then number transactions and pick commit times alike.
    store_.last_commit_time_ = previous_commit_time_;
    store_.last_transaction_id_ = previous_transaction_id_;
  }

  Timestamp commit_time() const override { return commit_time_; }
  const std::string& transaction_id() const override { return transaction_id_; }

  Result<std::optional<Campaign>> Get(int64_t id) override {
    RETURN_IF_ERROR(CheckOpen());
    const Campaign* c = Current(id);
    if (c == nullptr) return std::optional<Campaign>();
    return std::optional<Campaign>(*c);
  }

  Result<int64_t> CountCustomer(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    return static_cast<int64_t>(CustomerIds(customer_id).size());
  }

  Result<std::vector<Campaign>> List(int64_t customer_id) override {
    RETURN_IF_ERROR(CheckOpen());
    std::vector<Campaign> out;
    for (int64_t id : CustomerIds(customer_id)) out.push_back(*Current(id));
    std::sort(out.begin(), out.end(), [](const Campaign& a, const Campaign& b) {
      return std::tie(a.priority, a.id) < std::tie(b.priority, b.id);
    });
    return out;
  }

  Result<int64_t> AllocateId() override {
    RETURN_IF_ERROR(CheckOpen());
    return ++max_id_;
  }

  Status Insert(const Campaign& row) override {
    RETURN_IF_ERROR(CheckOpen());
    if (row.id <= 0)
      return InvalidArgumentError(fmt::format("id: must be positive (got {})", row.id));
    if (Current(row.id) != nullptr) {
      return AlreadyExistsError(fmt::format("campaign {} already exists", row.id));
    }
    if (store_.state_.used_ids.count(row.id) > 0 || new_ids_.count(row.id) > 0) {
      return AlreadyExistsError(
          fmt::format("campaign id {} was used before (ids are never reused)", row.id));
    }
    new_ids_.insert(row.id);
    max_id_ = std::max(max_id_, row.id);
    overlay_[row.id] = row;
    Capture(ChangeOp::kCreated, row.updated_by, row.version, row);
    return Status::OK();
  }

  Status Replace(const Campaign& row) override {
    RETURN_IF_ERROR(CheckOpen());
    if (Current(row.id) == nullptr) {
      return NotFoundError(fmt::format("campaign {} not found", row.id));
    }
    const Campaign* before = Current(row.id);
    // Like the SQLite outbox (format 2): unchanged content is not repeated.
    Campaign image = row;
    if (before->content == row.content) image.content.clear();
    overlay_[row.id] = row;
    Capture(ChangeOp::kUpdated, row.updated_by, row.version, image);
    return Status::OK();
  }

  Status Remove(int64_t id, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    const Campaign* c = Current(id);
    if (c == nullptr) return NotFoundError(fmt::format("campaign {} not found", id));
    Campaign before = *c;
    overlay_[id] = std::nullopt;
    Capture(ChangeOp::kDeleted, std::string(actor), before.version + 1, before);
    return Status::OK();
  }

  Result<std::vector<RowChange>> Shift(int64_t customer_id, int64_t delta, int64_t lo,
                                       std::optional<int64_t> hi, std::string_view actor) override {
    RETURN_IF_ERROR(CheckOpen());
    std::vector<RowChange> out;
    for (int64_t id : CustomerIds(customer_id)) {
      const Campaign* c = Current(id);
      if (c->priority < lo || (hi && c->priority > *hi)) continue;
      Campaign row = *c;
      row.priority += delta;
      row.version += 1;
      row.updated_at = commit_time_;
      row.updated_by = std::string(actor);
      out.push_back({ChangeOp::kUpdated, row.id, row.customer_id, row.version});
      Campaign image = row;
      image.content.clear();  // a shift never changes the content
      Capture(ChangeOp::kUpdated, row.updated_by, row.version, image);
      overlay_[id] = std::move(row);
    }
    return out;
  }

  Status AdvanceReplay(const ReplayAdvance& advance) override {
    RETURN_IF_ERROR(CheckOpen());
    RETURN_IF_ERROR(ValidateReplayPosition(advance.to));
    std::optional<int64_t> recorded;
    if (auto p = replay_.find(advance.to.workload); p != replay_.end()) {
      recorded = p->second.seq;
    } else if (auto s = store_.state_.replay_positions.find(advance.to.workload);
               s != store_.state_.replay_positions.end()) {
      recorded = s->second.seq;
    }
    if (recorded != advance.from_seq) return ReplayPositionConflict(advance, recorded);
    ReplayPosition& p = replay_[advance.to.workload] = advance.to;
    p.recorded_at = commit_time_;
    return Status::OK();
  }

  Status Commit() override {
    RETURN_IF_ERROR(CheckOpen());
    {
      std::unique_lock data_lock(store_.data_mu_);
      State& s = store_.state_;
      for (auto& [id, value] : overlay_) {
        auto it = s.rows.find(id);
        if (it != s.rows.end()) {
          auto bc = s.by_customer.find(it->second.customer_id);
          bc->second.erase(id);
          if (bc->second.empty()) s.by_customer.erase(bc);
        }
        if (value) {
          s.by_customer[value->customer_id].insert(id);
          s.rows[id] = std::move(*value);
        } else if (it != s.rows.end()) {
          s.rows.erase(it);
        }
      }
      s.used_ids.insert(new_ids_.begin(), new_ids_.end());
      s.max_id = std::max(s.max_id, max_id_);
      for (auto& [workload, p] : replay_) s.replay_positions[workload] = std::move(p);
      if (store_.capture_ == StoreCapture::kLog) {
        for (CapturedChange& c : pending_) {
          c.seq = static_cast<int64_t>(s.log.size()) + 1;
          s.log.push_back(std::move(c));
        }
      }
    }
    done_ = true;
    lock_.unlock();  // observers run after Commit returns: no lock held then
    return Status::OK();
  }

 private:
  Status CheckOpen() const {
    if (done_) return FailedPreconditionError("transaction already committed");
    return Status::OK();
  }

  // The row as this transaction sees it, or nullptr.
  const Campaign* Current(int64_t id) const {
    auto o = overlay_.find(id);
    if (o != overlay_.end()) return o->second ? &*o->second : nullptr;
    // Reading the committed state without data_mu_ is safe: only a commit changes it, and
    // commits happen under the writer lock, which this transaction holds.
    auto it = store_.state_.rows.find(id);
    return it == store_.state_.rows.end() ? nullptr : &it->second;
  }

  // The ids of the customer's rows as this transaction sees them, ascending.
  std::set<int64_t> CustomerIds(int64_t customer_id) const {
    std::set<int64_t> ids;
    auto bc = store_.state_.by_customer.find(customer_id);
    if (bc != store_.state_.by_customer.end()) ids = bc->second;
    for (const auto& [id, value] : overlay_) {
      if (value && value->customer_id == customer_id) {
        ids.insert(id);
      } else {
        ids.erase(id);
      }
    }
    return ids;
  }

  void Capture(ChangeOp op, std::string actor, int64_t version, const Campaign& row) {
    if (store_.capture_ != StoreCapture::kLog) return;
    pending_.push_back(
        CapturedChange{0, transaction_id_, commit_time_, op, std::move(actor), version, row});
  }

  InMemoryCampaignStore& store_;
  std::unique_lock<TimedMutex> lock_;
  const Timestamp commit_time_;
  const std::string transaction_id_;
  int64_t max_id_;
  const Timestamp previous_commit_time_;
  const int64_t previous_transaction_id_;
  bool done_ = false;
  // Changes not yet committed: id -> new row, or nullopt for a deleted row.
  std::map<int64_t, std::optional<Campaign>> overlay_;
  std::set<int64_t> new_ids_;
  std::vector<CapturedChange> pending_;
  // Replay positions advanced by this transaction.
  std::map<std::string, ReplayPosition> replay_;
};

InMemoryCampaignStore::InMemoryCampaignStore(const InMemoryCampaignStoreOptions& options)
    : clock_(options.clock != nullptr ? *options.clock : SystemClock::Default()),
      capture_(options.capture),
      lock_timeout_(options.lock_timeout) {}

InMemoryCampaignStore::InMemoryCampaignStore(Clock& clock, StoreCapture capture)
    : clock_(clock), capture_(capture), lock_timeout_(std::chrono::seconds(10)) {}

InMemoryCampaignStore::~InMemoryCampaignStore() = default;

Result<std::unique_ptr<CampaignTransaction>> InMemoryCampaignStore::BeginWrite(
    std::string_view actor) {
  RETURN_IF_ERROR(ValidateActor(actor));
  std::unique_lock lock(writer_mu_, std::defer_lock);
  if (!lock.try_lock_for(lock_timeout_)) {
    return UnavailableError(
        fmt::format("another writer held the campaign store for more than {} ms",
                    lock_timeout_.count() / 1000));
  }
  Timestamp t = std::max(clock_.Now(), last_commit_time_ + Micros(1));
  auto tx = std::unique_ptr<CampaignTransaction>(
      new Transaction(*this, std::move(lock), t, std::to_string(last_transaction_id_ + 1)));
  last_commit_time_ = t;
  ++last_transaction_id_;
  return tx;
}

Result<std::optional<Campaign>> InMemoryCampaignStore::Get(int64_t id) {
  std::shared_lock lock(data_mu_);
  auto it = state_.rows.find(id);
  if (it == state_.rows.end()) return std::optional<Campaign>();
  return std::optional<Campaign>(it->second);
}

Result<std::vector<Campaign>> InMemoryCampaignStore::List(int64_t customer_id) {
  std::shared_lock lock(data_mu_);
  std::vector<Campaign> out;
  auto bc = state_.by_customer.find(customer_id);
  if (bc == state_.by_customer.end()) return out;
  for (int64_t id : bc->second) out.push_back(state_.rows.at(id));
  std::sort(out.begin(), out.end(), [](const Campaign& a, const Campaign& b) {
    return std::tie(a.priority, a.id) < std::tie(b.priority, b.id);
  });
  return out;
}

Result<std::vector<int64_t>> InMemoryCampaignStore::ListCustomers() {
  std::shared_lock lock(data_mu_);
  std::vector<int64_t> out;
  for (const auto& [customer, ids] : state_.by_customer) out.push_back(customer);
  return out;
}

Result<std::vector<Campaign>> InMemoryCampaignStore::ListExpired(Timestamp now, int64_t limit) {
  std::shared_lock lock(data_mu_);
  std::vector<Campaign> out;
  for (const auto& [id, c] : state_.rows) {
    if (c.status == CampaignStatus::kActive && c.end_at && *c.end_at <= now) out.push_back(c);
  }
  std::sort(out.begin(), out.end(), [](const Campaign& a, const Campaign& b) {
    return std::tie(*a.end_at, a.id) < std::tie(*b.end_at, b.id);
  });
  if (limit >= 0 && out.size() > static_cast<size_t>(limit)) out.resize(limit);
  return out;
}

Result<std::optional<ReplayPosition>> InMemoryCampaignStore::GetReplayPosition(
    std::string_view workload) {
  std::shared_lock lock(data_mu_);
  auto it = state_.replay_positions.find(workload);
  if (it == state_.replay_positions.end()) return std::optional<ReplayPosition>();
  return std::optional<ReplayPosition>(it->second);
}

std::vector<CapturedChange> InMemoryCampaignStore::AllChanges() const {
  std::shared_lock lock(data_mu_);
  return state_.log;
}

std::vector<CapturedChange> InMemoryCampaignStore::ChangesAfter(int64_t after, size_t max) const {
  std::shared_lock lock(data_mu_);
  // seq k is log[k - 1].
  const size_t begin =
      static_cast<size_t>(std::clamp<int64_t>(after, 0, static_cast<int64_t>(state_.log.size())));
  const size_t end = begin + std::min(max, state_.log.size() - begin);
  return std::vector<CapturedChange>(state_.log.begin() + static_cast<std::ptrdiff_t>(begin),
                                     state_.log.begin() + static_cast<std::ptrdiff_t>(end));
}

int64_t InMemoryCampaignStore::LastChangeSeq() const {
  std::shared_lock lock(data_mu_);
  return static_cast<int64_t>(state_.log.size());
}

std::optional<Timestamp> InMemoryCampaignStore::RaiseCommitFloor(int64_t polled_seq,
                                                                 Timestamp now) {
  // Under the writer lock, like a commit stamp: no transaction can be stamped meanwhile.
  std::unique_lock writer(writer_mu_, std::try_to_lock);
  if (!writer.owns_lock() || LastChangeSeq() != polled_seq) return std::nullopt;
  last_commit_time_ = std::max(last_commit_time_, now);
  return last_commit_time_;
}

std::vector<Campaign> InMemoryCampaignStore::AllCampaigns() const {
  std::shared_lock lock(data_mu_);
  std::vector<Campaign> out;
  for (const auto& [id, c] : state_.rows) out.push_back(c);
  std::sort(out.begin(), out.end(), [](const Campaign& a, const Campaign& b) {
    return std::tie(a.customer_id, a.priority, a.id) < std::tie(b.customer_id, b.priority, b.id);
  });
  return out;
}

}  // namespace ch
