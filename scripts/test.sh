#!/usr/bin/env bash
# Quick start 2: set up, build and run the whole test suite, servers included. Prints ctest's
# summary; exits non-zero when any test fails.
#
# Tests that need PostgreSQL or the Pub/Sub emulator read CH_TEST_PG_URL / PUBSUB_EMULATOR_HOST.
# When those are not set, this script starts throwaway servers (scripts/services.sh) for the run
# and stops them afterwards. Set CH_NO_SERVICES=1 to run without them (those tests then skip).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
BUILD_DIR="${CH_BUILD_DIR:-build}"

started=""
if [ -z "${CH_NO_SERVICES:-}" ] && { [ -z "${CH_TEST_PG_URL:-}" ] || [ -z "${PUBSUB_EMULATOR_HOST:-}" ]; }; then
  export CH_SERVICES_DIR="${CH_SERVICES_DIR:-$(mktemp -d /tmp/ch-services.XXXXXX)}"
  scripts/services.sh start
  started=1
  trap 'scripts/services.sh stop' EXIT
  # shellcheck disable=SC1091
  source "$CH_SERVICES_DIR/env.sh"
fi

cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
