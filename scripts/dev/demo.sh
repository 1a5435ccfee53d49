#!/usr/bin/env bash
# `make demo`: brings up the local stack, starts the four services against it with their
# secrets from Vault, and shows how to look around with grpcurl. Ctrl-C stops the services.
# (The end-to-end issue extends this with the simulator, a workload and a reconciliation.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC1091
source "$root/.stack/env"
demo_dir="$root/.stack/demo"
mkdir -p "$demo_dir"

services=(extractor transformer loader reconciler)
declare -A grpc_port=([extractor]=50051 [transformer]=50052 [loader]=50053 [reconciler]=50054)
declare -A metrics_port=([extractor]=9101 [transformer]=9102 [loader]=9103 [reconciler]=9104)
pids=()

write_config() {
  local service=$1
  cat > "$demo_dir/$service.toml" <<TOML
[grpc]
listen = "127.0.0.1:${grpc_port[$service]}"
auth_token = "vault:secret/cdc/control#token"

[metrics]
listen = "127.0.0.1:${metrics_port[$service]}"

[vault]
address = "$CDC_VAULT_ADDR"
token = "env:VAULT_TOKEN"

[kafka]
bootstrap_servers = "$CDC_KAFKA_BOOTSTRAP"
TOML
  if [ "$service" = loader ]; then
    # The URL without its password; the password comes from Vault like every secret.
    cat >> "$demo_dir/$service.toml" <<TOML

[postgres]
url = "$(printf %s "$CDC_PG_URL" | sed -E 's#//([^:@/]+):[^@]*@#//\1@#')"
password = "vault:secret/cdc/postgres#password"
TOML
  fi
}

stop_services() {
  trap - INT TERM EXIT
  [ ${#pids[@]} -gt 0 ] || return 0
  echo
  echo "==> stopping the services"
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "==> stopped (the stack keeps running; \`make stack-down\` stops it)"
}

wait_listening() {
  local service=$1 port=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "!! $service did not start; its log: $demo_dir/$service.log" >&2
  tail -n 20 "$demo_dir/$service.log" >&2
  return 1
}

# Ctrl-C or SIGTERM: stop the services and end quietly; any other exit stops them too.
trap 'stop_services; exit 0' INT TERM
trap stop_services EXIT
for service in "${services[@]}"; do
  write_config "$service"
  VAULT_TOKEN="$CDC_VAULT_TOKEN" "$root/target/debug/cdc-$service" --config "$demo_dir/$service.toml" \
    > "$demo_dir/$service.log" 2>&1 &
  pids+=($!)
done
for service in "${services[@]}"; do
  wait_listening "$service" "${grpc_port[$service]}"
  echo "==> cdc-$service: gRPC 127.0.0.1:${grpc_port[$service]}, metrics http://127.0.0.1:${metrics_port[$service]}/metrics, log $demo_dir/$service.log"
done

token=$(curl -fsS -H "X-Vault-Token: $CDC_VAULT_TOKEN" "$CDC_VAULT_ADDR/v1/secret/data/cdc/control" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["data"]["token"])')
cat <<HELP

Look around (the control token is the dev one, from Vault at secret/cdc/control):
  $CDC_GRPCURL -plaintext 127.0.0.1:50053 list
  $CDC_GRPCURL -plaintext 127.0.0.1:50053 grpc.health.v1.Health/Check
  $CDC_GRPCURL -plaintext -H 'authorization: Bearer $token' 127.0.0.1:50053 cdc.control.v1.Control/GetStatus
  $CDC_GRPCURL -plaintext -H 'authorization: Bearer $token' -d '{"reason":"maintenance"}' 127.0.0.1:50053 cdc.control.v1.Control/Pause
  curl -s http://127.0.0.1:9103/metrics | grep cdc_

Press Ctrl-C to stop the services.
HELP
wait -n "${pids[@]}" || true
echo "!! a service exited; see the logs in $demo_dir" >&2
