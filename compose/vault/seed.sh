#!/bin/sh
# The `secrets-init` job (Vault image, POSIX sh): makes the stack's secrets once and puts them
# where they are needed.
#   - SQL Server's sa password and PostgreSQL's password: generated on first start into the
#     volumes `mssql-secret` and `postgres-secret`, which only the database containers (and
#     mssql-init) mount, read-only; each database takes its password from there when it
#     initialises its data.
#   - the control token: generated on first start into the `seed-state` volume (this job only).
#   - Vault: secret/cdc/mssql and secret/cdc/postgres (username, password) and
#     secret/cdc/control (token), written whenever Vault does not hold those values: the dev
#     server keeps everything in memory, so after a restart of `vault` the next
#     `docker compose up` puts the same values back.
# No secret value is ever printed; values reach Vault from files (`field=@file`), never through
# argv.
set -eu

# One volume each, so that each database container sees only its own password.
mssql_dir=${CDC_MSSQL_SECRET_DIR:-/run/cdc-secrets/mssql}
postgres_dir=${CDC_POSTGRES_SECRET_DIR:-/run/cdc-secrets/postgres}
state_dir=${CDC_SEED_STATE_DIR:-/var/lib/cdc-seed}
umask 077

random_alnum() {
  tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"
}

random_from() {
  tr -dc "$1" </dev/urandom | head -c 1
}

# SQL Server's policy wants at least three of upper case, lower case, digits and symbols.
sa_password() {
  printf '%s%s%s%s' "$(random_alnum 29)" \
    "$(random_from 'A-Z')" "$(random_from 'a-z')" "$(random_from '0-9')"
}

# Unless `file` already holds a value, writes the output of the command that follows into it.
keep_or_make() {
  file=$1
  shift
  if [ ! -s "$file" ]; then
    "$@" >"$file.tmp"
    mv "$file.tmp" "$file"
    echo "secrets-init: generated $file"
  fi
}

keep_or_make "$mssql_dir/sa_password" sa_password
keep_or_make "$postgres_dir/password" random_alnum 32
keep_or_make "$state_dir/control_token" random_alnum 48
# Each database reads only its own file, as its own user (mssql 10001, postgres 999).
chown 10001:0 "$mssql_dir/sa_password"
chown 999:999 "$postgres_dir/password"
chmod 0400 "$mssql_dir/sa_password" "$postgres_dir/password" "$state_dir/control_token"

for attempt in $(seq 1 60); do
  vault secrets list 2>/dev/null | grep -q '^secret/' && break
  [ "$attempt" -lt 60 ] || {
    echo "secrets-init: Vault's KV store at secret/ does not answer at $VAULT_ADDR" >&2
    exit 1
  }
  sleep 1
done

# The value of `field` in secret/`path`, empty when there is none.
field_of() {
  vault kv get -mount=secret -field="$2" "$1" 2>/dev/null || true
}

# Puts secret/`path` with `username` and the password in `file` unless Vault holds exactly that.
seed_login() {
  path=$1 username=$2 file=$3
  if [ "$(field_of "$path" username)" = "$username" ] &&
    [ "$(field_of "$path" password)" = "$(cat "$file")" ]; then
    echo "secrets-init: secret/$path is current"
  else
    vault kv put -mount=secret "$path" username="$username" password=@"$file" >/dev/null
    echo "secrets-init: wrote secret/$path"
  fi
}

seed_login cdc/mssql sa "$mssql_dir/sa_password"
seed_login cdc/postgres cdc "$postgres_dir/password"
if [ "$(field_of cdc/control token)" = "$(cat "$state_dir/control_token")" ]; then
  echo "secrets-init: secret/cdc/control is current"
else
  vault kv put -mount=secret cdc/control token=@"$state_dir/control_token" >/dev/null
  echo "secrets-init: wrote secret/cdc/control"
fi
