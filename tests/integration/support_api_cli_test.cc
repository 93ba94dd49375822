// `serve --roles support` as a process: refuses to start without tokens, serves with tokens from
// a file (made by `support-token create`) or the environment, answers as the CLI's --json, 401
// without a valid token, and never writes a token to its log.
#include <fmt/format.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <regex>
#include <thread>

#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::RunCommand;
using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class SupportApiCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::ch::testing::BinaryDir().empty()) return;
    dir_ = new ::ch::testing::TempDir();
    data_ = dir_->File("data");
    std::string ops = dir_->File("small.jsonl");
    ::ch::testing::WriteSmallWorkloadFile(ops);
    auto r = RunCommand(
        fmt::format("'{}' --data '{}' replay --ops '{}' --wait --quiet", Bin(), data_, ops));
    ASSERT_EQ(r.code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
  }
  void TearDown() override { StopServer(); }

  static std::string Bin() { return ::ch::testing::BinaryDir() + "/campaign-history"; }

  // Start `serve --roles support --listen 127.0.0.1:0 EXTRA` in the background (env: prefix
  // assignments) and wait for the port it prints. Return false when it exited instead.
  bool StartServer(const std::string& extra, const std::string& env = "") {
    log_ = dir_->File("serve.log");
    std::string pid_file = dir_->File("serve.pid");
    auto r = RunCommand(fmt::format(
        "{} '{}' --data '{}' --log-level info serve --roles support --listen 127.0.0.1:0 {} "
        ">'{}' 2>&1 & echo $! >'{}'",
        env, Bin(), data_, extra, log_, pid_file));
    EXPECT_EQ(r.code, 0);
    pid_ = std::stoi(ReadFile(pid_file));
    const std::regex port_re("support API on http://127\\.0\\.0\\.1:(\\d+)/");
    for (int i = 0; i < 300; ++i) {
      std::smatch m;
      std::string log = ReadFile(log_);
      if (std::regex_search(log, m, port_re)) {
        port_ = std::stoi(m[1]);
        return true;
      }
      if (kill(pid_, 0) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void StopServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 200 && kill(pid_, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pid_ = 0;
  }

  // curl: "<status>\n<body>".
  std::pair<int, std::string> Curl(const std::string& path, const std::string& token = "") {
    std::string auth = token.empty() ? "" : fmt::format("-H 'Authorization: Bearer {}'", token);
    auto r = RunCommand(fmt::format("curl -s -g -w '\\n%{{http_code}}' {} 'http://127.0.0.1:{}{}'",
                                    auth, port_, path));
    size_t nl = r.output.rfind('\n');
    if (nl == std::string::npos) return {0, r.output};
    return {std::atoi(r.output.c_str() + nl + 1), r.output.substr(0, nl)};
  }

  static ::ch::testing::TempDir* dir_;
  static std::string data_;
  std::string log_;
  int pid_ = 0;
  int port_ = 0;
};

::ch::testing::TempDir* SupportApiCliTest::dir_ = nullptr;
std::string SupportApiCliTest::data_;

TEST_F(SupportApiCliTest, RefusesToStartWithoutTokens) {
  auto r =
      RunCommand(fmt::format("env -u CAMPAIGN_HISTORY_SUPPORT_TOKENS '{}' --data '{}' serve "
                             "--roles support --listen 127.0.0.1:0",
                             Bin(), data_));
  EXPECT_EQ(r.code, 4) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no support tokens configured"));
  EXPECT_THAT(r.output, HasSubstr("--support-tokens"));
}

TEST_F(SupportApiCliTest, ApiAndSupportInOneProcessNeedTwoAddresses) {
  auto r =
      RunCommand(fmt::format("'{}' --data '{}' serve --roles api,support "
                             "--insecure-trust-actor",
                             Bin(), data_));
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("--support-listen"));
}

TEST_F(SupportApiCliTest, ServesWithATokenFileAnd401sWithoutAValidToken) {
  std::string tokens = dir_->File("tokens");
  auto created = RunCommand(fmt::format(
      "{{ '{}' support-token create --support-tokens '{}' --label alice 2>/dev/null; }}", Bin(),
      tokens));
  ASSERT_EQ(created.code, 0) << created.output;
  std::string token = created.output.substr(0, created.output.find('\n'));
  ASSERT_EQ(token.size(), 43u) << created.output;
  std::string file = ReadFile(tokens);
  EXPECT_THAT(file, HasSubstr("sha256:"));
  EXPECT_THAT(file, HasSubstr(" alice"));
  EXPECT_THAT(file, ::testing::Not(HasSubstr(token)));

  ASSERT_TRUE(StartServer(fmt::format("--support-tokens '{}'", tokens))) << ReadFile(log_);
  std::string at = "2026-01-01T00:00:00Z";
  auto cli =
      RunCommand(fmt::format("{{ '{}' --data '{}' search 1 --json 2>/dev/null; }}", Bin(), data_));
  auto [status, body] = Curl("/v1/support/search?q=1", token);
  EXPECT_EQ(status, 200) << body;
  EXPECT_EQ(body, cli.output);

  auto [none_status, none_body] = Curl("/v1/support/search?q=1");
  EXPECT_EQ(none_status, 401);
  EXPECT_THAT(none_body, HasSubstr("UNAUTHENTICATED"));
  std::string wrong = "wrong-token-that-must-not-be-logged";
  auto [wrong_status, wrong_body] = Curl("/v1/support/search?q=1", wrong);
  EXPECT_EQ(wrong_status, 401);
  EXPECT_EQ(Curl("/healthz").first, 200);
  EXPECT_EQ(Curl("/openapi.json").first, 200);
  StopServer();
  std::string log = ReadFile(log_);
  EXPECT_THAT(log, HasSubstr("refused"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(token)));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(wrong)));
}

