-- The tenant registry (keys, agents, integrations, purposes, assignments), the entrusted data
-- (records and their keyed lookup index), and the access log.
--
-- Row-level security: tenant tables admit rows of itaku.current_tenant(), or every tenant's
-- rows when the transaction declared itaku.all_tenants = 'on' (registry snapshot loads and
-- reviewer searches). RLS here catches application mistakes; it is not a barrier against a
-- compromised runtime role, which could set either variable.

CREATE FUNCTION itaku.all_tenants() RETURNS boolean
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(current_setting('itaku.all_tenants', true), '') = 'on' $$;
GRANT EXECUTE ON FUNCTION itaku.all_tenants() TO itaku_runtime;

DROP POLICY tenant_isolation ON itaku.datasets;
CREATE POLICY tenant_isolation ON itaku.datasets
    USING (tenant_id = itaku.current_tenant() OR itaku.all_tenants())
    WITH CHECK (tenant_id = itaku.current_tenant());

-- MARK: Keys, agents, integrations (BPO-wide, not tenant data)

CREATE TABLE itaku.integrations (
    integration_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name           text NOT NULL UNIQUE,
    trust_mode     text NOT NULL CHECK (trust_mode IN ('verified', 'asserted')),
    tenant_ids     uuid[] NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON itaku.integrations TO itaku_runtime;

CREATE TABLE itaku.api_keys (
    key_id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    key_hash       bytea NOT NULL UNIQUE,
    display_prefix text NOT NULL,
    role           text NOT NULL CHECK (role IN ('operator', 'client_admin', 'reviewer', 'integration')),
    tenant_id      uuid REFERENCES itaku.tenants (tenant_id),
    integration_id uuid REFERENCES itaku.integrations (integration_id),
    label          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now(),
    revoked_at     timestamptz,
    CHECK ((role = 'client_admin') = (tenant_id IS NOT NULL)),
    CHECK ((role = 'integration') = (integration_id IS NOT NULL))
);
GRANT SELECT, INSERT ON itaku.api_keys TO itaku_runtime;
GRANT UPDATE (revoked_at) ON itaku.api_keys TO itaku_runtime;

CREATE TABLE itaku.agents (
    agent_id    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    employee_id text NOT NULL UNIQUE CHECK (employee_id ~ '^[A-Za-z0-9._-]{1,64}$'),
    name        text NOT NULL,
    site        text NOT NULL DEFAULT '',
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON itaku.agents TO itaku_runtime;

-- MARK: Purposes and assignments (tenant data)

CREATE TABLE itaku.purposes (
    tenant_id   uuid NOT NULL REFERENCES itaku.tenants (tenant_id),
    key         text NOT NULL CHECK (key ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    version     integer NOT NULL CHECK (version > 0),
    definition  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key, version)
);
ALTER TABLE itaku.purposes ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.purposes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.purposes
    USING (tenant_id = itaku.current_tenant() OR itaku.all_tenants())
    WITH CHECK (tenant_id = itaku.current_tenant());
-- Versions are never changed or removed: a change is a new version.
GRANT SELECT, INSERT ON itaku.purposes TO itaku_runtime;

CREATE TABLE itaku.assignments (
    tenant_id   uuid NOT NULL REFERENCES itaku.tenants (tenant_id),
    agent_id    uuid NOT NULL REFERENCES itaku.agents (agent_id),
    purposes    text[] NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_until timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, agent_id),
    CHECK (valid_until > valid_from)
);
ALTER TABLE itaku.assignments ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.assignments FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.assignments
    USING (tenant_id = itaku.current_tenant() OR itaku.all_tenants())
    WITH CHECK (tenant_id = itaku.current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON itaku.assignments TO itaku_runtime;

-- MARK: Entrusted data

CREATE TABLE itaku.records (
    tenant_id   uuid NOT NULL,
    dataset_id  uuid NOT NULL,
    record_id   uuid NOT NULL DEFAULT gen_random_uuid(),
    -- The client's own key of the record (e.g. customer_no), unique per dataset.
    external_id text NOT NULL,
    fields      jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, dataset_id, record_id),
    UNIQUE (tenant_id, dataset_id, external_id),
    FOREIGN KEY (tenant_id, dataset_id) REFERENCES itaku.datasets (tenant_id, dataset_id)
);
ALTER TABLE itaku.records ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.records
    USING (tenant_id = itaku.current_tenant())
    WITH CHECK (tenant_id = itaku.current_tenant());
GRANT SELECT, INSERT, UPDATE ON itaku.records TO itaku_runtime;

-- Keyed digests (HMAC with the tenant's key) of normalised lookup values: a phone number is
-- searchable without a plain-text phone column.
CREATE TABLE itaku.lookup_keys (
    tenant_id  uuid NOT NULL,
    dataset_id uuid NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('phone', 'email', 'exact')),
    digest     bytea NOT NULL,
    record_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, dataset_id, kind, digest, record_id),
    FOREIGN KEY (tenant_id, dataset_id, record_id) REFERENCES itaku.records (tenant_id, dataset_id, record_id)
        ON DELETE CASCADE
);
ALTER TABLE itaku.lookup_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.lookup_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.lookup_keys
    USING (tenant_id = itaku.current_tenant())
    WITH CHECK (tenant_id = itaku.current_tenant());
