-- A lookup returns at most max_results records (or what the hour has left), and the records it
-- finds but may not release (suspended, expired) are withheld. They were sorted with the others
-- by external id, so a withheld record could take the one place an active record needed: one
-- phone shared by a suspended record and an active one answered nothing. Records that may be
-- released now come first, then by external id as before. (Same signatures: instances of the
-- previous release get the new order too.)

CREATE OR REPLACE FUNCTION itaku.agent_find(p_tenant uuid, p_dataset uuid, p_field text, p_kind text, p_digest bytea, p_limit integer)
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
        ORDER BY (r.status = 'active' AND NOT r.expired) DESC, r.external_id LIMIT p_limit;
END
$$;

CREATE OR REPLACE FUNCTION itaku.agent_find_batch(p_tenant uuid, p_datasets uuid[], p_fields text[], p_kinds text[], p_digests bytea[], p_limits integer[])
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
            ORDER BY (r.status = 'active' AND NOT r.expired) DESC, r.external_id LIMIT q.most
        ) r
        ORDER BY q.n, (r.status = 'active' AND NOT r.expired) DESC, r.external_id;
END
$$;
