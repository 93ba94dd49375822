#include "history/completeness.h"

#include <fmt/format.h>

#include <algorithm>
#include <deque>
#include <map>
#include <set>
#include <utility>

namespace ch {
namespace {

// One transaction touched by this call, with where its progress lives.
struct Touched {
  TxnProgress progress;
  bool in_ledger = false;  // a progress row exists (must be erased or rewritten)
};

void Later(std::optional<Timestamp>& time, Timestamp t) {
  if (!time || t > *time) time = t;
}

// Move the watermark over every complete transaction that follows it, fold in heartbeats, and
// write back what remains above it.
Status Advance(Watermark& wm, std::map<int64_t, Touched>& touched, CompletenessLedger& ledger) {
  const Watermark before = wm;
  while (true) {
    const int64_t next = wm.seq + 1;
    auto it = touched.find(next);
    if (it == touched.end()) {
      ASSIGN_OR_RETURN(std::optional<TxnProgress> p, ledger.GetProgress(next));
      if (!p) break;
      it = touched.emplace(next, Touched{*p, true}).first;
    }
    if (!it->second.progress.complete) break;
    wm.seq = next;
    Later(wm.time, it->second.progress.commit_time);
  }
  if (wm.seq != before.seq) {
    ASSIGN_OR_RETURN(std::optional<CaptureHeartbeat> h, ledger.TakeHeartbeat(wm.seq));
    if (h) Later(wm.time, h->at);
  }
  for (auto& [seq, t] : touched) {
    if (seq <= wm.seq) {
      if (t.in_ledger) RETURN_IF_ERROR(ledger.EraseProgress(seq));
    } else {
      RETURN_IF_ERROR(ledger.PutProgress(t.progress));
    }
  }
  if (wm != before) RETURN_IF_ERROR(ledger.SetWatermark(wm));
  return Status::OK();
}

int64_t Distinct(std::span<const HistoryRecord* const> records) {
  std::set<std::pair<int64_t, int64_t>> keys;
  for (const HistoryRecord* r : records) keys.emplace(r->campaign_id, r->version);
  return static_cast<int64_t>(keys.size());
}

}  // namespace

std::string TxnFieldsProblem(const HistoryRecord& r) {
  if (r.txn_seq < 0) return fmt::format("txn_seq must not be negative, got {}", r.txn_seq);
  if (r.txn_changes < 0) {
    return fmt::format("txn_changes must not be negative, got {}", r.txn_changes);
  }
  if (r.txn_changes > 0 && r.txn_seq == 0) return "txn_changes is set but txn_seq is 0";
  return {};
}

Result<GateResult> GateRecords(std::span<const HistoryRecord> records, CompletenessLedger& ledger,
                               const std::function<bool(const HistoryRecord&)>& refuse) {
  GateResult out;
  out.visible.reserve(records.size());
  auto refused = [&](const HistoryRecord& r) { return refuse && refuse(r); };
  ASSIGN_OR_RETURN(Watermark wm, ledger.GetWatermark());
  std::map<int64_t, std::vector<const HistoryRecord*>> by_seq;
  for (const HistoryRecord& r : records) {
    if (r.txn_seq == 0 || r.txn_seq <= wm.seq) {
      // No bookkeeping, or a redelivery of a complete transaction.
      if (!refused(r)) out.visible.push_back(&r);
    } else {
      by_seq[r.txn_seq].push_back(&r);
    }
  }
  if (by_seq.empty()) return out;

  std::map<int64_t, Touched> touched;
  std::vector<int64_t> to_release;
  // Refused pieces are held as placeholders (key, no snapshot): they count for their
  // transaction's completeness exactly once, and are never shown.
  std::deque<HistoryRecord> placeholders;
  for (auto& [seq, recs] : by_seq) {
    ASSIGN_OR_RETURN(std::optional<TxnProgress> stored, ledger.GetProgress(seq));
    Touched t{stored.value_or(TxnProgress{.seq = seq, .commit_time = recs.front()->event_time}),
              stored.has_value()};
    TxnProgress& p = t.progress;
    std::vector<const HistoryRecord*> kept, stand_ins;
    for (const HistoryRecord* r : recs) {
      p.expected = std::max(p.expected, r->txn_changes);
      if (!refused(*r)) {
        kept.push_back(r);
        continue;
      }
      HistoryRecord& stand_in = placeholders.emplace_back();
      stand_in.customer_id = r->customer_id;
      stand_in.campaign_id = r->campaign_id;
      stand_in.version = r->version;
      stand_in.event_time = r->event_time;
      stand_in.txn_seq = r->txn_seq;
      stand_ins.push_back(&stand_in);
    }
    if (p.complete) {
      // A redelivery into a transaction already released: the store deduplicates.
      out.visible.insert(out.visible.end(), kept.begin(), kept.end());
      continue;
    }
    const int64_t distinct = Distinct(recs);
    if (p.received == 0 && p.expected > 0 && distinct >= p.expected) {
      // The whole transaction in one call (in-order delivery): straight through.
      out.visible.insert(out.visible.end(), kept.begin(), kept.end());
      p.received = distinct;
      p.complete = true;
    } else {
      ASSIGN_OR_RETURN(int64_t held, ledger.Hold(seq, kept));
      ASSIGN_OR_RETURN(int64_t stood_in, ledger.Hold(seq, stand_ins));
      out.held += held;
      p.received += held + stood_in;
      if (p.expected > 0 && p.received >= p.expected) {
        to_release.push_back(seq);
        p.complete = true;
      }
    }
    touched.emplace(seq, std::move(t));
  }
  // Release after every Hold of this call, so that records held by this very call come out too.
  for (int64_t seq : to_release) {
    ASSIGN_OR_RETURN(std::vector<HistoryRecord> records_of_seq, ledger.Release(seq));
    for (HistoryRecord& r : records_of_seq) {
      if (!r.snapshot.empty() && !refused(r)) out.released.push_back(std::move(r));
    }
  }
  RETURN_IF_ERROR(Advance(wm, touched, ledger));
  return out;
}

Status GateHeartbeat(const CaptureHeartbeat& h, CompletenessLedger& ledger) {
  ASSIGN_OR_RETURN(Watermark wm, ledger.GetWatermark());
  if (h.seq > wm.seq) return ledger.PutHeartbeat(h);
  if (wm.time && *wm.time >= h.at) return Status::OK();
  wm.time = h.at;
  return ledger.SetWatermark(wm);
}

// ---- InMemoryCompletenessLedger ----------------------------------------------------------------

Status InMemoryCompletenessLedger::SetWatermark(const Watermark& w) {
  watermark_ = w;
  return Status::OK();
}

Result<std::optional<TxnProgress>> InMemoryCompletenessLedger::GetProgress(int64_t seq) {
  auto it = progress_.find(seq);
  if (it == progress_.end()) return std::optional<TxnProgress>();
  return std::optional<TxnProgress>(it->second);
}

Status InMemoryCompletenessLedger::PutProgress(const TxnProgress& p) {
  progress_[p.seq] = p;
  return Status::OK();
}

Status InMemoryCompletenessLedger::EraseProgress(int64_t seq) {
  progress_.erase(seq);
  return Status::OK();
}

Result<int64_t> InMemoryCompletenessLedger::Hold(int64_t seq,
                                                 std::span<const HistoryRecord* const> records) {
  auto& held = held_[seq];
  int64_t added = 0;
  for (const HistoryRecord* r : records) {
    if (held.emplace(std::pair(r->campaign_id, r->version), *r).second) ++added;
  }
  return added;
}

Result<std::vector<HistoryRecord>> InMemoryCompletenessLedger::Release(int64_t seq) {
  std::vector<HistoryRecord> out;
  auto it = held_.find(seq);
  if (it == held_.end()) return out;
  for (auto& [key, r] : it->second) out.push_back(std::move(r));
  held_.erase(it);
  return out;
}

Result<std::optional<CaptureHeartbeat>> InMemoryCompletenessLedger::TakeHeartbeat(
    int64_t through_seq) {
  std::optional<CaptureHeartbeat> best;
  for (auto it = heartbeats_.begin(); it != heartbeats_.end() && it->first <= through_seq;) {
    if (!best || it->second.at > best->at) best = it->second;
    it = heartbeats_.erase(it);
  }
  return best;
}

Status InMemoryCompletenessLedger::PutHeartbeat(const CaptureHeartbeat& h) {
  auto [it, inserted] = heartbeats_.emplace(h.seq, h);
  if (!inserted && h.at > it->second.at) it->second = h;
  return Status::OK();
}

Completeness InMemoryCompletenessLedger::Summary() const {
  Completeness c;
  c.through_seq = watermark_.seq;
  c.complete_through = watermark_.time;
  for (const auto& [seq, p] : progress_) {
    if (p.complete) {
      ++c.waiting_transactions;
    } else {
      ++c.partial_transactions;
    }
  }
  for (const auto& [seq, held] : held_) {
    for (const auto& [key, r] : held) c.held_records += r.snapshot.empty() ? 0 : 1;  // placeholders
  }
  return c;
}

int64_t InMemoryCompletenessLedger::DropHeldOfCustomer(int64_t customer_id) {
  int64_t dropped = 0;
  for (auto& [seq, held] : held_) {
    std::erase_if(held, [&](const auto& entry) {
      bool mine = entry.second.customer_id == customer_id;
      dropped += mine ? 1 : 0;
      return mine;
    });
  }
  return dropped;
}

const HistoryRecord* InMemoryCompletenessLedger::FindHeld(int64_t campaign_id,
                                                          int64_t version) const {
  for (const auto& [seq, held] : held_) {
    auto it = held.find(std::pair(campaign_id, version));
    if (it != held.end()) return &it->second;
  }
  return nullptr;
}

}  // namespace ch
