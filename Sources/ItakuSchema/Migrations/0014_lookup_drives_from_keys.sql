-- A lookup's records are fetched key by key. Migration 0010 read the digest's keys first, but
-- the join after it could still be driven from the records in external_id order (that order
-- serves ORDER BY … LIMIT without a sort), filtering each record against the keys: hundreds of
-- records read for the one a key names, whenever the planner, or plpgsql's generic plan,
-- preferred it. A LATERAL fetch by primary key leaves only one way: each key, then its record.
CREATE OR REPLACE FUNCTION itaku.agent_lookup(
    p_tenant uuid, p_dataset uuid, p_kind text, p_digest bytea, p_limit integer,
    p_agent text, p_case text, p_until timestamptz
) RETURNS TABLE (record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
        WITH keys AS MATERIALIZED (
            SELECT k.record_id FROM itaku.lookup_keys k
            WHERE k.digest = p_digest AND k.kind = p_kind AND k.dataset_id = p_dataset AND k.tenant_id = p_tenant
        ), hits AS (
            SELECT r.record_id, r.external_id, r.fields, r.status, r.expired
            FROM keys k
            CROSS JOIN LATERAL (
                SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false) AS expired
                FROM itaku.records r
                WHERE r.tenant_id = p_tenant AND r.dataset_id = p_dataset AND r.record_id = k.record_id
            ) r
            ORDER BY r.external_id LIMIT p_limit
        ), bound AS (
            INSERT INTO itaku.case_bindings (tenant_id, agent, case_ref, record_id, expires_at)
            SELECT p_tenant, p_agent, p_case, h.record_id, p_until FROM hits h
            WHERE p_agent IS NOT NULL AND p_case IS NOT NULL AND h.status = 'active' AND NOT h.expired
            ON CONFLICT (tenant_id, agent, case_ref, record_id) DO UPDATE SET expires_at = excluded.expires_at
        )
        SELECT h.record_id, h.external_id, h.fields, h.status, h.expired FROM hits h ORDER BY h.external_id;
END
$$;
