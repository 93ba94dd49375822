#include "history/asof_checkpoint.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ch {
namespace {

std::string Render(const std::vector<CheckpointEntry>& entries) {
  std::string out;
  for (const CheckpointEntry& e : entries) {
    out += (out.empty() ? "" : " ") + std::to_string(e.campaign_id) + "=" + std::string(e.row);
  }
  return out;
}

TEST(AsOfCheckpointTest, RoundTripsEntriesInCampaignOrder) {
  const std::string long_row(300, 'x');
  std::vector<CheckpointEntry> entries = {{3, "a"}, {7, ""}, {1000000, long_row}};
  std::string blob;
  EncodeCheckpoint(entries, blob);
  std::vector<CheckpointEntry> back;
  ASSERT_TRUE(DecodeCheckpoint(blob, back));
  EXPECT_EQ(Render(back), Render(entries));
  std::string empty;
  EncodeCheckpoint({}, empty);
  ASSERT_TRUE(DecodeCheckpoint(empty, back));
  EXPECT_TRUE(back.empty());
}

TEST(AsOfCheckpointTest, RejectsTruncatedOrForeignBlobs) {
  std::string blob;
  std::vector<CheckpointEntry> entries = {{3, "abc"}, {9, "de"}};
  EncodeCheckpoint(entries, blob);
  std::vector<CheckpointEntry> out;
  for (size_t n = 0; n < blob.size(); ++n) {
    std::string cut = blob.substr(0, n);
    EXPECT_FALSE(DecodeCheckpoint(cut, out)) << n;
  }
  std::string longer = blob + "z";
  EXPECT_FALSE(DecodeCheckpoint(longer, out));
  std::string other = blob;
  other[0] = 3;  // an unknown format
  EXPECT_FALSE(DecodeCheckpoint(other, out));
  std::string flipped = blob;
  flipped[blob.size() / 2] ^= 0x55;  // deflated bytes that do not inflate to the body
  EXPECT_FALSE(DecodeCheckpoint(flipped, out));
  std::string huge = blob;
  huge[1] = '\xff';  // a body size far beyond what the bytes hold
  EXPECT_FALSE(DecodeCheckpoint(huge, out));
}

// Checkpoints of format 1 (the body not deflated) are still read.
TEST(AsOfCheckpointTest, ReadsUndeflatedBlobsOfFormatOne) {
  std::string blob =
      "\x01\x02\x03\x03"
      "abc\x06\x02"
      "de";  // format 1, 2 entries: 3 -> "abc", 9 -> "de"
  std::vector<CheckpointEntry> out;
  ASSERT_TRUE(DecodeCheckpoint(blob, out));
  EXPECT_EQ(Render(out), "3=abc 9=de");
}

// A checkpoint of the big customer (2,000 campaigns with similar rows) is stored deflated.
TEST(AsOfCheckpointTest, DeflatesTheRows) {
  std::vector<std::string> rows;
  for (int i = 0; i < 2000; ++i) rows.push_back("row-of-campaign-" + std::to_string(i % 97));
  std::vector<CheckpointEntry> entries;
  size_t raw = 0;
  for (int i = 0; i < 2000; ++i) {
    entries.push_back({i + 1, rows[static_cast<size_t>(i)]});
    raw += rows[static_cast<size_t>(i)].size() + 2;
  }
  std::string blob;
  EncodeCheckpoint(entries, blob);
  EXPECT_LT(blob.size(), raw / 3);
  std::vector<CheckpointEntry> back;
  ASSERT_TRUE(DecodeCheckpoint(blob, back));
  EXPECT_EQ(Render(back), Render(entries));
}

TEST(AsOfCheckpointTest, TheLatestChangeOfACampaignReplacesItsEntryAndADeleteRemovesIt) {
  std::vector<CheckpointEntry> base = {{1, "c1@v1"}, {2, "c2@v1"}, {4, "c4@v1"}};
  std::vector<CheckpointChange> changes = {
      {.campaign_id = 2, .t = 20, .version = 3, .row = "c2@v3"},
      {.campaign_id = 2, .t = 20, .version = 2, .row = "c2@v2"},  // same moment, lower version
      {.campaign_id = 4, .t = 15, .version = 2, .deleted = true, .row = "c4@v2 deleted"},
      {.campaign_id = 3, .t = 12, .version = 1, .row = "c3@v1"},  // a new campaign
      {.campaign_id = 5, .t = 11, .version = 2, .deleted = true, .row = "c5@v2 deleted"},
      {.campaign_id = 5, .t = 30, .version = 3, .row = "c5@v3"},  // re-created after the delete
  };
  EXPECT_EQ(Render(ApplyCheckpointChanges(base, changes)), "1=c1@v1 2=c2@v3 3=c3@v1 5=c5@v3");
  std::vector<CheckpointChange> none;
  EXPECT_EQ(Render(ApplyCheckpointChanges(base, none)), Render(base));
}

}  // namespace
}  // namespace ch
