#!/usr/bin/env bash
# Restarts the stack's PostgreSQL the hard way for resilience tests: a fast shutdown (open
# transactions rolled back, every connection cut), optionally N seconds down, then a start.
# Usage: pg-restart.sh [seconds-down]
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

down_seconds=${1:-0}
lock_stack
pg_running || die "PostgreSQL is not running; run \`make stack-up\` first"
say "PostgreSQL: fast shutdown"
pg_ctl_as_postgres -m fast -w -t 60 stop >/dev/null 9>&-
sleep "$down_seconds"
say "PostgreSQL: starting again after ${down_seconds}s down"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 2>&1 9>&- ||
  die "PostgreSQL did not start again (log: $PG_LOG)"
wait_for "PostgreSQL" 60 "$PG_LOG" "" pg_ready
pg_postmaster_pid >"$PID_DIR/postgres.pid" || true