TEST_F(SupportApiCliTest, TokensFromTheEnvironment) {
  std::string token = "env-token-0123456789abcdef";
  ASSERT_TRUE(StartServer("", fmt::format("CAMPAIGN_HISTORY_SUPPORT_TOKENS='{}'", token)))
      << ReadFile(log_);
  auto [status, body] = Curl("/v1/support/customers/1/as-of?at=now&limit=5", token);
  EXPECT_EQ(status, 200) << body;
  EXPECT_THAT(body, HasSubstr("complete_through"));
  EXPECT_EQ(Curl("/v1/support/customers/1/as-of?at=now", "env-token-0123456789abcdeX").first, 401);
}

// demo serves the support role after its tour, with a token it prints, until SIGTERM.
TEST_F(SupportApiCliTest, DemoServesTheSupportRoleWithAPrintedToken) {
  std::string out = dir_->File("demo.out");
  std::string pid_file = dir_->File("demo.pid");
  auto r = RunCommand(
      fmt::format("'{}' --data '{}' demo --ops 100 --listen 127.0.0.1:0 >'{}' 2>&1 & echo $! >'{}'",
                  Bin(), dir_->File("demo"), out, pid_file));
  ASSERT_EQ(r.code, 0);
  pid_ = std::stoi(ReadFile(pid_file));
  const std::regex re(
      "console: +http://127\\.0\\.0\\.1:(\\d+)/console/[\\s\\S]*?sign-in token[^:]*: (\\S+)");
  // `m` points into `text`: both live past the loop.
  std::string text;
  std::smatch m;
  for (int i = 0; i < 1200; ++i) {
    text = ReadFile(out);
    if (std::regex_search(text, m, re)) break;
    ASSERT_EQ(kill(pid_, 0), 0) << "demo exited:\n" << text;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(m.empty()) << ReadFile(out);
  port_ = std::stoi(m[1]);
  std::string token = m[2];
  auto [status, body] = Curl("/v1/support/customers/2/as-of?at=now&limit=3", token);
  EXPECT_EQ(status, 200) << body;
  EXPECT_THAT(body, HasSubstr("\"customer_id\": 2"));
  EXPECT_EQ(Curl("/v1/support/customers/2/as-of?at=now").first, 401);
  StopServer();
  EXPECT_THAT(ReadFile(out), HasSubstr("stopped serving"));
}

}  // namespace
}  // namespace ch
