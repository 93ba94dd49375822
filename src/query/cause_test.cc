#include "query/cause.h"

#include "testing/test_util.h"

namespace ch {
namespace {

using ::testing::ElementsAre;

TxnChange Created(int64_t id) {
  return TxnChange{.campaign_id = id, .version = 1, .op = ChangeOp::kCreated, .priority = 1};
}
TxnChange Deleted(int64_t id, int64_t priority) {
  return TxnChange{.campaign_id = id, .version = 9, .op = ChangeOp::kDeleted, .priority = priority};
}
// An update that changed only the priority, from `from` to `to`.
TxnChange Priority(int64_t id, int64_t from, int64_t to) {
  return TxnChange{.campaign_id = id,
                   .version = 5,
                   .priority = to,
                   .previous_priority = from,
                   .priority_only = true};
}
TxnChange Edited(int64_t id, int64_t priority) {
  return TxnChange{
      .campaign_id = id, .version = 5, .priority = priority, .previous_priority = priority};
}

std::vector<std::string> Kinds(std::vector<TxnChange> changes) {
  std::vector<std::string> out;
  for (ChangeKind k : ClassifyTransaction(changes)) out.emplace_back(ChangeKindName(k));
  return out;
}

TEST(ClassifyTransactionTest, ACreateShiftsEveryOtherCampaign) {
  EXPECT_THAT(Kinds({Priority(1, 1, 2), Priority(2, 2, 3), Created(3)}),
              ElementsAre("shifted", "shifted", "created"));
}

TEST(ClassifyTransactionTest, ADeleteShiftsTheCampaignsBelowIt) {
  EXPECT_THAT(Kinds({Deleted(1, 2), Priority(2, 3, 2), Priority(3, 4, 3)}),
              ElementsAre("deleted", "shifted", "shifted"));
}

TEST(ClassifyTransactionTest, AMoveIsTheCampaignThatMovedByMoreThanOne) {
  // c4 dragged from 4 to 1: c1..c3 shift down.
  EXPECT_THAT(Kinds({Priority(1, 1, 2), Priority(2, 2, 3), Priority(3, 3, 4), Priority(4, 4, 1)}),
              ElementsAre("shifted", "shifted", "shifted", "moved"));
  // And down: c1 from 1 to 3, c2 and c3 shift up.
  EXPECT_THAT(Kinds({Priority(1, 1, 3), Priority(2, 2, 1), Priority(3, 3, 2)}),
              ElementsAre("moved", "shifted", "shifted"));
}

TEST(ClassifyTransactionTest, NeighboursThatSwappedAreBothMoved) {
  // Which of the two was dragged cannot be told from the rows: neither is a mere shift.
  EXPECT_THAT(Kinds({Priority(1, 1, 2), Priority(2, 2, 1)}), ElementsAre("moved", "moved"));
}

TEST(ClassifyTransactionTest, EditsAndLoneChangesArePrimary) {
  EXPECT_THAT(Kinds({Edited(1, 3)}), ElementsAre("edited"));
  EXPECT_THAT(Kinds({Priority(1, 3, 4)}), ElementsAre("moved"));
  // A save that changed nothing (a move to the current priority) is an edit without fields.
  EXPECT_THAT(Kinds({Priority(1, 3, 3)}), ElementsAre("edited"));
  // Without a previous version a priority cannot have moved.
  TxnChange orphan = Priority(1, 3, 4);
  orphan.previous_priority.reset();
  EXPECT_THAT(Kinds({orphan}), ElementsAre("edited"));
  // An import: every campaign created, none shifted.
  EXPECT_THAT(Kinds({Created(1), Created(2)}), ElementsAre("created", "created"));
  EXPECT_TRUE(ClassifyTransaction({}).empty());
}

TEST(ClassifyTransactionTest, KindNamesAreStable) {
  EXPECT_EQ(ChangeKindName(ChangeKind::kCreated), "created");
  EXPECT_EQ(ChangeKindName(ChangeKind::kDeleted), "deleted");
  EXPECT_EQ(ChangeKindName(ChangeKind::kEdited), "edited");
  EXPECT_EQ(ChangeKindName(ChangeKind::kMoved), "moved");
  EXPECT_EQ(ChangeKindName(ChangeKind::kShifted), "shifted");
}

}  // namespace
}  // namespace ch
