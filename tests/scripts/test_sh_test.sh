#!/usr/bin/env bash
# scripts/test.sh stops the servers it started, whatever the tests did, removes their directory
# and fails when a test fails. Runs it on a stand-in build directory (one passing and one failing
# ctest entry, no build) on ports of its own, then checks that nothing of its servers is left.
#
#   tests/scripts/test_sh_test.sh SOURCE_DIR      (ctest entry test_sh_test)
set -euo pipefail
root="$(cd "$1" && pwd)"
tmp="$(mktemp -d /tmp/ch-test-sh.XXXXXX)"
chmod 755 "$tmp"  # the PostgreSQL server runs as user postgres when this runs as root
svc=""  # test.sh's services directory, from its output
cleanup() {
  if [ -n "$svc" ]; then
    if [ -d "$svc" ]; then CH_SERVICES_DIR="$svc" "$root/scripts/services.sh" stop >/dev/null 2>&1 || true; fi
    # What test.sh left behind: the servers with its directory in their command lines.
    for pid in $(pgrep -f -- "$svc" || true); do kill -9 "$pid" 2>/dev/null || true; done
    rm -rf "$svc"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "test_sh_test: FAILED: $*" >&2
  exit 1
}

available="$("$root/scripts/services.sh" available)"
if [ -z "$available" ]; then
  echo "test_sh_test: neither PostgreSQL 15 nor the Pub/Sub emulator is installed: nothing to start"
  if [ -n "${CH_TEST_NO_SKIP:-}" ] && [ "${CH_TEST_NO_SKIP}" != 0 ]; then fail "skipped with CH_TEST_NO_SKIP set"; fi
  exit 77
fi

# A free port: nothing answers on it.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
  fail "no free port found"
}

mkdir -p "$tmp/build"
cat >"$tmp/build/CTestTestfile.cmake" <<'CTEST'
add_test(passes true)
add_test(fails false)
CTEST

set +e
env -u CH_TEST_PG_URL -u PUBSUB_EMULATOR_HOST -u CH_NO_SERVICES -u CH_SERVICES_DIR \
  CH_SKIP_SETUP=1 CH_BUILD_DIR="$tmp/build" \
  CH_PG_PORT="$(free_port)" CH_PUBSUB_PORT="$(free_port)" \
  "$root/scripts/test.sh" >"$tmp/out" 2>&1
code=$?
set -e
sed 's/^/  test.sh| /' "$tmp/out"
svc="$(sed -n 's|^services: environment in \(.*\)/env.sh$|\1|p' "$tmp/out")"
[ -n "$svc" ] || fail "test.sh started no server"

[ "$code" -ne 0 ] || fail "test.sh exited 0 although a test failed"
for s in $available; do
  case "$s" in
    pg) grep -q "services: PostgreSQL 15 on" "$tmp/out" || fail "test.sh did not start PostgreSQL" ;;
    pubsub) grep -q "services: Pub/Sub emulator on" "$tmp/out" || fail "test.sh did not start the emulator" ;;
  esac
done
left="$(pgrep -f -- "$svc" || true)"
if [ -n "$left" ]; then
  # shellcheck disable=SC2086
  fail "servers of test.sh left running after it finished: $(ps -o pid=,args= -p ${left//$'\n'/,})"
fi
[ ! -e "$svc" ] || fail "test.sh left its services directory $svc"
echo "test_sh_test: test.sh exited $code (a test failed) and left no server running ($available)"
