-- Lookups and case checks in batches: while every lane of an instance is busy, the requests that
-- arrive meanwhile go to PostgreSQL together, one statement per tenant. The round trip, the
-- transaction and the plan's start are then paid once per batch instead of once per request.
-- A request alone still goes through itaku.agent_find or the five-argument itaku.case_bound
-- (migration 0015), which are cheaper for one.
--
-- Both functions use plpgsql's generic plan (plan_cache_mode): with the arrays' values at hand,
-- the planner would otherwise prefer a plan made for each call's own arrays, and plan every call
-- (measured: about 300 µs a call, three times the query itself).
--
-- Item n of the arrays is one lookup (dataset, kind, digest, most rows); its records come back
-- marked with n. Each item is fetched as itaku.agent_find fetches one lookup (migration 0015):
-- the digest's keys, then each key's record by primary key, fenced (OFFSET 0) so that no plan,
-- with statistics or without, reads records in external_id order to filter them against keys.
CREATE FUNCTION itaku.agent_find_batch(p_tenant uuid, p_datasets uuid[], p_kinds text[], p_digests bytea[], p_limits integer[])
RETURNS TABLE (item integer, record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT q.n::integer, r.record_id, r.external_id, r.fields, r.status, r.expired
        FROM unnest(p_datasets, p_kinds, p_digests, p_limits) WITH ORDINALITY AS q(dataset_id, kind, digest, most, n)
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
            ORDER BY r.external_id LIMIT q.most
        ) r
        ORDER BY q.n, r.external_id;
END
$$;

-- Item n of the arrays asks whether an allowed lookup by agent n under case n returned record n
-- within the last minutes n (itaku.case_bound, migration 0015); the items bound come back. Each
-- item is its own probe of access_log_case (LATERAL … LIMIT 1): never a join over the log.
CREATE FUNCTION itaku.case_bound_batch(p_tenant uuid, p_agents text[], p_cases text[], p_records uuid[], p_minutes integer[])
RETURNS TABLE (item integer)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT q.n::integer
        FROM unnest(p_agents, p_cases, p_records, p_minutes) WITH ORDINALITY AS q(agent, case_ref, record_id, minutes, n)
        CROSS JOIN LATERAL (
            SELECT 1 FROM itaku.access_log l
            WHERE l.tenant_id = p_tenant AND l.case_ref = q.case_ref AND l.occurred_at > now() - make_interval(mins => q.minutes)
              AND l.agent = q.agent AND l.operation = 'lookup' AND l.decision = 'allow' AND q.record_id = ANY (l.record_ids)
            LIMIT 1
        ) hit;
END
$$;

REVOKE ALL ON FUNCTION itaku.agent_find_batch(uuid, uuid[], text[], bytea[], integer[]),
    itaku.case_bound_batch(uuid, text[], text[], uuid[], integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.agent_find_batch(uuid, uuid[], text[], bytea[], integer[]),
    itaku.case_bound_batch(uuid, text[], text[], uuid[], integer[]) TO itaku_runtime;
