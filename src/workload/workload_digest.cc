#include "workload/workload_digest.h"

#include <fmt/format.h>

namespace ch {

namespace {
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;
}  // namespace

void WorkloadDigest::Add(std::string_view line) {
  for (unsigned char c : line) {
    hash_ ^= c;
    hash_ *= kFnvPrime;
  }
  hash_ ^= static_cast<unsigned char>('\n');
  hash_ *= kFnvPrime;
  ++lines_;
}

std::string WorkloadDigest::Hex() const { return fmt::format("{:016x}", hash_); }

std::string WorkloadIdentity(std::string_view first_line) {
  WorkloadDigest d;
  d.Add(first_line);
  return d.Hex();
}

}  // namespace ch
