#!/usr/bin/env bash
# `make stack-down`: stops every process of the local stack, gracefully first and by force
# after a grace period; data stays (Jaeger keeps traces in memory only). `down.sh --clean`
# (`make stack-clean`) then also deletes the data (Kafka's log dirs, PostgreSQL's cluster,
# logs) but keeps the installed jars, venv and binaries, so the next `make stack-up` is quick.
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# alive <pid...>: the pids that still run.
alive() {
  local pid
  for pid in "$@"; do
    if kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
  done
}

# stop_pids <name> <grace seconds> <pid...>: SIGTERM, wait, then SIGKILL what is left.
stop_pids() {
  local name=$1 grace=$2
  shift 2
  [ $# -gt 0 ] || return 0
  say "stopping $name (pid $*)"
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((SECONDS + grace)) left
  while left=$(alive "$@") && [ -n "$left" ]; do
    if [ $SECONDS -ge $deadline ]; then
      # shellcheck disable=SC2086 # one pid per word
      warn "$name did not stop within ${grace}s; killing pid" $left
      # shellcheck disable=SC2086
      kill -KILL $left 2>/dev/null || true
      sleep 1
      break
    fi
    sleep 0.5
  done
}

stop_kafka() {
  local -a pids
  mapfile -t pids < <(kafka_pids)
  stop_pids Kafka 60 "${pids[@]}"
  rm -f "$PID_DIR/kafka.pid"
}

stop_bao() {
  local -a pids
  mapfile -t pids < <(bao_pids)
  stop_pids OpenBao 15 "${pids[@]}"
  rm -f "$PID_DIR/bao.pid"
}

stop_jaeger() {
  local -a pids
  mapfile -t pids < <(jaeger_pids)
  stop_pids Jaeger 15 "${pids[@]}"
  rm -f "$PID_DIR/jaeger.pid"
}

stop_postgres() {
  if pg_running; then
    say "stopping PostgreSQL (pid $(pg_postmaster_pid || echo '?'))"
    pg_ctl_as_postgres -m fast -w -t 60 stop >/dev/null 2>&1 ||
      pg_ctl_as_postgres -m immediate -w -t 30 stop >/dev/null 2>&1 ||
      warn "PostgreSQL did not stop through pg_ctl"
  fi
  local -a pids
  mapfile -t pids < <(pg_pids)
  stop_pids "PostgreSQL (left over)" 10 "${pids[@]}"
  rm -f "$PID_DIR/postgres.pid"
}

clean_data() {
  say "deleting the stack's data (Kafka log dirs, PostgreSQL cluster, logs)"
  rm -rf "$KAFKA_DIR/data" "$KAFKA_DIR/config" "$PG_DATA" "$PG_SOCKET_DIR" "$PG_LOG" "$LOG_DIR" "$PID_DIR" "$ENV_FILE"
  # A clone that `postgres` cannot enter keeps PostgreSQL's files in a folder of its own.
  if [ "$PG_DIR" != "$STACK_DIR/pg" ]; then rm -rf "$(dirname "$PG_DIR")"; fi
}

main() {
  local clean=false
  case "${1:-}" in
  --clean) clean=true ;;
  "") ;;
  *) die "usage: $0 [--clean]" ;;
  esac
  [ -d "$STACK_DIR" ] || {
    say "no stack at $STACK_DIR; nothing to stop"
    return 0
  }
  lock_stack
  stop_kafka
  stop_bao
  stop_jaeger
  stop_postgres
  local left
  left=$( (kafka_pids; bao_pids; jaeger_pids; pg_pids) | tr '\n' ' ')
  [ -z "${left// /}" ] || die "processes of the stack still run: $left"
  if $clean; then clean_data; fi
  say "stack is down"
}

main "$@"
