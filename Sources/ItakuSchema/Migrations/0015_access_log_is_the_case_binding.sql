-- The access log is the case binding. A record is bound to (agent, case) when a lookup by that
-- agent under that case returned it: exactly what that lookup's allowed entry records (its
-- record_ids hold the records that left, never the withheld ones). Reading the binding from the
-- entry instead of writing it a second time takes an insert out of every lookup (the lookup is
-- now read-only), and a binding exists exactly when its evidence was durably committed.
--
-- itaku.agent_lookup and itaku.case_bindings stay, unused, for instances of the previous
-- release while an upgrade rolls; the bindings those write are also in their log entries.

-- A case's entries, newest first: the binding check, and searches by case.
CREATE INDEX access_log_case ON itaku.access_log (tenant_id, case_ref, occurred_at DESC) WHERE case_ref IS NOT NULL;

-- The records a lookup key finds, each fetched by primary key (as migration 0014's lookup).
CREATE FUNCTION itaku.agent_find(p_tenant uuid, p_dataset uuid, p_kind text, p_digest bytea, p_limit integer)
RETURNS TABLE (record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false)
        FROM (
            SELECT k.record_id FROM itaku.lookup_keys k
            WHERE k.digest = p_digest AND k.kind = p_kind AND k.dataset_id = p_dataset AND k.tenant_id = p_tenant
            OFFSET 0
        ) k
        CROSS JOIN LATERAL (
            SELECT * FROM itaku.records r
            WHERE r.tenant_id = p_tenant AND r.dataset_id = p_dataset AND r.record_id = k.record_id
        ) r
        ORDER BY r.external_id LIMIT p_limit;
END
$$;

-- Bound: an allowed lookup by this agent under this case returned this record within the
-- last p_minutes (cases.bindingMinutes).
CREATE FUNCTION itaku.case_bound(p_tenant uuid, p_agent text, p_case text, p_record uuid, p_minutes integer) RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN EXISTS (
        SELECT 1 FROM itaku.access_log
        WHERE tenant_id = p_tenant AND case_ref = p_case AND occurred_at > now() - make_interval(mins => p_minutes)
          AND agent = p_agent AND operation = 'lookup' AND decision = 'allow' AND p_record = ANY (record_ids)
    );
END
$$;

REVOKE ALL ON FUNCTION itaku.agent_find(uuid, uuid, text, bytea, integer),
    itaku.case_bound(uuid, text, text, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.agent_find(uuid, uuid, text, bytea, integer),
    itaku.case_bound(uuid, text, text, uuid, integer) TO itaku_runtime;
