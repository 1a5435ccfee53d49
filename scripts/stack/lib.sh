#!/usr/bin/env bash
# Shared paths, ports and helpers of the local stack scripts. Sourced, not run.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK_DIR="$REPO_ROOT/.stack"
SCRIPTS_DIR="$REPO_ROOT/scripts/stack"

KAFKA_PORT=${CDC_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CDC_KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${CDC_PG_PORT:-15432}
VAULT_PORT=${CDC_VAULT_PORT:-18200}

PG_USER=cdc
PG_PASSWORD=cdc-dev-password
VAULT_ROOT_TOKEN=cdc-dev-root
CONTROL_TOKEN=cdc-dev-control-token
GRPCURL_VERSION=v1.9.3

PG_BIN=/usr/lib/postgresql/15/bin
KAFKA_DIR="$STACK_DIR/kafka"
BAO_DIR="$STACK_DIR/bao"
LOG_DIR="$STACK_DIR/logs"
PID_DIR="$STACK_DIR/pids"
BIN_DIR="$STACK_DIR/bin"

say() { echo "==> $*"; }
fail() { echo "!! $*" >&2; exit 1; }

# PostgreSQL refuses to run as root, so it runs as the `postgres` user, which must be able to
# reach its data folder. A clone under a private home cannot be reached: use /var/tmp then.
pg_dir() {
  if runuser -u postgres -- test -x "$STACK_DIR" 2>/dev/null; then
    echo "$STACK_DIR/pg"
  else
    echo "/var/tmp/cdc-stack-$(echo -n "$STACK_DIR" | md5sum | cut -c1-10)/pg"
  fi
}
# Unix sockets have a short path limit, so the socket lives in a short folder of its own.
pg_socket_dir() { echo "/tmp/cdc-stack-pg-$PG_PORT"; }

pid_alive() {
  local file="$PID_DIR/$1.pid"
  [ -f "$file" ] && kill -0 "$(cat "$file")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until <what> <seconds> <log file> <command...>: retries the command until it succeeds.
wait_until() {
  local what=$1 seconds=$2 log=$3
  shift 3
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "!! $what not healthy after ${seconds}s; last lines of $log:" >&2
      tail -n 30 "$log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 1
  done
}

require() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || fail "$tool is required but not installed"
  done
}
