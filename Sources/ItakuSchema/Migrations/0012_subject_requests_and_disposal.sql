-- The data-subject life cycle: requests the client instructs (APPI Arts. 33-35), suspension of
-- use, retention, and disposal with signed evidence.

-- Two more kinds of access entry: a subject request's transitions and package downloads, and
-- the disposal of records (retention, deletion, contract end).
ALTER TABLE itaku.access_log DROP CONSTRAINT access_log_operation_check;
ALTER TABLE itaku.access_log ADD CONSTRAINT access_log_operation_check
    CHECK (operation IN ('lookup', 'read', 'update', 'configure', 'review', 'subject_request', 'dispose'));

-- A request as the client instructed it. The subject is held as the records it located and the
-- keyed digests of their external ids, never as the lookup value it was found by: after a
-- deletion the request still names its subject, by digest only.
CREATE TABLE itaku.subject_requests (
    tenant_id       uuid NOT NULL REFERENCES itaku.tenants (tenant_id),
    request_id      uuid NOT NULL DEFAULT gen_random_uuid(),
    kind            text NOT NULL CHECK (kind IN ('disclosure', 'correction', 'deletion', 'suspension', 'resumption')),
    state           text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'executed', 'rejected')),
    dataset_id      uuid NOT NULL,
    record_ids      uuid[] NOT NULL,
    subject_digests text[] NOT NULL,
    reference       text,
    due_date        date,
    rejection       text,
    disposal_id     uuid,
    received_at     timestamptz NOT NULL DEFAULT now(),
    decided_at      timestamptz,
    PRIMARY KEY (tenant_id, request_id),
    FOREIGN KEY (tenant_id, dataset_id) REFERENCES itaku.datasets (tenant_id, dataset_id)
);
ALTER TABLE itaku.subject_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.subject_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.subject_requests
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
CREATE POLICY cross_tenant_read ON itaku.subject_requests FOR SELECT TO itaku_reader USING (true);
GRANT SELECT, INSERT ON itaku.subject_requests TO itaku_runtime;
GRANT UPDATE (state, rejection, disposal_id, decided_at) ON itaku.subject_requests TO itaku_runtime;
GRANT SELECT ON itaku.subject_requests TO itaku_reader;

-- Evidence of each disposal run: the signed document as it was signed (canonical JSON), kept
-- append-only like the access log's checkpoints.
CREATE TABLE itaku.disposal_records (
    tenant_id   uuid NOT NULL,
    disposal_id uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('retention', 'deletion', 'contract_end')),
    dataset     text NOT NULL,
    records     integer NOT NULL,
    document    text NOT NULL,
    key_id      text NOT NULL,
    signature   bytea NOT NULL,
    PRIMARY KEY (tenant_id, disposal_id)
);
CREATE INDEX disposal_records_time ON itaku.disposal_records (tenant_id, created_at DESC);
ALTER TABLE itaku.disposal_records ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.disposal_records FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.disposal_records
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
CREATE POLICY cross_tenant_read ON itaku.disposal_records FOR SELECT TO itaku_reader USING (true);
GRANT SELECT, INSERT ON itaku.disposal_records TO itaku_runtime;
GRANT SELECT ON itaku.disposal_records TO itaku_reader;
CREATE TRIGGER disposal_records_append_only BEFORE UPDATE OR DELETE ON itaku.disposal_records
    FOR EACH ROW EXECUTE FUNCTION itaku.refuse_change();
CREATE TRIGGER disposal_records_no_truncate BEFORE TRUNCATE ON itaku.disposal_records
    FOR EACH STATEMENT EXECUTE FUNCTION itaku.refuse_change();
ALTER TABLE itaku.disposal_records ENABLE ALWAYS TRIGGER disposal_records_append_only;
ALTER TABLE itaku.disposal_records ENABLE ALWAYS TRIGGER disposal_records_no_truncate;

-- Suspension and resumption change a record's status, nothing else.
GRANT UPDATE (status, updated_at) ON itaku.records TO itaku_runtime;

-- The runtime role still may not DELETE records. Disposal goes through these functions, which
-- take their batch once (ARRAY(...): an init plan; as `IN (subquery)` a generic plan may run the
-- locking subquery again for each row, skip the rows this statement already deleted, and so
-- take the next batch, and the next),
-- delete only the current tenant's records (row-level security applies to their owner too:
-- FORCE) and return what they deleted, for the disposal record. Lookup keys follow through
-- the records_deleted trigger.
CREATE FUNCTION itaku.dispose_records(p_dataset uuid, p_records uuid[])
RETURNS TABLE (record_id uuid, external_id text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, itaku AS $$
    DELETE FROM itaku.records r
    WHERE r.tenant_id = itaku.current_tenant() AND r.dataset_id = p_dataset AND r.record_id = ANY (p_records)
    RETURNING r.record_id, r.external_id
$$;

CREATE FUNCTION itaku.dispose_expired(p_dataset uuid, p_limit integer)
RETURNS TABLE (record_id uuid, external_id text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, itaku AS $$
    DELETE FROM itaku.records r
    WHERE r.tenant_id = itaku.current_tenant() AND r.dataset_id = p_dataset
      AND r.record_id = ANY (ARRAY(
          SELECT e.record_id FROM itaku.records e
          WHERE e.tenant_id = itaku.current_tenant() AND e.dataset_id = p_dataset AND e.expires_at < now()
          LIMIT p_limit FOR UPDATE SKIP LOCKED))
    RETURNING r.record_id, r.external_id
$$;

CREATE FUNCTION itaku.dispose_dataset(p_dataset uuid, p_limit integer)
RETURNS TABLE (record_id uuid, external_id text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, itaku AS $$
    DELETE FROM itaku.records r
    WHERE r.tenant_id = itaku.current_tenant() AND r.dataset_id = p_dataset
      AND r.record_id = ANY (ARRAY(
          SELECT a.record_id FROM itaku.records a
          WHERE a.tenant_id = itaku.current_tenant() AND a.dataset_id = p_dataset
          LIMIT p_limit FOR UPDATE))
    RETURNING r.record_id, r.external_id
$$;

REVOKE ALL ON FUNCTION itaku.dispose_records(uuid, uuid[]), itaku.dispose_expired(uuid, integer),
    itaku.dispose_dataset(uuid, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION itaku.dispose_records(uuid, uuid[]), itaku.dispose_expired(uuid, integer),
    itaku.dispose_dataset(uuid, integer) TO itaku_runtime;
