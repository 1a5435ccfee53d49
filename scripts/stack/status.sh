#!/usr/bin/env bash
# `make stack-status`: what of the local stack runs, and where. Quick checks only (open port,
# pg_isready, /v1/sys/health); `make stack-up` does the full ones.
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# line <name> <address> <pids> <health command...>
line() {
  local name=$1 address=$2 pids=$3 state
  shift 3
  if [ -z "$pids" ]; then
    state="stopped"
  elif "$@" >/dev/null 2>&1; then
    state="running (pid ${pids//$'\n'/ })"
  else
    state="NOT HEALTHY (pid ${pids//$'\n'/ })"
  fi
  printf '  %-11s %-16s %s\n' "$name" "$address" "$state"
}

main() {
  echo "local stack in $STACK_DIR:"
  line Kafka "127.0.0.1:$KAFKA_PORT" "$(kafka_pids)" port_open "$KAFKA_PORT"
  line PostgreSQL "127.0.0.1:$PG_PORT" "$(pg_postmaster_pid || true)" pg_ready
  line OpenBao "127.0.0.1:$VAULT_PORT" "$(bao_pids)" vault_healthy
  line Jaeger "127.0.0.1:$JAEGER_QUERY_PORT" "$(jaeger_pids)" jaeger_healthy
  if [ -x "$BIN_DIR/grpcurl" ]; then
    printf '  %-11s %-16s %s\n' grpcurl "" "installed ($("$BIN_DIR/grpcurl" -version 2>&1)) at $BIN_DIR/grpcurl"
  else
    printf '  %-11s %-16s %s\n' grpcurl "" "not installed"
  fi
  if [ -x "$BIN_DIR/promtool" ]; then
    printf '  %-11s %-16s %s\n' promtool "" "installed at $BIN_DIR/promtool"
  else
    printf '  %-11s %-16s %s\n' promtool "" "not installed"
  fi
  if [ -f "$ENV_FILE" ]; then echo "  env file:   $ENV_FILE"; fi
  echo "  logs:       $LOG_DIR"
}

main "$@"
