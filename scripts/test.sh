#!/usr/bin/env bash
# Quick start 2: set up, build and run the whole test suite. Prints ctest's summary; exits
# non-zero when any test fails.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${CH_BUILD_DIR:-build}"
cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