GRANT SELECT, INSERT, DELETE ON itaku.lookup_keys TO itaku_runtime;

-- MARK: Access log

-- One row per decision. Holds no personal data values: lookup values and subjects appear only
-- as keyed digests. Partitioned by month; the runtime role may only INSERT and SELECT.
CREATE TABLE itaku.access_log (
    entry_id        uuid NOT NULL,
    occurred_at     timestamptz NOT NULL,
    tenant_id       uuid,
    actor_role      text NOT NULL,
    actor_key_id    uuid,
    integration_id  uuid,
    agent           text,
    agent_verified  boolean,
    purpose_key     text,
    purpose_version integer,
    case_ref        text,
    operation       text NOT NULL CHECK (operation IN ('lookup', 'read', 'update', 'configure', 'review')),
    dataset         text,
    target          text,
    version_before  integer,
    version_after   integer,
    lookup_kind     text,
    lookup_digest   bytea,
    record_ids      uuid[],
    subject_digests text[],
    fields          jsonb,
    decision        text NOT NULL CHECK (decision IN ('allow', 'deny')),
    reason          text NOT NULL,
    rows_returned   integer NOT NULL DEFAULT 0,
    request_id      text,
    client_address  text,
    stream          text,
    seq             bigint,
    prev_hash       bytea,
    hash            bytea,
    PRIMARY KEY (entry_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX access_log_tenant_time ON itaku.access_log (tenant_id, occurred_at DESC, entry_id);
CREATE INDEX access_log_agent_time ON itaku.access_log (agent, occurred_at DESC) WHERE agent IS NOT NULL;
ALTER TABLE itaku.access_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.access_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.access_log
    USING (tenant_id = itaku.current_tenant() OR itaku.all_tenants())
    WITH CHECK (true);
GRANT SELECT, INSERT ON itaku.access_log TO itaku_runtime;

CREATE FUNCTION itaku.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'the access log is append-only' USING ERRCODE = 'insufficient_privilege'; END $$;
CREATE TRIGGER access_log_append_only BEFORE UPDATE OR DELETE ON itaku.access_log
    FOR EACH ROW EXECUTE FUNCTION itaku.refuse_change();
CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON itaku.access_log
    FOR EACH STATEMENT EXECUTE FUNCTION itaku.refuse_change();
ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_append_only;
ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_no_truncate;

-- Monthly partitions, created ahead of time (owner-only; the service calls it at start through
-- a SECURITY DEFINER wrapper so the runtime role needs no CREATE privilege).
CREATE FUNCTION itaku.ensure_access_log_partitions(months_ahead integer DEFAULT 3) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, itaku
    AS $$
DECLARE
    month_start date := date_trunc('month', now() AT TIME ZONE 'UTC')::date - interval '1 month';
    partition_name text;
BEGIN
    FOR i IN 0..(months_ahead + 1) LOOP
        partition_name := format('access_log_%s', to_char(month_start, 'YYYYMM'));
        IF to_regclass('itaku.' || partition_name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE itaku.%I PARTITION OF itaku.access_log FOR VALUES FROM (%L) TO (%L)',
                partition_name, to_char(month_start, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char(month_start + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
        END IF;
        month_start := month_start + interval '1 month';
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION itaku.ensure_access_log_partitions(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.ensure_access_log_partitions(integer) TO itaku_runtime;
SELECT itaku.ensure_access_log_partitions(3);
