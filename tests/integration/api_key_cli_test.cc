// `api-key create|list|revoke` and `serve --roles api --api-keys` end to end on the embedded
// setup: the secret printed once and only its hash in the file, bad input refused with nothing
// changed, serve refusing to start without keys, and tenant isolation through the whole pipeline
// (a key of customer 2 cannot read or change customer 3, whose history stays as it was).
#include <fmt/format.h>
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/api_keys.h"
#include "testing/test_util.h"
#include "tests/integration/e2e_util.h"

namespace ch {
namespace {

using ::ch::testing::TempDir;
using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

struct Outcome {
  int code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

class ApiKeyCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::ch::testing::BinaryDir().empty()) GTEST_SKIP() << "CH_BINARY_DIR not set (run via ctest)";
    bin_ = ::ch::testing::BinaryDir() + "/campaign-history";
    data_ = dir_.File("data");
    keys_ = dir_.File("keys.jsonl");
  }

  Outcome Run(const std::string& args) {
    const std::string err = dir_.File("stderr.txt");
    ::ch::testing::CommandOutcome o = ::ch::testing::RunCommand(
        fmt::format("{{ '{}' --data '{}' {} 2>'{}'; }}", bin_, data_, args, err));
    return {o.code, o.output, ReadAll(err)};
  }

  TempDir dir_;
  std::string bin_, data_, keys_;
};

TEST_F(ApiKeyCliTest, CreatePrintsTheSecretOnceAndTheFileHoldsOnlyItsHash) {
  Outcome o = Run(fmt::format("api-key create --customer 7 --api-keys '{}'", keys_));
  ASSERT_EQ(o.code, 0) << o.err;
  std::string secret = o.out.substr(0, o.out.find('\n'));
  EXPECT_EQ(o.out, secret + "\n");  // the secret alone on stdout
  EXPECT_TRUE(secret.starts_with("chk_k")) << secret;
  EXPECT_THAT(o.err, HasSubstr("shown only this once"));
  EXPECT_THAT(o.err, HasSubstr("for customer 7 (writes as api:k"));
  std::string file = ReadAll(keys_);
  EXPECT_THAT(file, HasSubstr(Sha256Hex(secret)));
  EXPECT_THAT(file, Not(HasSubstr(secret.substr(22))));
  EXPECT_THAT(file, HasSubstr(R"("format":"campaign-history-api-keys","version":1)"));

  Outcome svc = Run(fmt::format("api-key create --service --api-keys '{}' --json", keys_));
  ASSERT_EQ(svc.code, 0) << svc.err;
  json j = json::parse(svc.out);
  EXPECT_EQ(j["service"], true);
  EXPECT_TRUE(j["customer_id"].is_null());
  EXPECT_THAT(ReadAll(keys_), Not(HasSubstr(j["secret"].get<std::string>().substr(22))));

  // list names the keys, never a secret.
  Outcome list = Run(fmt::format("api-key list --api-keys '{}'", keys_));
  ASSERT_EQ(list.code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr(j["id"].get<std::string>()));
  EXPECT_THAT(list.out, HasSubstr("service"));
  EXPECT_THAT(list.out, Not(HasSubstr("chk_")));

  // revoke, twice, and an unknown id.
  EXPECT_EQ(
      Run(fmt::format("api-key revoke --id {} --api-keys '{}'", j["id"].get<std::string>(), keys_))
          .code,
      0);
  EXPECT_EQ(
      Run(fmt::format("api-key revoke --id {} --api-keys '{}'", j["id"].get<std::string>(), keys_))
          .code,
      4);
  EXPECT_EQ(Run(fmt::format("api-key revoke --id k0000000000000000 --api-keys '{}'", keys_)).code,
            3);
}

