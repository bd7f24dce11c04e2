-- A lookup key names the field it was made from. A key held only its kind and digest, so a
-- lookup by one field also found the values of every other field of the same kind: a purpose
-- that allows searching by customer_no (exact) found records by member_id or an individual
-- number (also exact), and a phone lookup found emergency contacts' numbers. A lookup (and a
-- subject request) now matches only keys of the field it names.
--
-- Keys written before this migration are named here after their kind's one lookup field in the
-- dataset's schema as it stands now. (A record not written since its dataset's lookup fields
-- changed may still hold a key of a field that is gone; it takes the present field's name. Import
-- such a dataset again to rebuild its keys.) Where the schema has two or more lookup fields of one kind,
-- nothing tells which field a key came from: those keys stay unnamed (field '') and no lookup
-- matches them, until the record is updated or the dataset imported again, which writes its
-- keys named. Instances of the previous release write unnamed keys too (the column's default)
-- while an upgrade rolls: finish the upgrade before importing.
--
-- The previous release's itaku.agent_find and itaku.agent_find_batch stay for instances that
-- still run it while an upgrade rolls; a later migration drops them.
--
-- Naming the keys rewrites the lookup index, and rebuilding its primary key reads it whole, while
-- itaku.datasets stays locked (registry reads and imports wait): on a large index, migrate in a
-- quiet hour.

ALTER TABLE itaku.lookup_keys ADD COLUMN field text NOT NULL DEFAULT '';

-- Every tenant's keys and datasets: row-level security is forced on both, on their owner too,
-- for the length of this transaction's statement lifted (the tables stay locked meanwhile).
ALTER TABLE itaku.lookup_keys NO FORCE ROW LEVEL SECURITY;
ALTER TABLE itaku.datasets NO FORCE ROW LEVEL SECURITY;
UPDATE itaku.lookup_keys k SET field = sole.field
FROM (
    SELECT d.tenant_id, d.dataset_id, f->>'lookup' AS kind, min(f->>'name') AS field
    FROM itaku.datasets d CROSS JOIN LATERAL jsonb_array_elements(d.schema->'fields') f
    WHERE f->>'lookup' IS NOT NULL
    GROUP BY d.tenant_id, d.dataset_id, f->>'lookup'
    HAVING count(*) = 1
) sole
WHERE k.tenant_id = sole.tenant_id AND k.dataset_id = sole.dataset_id AND k.kind = sole.kind;
ALTER TABLE itaku.lookup_keys FORCE ROW LEVEL SECURITY;
ALTER TABLE itaku.datasets FORCE ROW LEVEL SECURITY;

ALTER TABLE itaku.lookup_keys DROP CONSTRAINT lookup_keys_pkey;
ALTER TABLE itaku.lookup_keys ADD PRIMARY KEY (digest, kind, dataset_id, tenant_id, field, record_id);

CREATE FUNCTION itaku.agent_find(p_tenant uuid, p_dataset uuid, p_field text, p_kind text, p_digest bytea, p_limit integer)
RETURNS TABLE (record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        WITH keys AS MATERIALIZED (
            SELECT k.record_id FROM itaku.lookup_keys k
            WHERE k.digest = p_digest AND k.kind = p_kind AND k.dataset_id = p_dataset AND k.tenant_id = p_tenant
              AND k.field = p_field
        )
        SELECT r.record_id, r.external_id, r.fields, r.status, r.expired
        FROM keys k
        CROSS JOIN LATERAL (
            SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false) AS expired
            FROM itaku.records r
            WHERE r.tenant_id = p_tenant AND r.dataset_id = p_dataset AND r.record_id = k.record_id
            OFFSET 0
        ) r
        ORDER BY r.external_id LIMIT p_limit;
END
$$;

CREATE FUNCTION itaku.agent_find_batch(p_tenant uuid, p_datasets uuid[], p_fields text[], p_kinds text[], p_digests bytea[], p_limits integer[])
RETURNS TABLE (item integer, record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT q.n::integer, r.record_id, r.external_id, r.fields, r.status, r.expired
        FROM unnest(p_datasets, p_fields, p_kinds, p_digests, p_limits) WITH ORDINALITY AS q(dataset_id, field, kind, digest, most, n)
        CROSS JOIN LATERAL (
            SELECT r.record_id, r.external_id, r.fields, r.status, r.expired
            FROM itaku.lookup_keys k
            CROSS JOIN LATERAL (
                SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false) AS expired
                FROM itaku.records r
                WHERE r.tenant_id = p_tenant AND r.dataset_id = q.dataset_id AND r.record_id = k.record_id
                OFFSET 0
            ) r
            WHERE k.digest = q.digest AND k.kind = q.kind AND k.dataset_id = q.dataset_id AND k.tenant_id = p_tenant
              AND k.field = q.field
            ORDER BY r.external_id LIMIT q.most
        ) r
        ORDER BY q.n, r.external_id;
END
$$;

REVOKE ALL ON FUNCTION itaku.agent_find(uuid, uuid, text, text, bytea, integer),
    itaku.agent_find_batch(uuid, uuid[], text[], text[], bytea[], integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.agent_find(uuid, uuid, text, text, bytea, integer),
    itaku.agent_find_batch(uuid, uuid[], text[], text[], bytea[], integer[]) TO itaku_runtime;
