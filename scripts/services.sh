#!/usr/bin/env bash
# Start or stop the throwaway servers the integration tests use, and write the environment that
# points the tests at them.
#
#   scripts/services.sh start      # PostgreSQL 15 (wal_level=logical) + Pub/Sub emulator
#   source "${CH_SERVICES_DIR:-/tmp/ch-services}/env.sh"
#   scripts/services.sh stop
#   scripts/services.sh available # which of them can start here: "pg pubsub", "pg", ...
#
# Everything lives in $CH_SERVICES_DIR (default /tmp/ch-services): data, logs, pids, env.sh.
# Ports: PostgreSQL $CH_PG_PORT (55433), Pub/Sub emulator $CH_PUBSUB_PORT (8085).
set -euo pipefail

DIR="${CH_SERVICES_DIR:-/tmp/ch-services}"
PG_PORT="${CH_PG_PORT:-55433}"
PUBSUB_PORT="${CH_PUBSUB_PORT:-8085}"
PG_BIN="${CH_PG_BIN:-/usr/lib/postgresql/15/bin}"
EMULATOR="${CH_PUBSUB_EMULATOR:-/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator}"
# The emulator's netty leaks pooled direct buffers (its log: "LEAK: ByteBuf.release() was not
# called"): ~3.4 GB after 300 k changes, and after ~6 GB every request fails with
# OutOfMemoryError. Unpooled heap buffers are reclaimed by the garbage collector instead (measured:
# 15 MB of live heap after the same traffic), so the emulator survives any number of runs.
EMULATOR_OPTS="${CLOUD_PUBSUB_EMULATOR_OPTS:--Dio.netty.allocator.type=unpooled -Dio.netty.noPreferDirect=true -Xmx2g}"

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_pg() {
  if [ ! -x "$PG_BIN/initdb" ]; then
    echo "services: PostgreSQL 15 server not found in $PG_BIN (apt-get install postgresql-15)" >&2
    return 1
  fi
  local base="$DIR/pg"
  if [ -f "$base/data/postmaster.pid" ] && as_postgres "$PG_BIN/pg_ctl" -D "$base/data" status >/dev/null 2>&1; then
    echo "services: PostgreSQL already running on port $PG_PORT"
  else
    rm -rf "$base"
    mkdir -p "$base"
    if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$base"; fi
    as_postgres "$PG_BIN/initdb" -D "$base/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$base/initdb.log"
    cat >>"$base/data/postgresql.conf" <<CONF
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$base'
wal_level = logical
max_replication_slots = 20
max_wal_senders = 20
max_connections = 200
fsync = off
full_page_writes = off
synchronous_commit = on
CONF
    as_postgres "$PG_BIN/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 start >/dev/null
    echo "services: PostgreSQL 15 on 127.0.0.1:$PG_PORT (wal_level=logical)"
  fi
  echo "export CH_TEST_PG_URL='postgresql://postgres@127.0.0.1:$PG_PORT/postgres'" >>"$DIR/env.sh"
}

start_pubsub() {
  if [ ! -x "$EMULATOR" ]; then
    echo "services: Pub/Sub emulator not found at $EMULATOR (not a Debian package: see README, \"What the tests need\"; or set CH_PUBSUB_EMULATOR)" >&2
    return 1
  fi
  if curl -s -o /dev/null "http://127.0.0.1:$PUBSUB_PORT/"; then
    echo "services: Pub/Sub emulator already running on port $PUBSUB_PORT"
  else
    mkdir -p "$DIR/pubsub"
    CLOUD_PUBSUB_EMULATOR_OPTS="$EMULATOR_OPTS" "$EMULATOR" --host=127.0.0.1 --port="$PUBSUB_PORT" --data-dir="$DIR/pubsub" >"$DIR/pubsub/emulator.log" 2>&1 &
    echo $! >"$DIR/pubsub/pid"
    for _ in $(seq 1 300); do
      curl -s -o /dev/null "http://127.0.0.1:$PUBSUB_PORT/" && break
      sleep 0.1
    done
    curl -s -o /dev/null "http://127.0.0.1:$PUBSUB_PORT/" || { echo "services: emulator did not start" >&2; return 1; }
    echo "services: Pub/Sub emulator on 127.0.0.1:$PUBSUB_PORT"
  fi
  echo "export PUBSUB_EMULATOR_HOST='127.0.0.1:$PUBSUB_PORT'" >>"$DIR/env.sh"
  echo "export CH_TEST_PUBSUB_PROJECT='ch-test'" >>"$DIR/env.sh"
  # Tests that restart the emulator need to know how.
  echo "export CH_PUBSUB_EMULATOR='$EMULATOR'" >>"$DIR/env.sh"
  echo "export CLOUD_PUBSUB_EMULATOR_OPTS='$EMULATOR_OPTS'" >>"$DIR/env.sh"
}

stop_all() {
  if [ -d "$DIR/pg/data" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -f "$DIR/pubsub/pid" ]; then
    local pid
    pid="$(cat "$DIR/pubsub/pid")"
    kill "$pid" 2>/dev/null || true
    # Gone when this returns (it takes up to 5 s on SIGTERM), so that its port is free again.
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$DIR/pubsub/pid"
  fi
  rm -f "$DIR/env.sh"
}

case "${1:-}" in
  start)
    mkdir -p "$DIR"
    chmod 755 "$DIR"
    : >"$DIR/env.sh"
    shift
    what="${*:-pg pubsub}"
    for s in $what; do
      case "$s" in
        pg) start_pg ;;
        pubsub) start_pubsub ;;
        *) echo "services: unknown service '$s' (pg, pubsub)" >&2; exit 2 ;;
      esac
    done
    echo "services: environment in $DIR/env.sh"
    ;;
  stop) stop_all ;;
  # The services that can start here (their programs are installed), e.g. "pg pubsub".
  available)
    have=()
    if [ -x "$PG_BIN/initdb" ]; then have+=(pg); fi
    if [ -x "$EMULATOR" ]; then have+=(pubsub); fi
    echo "${have[*]}"
    ;;
  *) echo "usage: scripts/services.sh start [pg] [pubsub] | stop | available" >&2; exit 2 ;;
esac
