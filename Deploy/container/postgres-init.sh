#!/usr/bin/env bash
# Itaku's database for Deploy/compose.yaml. The postgres image runs this once, on an empty data
# directory (/docker-entrypoint-initdb.d). It creates:
# - itaku_owner, which owns the database and runs the migrations (db.migrationUrl);
# - itaku_runtime and itaku_reader with their passwords. Migrations 0001 and 0009 create these
#   two without a password when they are missing and leave them alone when they exist, so they
#   are made here first, with the attributes the migrations would give them; the owner then
#   needs no CREATEROLE.
# - the two roles' session defaults in the database (what migration 0011 sets when it may):
#   through PgBouncer, statements outside a transaction run with them.
set -e
: "${ITAKU_OWNER_PASSWORD:?}" "${ITAKU_RUNTIME_PASSWORD:?}" "${ITAKU_READER_PASSWORD:?}"

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v owner_password="$ITAKU_OWNER_PASSWORD" \
    -v runtime_password="$ITAKU_RUNTIME_PASSWORD" \
    -v reader_password="$ITAKU_READER_PASSWORD" <<'SQL'
CREATE ROLE itaku_owner LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'owner_password';
CREATE ROLE itaku_runtime LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS
    PASSWORD :'runtime_password';
CREATE ROLE itaku_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS
    PASSWORD :'reader_password';
-- The collation Itaku is tested with (Deploy/db and the test clusters run initdb --no-locale).
CREATE DATABASE itaku OWNER itaku_owner ENCODING 'UTF8' LOCALE 'C' TEMPLATE template0;
ALTER ROLE itaku_runtime IN DATABASE itaku SET synchronous_commit = on;
ALTER ROLE itaku_runtime IN DATABASE itaku SET TimeZone = 'UTC';
ALTER ROLE itaku_runtime IN DATABASE itaku SET DateStyle = 'ISO, YMD';
ALTER ROLE itaku_runtime IN DATABASE itaku SET statement_timeout = '30s';
ALTER ROLE itaku_reader IN DATABASE itaku SET synchronous_commit = on;
ALTER ROLE itaku_reader IN DATABASE itaku SET TimeZone = 'UTC';
ALTER ROLE itaku_reader IN DATABASE itaku SET DateStyle = 'ISO, YMD';
ALTER ROLE itaku_reader IN DATABASE itaku SET statement_timeout = '30s';
SQL
