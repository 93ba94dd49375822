// Status and Result<T>: how every module boundary reports success or failure.
//
// A Status carries one of abseil's canonical codes and a message that names what is wrong.
// Result<T> holds either a value or a non-OK Status. No exception crosses a module boundary:
// adapters translate library errors (sqlite3, libpq, nlohmann-json, CLI11) into a Status once.
//
// Each code maps once to a CLI exit code, an HTTP status and a worker decision
// (see ExitCodeFor, HttpStatusFor, IsRetryable below).
//
// Thread-safety: Status and Result are values; const access is safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace ch {

// Canonical codes, numbered as in abseil / gRPC. DO NOT CHANGE the numbers: they appear in logs
// and in dead-letter reasons.
enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

// Return the upper-snake name of `code`, e.g. "INVALID_ARGUMENT".
std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  // An OK status.
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status OK() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // Return "CODE: message" (or "OK").
  std::string ToString() const;

  // Return a copy whose message is "context: message". OK stays OK.
  Status WithContext(std::string_view context) const;

  // Mark a status as deliberately ignored.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

Status CancelledError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status UnauthenticatedError(std::string message);
Status PermissionDeniedError(std::string message);

// Return the process exit code for a failed command with this status. 0 for OK.
//   2 invalid argument / out of range (bad input, usage)   3 not found
//   4 failed precondition / already exists / aborted       5 unavailable / deadline exceeded
//   6 data loss                                             1 anything else (internal)
int ExitCodeFor(StatusCode code);

// Return the HTTP status for a failed request with this status (200 for OK).
int HttpStatusFor(StatusCode code);

// Return true when a worker should retry (or nack) the work that failed with this code, false
// when retrying cannot help (e.g. InvalidArgument). Consumers of the bus decide with
// ClassifyFailure instead, which also holds work on PermissionDenied, FailedPrecondition, ...
bool IsRetryable(StatusCode code);

// Whose fault a failure is, which decides what a bus consumer does with the message
// (bus/bus_consumer.h; docs/operations.md "When a dependency fails").
enum class FailureKind {
  // Something the worker depends on -- a store, a database, the bus -- is down or refuses to
  // work (full, read-only, no permission, missing, misconfigured). The message is fine: hold it
  // and retry with backoff until the failure clears; never dead-letter it.
  kDependency,
  // The message itself is wrong (malformed, inconsistent, refused by a store for its content):
  // retrying cannot help. Dead-letter it.
  kBadMessage,
  // Neither is certain (an internal error, an exception): retry a bounded number of times, then
  // dead-letter.
  kUncertain,
};

// InvalidArgument, OutOfRange, AlreadyExists -> kBadMessage; Internal, Unknown -> kUncertain;
// every other code (Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Cancelled,
// PermissionDenied, Unauthenticated, FailedPrecondition, NotFound, DataLoss, Unimplemented) ->
// kDependency. REQUIRES: code != kOk.
FailureKind ClassifyFailure(StatusCode code);

// Attribute a failure to the dependency that returned it ("history store", "campaign
// database"): the message gets `dependency` as context, and a kUncertain code becomes
// Unavailable naming the original code (an internal error of a store is the store's failure,
// not the message's). kBadMessage codes stay (the dependency refused this message's content).
// OK stays OK.
Status DependencyFailure(const Status& s, std::string_view dependency);

// Result<T>: a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok(). An OK status without a value becomes an Internal error.
  Result(Status status) : repr_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(repr_).ok()) {
      repr_ = Status(StatusCode::kInternal, "Result constructed from an OK status without a value");
    }
  }
  Result(T value) : repr_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  template <typename U>
  requires(std::is_convertible_v<U&&, T> && !std::is_same_v<std::decay_t<U>, T> &&
           !std::is_same_v<std::decay_t<U>, Status>) Result(U&& value)
      : repr_(T(std::forward<U>(value))) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return std::holds_alternative<T>(repr_); }

  // Return the status: OK when a value is held.
  Status status() const { return ok() ? Status::OK() : std::get<Status>(repr_); }

  // REQUIRES: ok().
  const T& value() const& { return std::get<T>(repr_); }
  T& value() & { return std::get<T>(repr_); }
  T&& value() && { return std::get<T>(std::move(repr_)); }

  const T& operator*() const& { return value(); }
  T& operator*() & { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const T* operator->() const { return &value(); }
  T* operator->() { return &value(); }

  // Return the value, or `fallback` when not ok().
  T value_or(T fallback) const& { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<Status, T> repr_;
};

namespace internal {
inline Status AsStatus(const Status& s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace ch

#define CH_CONCAT_INNER(a, b) a##b
#define CH_CONCAT(a, b) CH_CONCAT_INNER(a, b)

// Evaluate `expr` (a Status or Result); return its status from the current function if not OK.
#define RETURN_IF_ERROR(expr)                                   \
  do {                                                          \
    ::ch::Status _ch_status = ::ch::internal::AsStatus((expr)); \
    if (!_ch_status.ok()) return _ch_status;                    \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluate the Result `expr`; return its status if not OK,
// otherwise move its value into `lhs` (which may be a declaration such as `auto x`).
#define ASSIGN_OR_RETURN(lhs, expr) \
  CH_ASSIGN_OR_RETURN_IMPL(CH_CONCAT(_ch_result_, __LINE__), lhs, expr)
#define CH_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()
