#!/usr/bin/env bash
# `make stack-status`: which stack components run.
set -uo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

show() { if "${@:2}" >/dev/null 2>&1; then echo "  $1: running"; else echo "  $1: stopped"; fi; }
echo "local stack ($STACK_DIR):"
show "Kafka      127.0.0.1:$KAFKA_PORT" port_open "$KAFKA_PORT"
show "PostgreSQL 127.0.0.1:$PG_PORT" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
show "OpenBao    127.0.0.1:$VAULT_PORT" curl -fsS "http://127.0.0.1:$VAULT_PORT/v1/sys/health"
