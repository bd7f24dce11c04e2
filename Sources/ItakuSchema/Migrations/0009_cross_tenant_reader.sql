-- Cross-tenant reads through a role of their own.
--
-- Until now the runtime role could read every tenant's rows by setting the GUC
-- itaku.all_tenants itself, so RLS trusted a switch that any SQL run as itaku_runtime could
-- flip. Now the runtime role sees one tenant at a time, always; reading across tenants (the
-- registry snapshot, the security team's search, export and verification) takes the login
-- role itaku_reader, which may only SELECT, over a connection pool of its own (db.readerUrl).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'itaku_reader') THEN
        BEGIN
            CREATE ROLE itaku_reader LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO itaku_reader', current_database());
END
$$;
GRANT USAGE ON SCHEMA itaku TO itaku_reader;
GRANT EXECUTE ON FUNCTION itaku.current_tenant() TO itaku_reader;
GRANT SELECT ON itaku.tenants, itaku.integrations, itaku.api_keys, itaku.agents, itaku.datasets, itaku.purposes,
    itaku.assignments, itaku.access_log, itaku.access_log_checkpoints, itaku.access_log_legacy_heads TO itaku_reader;

-- The tenant policies no longer have an "every tenant" switch.
DROP POLICY tenant_isolation ON itaku.datasets;
CREATE POLICY tenant_isolation ON itaku.datasets
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
CREATE POLICY cross_tenant_read ON itaku.datasets FOR SELECT TO itaku_reader USING (true);

DROP POLICY tenant_isolation ON itaku.purposes;
CREATE POLICY tenant_isolation ON itaku.purposes
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
CREATE POLICY cross_tenant_read ON itaku.purposes FOR SELECT TO itaku_reader USING (true);

DROP POLICY tenant_isolation ON itaku.assignments;
CREATE POLICY tenant_isolation ON itaku.assignments
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
CREATE POLICY cross_tenant_read ON itaku.assignments FOR SELECT TO itaku_reader USING (true);

DROP POLICY tenant_isolation ON itaku.access_log;
CREATE POLICY tenant_isolation ON itaku.access_log
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (true);
CREATE POLICY cross_tenant_read ON itaku.access_log FOR SELECT TO itaku_reader USING (true);

-- Checkpoints: a client admin pages its own tenant's under RLS; the reader sees all.
ALTER TABLE itaku.access_log_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.access_log_checkpoints FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.access_log_checkpoints
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (true);
CREATE POLICY cross_tenant_read ON itaku.access_log_checkpoints FOR SELECT TO itaku_reader USING (true);
CREATE INDEX access_log_checkpoints_tenant ON itaku.access_log_checkpoints (tenant_id, created_at DESC, checkpoint_id DESC);

-- The old switch answers "no" from now on, whatever the session sets.
CREATE OR REPLACE FUNCTION itaku.all_tenants() RETURNS boolean
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT false $$;
