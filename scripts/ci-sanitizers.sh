#!/usr/bin/env bash
# The sanitizer and fuzzing stages of CI (.ci/run runs `all`); each also runs alone, by hand
# (docs/testing.md "Sanitizers and fuzzing"):
#
#   scripts/ci-sanitizers.sh asan   # preset asan-ubsan: clang, ASan + UBSan (any finding fails),
#                                   # then ctest -L 'unit|contract|embedded' -LE 'pubsub|slow'
#   scripts/ci-sanitizers.sh fuzz   # the libFuzzer targets of that build: ctest -L fuzz, each
#                                   # for CH_FUZZ_SECONDS (default 60)
#   scripts/ci-sanitizers.sh tsan   # preset tsan: ThreadSanitizer, only the test binaries
#                                   # labelled `concurrency` (bus consumer, publisher, runtime,
#                                   # capture relay), then those tests
#   scripts/ci-sanitizers.sh all    # asan, fuzz, tsan
#
# Needs clang and its runtimes (Debian: clang libclang-rt-14-dev; .ci/run installs them). The
# build directories are build-asan-ubsan/ and build-tsan/ (CMakePresets.json). Tests that need
# PostgreSQL run when CH_TEST_PG_URL is set, as in the plain build. Prints how long each stage
# took; exits non-zero at the first stage that fails.
set -euo pipefail
cd "$(dirname "$0")/.."

stage="${1:-all}"
jobs="$(nproc)"
fuzz_seconds="${CH_FUZZ_SECONDS:-60}"

if ! command -v clang++ >/dev/null; then
  echo "ci-sanitizers: clang++ not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

# Sanitizer findings end the test that made them: no report goes by as a warning.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}"

# Run "$@" as the stage named $1 and report its wall-clock time.
timed() {
  local name="$1"
  shift
  local start=$SECONDS
  echo "ci-sanitizers: $name ..."
  "$@"
  echo "ci-sanitizers: $name took $((SECONDS - start)) s"
}

configure() {
  if [ ! -f "build-$1/build.ninja" ]; then cmake --preset "$1" -DCH_FUZZ_SECONDS="$fuzz_seconds"; fi
}

# Build, in build directory $1, only the binaries of the ctest entries that ctest selects with the
# remaining arguments (an entry named after its binary; the reference entries share it).
build_tests() {
  local dir="$1" name
  shift
  local targets=()
  # Regenerate first: after a CMakeLists change ctest -N would list the previous configure's tests.
  ninja -C "$dir" build.ninja >/dev/null
  for name in $(cd "$dir" && ctest -N "$@" | sed -n 's/^ *Test *#[0-9]*: //p'); do
    if ninja -C "$dir" -t query "$name" >/dev/null 2>&1; then targets+=("$name"); fi
  done
  cmake --build "$dir" --parallel "$jobs" --target "${targets[@]}"
}

asan_build() {
  configure asan-ubsan
  build_tests build-asan-ubsan -L 'unit|contract|embedded|fuzz' -LE 'pubsub|slow'
}

asan_test() {
  (cd build-asan-ubsan &&
    ctest --output-on-failure --timeout 1800 -j "$jobs" -L 'unit|contract|embedded' -LE 'pubsub|slow')
}

fuzz_run() {
  # The fuzz targets are part of the asan-ubsan build.
  (cd build-asan-ubsan && ctest --output-on-failure -j "$jobs" -L fuzz)
}

tsan_build() {
  configure tsan
  build_tests build-tsan -L concurrency
}

tsan_test() {
  (cd build-tsan && ctest --output-on-failure --timeout 1800 -j "$jobs" -L concurrency)
}

case "$stage" in
  asan)
    timed "asan-ubsan build" asan_build
    timed "asan-ubsan tests" asan_test
    ;;
  fuzz)
    timed "asan-ubsan build" asan_build
    timed "fuzzing (${fuzz_seconds} s per target)" fuzz_run
    ;;
  tsan)
    timed "tsan build" tsan_build
    timed "tsan tests" tsan_test
    ;;
  all)
    timed "asan-ubsan build" asan_build
    timed "asan-ubsan tests" asan_test
    timed "fuzzing (${fuzz_seconds} s per target)" fuzz_run
    timed "tsan build" tsan_build
    timed "tsan tests" tsan_test
    ;;
  *)
    echo "usage: scripts/ci-sanitizers.sh [asan|fuzz|tsan|all]" >&2
    exit 2
    ;;
esac
