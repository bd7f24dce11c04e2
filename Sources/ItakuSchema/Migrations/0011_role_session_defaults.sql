-- The session settings Itaku relies on, as the service roles' defaults in this database.
--
-- A direct connection sets them itself at start (the `options` startup parameter). Through a
-- transaction-pooling PgBouncer (db.pooler = transaction) it cannot: PgBouncer refuses
-- `options`, and one server session serves many clients. There each transaction sets them with
-- SET LOCAL, and a statement outside a transaction runs with these defaults, which every new
-- connection checks (synchronous_commit=on, TimeZone=UTC, DateStyle=ISO).
--
-- Changing another role's defaults needs CREATEROLE (or superuser). An owner without it gets a
-- notice, not a failure: a direct deployment does not need the defaults, and a pooled one is
-- refused at connect until a DBA runs these statements (Docs/scaling.md).
DO $$
DECLARE
    service_role text;
BEGIN
    FOREACH service_role IN ARRAY ARRAY['itaku_runtime', 'itaku_reader'] LOOP
        BEGIN
            EXECUTE format('ALTER ROLE %I IN DATABASE %I SET synchronous_commit = on', service_role, current_database());
            EXECUTE format('ALTER ROLE %I IN DATABASE %I SET TimeZone = %L', service_role, current_database(), 'UTC');
            EXECUTE format('ALTER ROLE %I IN DATABASE %I SET DateStyle = %L', service_role, current_database(), 'ISO, YMD');
            EXECUTE format('ALTER ROLE %I IN DATABASE %I SET statement_timeout = %L', service_role, current_database(), '30s');
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'could not set the session defaults of %: run Docs/scaling.md''s ALTER ROLE statements as a DBA', service_role;
        END;
    END LOOP;
END
$$;
