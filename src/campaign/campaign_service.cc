#include "campaign/campaign_service.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <utility>

#include "campaign/campaign_internal.h"

namespace ch {

namespace {

Status NotFoundId(int64_t id) { return NotFoundError(fmt::format("campaign {} not found", id)); }

// The patch/draft may carry updated_by (workload lines do); it must name the writer.
Status CheckUpdatedBy(const std::string& updated_by, const std::string& actor) {
  if (!updated_by.empty() && updated_by != actor) {
    return InvalidArgumentError(
        fmt::format("updated_by: '{}' differs from the writing actor '{}'", updated_by, actor));
  }
  return Status::OK();
}

// Check the preconditions that concern the current row.
Status CheckRowPreconditions(const Campaign& row, const WriteContext& ctx) {
  if (ctx.expect_customer && *ctx.expect_customer != row.customer_id) {
    return FailedPreconditionError(fmt::format("campaign {} belongs to customer {}, not {}", row.id,
                                               row.customer_id, *ctx.expect_customer));
  }
  if (ctx.expect_version && *ctx.expect_version != row.version) {
    return FailedPreconditionError(fmt::format("campaign {} is at version {}, not {}", row.id,
                                               row.version, *ctx.expect_version));
  }
  if (ctx.expect_priority && *ctx.expect_priority != row.priority) {
    return FailedPreconditionError(fmt::format("campaign {} is at priority {}, not {}", row.id,
                                               row.priority, *ctx.expect_priority));
  }
  return Status::OK();
}

Status CheckShifted(const WriteContext& ctx, int64_t shifted) {
  if (ctx.expect_shifted && *ctx.expect_shifted != shifted) {
    return FailedPreconditionError(fmt::format("the action shifts {} other campaigns, expected {}",
                                               shifted, *ctx.expect_shifted));
  }
  return Status::OK();
}

// Append the shifted rows to `info`, sorted by campaign id (the contract's order).
void AddShifted(std::vector<RowChange> shifted, CommitInfo& info) {
  std::sort(shifted.begin(), shifted.end(),
            [](const RowChange& a, const RowChange& b) { return a.campaign_id < b.campaign_id; });
  info.shifted = static_cast<int64_t>(shifted.size());
  info.changes.insert(info.changes.end(), shifted.begin(), shifted.end());
}

// Open the action's write transaction and advance the replay position it carries first: a replay
// that lost the race for its position learns that, not what the other replay's commit did to the
// rows (e.g. "priority 1 is already taken").
Result<std::unique_ptr<CampaignTransaction>> BeginWrite(
    CampaignStore& store, std::string_view actor, const std::optional<ReplayAdvance>& replay) {
  ASSIGN_OR_RETURN(auto tx, store.BeginWrite(actor));
  if (replay) RETURN_IF_ERROR(tx->AdvanceReplay(*replay));
  return tx;
}

CommitInfo StartInfo(const CampaignTransaction& tx, const std::string& actor) {
  CommitInfo info;
  info.committed_at = tx.commit_time();
  info.transaction_id = tx.transaction_id();
  info.actor = actor;
  return info;
}

}  // namespace

void CampaignService::Notify(const CommitInfo& info) {
  for (CommitObserver* o : observers_) o->OnCommit(info);
}

Result<CommitInfo> CampaignService::Create(const Campaign& draft, const WriteContext& ctx) {
  RETURN_IF_ERROR(ValidateActor(ctx.actor));
  RETURN_IF_ERROR(CheckUpdatedBy(draft.updated_by, ctx.actor));
  Campaign row = draft;
  ASSIGN_OR_RETURN(row.content, CanonicalContent(draft.content));
  row.priority = 1;
  row.version = 1;
  row.updated_by = ctx.actor;
  RETURN_IF_ERROR(campaign_internal::ValidateCampaign(row, /*check_content=*/false));
  if (ctx.expect_customer && *ctx.expect_customer != row.customer_id) {
    return FailedPreconditionError(fmt::format("the campaign is for customer {}, not {}",
                                               row.customer_id, *ctx.expect_customer));
  }
  if (ctx.expect_version && *ctx.expect_version != 0) {
    return FailedPreconditionError(
        fmt::format("a new campaign has no version yet, expected {}", *ctx.expect_version));
  }

  ASSIGN_OR_RETURN(auto tx, BeginWrite(store_, ctx.actor, ctx.replay));
  RETURN_IF_ERROR(tx->ForCustomer(row.customer_id));
  if (row.id == 0) {
    ASSIGN_OR_RETURN(row.id, tx->AllocateId());
  } else {
    ASSIGN_OR_RETURN(auto existing, tx->Get(row.id));
    if (existing) return AlreadyExistsError(fmt::format("campaign {} already exists", row.id));
  }
  row.created_at = row.updated_at = tx->commit_time();
  CommitInfo info = StartInfo(*tx, ctx.actor);
  // Statement order as in the workload format: shift every campaign down, then insert at 1.
  ASSIGN_OR_RETURN(auto shifted, tx->Shift(row.customer_id, +1, 1, std::nullopt, ctx.actor));
  RETURN_IF_ERROR(CheckShifted(ctx, static_cast<int64_t>(shifted.size())));
  RETURN_IF_ERROR(tx->Insert(row));
  RETURN_IF_ERROR(tx->Commit());
  tx.reset();  // release the writer before anything else runs

  info.changes.push_back({ChangeOp::kCreated, row.id, row.customer_id, row.version});
  AddShifted(std::move(shifted), info);
  info.row = std::move(row);
  Notify(info);
  return info;
}

Result<CommitInfo> CampaignService::Update(int64_t id, const CampaignPatch& patch,
                                           const WriteContext& ctx) {
  RETURN_IF_ERROR(ValidateActor(ctx.actor));
  if (patch.empty()) return InvalidArgumentError("patch: no field to set");
  if (patch.updated_by) RETURN_IF_ERROR(CheckUpdatedBy(*patch.updated_by, ctx.actor));
  CampaignPatch p = patch;
  if (p.content) {
    ASSIGN_OR_RETURN(p.content, CanonicalContent(*patch.content));
  }

  ASSIGN_OR_RETURN(auto tx, BeginWrite(store_, ctx.actor, ctx.replay));
  ASSIGN_OR_RETURN(std::optional<Campaign> current, tx->Get(id));
  if (!current) return NotFoundId(id);
  RETURN_IF_ERROR(CheckRowPreconditions(*current, ctx));
  RETURN_IF_ERROR(CheckShifted(ctx, 0));
  Campaign row = std::move(*current);
  ApplyPatch(p, row);
  row.version += 1;
  row.updated_at = tx->commit_time();
  row.updated_by = ctx.actor;
  // Content, when set, was canonicalized (and so checked) above; otherwise it is unchanged.
  RETURN_IF_ERROR(campaign_internal::ValidateCampaign(row, /*check_content=*/false));
  RETURN_IF_ERROR(tx->Replace(row));
  CommitInfo info = StartInfo(*tx, ctx.actor);
  RETURN_IF_ERROR(tx->Commit());
  tx.reset();  // release the writer before anything else runs

  info.changes.push_back({ChangeOp::kUpdated, row.id, row.customer_id, row.version});
  info.row = std::move(row);
  Notify(info);
  return info;
}

Result<CommitInfo> CampaignService::Move(int64_t id, int64_t to_priority, const WriteContext& ctx) {
  RETURN_IF_ERROR(ValidateActor(ctx.actor));

  ASSIGN_OR_RETURN(auto tx, BeginWrite(store_, ctx.actor, ctx.replay));
  ASSIGN_OR_RETURN(std::optional<Campaign> current, tx->Get(id));
  if (!current) return NotFoundId(id);
  RETURN_IF_ERROR(CheckRowPreconditions(*current, ctx));
  ASSIGN_OR_RETURN(int64_t n, tx->CountCustomer(current->customer_id));
  if (to_priority < 1 || to_priority > n) {
    return InvalidArgumentError(
        fmt::format("to_priority: {} is out of range 1..{} (customer {} has {} campaigns)",
                    to_priority, n, current->customer_id, n));
  }
  Campaign row = std::move(*current);
  const int64_t from = row.priority;
  // Statement order as in the workload format: shift the campaigns in between, then move.
  std::vector<RowChange> shifted;
  if (to_priority < from) {
    ASSIGN_OR_RETURN(shifted, tx->Shift(row.customer_id, +1, to_priority, from - 1, ctx.actor));
  } else if (to_priority > from) {
    ASSIGN_OR_RETURN(shifted, tx->Shift(row.customer_id, -1, from + 1, to_priority, ctx.actor));
  }
  RETURN_IF_ERROR(CheckShifted(ctx, static_cast<int64_t>(shifted.size())));
  row.priority = to_priority;
  row.version += 1;
  row.updated_at = tx->commit_time();
  row.updated_by = ctx.actor;
  RETURN_IF_ERROR(tx->Replace(row));
  CommitInfo info = StartInfo(*tx, ctx.actor);
  RETURN_IF_ERROR(tx->Commit());
  tx.reset();  // release the writer before anything else runs

  info.changes.push_back({ChangeOp::kUpdated, row.id, row.customer_id, row.version});
  AddShifted(std::move(shifted), info);
  info.row = std::move(row);
  Notify(info);
  return info;
}

Result<CommitInfo> CampaignService::Delete(int64_t id, const WriteContext& ctx) {
  RETURN_IF_ERROR(ValidateActor(ctx.actor));

  ASSIGN_OR_RETURN(auto tx, BeginWrite(store_, ctx.actor, ctx.replay));
  ASSIGN_OR_RETURN(std::optional<Campaign> current, tx->Get(id));
  if (!current) return NotFoundId(id);
  RETURN_IF_ERROR(CheckRowPreconditions(*current, ctx));
  // Statement order as in the workload format: delete, then close the gap.
  RETURN_IF_ERROR(tx->Remove(id, ctx.actor));
  ASSIGN_OR_RETURN(auto shifted, tx->Shift(current->customer_id, -1, current->priority + 1,
                                           std::nullopt, ctx.actor));
  RETURN_IF_ERROR(CheckShifted(ctx, static_cast<int64_t>(shifted.size())));
  CommitInfo info = StartInfo(*tx, ctx.actor);
  RETURN_IF_ERROR(tx->Commit());
  tx.reset();  // release the writer before anything else runs

  info.changes.push_back(
      {ChangeOp::kDeleted, current->id, current->customer_id, current->version + 1});
  AddShifted(std::move(shifted), info);
  info.row = std::move(current);
  Notify(info);
  return info;
}

Result<CommitInfo> CampaignService::Import(int64_t customer_id, const std::vector<Campaign>& rows,
                                           const std::optional<ReplayAdvance>& replay) {
  if (customer_id <= 0) {
    return InvalidArgumentError(fmt::format("customer_id: must be positive (got {})", customer_id));
  }
  if (rows.empty()) return InvalidArgumentError("rows: nothing to import");
  std::vector<Campaign> out;
  out.reserve(rows.size());
  std::set<int64_t> ids;
  for (size_t i = 0; i < rows.size(); ++i) {
    const Campaign& r = rows[i];
    std::string where = fmt::format("rows[{}] (id {})", i, r.id);
    if (r.customer_id != customer_id) {
      return InvalidArgumentError(
          fmt::format("{}: customer_id: {} differs from the imported "
                      "customer {}",
                      where, r.customer_id, customer_id));
    }
    Campaign row = r;
    auto content = CanonicalContent(r.content);
    if (!content.ok()) return content.status().WithContext(where);
    row.content = std::move(*content);
    row.version = 1;
    RETURN_IF_ERROR(
        campaign_internal::ValidateCampaign(row, /*check_content=*/false).WithContext(where));
    RETURN_IF_ERROR(ValidateActor(row.updated_by).WithContext(where + ": updated_by"));
    if (row.id != 0 && !ids.insert(row.id).second) {
      return InvalidArgumentError(fmt::format("{}: id: {} appears twice", where, row.id));
    }
    out.push_back(std::move(row));
  }

  // The transaction's actor: the rows' common writer (each row keeps its own updated_by).
  std::string actor = out.front().updated_by;
  ASSIGN_OR_RETURN(auto tx, BeginWrite(store_, actor, replay));
  RETURN_IF_ERROR(tx->ForCustomer(customer_id));
  ASSIGN_OR_RETURN(std::vector<Campaign> existing, tx->List(customer_id));
  const int64_t limit = static_cast<int64_t>(existing.size() + out.size());
  std::set<int64_t> taken;
  for (const Campaign& c : existing) taken.insert(c.priority);
  for (size_t i = 0; i < out.size(); ++i) {
    Campaign& row = out[i];
    if (row.priority < 1 || row.priority > limit) {
      return InvalidArgumentError(
          fmt::format("rows[{}] (id {}): priority: {} is out of range 1..{} (customer {} has {} "
                      "campaigns, importing {})",
                      i, row.id, row.priority, limit, customer_id, existing.size(), out.size()));
    }
    if (!taken.insert(row.priority).second) {
      return FailedPreconditionError(
          fmt::format("rows[{}] (id {}): priority: {} is already taken for customer {}", i, row.id,
                      row.priority, customer_id));
    }
    if (row.id == 0) {
      ASSIGN_OR_RETURN(row.id, tx->AllocateId());
    }
    row.created_at = row.updated_at = tx->commit_time();
    Status s = tx->Insert(row);
    if (!s.ok()) return s.WithContext(fmt::format("rows[{}]", i));
  }
  CommitInfo info = StartInfo(*tx, actor);
  RETURN_IF_ERROR(tx->Commit());
  tx.reset();  // release the writer before anything else runs

  for (const Campaign& row : out) {
    info.changes.push_back({ChangeOp::kCreated, row.id, row.customer_id, row.version});
  }
  info.imported = std::move(out);
  Notify(info);
  return info;
}

}  // namespace ch
