#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time (the ctest entries of fuzz/CMakeLists.txt):
#   run_fuzzer.sh FUZZER SEED_CORPUS_DIR WORK_DIR SECONDS
# First every input of the seed corpus and of regressions/ (inputs that once failed) runs once;
# then the fuzzer mutates them for SECONDS. What it finds goes to WORK_DIR/corpus/<name>/ (never
# to the committed seeds); the input of a failure to WORK_DIR/artifacts/<name>-crash-*, named in
# the output. Exits non-zero when the fuzzer found a crash, a leak, undefined behaviour, a
# timeout (10 s for one input) or a failed check (fuzz/fuzz_check.h).
set -euo pipefail
fuzzer="$1"
seeds="$2"
work="$3"
seconds="$4"
name="$(basename "$seeds")"
regressions="$(dirname "$seeds")/../regressions/$name"
mkdir -p "$work/corpus/$name" "$work/artifacts"
dirs=("$work/corpus/$name" "$seeds")
if [ -d "$regressions" ]; then dirs+=("$regressions"); fi
# UBSan findings abort (the build uses -fno-sanitize-recover); ASan checks leaks at exit.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$work/artifacts/$name-" "${dirs[@]}"