TEST_F(ApiKeyCliTest, BadInputIsRefusedAndChangesNothing) {
  ASSERT_EQ(Run(fmt::format("api-key create --customer 7 --api-keys '{}'", keys_)).code, 0);
  const std::string before = ReadAll(keys_);
  struct Case {
    std::string args;
    int code;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"--customer abc", 2, "--customer"},
           {"--customer 0", 2, "--customer"},
           {"--customer -3", 2, "--customer"},
           {"--customer \"7; rm -rf /\"", 2, "--customer"},
           {"--customer 99999999999999999999", 2, "--customer"},
           {"", 2, "give --customer C or --service"},
           {"--customer 7 --service", 2, "excludes"},
       }) {
    Outcome o = Run(fmt::format("api-key create {} --api-keys '{}'", c.args, keys_));
    EXPECT_EQ(o.code, c.code) << c.args << ": " << o.err;
    EXPECT_THAT(o.err, HasSubstr(c.message)) << c.args;
    EXPECT_TRUE(o.out.empty()) << c.args << ": " << o.out;
  }
  EXPECT_EQ(ReadAll(keys_), before);
  // An unwritable place: no secret printed, nothing created.
  Outcome o = Run(fmt::format("api-key create --customer 7 --api-keys '{}'",
                              dir_.File("no/such/dir/keys.jsonl")));
  EXPECT_EQ(o.code, 4) << o.err;
  EXPECT_THAT(o.err, HasSubstr("cannot"));
  EXPECT_TRUE(o.out.empty());
  // Not a key file: refused, left as it was.
  const std::string other = dir_.File("other.txt");
  std::ofstream(other) << "hello\n";
  o = Run(fmt::format("api-key create --customer 7 --api-keys '{}'", other));
  EXPECT_EQ(o.code, 2) << o.err;
  EXPECT_THAT(o.err, HasSubstr("line 1"));
  EXPECT_EQ(ReadAll(other), "hello\n");
}

TEST_F(ApiKeyCliTest, ServeRefusesTheApiRoleWithoutKeys) {
  Outcome o = Run("serve --roles api --listen 127.0.0.1:0");
  EXPECT_EQ(o.code, 2);
  EXPECT_THAT(o.err, HasSubstr("--roles api needs --api-keys FILE"));
  EXPECT_THAT(o.err, HasSubstr("--insecure-trust-actor"));
  o = Run(fmt::format("serve --roles api --listen 127.0.0.1:0 --api-keys '{}'",
                      dir_.File("missing.jsonl")));
  EXPECT_EQ(o.code, 3) << o.err;
  EXPECT_THAT(o.err, HasSubstr("--api-keys"));
  const std::string bad = dir_.File("bad.jsonl");
  std::ofstream(bad) << R"({"format":"campaign-history-api-keys","version":9})"
                     << "\n";
  o = Run(fmt::format("serve --roles api --listen 127.0.0.1:0 --api-keys '{}'", bad));
  EXPECT_EQ(o.code, 2) << o.err;
  EXPECT_THAT(o.err, HasSubstr("version 9 is not supported"));
  o = Run(fmt::format("serve --roles api --api-keys '{}' --insecure-trust-actor", bad));
  EXPECT_EQ(o.code, 2) << o.err;
  EXPECT_THAT(o.err, HasSubstr("exclude each other"));
}

// A `serve` child, stopped with SIGTERM.
class ServeChild {
 public:
  ServeChild(const std::string& command, const std::string& log) : log_(log) {
    ::ch::testing::CommandOutcome o =
        ::ch::testing::RunCommand(fmt::format("{} >/dev/null 2>'{}' & echo $!", command, log));
    pid_ = std::atoi(o.output.c_str());
  }
  ~ServeChild() { Stop(); }
  // The api port from the log, 0 if it did not start within 20 s.
  int Port() {
    const std::string marker = "api listening on http://127.0.0.1:";
    for (int i = 0; i < 400; ++i) {
      std::string text = ReadAll(log_);
      size_t at = text.find(marker);
      if (at != std::string::npos) return std::atoi(text.c_str() + at + marker.size());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return 0;
  }
  void Stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 400 && ::kill(pid_, 0) == 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    pid_ = 0;
  }
  std::string Log() const { return ReadAll(log_); }

