-- The access log is the case binding. A record is bound to (agent, case) when a lookup by that
-- agent under that case returned it: exactly what that lookup's allowed entry records (its
-- record_ids hold the records that left, never the withheld ones). Reading the binding from the
-- entry instead of writing it a second time takes an insert out of every lookup (the lookup is
-- now read-only), and a binding exists exactly when its evidence was durably committed.
--
-- itaku.agent_lookup and itaku.case_bindings stay for instances of the previous release while
-- an upgrade rolls: the bindings those write are also in their log entries, and their binding
-- check (the four-argument itaku.case_bound, below) reads the log too, so a lookup served by a
-- new instance binds for an old one. A later migration drops all three.
--
-- Building access_log_case reads the whole access log and holds back its inserts meanwhile
-- (and so every answer, fail-closed): on a large log, migrate in a quiet hour.

-- A case's entries, newest first: the binding check, and searches by case.
CREATE INDEX access_log_case ON itaku.access_log (tenant_id, case_ref, occurred_at DESC) WHERE case_ref IS NOT NULL;

-- The records a lookup key finds: the digest's keys first, then each key's record by primary
-- key. Both steps are fenced (MATERIALIZED, OFFSET 0) so that no plan, with statistics or
-- without (a fresh or just-imported table), can turn it into a scan of the records in
-- external_id order filtered against the keys.
CREATE FUNCTION itaku.agent_find(p_tenant uuid, p_dataset uuid, p_kind text, p_digest bytea, p_limit integer)
RETURNS TABLE (record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        WITH keys AS MATERIALIZED (
            SELECT k.record_id FROM itaku.lookup_keys k
            WHERE k.digest = p_digest AND k.kind = p_kind AND k.dataset_id = p_dataset AND k.tenant_id = p_tenant
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

-- The previous release's check, for the length of an upgrade: its own bindings, or the log's
-- (with cases.bindingMinutes' default).
CREATE OR REPLACE FUNCTION itaku.case_bound(p_tenant uuid, p_agent text, p_case text, p_record uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN EXISTS (
        SELECT 1 FROM itaku.case_bindings
        WHERE tenant_id = p_tenant AND agent = p_agent AND case_ref = p_case AND record_id = p_record AND expires_at > now()
    ) OR itaku.case_bound(p_tenant, p_agent, p_case, p_record, 30);
END
$$;

REVOKE ALL ON FUNCTION itaku.agent_find(uuid, uuid, text, bytea, integer),
    itaku.case_bound(uuid, text, text, uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.agent_find(uuid, uuid, text, bytea, integer),
    itaku.case_bound(uuid, text, text, uuid, integer) TO itaku_runtime;
