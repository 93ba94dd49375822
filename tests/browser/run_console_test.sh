#!/usr/bin/env bash
# ctest entry console_browser_test: the support console's browser tests (console.test.mjs), run
# with node's test runner. Needs node (>= 20), chromium (Debian's, /usr/bin/chromium, or
# $CH_CHROMIUM) and playwright-core installed in tests/browser (npm ci there; .ci/run does it).
# When one is missing it says which and exits 77 (ctest: Skipped), or 1 with CH_TEST_NO_SKIP=1.
#
#   run_console_test.sh BUILD_DIR       (the build holding campaign-history)
#   CH_CONSOLE_SCREENSHOTS=DIR ...      also save screenshots of the main views in DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: run_console_test.sh BUILD_DIR}"

skip() {
  echo "console_browser_test: SKIPPED: $1" >&2
  if [ "${CH_TEST_NO_SKIP:-}" = "1" ]; then
    echo "console_browser_test: CH_TEST_NO_SKIP=1: a skip is a failure here" >&2
    exit 1
  fi
  exit 77
}

command -v node >/dev/null || skip "node is not installed (Debian: apt-get install nodejs; node >= 20)"
major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$major" -ge 20 ] || skip "node $(node --version) is too old: playwright-core needs node >= 20"
chromium="${CH_CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] || skip "chromium not found at $chromium (Debian: apt-get install chromium; or set CH_CHROMIUM)"
[ -f "$here/node_modules/playwright-core/package.json" ] ||
  skip "playwright-core is not installed: run 'npm ci' in tests/browser"
[ -x "$build/campaign-history" ] || { echo "console_browser_test: no $build/campaign-history" >&2; exit 1; }

export CH_BINARY="$(cd "$build" && pwd)/campaign-history" CH_CHROMIUM="$chromium"
if [ -n "${CH_CONSOLE_SCREENSHOTS:-}" ]; then
  mkdir -p "$CH_CONSOLE_SCREENSHOTS"
  CH_CONSOLE_SCREENSHOTS="$(cd "$CH_CONSOLE_SCREENSHOTS" && pwd)"
  export CH_CONSOLE_SCREENSHOTS
fi
cd "$here"
exec node --test --test-reporter=spec console.test.mjs
