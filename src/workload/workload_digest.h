// WorkloadDigest: how a replay recognizes a workload it already applied (workload/replayer.h).
//
// A workload's identity is a fingerprint of its first line (the header, for generated files: it
// names the generator's parameters and seed); its digest through a line is a fingerprint of every
// line up to that one. A database records both with each applied op (CampaignStore replay
// positions), so a re-run of the same file can skip what is applied, and a different file that
// happens to share the first line is told apart by the digest.
//
// Lines are hashed as the reader parses them: without the newline and trailing whitespace (a
// file with CRLF line ends is the same workload). The hash is 64-bit FNV-1a over each line's bytes
// followed by '\n', rendered as 16 lowercase hex digits. It guards against mistakes, not against
// someone crafting a collision. DO NOT CHANGE: databases record these values.
//
// Thread-safety: a plain value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace ch {

class WorkloadDigest {
 public:
  // Fold in the next line (its text as WorkloadReader::text() returns it).
  void Add(std::string_view line);
  // Return the digest of the lines added so far (16 hex digits).
  std::string Hex() const;
  // Return the number of lines added.
  int64_t lines() const { return lines_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;  // the FNV-1a 64 offset basis
  int64_t lines_ = 0;
};

// Return the identity of the workload whose first line is `first_line` (16 hex digits: the
// digest through that line).
std::string WorkloadIdentity(std::string_view first_line);

}  // namespace ch
