// CampaignService: the campaign semantics of docs/design, once, over any CampaignStore.
//
//   Create  new campaign at priority 1; every other campaign of the customer shifts down by one;
//           one transaction, one new version per touched row.
//   Update  partial, validated; one new version.
//   Move    to priority p (1..N); the campaigns in between shift by one.
//   Delete  the campaigns below shift up so priorities stay dense; one tombstone version.
//   Import  existing campaigns with their priorities as they are (version 1 each, each row's own
//           updated_by): how a deployment starts history from an existing campaign table.
//
// Every change bumps the row's version, stamps updated_at with the transaction's commit time and
// updated_by with the actor (required on every write). Every row an action touches, shifted rows
// included, is a new version stamped with that action's actor. Invalid input fails with
// InvalidArgument naming the field, unknown ids with NotFound, failed preconditions with
// FailedPrecondition; a failed call changes nothing.
//
// After each successful commit, every registered CommitObserver is called (outside any lock) with
// what was committed; that is how notify capture and in-process wake-ups hook in.
//
// Thread-safety: safe to call from several threads (the store serializes writers). Observers must
// be registered before concurrent use.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "campaign/campaign.h"
#include "campaign/campaign_store.h"
#include "campaign/change.h"
#include "common/status.h"

namespace ch {

// Who writes, and optional preconditions checked inside the transaction (a failed check aborts
// the transaction with FailedPrecondition and changes nothing).
struct WriteContext {
  // REQUIRES: 1-128 characters.
  std::string actor;
  // The campaign must belong to this customer.
  std::optional<int64_t> expect_customer;
  // The campaign must currently be at this version (optimistic concurrency).
  std::optional<int64_t> expect_version;
  // The number of other rows the action shifts must be exactly this (workload replays check it).
  std::optional<int64_t> expect_shifted;
  // The campaign must currently be at this priority (Move, and also Update and Delete when set;
  // workload lines carry it for moves and deletes).
  std::optional<int64_t> expect_priority;
  // Also advance a workload replay's position (CampaignTransaction::AdvanceReplay) in the
  // action's transaction, first thing: the action and the record that it was applied commit
  // together or not at all, and a position conflict fails the action with FailedPrecondition
  // (before anything else is checked) and changes nothing.
  std::optional<ReplayAdvance> replay;
};

// What one committed action did.
struct CommitInfo {
  Timestamp committed_at{};
  std::string transaction_id;
  std::string actor;
  // One entry per new version, the action's own row first, then shifted rows by campaign id.
  std::vector<RowChange> changes;
  // The number of other rows shifted.
  int64_t shifted = 0;
  // The action's row after the change (for Delete: the last content before it).
  std::optional<Campaign> row;
  // Import only: the imported rows.
  std::vector<Campaign> imported;
};

class CommitObserver {
 public:
  CommitObserver() = default;
  CommitObserver(const CommitObserver&) = delete;
  CommitObserver& operator=(const CommitObserver&) = delete;
  virtual ~CommitObserver() = default;
  // Called after a transaction committed. Must not throw; errors are the observer's to handle.
  virtual void OnCommit(const CommitInfo& info) = 0;
};

class CampaignService {
 public:
  // REQUIRES: `store` outlives the service.
  explicit CampaignService(CampaignStore& store) : store_(store) {}
  CampaignService(const CampaignService&) = delete;
  CampaignService& operator=(const CampaignService&) = delete;

  // Register an observer (not owned; must outlive the service).
  void AddObserver(CommitObserver* observer) { observers_.push_back(observer); }

  // Create `draft` (draft.id 0 = assign a new id; draft.priority, version and timestamps are
  // ignored) at priority 1 of draft.customer_id. Statements: shift every campaign of the
  // customer down by one, then insert. draft.content is canonicalized; draft.updated_by, when
  // set, must equal ctx.actor. Fails with AlreadyExists when draft.id exists or existed (ids are
  // never reused); FailedPrecondition when expect_customer differs from draft.customer_id or
  // expect_shifted from the number of campaigns shifted.
  Result<CommitInfo> Create(const Campaign& draft, const WriteContext& ctx);
  // Set the fields of `patch` (content canonicalized; patch.updated_by, when set, must equal
  // ctx.actor) and validate the result. An empty patch fails with InvalidArgument. Preconditions:
  // expect_customer, expect_version, expect_priority; expect_shifted must be 0 when set.
  Result<CommitInfo> Update(int64_t id, const CampaignPatch& patch, const WriteContext& ctx);
  // Move to `to_priority`. Statements: shift the campaigns between the old and the new priority
  // by one (towards the gap), then set the moved row's priority. Moving to the current priority
  // shifts nothing and still makes one new version. Fails with InvalidArgument naming the range
  // when to_priority is outside 1..N (N = the customer's campaign count).
  Result<CommitInfo> Move(int64_t id, int64_t to_priority, const WriteContext& ctx);
  // Delete. Statements: delete the row (the tombstone change, version = last version + 1,
  // stamped with ctx.actor), then shift the campaigns below it up by one. CommitInfo.row is the
  // last content before the delete.
  Result<CommitInfo> Delete(int64_t id, const WriteContext& ctx);
  // Import rows of one customer as they are (ids, priorities, updated_by kept; version 1;
  // created_at = updated_at = the commit time; id 0 = assign one), all in one transaction whose
  // actor is the first row's updated_by. Nothing is shifted. Fails with InvalidArgument when a
  // row is invalid, has no updated_by, belongs to another customer, or has a priority outside
  // 1..(existing + rows); FailedPrecondition when a priority is taken; AlreadyExists when an id
  // exists or existed. `rows` empty fails with InvalidArgument. `replay`, when set, is advanced
  // in the same transaction (as WriteContext::replay).
  Result<CommitInfo> Import(int64_t customer_id, const std::vector<Campaign>& rows,
                            const std::optional<ReplayAdvance>& replay = std::nullopt);

  Result<std::optional<Campaign>> Get(int64_t id) { return store_.Get(id); }
  Result<std::vector<Campaign>> List(int64_t customer_id) { return store_.List(customer_id); }

  CampaignStore& store() { return store_; }

 private:
  void Notify(const CommitInfo& info);

  CampaignStore& store_;
  std::vector<CommitObserver*> observers_;  // not owned
};

}  // namespace ch