 private:
  std::string log_;
  int pid_ = 0;
};

TEST_F(ApiKeyCliTest, AKeyOfOneCustomerLeavesAnotherCustomersHistoryUnchanged) {
  // Customers 2 and 3 with history, from the small workload.
  const std::string ops = dir_.File("small.jsonl");
  ::ch::testing::WriteSmallWorkloadFile(ops);
  ASSERT_EQ(Run(fmt::format("replay --ops '{}' --wait --quiet", ops)).code, 0);
  Outcome key = Run(fmt::format("api-key create --customer 2 --api-keys '{}'", keys_));
  ASSERT_EQ(key.code, 0) << key.err;
  const std::string secret = key.out.substr(0, key.out.find('\n'));
  const std::string timeline3 =
      "timeline --customer 3 --from 2000-01-01T00:00:00Z --limit 100000 --json";
  Outcome before = Run(timeline3);
  ASSERT_EQ(before.code, 0) << before.err;

  int64_t mine = 0, theirs = 0;
  {
    ServeChild serve(fmt::format("'{}' --data '{}' --log-level info serve --roles api,publisher "
                                 "--listen 127.0.0.1:0 --api-keys '{}'",
                                 bin_, data_, keys_),
                     dir_.File("serve.log"));
    int port = serve.Port();
    ASSERT_GT(port, 0) << serve.Log();
    httplib::Client c("127.0.0.1", port);
    httplib::Headers auth = {{"Authorization", "Bearer " + secret}};
    auto list3 = c.Get("/v1/customers/3/campaigns", auth);
    ASSERT_TRUE(list3);
    EXPECT_EQ(list3->status, 404) << list3->body;
    // Find one of customer 3's campaigns (through the history) and try everything on it.
    json asof = json::parse(Run("as-of --customer 3 --at now --json").out);
    ASSERT_FALSE(asof["campaigns"].empty());
    theirs = asof["campaigns"][0]["id"].get<int64_t>();
    const std::string path = fmt::format("/v1/campaigns/{}", theirs);
    auto expect_refused = [](const httplib::Result& r, int status) {
      ASSERT_TRUE(r);
      EXPECT_EQ(r->status, status) << r->body;
    };
    expect_refused(c.Get(path, auth), 404);
    expect_refused(c.Patch(path, auth, R"({"name":"pwned"})", "application/json"), 404);
    expect_refused(c.Post(path + ":move", auth, R"({"priority":1})", "application/json"), 404);
    expect_refused(c.Delete(path, auth), 404);
    expect_refused(c.Post("/v1/customers/3/campaigns", auth, R"({"name":"x"})", "application/json"),
                   404);
    expect_refused(c.Patch(path, httplib::Headers{{"X-Actor", "user:1"}}, R"({"name":"pwned"})",
                           "application/json"),
                   401);
    // The key does work on its own customer.
    auto made = c.Post("/v1/customers/2/campaigns", auth, R"({"name":"mine"})", "application/json");
    ASSERT_TRUE(made);
    ASSERT_EQ(made->status, 201) << made->body;
    mine = json::parse(made->body)["id"].get<int64_t>();
    EXPECT_THAT(serve.Log(), HasSubstr("wrong_customer"));
    EXPECT_THAT(serve.Log(), Not(HasSubstr(secret.substr(22))));
    serve.Stop();
  }
  // (Queries first move what the outbox still holds into the history.)
  Outcome after = Run(timeline3);
  ASSERT_EQ(after.code, 0) << after.err;
  // The transactions (the answer's other fields say when it was asked).
  EXPECT_EQ(json::parse(after.out)["transactions"], json::parse(before.out)["transactions"]);
  EXPECT_FALSE(json::parse(before.out)["transactions"].empty());
  // Customer 2's new campaign reached the history, attributed to the key.
  Outcome log = Run(fmt::format("log --campaign {} --json", mine));
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_THAT(log.out, HasSubstr("\"api:k"));
  EXPECT_GT(theirs, 0);
}

}  // namespace
}  // namespace ch
