-- Itaku's schema and its runtime role.
--
-- Migrations run as the owner role (whoever `db.migrationUrl` connects as). The service runs as
-- itaku_runtime: it logs in, owns nothing, cannot create objects, cannot bypass row-level
-- security, and receives only the grants that later migrations give it table by table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'itaku_runtime') THEN
        BEGIN
            CREATE ROLE itaku_runtime LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- Another database of the same cluster created it concurrently.
            NULL;
        END;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS itaku;
REVOKE ALL ON SCHEMA itaku FROM PUBLIC;
GRANT USAGE ON SCHEMA itaku TO itaku_runtime;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

DO $$
BEGIN
    -- No temporary tables and no new schemas for anyone but the owner.
    EXECUTE format('REVOKE CREATE, TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO itaku_runtime', current_database());
END
$$;

-- The tenant of the current transaction, set by the gateway with
-- set_config('itaku.tenant_id', ..., true) (SET LOCAL semantics) so a pooled connection never
-- carries one tenant's context into another's work. Unset means no tenant: policies see nothing.
CREATE FUNCTION itaku.current_tenant() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('itaku.tenant_id', true), '')::uuid $$;
GRANT EXECUTE ON FUNCTION itaku.current_tenant() TO itaku_runtime;
