#!/usr/bin/env bash
# `make demo`: the whole pipeline on the local stack. The SQL Server simulator starts with the
# sample database (compose/mssql/init.sql: customers, products, orders, order_lines, every type
# of the type map, CDC enabled); the four services start against it with their secrets from
# Vault; the workload generator writes inserts, updates, deletes, key updates and multi-row
# transactions while a progress line shows rows/s and lag per stage; once the pipeline has
# drained, a reconciliation prints its report. Ctrl-C stops everything.
#
# DEMO_EXIT_AFTER_REPORT=1 stops everything after the report and exits with the
# reconciliation's outcome (0 clean, 1 differences, 2 it could not run): `make test` runs the
# demo that way, so the README's first command is checked on every CI run.
#
# DEMO_RATE (rows/s, default 500) and DEMO_DURATION_S (default 30) shape the workload. Each
# run uses topics of its own (prefix demo<time>) and recreates the PostgreSQL database
# cdc_demo, so running it twice works: the simulator keeps no data between runs.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck disable=SC1091
source "$root/.stack/env"
demo_dir="$root/.stack/demo"
mkdir -p "$demo_dir"
bin="$root/target/debug"

rate=${DEMO_RATE:-500}
duration=${DEMO_DURATION_S:-30}
sim_port=${DEMO_SIM_PORT:-14330}
prefix="demo$(date +%s)"
database=cdc_demo
# The simulator's sa password: a dev value, kept in Vault like every secret the services read.
sa_password="Demo-Sa-Pa55word!"

services=(extractor transformer loader reconciler)
declare -A grpc_port=([extractor]=50051 [transformer]=50052 [loader]=50053 [reconciler]=50054)
declare -A metrics_port=([extractor]=9101 [transformer]=9102 [loader]=9103 [reconciler]=9104)
pids=()
sim_pid=""
workload_pid=""

say() { echo "==> $*"; }

vault_put() {
  curl -fsS -o /dev/null -H "X-Vault-Token: $CDC_VAULT_TOKEN" -X POST \
    -d "{\"data\": $2}" "$CDC_VAULT_ADDR/v1/secret/data/$1"
}

vault_get() {
  curl -fsS -H "X-Vault-Token: $CDC_VAULT_TOKEN" "$CDC_VAULT_ADDR/v1/secret/data/$1" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['data']['data']['$2'])"
}

# The target database, new for every run.
recreate_database() {
  local admin
  admin=$(printf %s "$CDC_PG_ADMIN_URL")
  PGOPTIONS="-c client_min_messages=warning" psql "$admin" -X -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $database WITH (FORCE)" \
    -c "CREATE DATABASE $database" >/dev/null
}

target_url() {
  # The URL of the demo database without its password (the password comes from Vault).
  printf %s "$CDC_PG_ADMIN_URL" | sed -E 's#//([^:@/]+):[^@]*@#//\1@#; s#/[^/?]*$#/'"$database"'#'
}

write_config() {
  local service=$1
  cat >"$demo_dir/$service.toml" <<TOML
[grpc]
listen = "127.0.0.1:${grpc_port[$service]}"
auth_token = "vault:secret/cdc/control#token"

[metrics]
listen = "127.0.0.1:${metrics_port[$service]}"

[telemetry]
otlp_endpoint = "$CDC_OTLP_ENDPOINT"

[vault]
address = "$CDC_VAULT_ADDR"
token = "env:VAULT_TOKEN"

[kafka]
bootstrap_servers = "$CDC_KAFKA_BOOTSTRAP"
topic_prefix = "$prefix"
TOML
  local source postgres
  source=$(
    cat <<TOML

[source]
server_name = "demo"
host = "127.0.0.1"
port = $sim_port
user = "sa"
password = "vault:secret/cdc/mssql#password"
databases = ["shop"]
encryption = "off"
TOML
  )
  postgres=$(
    cat <<TOML

[postgres]
url = "$(target_url)"
password = "vault:secret/cdc/postgres#password"
TOML
  )
  case $service in
  extractor) echo "$source" >>"$demo_dir/$service.toml" ;;
  loader) echo "$postgres" >>"$demo_dir/$service.toml" ;;
  reconciler) printf '%s\n%s\n\n[compare]\nsettle_ms = 5000\n' "$source" "$postgres" >>"$demo_dir/$service.toml" ;;
  esac
}

