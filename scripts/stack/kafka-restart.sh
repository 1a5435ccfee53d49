#!/usr/bin/env bash
# Restarts the stack's Kafka broker for resilience tests: stopped with SIGTERM (a controlled
# shutdown) or, with --kill, with SIGKILL (a crash: the log is recovered at start), optionally
# N seconds down, then started again by up.sh, which returns once the broker is healthy.
# Usage: kafka-restart.sh [--kill] [seconds-down]
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

signal=TERM
if [ "${1:-}" = "--kill" ]; then
  signal=KILL
  shift
fi
down_seconds=${1:-0}

lock_stack
mapfile -t pids < <(kafka_pids)
[ ${#pids[@]} -gt 0 ] || die "Kafka is not running; run \`make stack-up\` first"
say "Kafka: SIG$signal to pid ${pids[*]}"
kill "-$signal" "${pids[@]}"
deadline=$((SECONDS + 60))
while [ -n "$(kafka_pids)" ]; do
  [ $SECONDS -lt $deadline ] || die "Kafka did not stop within 60 s of SIG$signal"
  sleep 0.2
done
rm -f "$PID_DIR/kafka.pid"
# up.sh takes the lock itself.
exec 9>&-
sleep "$down_seconds"
say "Kafka: starting again after ${down_seconds}s down"
exec "$SCRIPTS_DIR/up.sh"
