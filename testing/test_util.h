// Test helpers shared by every test: Status assertions and matchers, temporary directories.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "common/status.h"

namespace ch::testing {

inline const Status& GetStatus(const Status& s) { return s; }
template <typename T>
Status GetStatus(const Result<T>& r) {
  return r.status();
}

// Matches an OK Status or Result.
MATCHER(IsOk, "is OK") {
  Status s = ::ch::testing::GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

// Matches a Status or Result whose code is `code`.
MATCHER_P(StatusIs, code, "has status code " + std::string(::ch::StatusCodeName(code))) {
  Status s = ::ch::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code;
}

// Matches a Status or Result whose code is `code` and whose message contains `substr`.
MATCHER_P2(StatusIsWith, code, substr,
           "has status code " + std::string(::ch::StatusCodeName(code)) + " and message with '" +
               std::string(substr) + "'") {
  Status s = ::ch::testing::GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code && s.message().find(substr) != std::string::npos;
}

// A fresh directory under the system temp dir, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::string File(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// Return the build directory (CH_BINARY_DIR, set by ctest) or "" when unknown.
std::string BinaryDir();
// Return the source directory (CH_SOURCE_DIR, set by ctest) or "" when unknown.
std::string SourceDir();

}  // namespace ch::testing

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::ch::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::ch::testing::IsOk())

#define CH_TEST_CONCAT_INNER(a, b) a##b
#define CH_TEST_CONCAT(a, b) CH_TEST_CONCAT_INNER(a, b)
// ASSERT_OK_AND_ASSIGN(auto x, MakeResult()): assert OK, then move the value into `lhs`.
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  CH_TEST_ASSIGN_IMPL(CH_TEST_CONCAT(_ch_test_result_, __LINE__), lhs, expr)
#define CH_TEST_ASSIGN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                        \
  ASSERT_THAT(tmp, ::ch::testing::IsOk());  \
  lhs = std::move(tmp).value()