stop_all() {
  trap - INT TERM EXIT
  local pid
  if [ -n "$workload_pid" ]; then kill -INT "$workload_pid" 2>/dev/null || true; fi
  if [ ${#pids[@]} -gt 0 ]; then
    echo
    say "stopping the services"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
  if [ -n "$sim_pid" ]; then
    kill -INT "$sim_pid" 2>/dev/null || true
    wait "$sim_pid" 2>/dev/null || true
  fi
  say "stopped (the stack keeps running; \`make stack-down\` stops it)"
}

wait_listening() {
  local name=$1 port=$2 log=$3
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  echo "!! $name did not start; its log: $log" >&2
  tail -n 20 "$log" >&2
  return 1
}

# metric_sum <service> <name>: the sum of every series of a counter or gauge (0 when absent).
metric_sum() {
  curl -fsS --max-time 2 "http://127.0.0.1:${metrics_port[$1]}/metrics" 2>/dev/null |
    awk -v name="$2" '$1 == name || index($1, name "{") == 1 { sum += $NF } END { printf "%d\n", sum }'
}

# metric_max <service> <name>: the largest series of a gauge (0 when absent).
metric_max() {
  curl -fsS --max-time 2 "http://127.0.0.1:${metrics_port[$1]}/metrics" 2>/dev/null |
    awk -v name="$2" '($1 == name || index($1, name "{") == 1) && $NF > max { max = $NF } END { printf "%.1f\n", max }'
}

# metric_tables <service> <name>: how many tables have a series of the metric.
metric_tables() {
  curl -fsS --max-time 2 "http://127.0.0.1:${metrics_port[$1]}/metrics" 2>/dev/null |
    grep -o "^$2{[^}]*table=\"[^\"]*\"" | sed 's/.*table=//' | sort -u | wc -l
}

# Drained: the transformer took every event the extractor published, the loader applies rows of
# every table the extractor publishes, and no stage moved during the last three polls.
drained() {
  [ "${last_count[extractor]:-0}" -gt 0 ] &&
    [ "${last_count[transformer]:-0}" -ge "${last_count[extractor]:-0}" ] &&
    [ "$(metric_tables loader cdc_loader_rows_applied_total)" -ge "$(metric_tables extractor cdc_extractor_events_total)" ] &&
    [ "$still" -ge 3 ]
}

declare -A last_count
progress_line() {
  local elapsed=$1 interval=$2 line="" stage metric lag count unit
  for stage in extractor transformer loader; do
    unit=events
    case $stage in
    extractor) metric=cdc_extractor_events_total lag=$(metric_max extractor cdc_extractor_source_lag_seconds) ;;
    transformer) metric=cdc_transformer_events_total lag=$(metric_max transformer cdc_transformer_lag_seconds) ;;
    loader) metric=cdc_loader_rows_applied_total lag=$(metric_max loader cdc_loader_lag_seconds) unit="rows written" ;;
    esac
    count=$(metric_sum "$stage" "$metric")
    local per_second=$(((count - ${last_count[$stage]:-0}) / interval))
    last_count[$stage]=$count
    line+=$(printf '  %s %6d/s (lag %5.1f s, %d %s)' "$stage" "$per_second" "$lag" "$count" "$unit")
  done
  printf '%4ds%s\n' "$elapsed" "$line"
}

trap 'stop_all; exit 0' INT TERM
trap stop_all EXIT

say "secrets: secret/cdc/mssql (the simulator's sa password) in Vault"
vault_put cdc/mssql "{\"username\": \"sa\", \"password\": \"$sa_password\"}"
say "PostgreSQL: a new database $database for this run; topics under $prefix"
recreate_database

say "SQL Server simulator on 127.0.0.1:$sim_port with the sample database (compose/mssql/init.sql)"
MSSQL_SIM_SA_PASSWORD="$sa_password" "$bin/mssql-sim" --listen "127.0.0.1:$sim_port" \
  --capture-poll-interval-ms 200 --init-sql "$root/compose/mssql/init.sql" >"$demo_dir/mssql-sim.log" 2>&1 &
sim_pid=$!
wait_listening mssql-sim "$sim_port" "$demo_dir/mssql-sim.log"

