-- P2 of the benchmark: PostgreSQL's own part of an import. The records and lookup keys L2
-- imported are inserted again, server-side, as the runtime role (row-level security and every
-- index as for Itaku), from a table already in memory, into a new dataset (the same record
-- ids, time-ordered as Itaku makes them; the digests computed in the statement); then rolled back.
-- The figure to compare with L2's rows per second.
\set ON_ERROR_STOP on
BEGIN;
SELECT set_config('itaku.tenant_id', tenant_id::text, true) FROM itaku.tenants WHERE code = 'acme-retail';
INSERT INTO itaku.datasets (tenant_id, name) VALUES (current_setting('itaku.tenant_id')::uuid, 'pg-alone');
SELECT set_config('itaku.dataset_id', dataset_id::text, true) FROM itaku.datasets
WHERE tenant_id = current_setting('itaku.tenant_id')::uuid AND name = 'pg-alone';
CREATE TEMP TABLE source ON COMMIT DROP AS
    SELECT r.record_id, r.external_id, r.fields FROM itaku.records r JOIN itaku.datasets d USING (tenant_id, dataset_id)
    WHERE d.tenant_id = current_setting('itaku.tenant_id')::uuid AND d.name = 'callers';
GRANT SELECT ON source TO itaku_runtime;
SET ROLE itaku_runtime;
SELECT clock_timestamp() AS started \gset
INSERT INTO itaku.records (tenant_id, dataset_id, record_id, external_id, fields)
SELECT current_setting('itaku.tenant_id')::uuid, current_setting('itaku.dataset_id')::uuid, record_id, external_id, fields
FROM source;
INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, field, kind, digest, record_id)
SELECT current_setting('itaku.tenant_id')::uuid, current_setting('itaku.dataset_id')::uuid, k.field, k.kind,
    sha256(convert_to(k.kind || ':' || s.external_id, 'UTF8')), s.record_id
FROM source s, (VALUES ('phone', 'phone'), ('email', 'email'), ('customer_no', 'exact')) AS k(field, kind);
SELECT count(*) AS rows, extract(epoch FROM clock_timestamp() - :'started'::timestamptz) AS seconds
FROM source \gset
ROLLBACK;
\echo {"rows": :rows, "seconds": :seconds}
