#!/bin/bash
# The `mssql-init` job: creates the sample database `shop` with CDC enabled (init.sql), once.
# Runs in the SQL Server image (for its sqlcmd) after `mssql` is healthy; the sa password comes
# from the file secrets-init wrote, and reaches sqlcmd through SQLCMDPASSWORD, never argv.
set -euo pipefail

SQLCMD=/opt/mssql-tools18/bin/sqlcmd
SQLCMDPASSWORD=$(cat /run/cdc-secrets/sa_password)
export SQLCMDPASSWORD

# -C: the server's certificate is the image's self-signed one; -b: fail on the first error;
# -I: QUOTED_IDENTIFIER ON, as clients have it; -f 65001: the scripts are UTF-8. scalar: no
# headers (-h -1), no padding (-W), errors to stderr (-r 1).
sql() { "$SQLCMD" -S "${MSSQL_HOST:-mssql}" -U sa -C -b -I -f 65001 "$@"; }

scalar() { sql -h -1 -W -r 1 -Q "SET NOCOUNT ON; $1" | tr -d '[:space:]'; }

if [ "$(scalar "SELECT COUNT(*) FROM sys.databases WHERE name = N'shop'")" = 1 ]; then
  captured=$(scalar "SELECT COUNT(*) FROM shop.cdc.change_tables t
    JOIN shop.sys.tables s ON s.object_id = t.source_object_id
    WHERE s.name IN (N'customers', N'products', N'orders', N'order_lines')" 2>/dev/null || echo 0)
  if [ "$captured" = 4 ]; then
    echo "mssql-init: database shop exists with CDC on its four tables; nothing to do"
    exit 0
  fi
  echo "mssql-init: database shop exists but its set-up did not finish" \
    "(CDC on $captured of 4 tables); remove the stack's volumes" \
    "(docker compose -f compose/docker-compose.yml down -v) and start again" >&2
  exit 1
fi

echo "mssql-init: creating database shop and enabling CDC (/init/init.sql)"
sql -i /init/init.sql
echo "mssql-init: done"