for service in "${services[@]}"; do
  write_config "$service"
  VAULT_TOKEN="$CDC_VAULT_TOKEN" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}" \
    MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-131072}" "$bin/cdc-$service" --config "$demo_dir/$service.toml" \
    >"$demo_dir/$service.log" 2>&1 &
  pids+=($!)
done
for service in "${services[@]}"; do
  wait_listening "cdc-$service" "${grpc_port[$service]}" "$demo_dir/$service.log"
  say "cdc-$service: gRPC 127.0.0.1:${grpc_port[$service]}, metrics http://127.0.0.1:${metrics_port[$service]}/metrics, log $demo_dir/$service.log"
done

say "workload: $rate rows/s for $duration s (inserts, updates, deletes, key updates, multi-row transactions)"
DEMO_SA_PASSWORD="$sa_password" "$bin/cdc-workload" --host 127.0.0.1 --port "$sim_port" --user sa \
  --password-env DEMO_SA_PASSWORD --database shop --encrypt off --rate "$rate" \
  --duration-s "$duration" --seed "$(date +%s)" >"$demo_dir/workload.json" 2>"$demo_dir/workload.log" &
workload_pid=$!

interval=2 started=$SECONDS
while kill -0 "$workload_pid" 2>/dev/null; do
  sleep "$interval"
  progress_line $((SECONDS - started)) "$interval"
done
wait "$workload_pid" || {
  echo "!! the workload failed; its log: $demo_dir/workload.log" >&2
  tail -n 20 "$demo_dir/workload.log" >&2
  exit 1
}
workload_pid=""
say "workload done: $(cat "$demo_dir/workload.json")"

say "waiting for the pipeline to drain (every event through every stage, nothing moving for 6 s)"
still=0 deadline=$((SECONDS + 180))
until drained; do
  if [ $SECONDS -ge $deadline ]; then
    echo "!! the pipeline did not drain within 180 s; the logs are in $demo_dir" >&2
    break
  fi
  before="${last_count[extractor]:-0} ${last_count[transformer]:-0} ${last_count[loader]:-0}"
  sleep "$interval"
  progress_line $((SECONDS - started)) "$interval"
  after="${last_count[extractor]:-0} ${last_count[transformer]:-0} ${last_count[loader]:-0}"
  if [ "$before" = "$after" ]; then still=$((still + 1)); else still=0; fi
done

say "rows written can be fewer than events: the loader writes a batch's changes to one row once (the newest)"
say "reconciliation of shop.dbo.* (cdc-reconciler run)"
echo
set +e
VAULT_TOKEN="$CDC_VAULT_TOKEN" "$bin/cdc-reconciler" run --config "$demo_dir/reconciler.toml" \
  --tables 'shop.dbo.*' --quiet
outcome=$?
set -e
echo
case $outcome in
0) say "reconciliation: SQL Server and PostgreSQL hold the same rows" ;;
1) say "reconciliation: differences found (the report above names them)" ;;
*) say "reconciliation could not run (exit $outcome); see above" ;;
esac

if [ "${DEMO_EXIT_AFTER_REPORT:-0}" = 1 ]; then
  stop_all
  case $outcome in 0 | 1) exit "$outcome" ;; *) exit 2 ;; esac
fi

token=$(vault_get cdc/control token)
cat <<HELP

Look around (the control token is the dev one, from Vault at secret/cdc/control; more in
docs/operations.md):
  $CDC_GRPCURL -plaintext 127.0.0.1:50053 list
  $CDC_GRPCURL -plaintext -H 'authorization: Bearer $token' 127.0.0.1:50051 cdc.extractor.v1.Extractor/ListTables
  $CDC_GRPCURL -plaintext -H 'authorization: Bearer $token' 127.0.0.1:50053 cdc.loader.v1.Loader/ListTables
  $CDC_GRPCURL -plaintext -H 'authorization: Bearer $token' -d '{"tables":["shop.dbo.*"]}' 127.0.0.1:50054 cdc.reconciler.v1.Reconciler/StartRun
  curl -s http://127.0.0.1:9103/metrics | grep cdc_
  traces: $CDC_JAEGER_QUERY_URL (service cdc-loader, operation loader.batch)

Press Ctrl-C to stop the services and the simulator.
HELP
wait -n "${pids[@]}" || true
echo "!! a service exited; see the logs in $demo_dir" >&2
