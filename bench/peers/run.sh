#!/usr/bin/env bash
# bench/peers/run.sh: campaign-history next to its peers, in one run (docs/benchmarks.md, "Peers").
#
#   bench/peers/run.sh [--pg URL] [peers_bench flags: --preset large --ops 10000 --moments 20 ...]
#
# Starts a throwaway MariaDB server in a temp directory (own socket, own port, as the `mysql`
# user, stopped at the end) and runs build/bench/peers_bench against it and against PostgreSQL
# (--pg URL, else $CH_TEST_PG_URL, e.g. the server of scripts/services.sh; the bench creates and
# drops its own databases peers_<pid>*), and, with PUBSUB_EMULATOR_HOST set (scripts/services.sh),
# campaign-history on PostgreSQL + Pub/Sub. Installs nothing: it says what is missing and how to
# get it; without the MariaDB server or a bench built with libmariadb it runs without MariaDB.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BENCH="${PEERS_BENCH:-$ROOT/build/bench/peers_bench}"
PG_URL="${CH_TEST_PG_URL:-}"
PORT="${PEERS_MARIADB_PORT:-53306}"
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --pg) PG_URL="$2"; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

missing=()
[[ -x "$BENCH" ]] || missing+=("the bench: ninja -C build peers_bench (needs CH_BUILD_TESTS=ON)")
[[ -n "$PG_URL" ]] || missing+=("a PostgreSQL 15 server: --pg URL or CH_TEST_PG_URL (scripts/services.sh start)")
if [[ -n "$PG_URL" ]] && command -v psql >/dev/null; then
  have=$(psql "$PG_URL" -Atc "SELECT count(*) FROM pg_available_extensions WHERE name = 'periods'" 2>/dev/null || echo 0)
  [[ "$have" == 1 ]] || missing+=("the periods extension on that server: apt-get install -y postgresql-15-periods")
fi
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "bench/peers/run.sh: cannot run, missing:" >&2
  for m in "${missing[@]}"; do echo "  - $m" >&2; done
  exit 4
fi
[[ -n "${PUBSUB_EMULATOR_HOST:-}" ]] ||
  echo "note: PUBSUB_EMULATOR_HOST is not set: campaign-history on PostgreSQL + Pub/Sub is skipped" >&2

# MariaDB only when the bench can talk to it and the server is installed; else the bench reports
# its MariaDB peers as skipped.
if ! "$BENCH" --have-mariadb-client; then
  echo "note: peers_bench was built without libmariadb: the MariaDB peers are skipped" >&2
  exec "$BENCH" --pg "$PG_URL" "${ARGS[@]}"
fi
if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
  echo "note: no MariaDB server (apt-get install -y mariadb-server): the MariaDB peers are skipped" >&2
  exec "$BENCH" --pg "$PG_URL" "${ARGS[@]}"
fi

D="$(mktemp -d /tmp/ch-peers-mariadb.XXXXXX)"
MYSQL_USER_FLAG=()
if [[ $(id -u) == 0 ]]; then
  chown mysql:mysql "$D"
  MYSQL_USER_FLAG=(--user=mysql)
fi
chmod 755 "$D"
stop() {
  if [[ -f "$D/mysqld.pid" ]]; then
    kill "$(cat "$D/mysqld.pid")" 2>/dev/null || true
    for _ in $(seq 1 100); do [[ -f "$D/mysqld.pid" ]] || break; sleep 0.1; done
  fi
  rm -rf "$D"
}
trap stop EXIT

mariadb-install-db --no-defaults --datadir="$D/data" "${MYSQL_USER_FLAG[@]}" \
  --auth-root-authentication-method=normal --skip-test-db >"$D/install.log" 2>&1 ||
  { cat "$D/install.log" >&2; exit 1; }
# Like the PostgreSQL test server (fsync = off): no flush at every commit.
mariadbd --no-defaults --datadir="$D/data" --socket="$D/mysqld.sock" --port="$PORT" \
  --bind-address=127.0.0.1 "${MYSQL_USER_FLAG[@]}" --pid-file="$D/mysqld.pid" \
  --log-error="$D/error.log" --skip-log-bin --innodb-buffer-pool-size=512M \
  --innodb-flush-log-at-trx-commit=2 >/dev/null 2>&1 &
for _ in $(seq 1 300); do
  [[ -S "$D/mysqld.sock" ]] && mariadb --no-defaults -S "$D/mysqld.sock" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done
mariadb --no-defaults -S "$D/mysqld.sock" -u root -e 'SELECT 1' >/dev/null ||
  { cat "$D/error.log" >&2; exit 1; }
echo "MariaDB $(mariadb --no-defaults -S "$D/mysqld.sock" -u root -Nse 'SELECT version()') on $D/mysqld.sock"

"$BENCH" --pg "$PG_URL" --mariadb-socket "$D/mysqld.sock" "${ARGS[@]}"
