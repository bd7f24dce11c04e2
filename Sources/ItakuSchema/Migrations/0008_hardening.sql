-- Hardening: every chained entry has its place, no two entries share one, each write seals its
-- streams' heads, usage is reserved atomically, and case references follow a tenant's pattern.

-- Every entry belongs to a chain: a stream, a sequence number and both hashes. (Rows without
-- a sequence number made the verifier's walk stand still.)
ALTER TABLE itaku.access_log ALTER COLUMN stream SET NOT NULL;
ALTER TABLE itaku.access_log ALTER COLUMN seq SET NOT NULL;
ALTER TABLE itaku.access_log ALTER COLUMN prev_hash SET NOT NULL;
ALTER TABLE itaku.access_log ALTER COLUMN hash SET NOT NULL;
ALTER TABLE itaku.access_log ADD CONSTRAINT access_log_seq_positive CHECK (seq BETWEEN 1 AND 4611686018427387904);

-- The owner may be subject to the log's forced row-level security: read every tenant's rows
-- for the backfills below (the switch still opens them until migration 0009).
SELECT set_config('itaku.all_tenants', 'on', true);

-- The seal: an Ed25519 signature over "stream, seq, hash", made with the checkpoint key (kept
-- outside PostgreSQL) on the last entry of each stream in every write. A stream whose newest
-- entry is not sealed, or covered by a checkpoint, was extended by someone without the key.
ALTER TABLE itaku.access_log ADD COLUMN seal bytea;

-- Each stream's head as seals arrive: entries up to it were written before seals existed, and
-- only checkpoints cover them; the verifier does not count them as appended without the key.
CREATE TABLE itaku.access_log_legacy_heads (
    stream text PRIMARY KEY,
    seq    bigint NOT NULL
);
REVOKE ALL ON itaku.access_log_legacy_heads FROM PUBLIC;
INSERT INTO itaku.access_log_legacy_heads (stream, seq) SELECT stream, max(seq) FROM itaku.access_log GROUP BY stream;

-- One entry per (stream, seq), whatever its time. A unique index of the partitioned table
-- must include the partition key, so the pairs are kept in a table of their own, filled by a
-- trigger that the runtime role cannot skip (ENABLE ALWAYS) and whose table it cannot touch.
CREATE TABLE itaku.access_log_positions (
    stream text NOT NULL,
    seq    bigint NOT NULL,
    PRIMARY KEY (stream, seq)
);
REVOKE ALL ON itaku.access_log_positions FROM PUBLIC;
INSERT INTO itaku.access_log_positions (stream, seq)
    SELECT DISTINCT stream, seq FROM itaku.access_log ON CONFLICT DO NOTHING;

CREATE FUNCTION itaku.access_log_positions_taken() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, itaku
    AS $$
BEGIN
    INSERT INTO itaku.access_log_positions (stream, seq) SELECT stream, seq FROM added;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION itaku.access_log_positions_taken() FROM PUBLIC;
CREATE TRIGGER access_log_positions AFTER INSERT ON itaku.access_log
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION itaku.access_log_positions_taken();
ALTER TABLE itaku.access_log ENABLE ALWAYS TRIGGER access_log_positions;

-- Volume limits: one counter per tenant, purpose, who (an agent, or an asserted integration
-- as a whole) and window. A request reserves its unit with one atomic upsert before any data
-- is read, so concurrent requests on any instance can never pass a limit together.
CREATE TABLE itaku.usage_counters (
    tenant_id    uuid NOT NULL,
    purpose_key  text NOT NULL,
    who          text NOT NULL,
    window_start timestamptz NOT NULL,
    used         integer NOT NULL,
    PRIMARY KEY (tenant_id, purpose_key, who, window_start)
);
ALTER TABLE itaku.usage_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.usage_counters FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.usage_counters
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
GRANT SELECT, INSERT, UPDATE, DELETE ON itaku.usage_counters TO itaku_runtime;

-- Case references are stored as given only when they match the tenant's pattern (a regular
-- expression that the whole reference must match); without one, Itaku's default applies.
ALTER TABLE itaku.tenants ADD COLUMN case_pattern text CHECK (length(case_pattern) BETWEEN 1 AND 200);

-- One round trip each (SECURITY INVOKER: row-level security applies; the tenant is set for the
-- statement's own transaction). Counters are bookkeeping, not evidence: they need not wait for
-- the disk. Call each as a statement of its own.
--
-- Reserves, for `p_who` (an agent) under `p_purpose`: one lookup of the current minute (below
-- p_per_minute); for `p_tool` (an asserted integration, across the tenant's purposes) one lookup
-- of the minute (below p_tool_per_minute); and p_records records of the current hour (while
-- below p_per_hour; the caller gives back what its answer did not use). NULL limits are not
-- counted. All or nothing: a unit refused gives back the units taken before it. Old windows of
-- these counters are removed.
CREATE FUNCTION itaku.reserve_usage(
    p_tenant uuid, p_purpose text, p_who text, p_per_minute bigint, p_tool text, p_tool_per_minute bigint,
    p_per_hour bigint, p_records integer
) RETURNS TABLE (agent_reserved boolean, tool_reserved boolean, records_reserved boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
DECLARE
    v_rows bigint;
    v_agent boolean := true;
    v_tool boolean := true;
    v_records boolean := true;
    v_minute timestamptz := date_trunc('minute', now());
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
    IF v_agent AND v_tool AND p_per_hour IS NOT NULL THEN
        INSERT INTO itaku.usage_counters AS c (tenant_id, purpose_key, who, window_start, used)
        VALUES (p_tenant, p_purpose, p_who || '/records', date_trunc('hour', now()), p_records)
        ON CONFLICT (tenant_id, purpose_key, who, window_start) DO UPDATE SET used = c.used + p_records WHERE c.used < p_per_hour;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        v_records := v_rows > 0;
    END IF;
    -- Give back what was taken when a later unit was refused.
    IF NOT (v_tool AND v_records) AND v_agent AND p_per_minute IS NOT NULL THEN
        UPDATE itaku.usage_counters SET used = used - 1
        WHERE tenant_id = p_tenant AND purpose_key = p_purpose AND who = p_who AND window_start = v_minute;
    END IF;
    IF NOT v_records AND v_tool AND p_tool IS NOT NULL AND p_tool_per_minute IS NOT NULL THEN
        UPDATE itaku.usage_counters SET used = used - 1
        WHERE tenant_id = p_tenant AND purpose_key = '*' AND who = p_tool AND window_start = v_minute;
    END IF;
    RETURN QUERY SELECT v_agent, v_tool, v_records;
END
$$;

-- Adds `p_records` (negative: gives back) to the hour's record counter of `p_who`.
CREATE FUNCTION itaku.count_records(p_tenant uuid, p_purpose text, p_who text, p_records integer) RETURNS void
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    PERFORM set_config('synchronous_commit', 'off', true);
    UPDATE itaku.usage_counters SET used = greatest(0, used + p_records)
    WHERE tenant_id = p_tenant AND purpose_key = p_purpose AND who = p_who || '/records' AND window_start = date_trunc('hour', now());
END
$$;

REVOKE ALL ON FUNCTION itaku.reserve_usage(uuid, text, text, bigint, text, bigint, bigint, integer),
    itaku.count_records(uuid, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.reserve_usage(uuid, text, text, bigint, text, bigint, bigint, integer),
    itaku.count_records(uuid, text, text, integer) TO itaku_runtime;
