#!/bin/sh
# Writes PgBouncer's auth file from the environment (only the runtime and reader roles: the
# owner never goes through the pooler), then runs PgBouncer in the foreground.
set -eu
: "${ITAKU_RUNTIME_PASSWORD:?}" "${ITAKU_READER_PASSWORD:?}"
umask 077
mkdir -p /tmp/pgbouncer
quote() { printf '%s' "$1" | sed 's/"/""/g'; }
{
    printf '"itaku_runtime" "%s"\n' "$(quote "$ITAKU_RUNTIME_PASSWORD")"
    printf '"itaku_reader" "%s"\n' "$(quote "$ITAKU_READER_PASSWORD")"
} >/tmp/pgbouncer/userlist.txt
exec pgbouncer "${PGBOUNCER_CONFIG:-/etc/pgbouncer/pgbouncer.ini}"
