-- The agent paths in one round trip each, and imports without a per-key foreign-key check.

-- Lookup keys are written only by Itaku, in the same transaction as their record, and the
-- runtime role cannot delete records. The foreign key to records checked every key one by one
-- (three keys a record: most of an import's time) and, with its plan made while the table was
-- small, went quadratic on a fresh installation. What it cascaded, triggers now do; what it
-- protected, the record's key columns, the runtime role may no longer update.
ALTER TABLE itaku.lookup_keys DROP CONSTRAINT IF EXISTS lookup_keys_tenant_id_dataset_id_record_id_fkey;
REVOKE UPDATE ON itaku.records FROM itaku_runtime;
GRANT UPDATE (fields, updated_at) ON itaku.records TO itaku_runtime;

-- The lookup index leads with the digest. Digests are random, so a search or an insert is
-- decided by the first column compared, where the old order compared tenant, dataset and kind
-- (equal for every key of a dataset) first, at every level of the tree.
ALTER TABLE itaku.lookup_keys DROP CONSTRAINT lookup_keys_pkey;
ALTER TABLE itaku.lookup_keys ADD PRIMARY KEY (digest, kind, dataset_id, tenant_id, record_id);
-- A record's keys, for updates (which replace all of them) and deletions. Record ids are
-- time-ordered, so an import appends to this index rather than scattering over it.
CREATE INDEX lookup_keys_record ON itaku.lookup_keys (tenant_id, dataset_id, record_id);

CREATE FUNCTION itaku.records_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM itaku.lookup_keys k USING gone g
    WHERE k.tenant_id = g.tenant_id AND k.dataset_id = g.dataset_id AND k.record_id = g.record_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER records_deleted AFTER DELETE ON itaku.records
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION itaku.records_deleted();

CREATE FUNCTION itaku.records_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    TRUNCATE itaku.lookup_keys;
    RETURN NULL;
END
$$;
CREATE TRIGGER records_truncated AFTER TRUNCATE ON itaku.records
    FOR EACH STATEMENT EXECUTE FUNCTION itaku.records_truncated();

-- The functions below run as the caller (SECURITY INVOKER): row-level security applies to
-- every row they touch. Each sets the tenant for its own statement's transaction first, so an
-- agent request costs one round trip where BEGIN, set_config, query and COMMIT cost four.

-- A lookup by keyed digest; with an agent and a case, binds the active records found to
-- (agent, case) until p_until. Bindings need not wait for the disk: one lost in a crash only
-- means looking the caller up again. The access entry of the lookup is written apart, durably.
-- It turns synchronous_commit off for the transaction it runs in: call it as a statement of its
-- own. (Access entries committed with a change set it back on before their COMMIT, whatever ran
-- before them in the transaction: AccessLogWriter.commit(with:on:).)
CREATE FUNCTION itaku.agent_lookup(
    p_tenant uuid, p_dataset uuid, p_kind text, p_digest bytea, p_limit integer,
    p_agent text, p_case text, p_until timestamptz
) RETURNS TABLE (record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    PERFORM set_config('synchronous_commit', 'off', true);
    RETURN QUERY
        WITH hits AS (
            SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false) AS expired
            FROM itaku.lookup_keys k
            JOIN itaku.records r ON r.tenant_id = k.tenant_id AND r.dataset_id = k.dataset_id AND r.record_id = k.record_id
            WHERE k.tenant_id = p_tenant AND k.dataset_id = p_dataset AND k.kind = p_kind AND k.digest = p_digest
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

-- Whether a lookup by this agent under this case returned this record, lately.
CREATE FUNCTION itaku.case_bound(p_tenant uuid, p_agent text, p_case text, p_record uuid) RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER AS $$
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN EXISTS (
        SELECT 1 FROM itaku.case_bindings
        WHERE tenant_id = p_tenant AND agent = p_agent AND case_ref = p_case AND record_id = p_record AND expires_at > now()
    );
END
$$;

-- One record by id, for a read already decided.
CREATE FUNCTION itaku.agent_read(p_tenant uuid, p_dataset uuid, p_record uuid)
RETURNS TABLE (record_id uuid, external_id text, fields jsonb, status text, expired boolean)
LANGUAGE plpgsql SECURITY INVOKER AS $$
#variable_conflict use_column
BEGIN
    PERFORM set_config('itaku.tenant_id', p_tenant::text, true);
    RETURN QUERY
        SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false)
        FROM itaku.records r
        WHERE r.tenant_id = p_tenant AND r.dataset_id = p_dataset AND r.record_id = p_record;
END
$$;

REVOKE ALL ON FUNCTION itaku.agent_lookup(uuid, uuid, text, bytea, integer, text, text, timestamptz),
    itaku.case_bound(uuid, text, text, uuid), itaku.agent_read(uuid, uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.agent_lookup(uuid, uuid, text, bytea, integer, text, text, timestamptz),
    itaku.case_bound(uuid, text, text, uuid), itaku.agent_read(uuid, uuid, uuid) TO itaku_runtime;
