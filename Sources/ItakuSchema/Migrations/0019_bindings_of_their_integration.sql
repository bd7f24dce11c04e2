-- A case binding is the integration's own. itaku.case_bound and itaku.case_bound_batch matched
-- an allowed lookup by the agent under the case through any integration of the tenant: an
-- asserted integration naming the agent could read a record that the agent's verified desktop
-- had looked up, without a token of its own. The new functions also match the integration that
-- asks. (The purpose is not matched: a record found under one purpose may be read under
-- another that allows reading it, with that purpose's fields.)
--
-- And a lookup's unused records go back to the hour they were reserved in: itaku.count_records
-- gave them back to the hour in which the answer left, so a reservation made at 10:59:59 and
-- given back after 11:00 lowered the new hour's count by what the old hour had reserved.
--
-- The previous functions stay for instances of the previous release while an upgrade rolls.
CREATE FUNCTION itaku.case_bound(p_tenant uuid, p_integration uuid, p_agent text, p_case text, p_record uuid, p_minutes integer)
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN EXISTS (
        SELECT 1 FROM itaku.access_log
        WHERE tenant_id = p_tenant AND case_ref = p_case AND occurred_at > now() - make_interval(mins => p_minutes)
          AND agent = p_agent AND integration_id = p_integration AND operation = 'lookup' AND decision = 'allow'
          AND p_record = ANY (record_ids)
    );
END
$$;

CREATE FUNCTION itaku.case_bound_batch(
    p_tenant uuid, p_integrations uuid[], p_agents text[], p_cases text[], p_records uuid[], p_minutes integer[]
) RETURNS TABLE (item integer)
LANGUAGE plpgsql SECURITY INVOKER SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT q.n::integer
        FROM unnest(p_integrations, p_agents, p_cases, p_records, p_minutes) WITH ORDINALITY AS q(integration_id, agent, case_ref, record_id, minutes, n)
        CROSS JOIN LATERAL (
            SELECT 1 FROM itaku.access_log l
            WHERE l.tenant_id = p_tenant AND l.case_ref = q.case_ref AND l.occurred_at > now() - make_interval(mins => q.minutes)
              AND l.agent = q.agent AND l.integration_id = q.integration_id AND l.operation = 'lookup' AND l.decision = 'allow'
              AND q.record_id = ANY (l.record_ids)
            LIMIT 1
        ) hit;
END
$$;

CREATE FUNCTION itaku.count_records_in(p_tenant uuid, p_purpose text, p_who text, p_hour timestamptz, p_records integer) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE itaku.usage_counters SET used = greatest(0, used + p_records)
    WHERE tenant_id = p_tenant AND purpose_key = p_purpose AND who = p_who || '/records' AND window_start = p_hour;
END
$$;

REVOKE ALL ON FUNCTION itaku.case_bound(uuid, uuid, text, text, uuid, integer),
    itaku.case_bound_batch(uuid, uuid[], text[], text[], uuid[], integer[]),
    itaku.count_records_in(uuid, text, text, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.case_bound(uuid, uuid, text, text, uuid, integer),
    itaku.case_bound_batch(uuid, uuid[], text[], text[], uuid[], integer[]),
    itaku.count_records_in(uuid, text, text, timestamptz, integer) TO itaku_runtime;
