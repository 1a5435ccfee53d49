#!/usr/bin/env bash
# `make stack-down`: stops every stack process (gracefully, then for good); data stays.
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stop_pid() {
  local name=$1 grace=$2
  pid_alive "$name" || { rm -f "$PID_DIR/$name.pid"; return 0; }
  local pid
  pid=$(cat "$PID_DIR/$name.pid")
  say "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 "$grace"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "!! $name did not stop in ${grace}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_DIR/$name.pid"
}

stop_pid kafka 30
stop_pid bao 10
data="$(pg_dir)/data"
if [ -f "$data/postmaster.pid" ]; then
  say "stopping PostgreSQL"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null 2>&1 \
    || { echo "!! PostgreSQL did not stop cleanly; killing it" >&2; pkill -KILL -f "postgres -D $data" || true; }
fi
say "stack is down"
