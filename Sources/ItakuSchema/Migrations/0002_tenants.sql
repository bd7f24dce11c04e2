-- Tenants (client companies) and the first tenant-owned table, datasets.
-- Every table holding tenant data leads its primary key with tenant_id and has row-level
-- security enabled and forced, keyed on itaku.current_tenant().

CREATE TABLE itaku.tenants (
    tenant_id      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code           text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name           text NOT NULL,
    time_zone      text NOT NULL DEFAULT 'Asia/Tokyo',
    contract_start date,
    contract_end   date,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'ended')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
GRANT SELECT, INSERT, UPDATE ON itaku.tenants TO itaku_runtime;

CREATE TABLE itaku.datasets (
    tenant_id      uuid NOT NULL REFERENCES itaku.tenants (tenant_id),
    dataset_id     uuid NOT NULL DEFAULT gen_random_uuid(),
    name           text NOT NULL,
    version        integer NOT NULL DEFAULT 1,
    schema         jsonb NOT NULL DEFAULT '{}'::jsonb,
    retention_days integer,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, dataset_id),
    UNIQUE (tenant_id, name)
);
ALTER TABLE itaku.datasets ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.datasets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.datasets
    USING (tenant_id = itaku.current_tenant())
    WITH CHECK (tenant_id = itaku.current_tenant());
GRANT SELECT, INSERT, UPDATE ON itaku.datasets TO itaku_runtime;
