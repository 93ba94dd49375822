// The reference workload generator (gen_workload.py, python3): an independent implementation of
// the workload format, kept outside this repository. CMake finds it at configure time and hands
// its path to the Reference* test suites in CH_REFERENCE_GENERATOR (cmake/ChHelpers.cmake); their
// ctest entries are Disabled when it was not found. Once found, a generator that fails fails the
// test that uses it.
#pragma once

#include <string>

#include "common/status.h"

namespace ch::testing {

// Return CH_REFERENCE_GENERATOR, or "" when it is unset (the test binary run by hand).
std::string ReferenceGeneratorPath();

// Why a Reference* test skips when ReferenceGeneratorPath() is "".
inline constexpr char kNoReferenceGenerator[] =
    "CH_REFERENCE_GENERATOR is not set: run the *_reference_test entries with ctest (Disabled "
    "when CMake found no gen_workload.py), or set it to the generator's path";

struct ReferenceRun {
  // The generator script.
  std::string generator;
  // Its arguments (shell words); `--out FILE` is added. Default: the small preset, seed 1.
  std::string args = "--preset small --seed 1";
  // What runs the script. Default: python3.
  std::string interpreter = "python3";
};

// Run the generator, writing the workload to `out`. Fails (Internal) when it cannot be started,
// exits with an error (the message has the exit status and the end of its stderr) or writes
// nothing.
Status RunReferenceGenerator(const ReferenceRun& run, const std::string& out);

}  // namespace ch::testing
