#!/usr/bin/env bash
# Start or stop the throwaway servers the integration tests use, and write the environment that
# points the tests at them.
#
#   scripts/services.sh start      # PostgreSQL 15 (wal_level=logical) + Pub/Sub emulator + ClickHouse
#   scripts/services.sh start clickhouse   # only some of them: pg, pubsub, clickhouse
#   source "${CH_SERVICES_DIR:-/tmp/ch-services}/env.sh"
#   scripts/services.sh stop
#   scripts/services.sh available # which of them can start here: "pg pubsub clickhouse", "pg", ...
#
# Everything lives in $CH_SERVICES_DIR (default /tmp/ch-services): data, logs, pids, env.sh.
# Ports: PostgreSQL $CH_PG_PORT (55433), Pub/Sub emulator $CH_PUBSUB_PORT (8085), ClickHouse
# HTTP $CH_CLICKHOUSE_HTTP_PORT (18123) and native $CH_CLICKHOUSE_TCP_PORT (19000), all on 127.0.0.1.
set -euo pipefail

DIR="${CH_SERVICES_DIR:-/tmp/ch-services}"
PG_PORT="${CH_PG_PORT:-55433}"
PUBSUB_PORT="${CH_PUBSUB_PORT:-8085}"
CH_HTTP_PORT="${CH_CLICKHOUSE_HTTP_PORT:-18123}"
CH_TCP_PORT="${CH_CLICKHOUSE_TCP_PORT:-19000}"
CH_SERVER="${CH_CLICKHOUSE_SERVER:-/usr/sbin/clickhouse-server}"
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

# ClickHouse (Debian's 18.16 or any later one) from a config written into $DIR/clickhouse: it
# runs as the calling user (root included), keeps everything under that directory and listens on
# 127.0.0.1 only (docs/clickhouse.md).
start_clickhouse() {
  if [ ! -x "$CH_SERVER" ]; then
    echo "services: ClickHouse server not found at $CH_SERVER (apt-get install clickhouse-server)" >&2
    return 1
  fi
  local d="$DIR/clickhouse"
  if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then
    echo "services: ClickHouse already running on port $CH_HTTP_PORT"
  else
    rm -rf "$d"
    mkdir -p "$d"/{data,tmp,user_files,format_schemas,log}
    cat >"$d/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$d/log/server.log</log><errorlog>$d/log/err.log</errorlog><size>10M</size><count>1</count></logger>
  <http_port>$CH_HTTP_PORT</http_port>
  <tcp_port>$CH_TCP_PORT</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$d/data/</path>
  <tmp_path>$d/tmp/</tmp_path>
  <user_files_path>$d/user_files/</user_files_path>
  <format_schema_path>$d/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>268435456</mark_cache_size>
</yandex>
XML
    cat >"$d/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
    (cd "$d" && exec "$CH_SERVER" --config-file="$d/config.xml" >"$d/log/stdout.log" 2>&1) &
    echo $! >"$d/pid"
    for _ in $(seq 1 300); do
      curl -sf -o /dev/null "http://127.0.0.1:$CH_HTTP_PORT/ping" && break
      kill -0 "$(cat "$d/pid")" 2>/dev/null || break
      sleep 0.1
    done
    curl -sf -o /dev/null "http://127.0.0.1:$CH_HTTP_PORT/ping" || {
      echo "services: ClickHouse did not start (see $d/log)" >&2
      return 1
    }
    echo "services: ClickHouse $(curl -s --data-binary 'SELECT version()' "http://127.0.0.1:$CH_HTTP_PORT/") on 127.0.0.1:$CH_HTTP_PORT (HTTP), $CH_TCP_PORT (native)"
  fi
  # Tests create their own databases (one per test) next to this one.
  echo "export CH_TEST_CLICKHOUSE_URL='clickhouse://127.0.0.1:$CH_HTTP_PORT/ch_test'" >>"$DIR/env.sh"
}

stop_all() {
  if [ -f "$DIR/clickhouse/pid" ]; then
    local chpid
    chpid="$(cat "$DIR/clickhouse/pid")"
    kill "$chpid" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$chpid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$chpid" 2>/dev/null || true
    rm -f "$DIR/clickhouse/pid"
  fi
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
    what="${*:-pg pubsub clickhouse}"
    for s in $what; do
      case "$s" in
        pg) start_pg ;;
        pubsub) start_pubsub ;;
        clickhouse) start_clickhouse ;;
        *) echo "services: unknown service '$s' (pg, pubsub, clickhouse)" >&2; exit 2 ;;
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
    if [ -x "$CH_SERVER" ]; then have+=(clickhouse); fi
    echo "${have[*]}"
    ;;
  *) echo "usage: scripts/services.sh start [pg] [pubsub] [clickhouse] | stop | available" >&2; exit 2 ;;
esac
