-- records_per_hour is a limit, not a threshold. itaku.reserve_usage granted a lookup's whole
-- reservation (its max_results) whenever the hour's count was still below the limit, and the
-- hour's first reservation unchecked: an agent could take up to max_results - 1 records an hour
-- past the limit, or, where max_results is above records_per_hour, pass it with the hour's
-- first lookup. itaku.reserve_usage_up_to grants at most what the hour has left, and says how
-- many: the lookup then returns at most that many records.
--
-- itaku.reserve_usage stays for instances of the previous release while an upgrade rolls; a
-- later migration drops it.
CREATE FUNCTION itaku.reserve_usage_up_to(
    p_tenant uuid, p_purpose text, p_who text, p_per_minute bigint, p_tool text, p_tool_per_minute bigint,
    p_per_hour bigint, p_records integer
) RETURNS TABLE (agent_reserved boolean, tool_reserved boolean, records_granted integer)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v_rows bigint;
    v_agent boolean := true;
    v_tool boolean := true;
    v_granted integer := p_records;
    v_used bigint;
    v_minute timestamptz := date_trunc('minute', now());
    v_hour timestamptz := date_trunc('hour', now());
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM itaku.usage_counters
    WHERE tenant_id = p_tenant AND ((purpose_key = p_purpose AND who IN (p_who, p_who || '/records')) OR (purpose_key = '*' AND who = p_tool))
      AND window_start < now() - interval '2 hours';
    IF p_per_minute IS NOT NULL THEN
        INSERT INTO itaku.usage_counters AS c (tenant_id, purpose_key, who, window_start, used)
        VALUES (p_tenant, p_purpose, p_who, v_minute, 1)
        ON CONFLICT (tenant_id, purpose_key, who, window_start) DO UPDATE SET used = c.used + 1 WHERE c.used < p_per_minute;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_agent := v_rows > 0;
    END IF;
    IF v_agent AND p_tool IS NOT NULL AND p_tool_per_minute IS NOT NULL THEN
        INSERT INTO itaku.usage_counters AS c (tenant_id, purpose_key, who, window_start, used)
        VALUES (p_tenant, '*', p_tool, v_minute, 1)
        ON CONFLICT (tenant_id, purpose_key, who, window_start) DO UPDATE SET used = c.used + 1 WHERE c.used < p_tool_per_minute;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_tool := v_rows > 0;
    END IF;
    IF NOT (v_agent AND v_tool) THEN
        v_granted := 0;
    ELSIF p_per_hour IS NOT NULL THEN
        -- The hour's row, locked: what is left of the limit is granted, no more.
        INSERT INTO itaku.usage_counters (tenant_id, purpose_key, who, window_start, used)
        VALUES (p_tenant, p_purpose, p_who || '/records', v_hour, 0)
        ON CONFLICT (tenant_id, purpose_key, who, window_start) DO NOTHING;
        SELECT used INTO v_used FROM itaku.usage_counters
        WHERE tenant_id = p_tenant AND purpose_key = p_purpose AND who = p_who || '/records' AND window_start = v_hour
        FOR UPDATE;
        -- (No row would grant nothing: least() passes over a NULL.)
        v_granted := greatest(0, least(p_records::bigint, p_per_hour - coalesce(v_used, p_per_hour)))::integer;
        IF v_granted > 0 THEN
            UPDATE itaku.usage_counters SET used = used + v_granted
            WHERE tenant_id = p_tenant AND purpose_key = p_purpose AND who = p_who || '/records' AND window_start = v_hour;
        END IF;
    END IF;
    -- Give back what was taken when a later unit was refused.
    IF v_granted = 0 AND v_agent AND p_per_minute IS NOT NULL THEN
        UPDATE itaku.usage_counters SET used = used - 1
        WHERE tenant_id = p_tenant AND purpose_key = p_purpose AND who = p_who AND window_start = v_minute;
    END IF;
    IF v_granted = 0 AND v_tool AND v_agent AND p_tool IS NOT NULL AND p_tool_per_minute IS NOT NULL THEN
        UPDATE itaku.usage_counters SET used = used - 1
        WHERE tenant_id = p_tenant AND purpose_key = '*' AND who = p_tool AND window_start = v_minute;
    END IF;
    RETURN QUERY SELECT v_agent, v_tool, v_granted;
END
$$;

REVOKE ALL ON FUNCTION itaku.reserve_usage_up_to(uuid, text, text, bigint, text, bigint, bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.reserve_usage_up_to(uuid, text, text, bigint, text, bigint, bigint, integer) TO itaku_runtime;
