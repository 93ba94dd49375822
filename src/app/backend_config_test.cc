#include "app/backend_config.h"

#include <fstream>

#include "testing/test_util.h"

namespace ch {
namespace {

using ::ch::testing::StatusIs;
using ::ch::testing::StatusIsWith;

TEST(BackendConfigTest, DefaultsComeFromTheDataDir) {
  BackendConfig c;
  c.data_dir = "/tmp/x";
  EXPECT_EQ(c.CampaignDbUrl(), "sqlite:/tmp/x/campaigns.db");
  EXPECT_EQ(c.HistoryUrl(), "sqlite:/tmp/x/history.db");
  c.history = "sqlite:/elsewhere/h.db";
  EXPECT_EQ(c.HistoryUrl(), "sqlite:/elsewhere/h.db");
}

TEST(BackendConfigTest, ParsesUrls) {
  ASSERT_OK_AND_ASSIGN(BackendUrl s, ParseBackendUrl("--history", "sqlite:data/h.db"));
  EXPECT_EQ(s.scheme, UrlScheme::kSqlite);
  EXPECT_EQ(s.target, "data/h.db");
  ASSERT_OK_AND_ASSIGN(BackendUrl p, ParseBackendUrl("--campaign-db", "postgresql://u@h:5432/db"));
  EXPECT_EQ(p.scheme, UrlScheme::kPostgres);
  ASSERT_OK_AND_ASSIGN(BackendUrl b, ParseBackendUrl("--bus", "pubsub://my-project"));
  EXPECT_EQ(b.scheme, UrlScheme::kPubSub);
  EXPECT_EQ(b.target, "my-project");
}

TEST(BackendConfigTest, BadUrlsNameTheFlagAndValue) {
  EXPECT_THAT(ParseBackendUrl("--history", "mysql://x"),
              StatusIsWith(StatusCode::kInvalidArgument, "--history: unsupported URL 'mysql://x'"));
  EXPECT_THAT(ParseBackendUrl("--history", "sqlite:"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseBackendUrl("--bus", "pubsub://"), StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseCaptureSetting("cdc"), StatusIsWith(StatusCode::kInvalidArgument, "'cdc'"));
}

TEST(BackendConfigTest, ConfigFileSetsValuesAndRejectsUnknownKeys) {
  ::ch::testing::TempDir dir;
  std::string path = dir.File("ch.conf");
  {
    std::ofstream f(path);
    f << "# comment\n data = /srv/ch \ncapture = notify\n";
  }
  BackendConfig c;
  ASSERT_OK(LoadConfigFile(path, c));
  EXPECT_EQ(c.data_dir, "/srv/ch");
  EXPECT_EQ(c.capture, CaptureSetting::kNotify);
  {
    std::ofstream f(path);
    f << "histroy = sqlite:x\n";
  }
  EXPECT_THAT(LoadConfigFile(path, c), StatusIsWith(StatusCode::kInvalidArgument, ":1: histroy"));
  EXPECT_THAT(LoadConfigFile(dir.File("missing.conf"), c), StatusIs(StatusCode::kNotFound));
}

}  // namespace
}  // namespace ch
