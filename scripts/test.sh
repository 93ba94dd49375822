#!/usr/bin/env bash
# Quick start 2: set up, build and run the whole test suite, servers included. Prints ctest's
# summary; exits non-zero when any test fails.
#
# Tests that need PostgreSQL, the Pub/Sub emulator or ClickHouse read CH_TEST_PG_URL /
# PUBSUB_EMULATOR_HOST / CH_TEST_CLICKHOUSE_URL.
# When those are not set, this script starts throwaway servers (scripts/services.sh) for the run
# and stops them afterwards, whatever happened. PostgreSQL comes with scripts/setup.sh; the
# emulator is not a Debian package (README, "What the tests need"): without it, this script names
# the tests that cannot run (ctest label pubsub) and they show as Skipped. Set CH_NO_SERVICES=1 to
# run without servers. A test that skipped is reported as Skipped, not Passed; with
# CH_TEST_NO_SKIP=1 (.ci/run, which starts every server) it fails instead.
# CH_SKIP_SETUP=1: the build is up to date, do not run scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
if [ -z "${CH_SKIP_SETUP:-}" ]; then
  # The console's browser tests (tests/browser) need chromium, node >= 20 and npm (Debian's
  # nodejs/npm only where no node is installed: another packaging of node may be there, and
  # Debian's npm conflicts with it), then playwright-core as tests/browser/package-lock.json pins it.
  browser="chromium"
  if ! command -v node >/dev/null; then browser="$browser nodejs"; fi
  if ! command -v npm >/dev/null; then browser="$browser npm"; fi
  CH_SETUP_EXTRA_PACKAGES="${CH_SETUP_EXTRA_PACKAGES:-} $browser" scripts/setup.sh
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error) ||
    echo "test.sh: 'npm ci' in tests/browser failed: the browser tests will show as Skipped"
fi
BUILD_DIR="${CH_BUILD_DIR:-build}"

# Name the ctest entries with label $1, which need what $2 says is missing.
cannot_run() {
  echo "test.sh: $2: these tests need it and will show as Skipped:"
  (cd "$BUILD_DIR" && ctest -N -L "$1" | sed -n 's/^ *Test *#[0-9]*: /  /p')
}

if [ -n "${CH_NO_SERVICES:-}" ]; then
  echo "test.sh: CH_NO_SERVICES is set: the tests that need PostgreSQL, the Pub/Sub emulator or ClickHouse skip"
elif [ -z "${CH_TEST_PG_URL:-}" ] || [ -z "${PUBSUB_EMULATOR_HOST:-}" ] || [ -z "${CH_TEST_CLICKHOUSE_URL:-}" ]; then
  # Start only the servers that are not configured yet. When some are (e.g. shared ones), the
  # missing ones go into a private directory, so that stopping them afterwards leaves the
  # configured ones (and their env.sh) alone.
  remove=""
  if [ -z "${CH_SERVICES_DIR:-}" ] || [ -n "${CH_TEST_PG_URL:-}${PUBSUB_EMULATOR_HOST:-}${CH_TEST_CLICKHOUSE_URL:-}" ]; then
    CH_SERVICES_DIR="$(mktemp -d /tmp/ch-services.XXXXXX)"
    remove="$CH_SERVICES_DIR"
  fi
  export CH_SERVICES_DIR
  # By its full path: the trap runs after the `cd` below.
  trap '"$ROOT/scripts/services.sh" stop; if [ -n "$remove" ]; then rm -rf "$remove"; fi' EXIT
  available="$(scripts/services.sh available)"
  if [[ " $available " != *" pubsub "* ]] && [ -z "${PUBSUB_EMULATOR_HOST:-}" ]; then
    cannot_run pubsub "the Pub/Sub emulator is not installed (not a Debian package: README, \"What the tests need\")"
  fi
  if [[ " $available " != *" clickhouse "* ]] && [ -z "${CH_TEST_CLICKHOUSE_URL:-}" ]; then
    echo "test.sh: the ClickHouse server is not installed (scripts/setup.sh installs it): the tests that need it skip"
  fi
  if [[ " $available " != *" pg "* ]] && [ -z "${CH_TEST_PG_URL:-}" ]; then
    echo "test.sh: the PostgreSQL 15 server is not installed (scripts/setup.sh installs it): the tests that need it skip"
  fi
  needed=()
  for s in $available; do
    case "$s" in
      pg) [ -n "${CH_TEST_PG_URL:-}" ] || needed+=(pg) ;;
      pubsub) [ -n "${PUBSUB_EMULATOR_HOST:-}" ] || needed+=(pubsub) ;;
      clickhouse) [ -n "${CH_TEST_CLICKHOUSE_URL:-}" ] || needed+=(clickhouse) ;;
    esac
  done
  if [ ${#needed[@]} -gt 0 ]; then
    scripts/services.sh start "${needed[@]}"
    # shellcheck disable=SC1091
    source "$CH_SERVICES_DIR/env.sh"
  fi
fi

cd "$BUILD_DIR"
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"
