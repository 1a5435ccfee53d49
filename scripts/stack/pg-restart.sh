#!/usr/bin/env bash
# Restarts the stack's PostgreSQL the hard way for resilience tests: a fast shutdown (open
# transactions rolled back, every connection cut), optionally N seconds down, then a start.
# `immediate` instead stops it as a crash would: every process killed, no checkpoint, and
# asynchronous commits not yet flushed lost; the start then recovers from the WAL.
# Usage: pg-restart.sh [seconds-down] [fast|immediate]
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

down_seconds=${1:-0}
mode=${2:-fast}
case "$mode" in
fast | immediate) ;;
*) die "unknown shutdown mode '$mode': expected fast or immediate" ;;
esac
lock_stack
pg_running || die "PostgreSQL is not running; run \`make stack-up\` first"
say "PostgreSQL: $mode shutdown"
pg_ctl_as_postgres -m "$mode" -w -t 60 stop >/dev/null 9>&-
sleep "$down_seconds"
say "PostgreSQL: starting again after ${down_seconds}s down"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 2>&1 9>&- ||
  die "PostgreSQL did not start again (log: $PG_LOG)"
wait_for "PostgreSQL" 60 "$PG_LOG" "" pg_ready
pg_postmaster_pid >"$PID_DIR/postgres.pid" || true
