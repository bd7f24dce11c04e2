-- B1 (pgbench, prepared): the naive audited design. In one transaction, the B0 lookup and a log
-- row as wide as Itaku's access entry; the commit waits for the disk (synchronous_commit=on).
\set n random(1, :records)
BEGIN;
SELECT record_id AS rid, fields AS doc FROM itaku.records
WHERE tenant_id = :tenant AND dataset_id = :dataset AND external_id = 'B' || lpad(:n::text, 7, '0') \gset
INSERT INTO bench_naive_log (
    entry_id, occurred_at, tenant_id, actor_role, actor_key_id, integration_id, agent, agent_verified,
    purpose_key, purpose_version, case_ref, operation, dataset, lookup_kind, lookup_digest,
    record_ids, subject_digests, fields, decision, reason, rows_returned, request_id, stream, seq, prev_hash, hash)
VALUES (
    gen_random_uuid(), clock_timestamp(), :tenant, 'integration', :dataset, :dataset, 'A0001', true,
    'bench-support', 1, 'BENCH-' || :n, 'lookup', 'callers', 'phone', sha256(convert_to(:n::text, 'UTF8')),
    ARRAY[:rid::uuid], ARRAY[encode(sha256(convert_to('B' || :n::text, 'UTF8')), 'hex')],
    '{"name":"plain","name_kana":"plain","phone":"plain","address":"plain","postal_code":"plain","email":"mask","birth_date":"year_only"}',
    'allow', 'allowed', 1, md5(:n::text), 'bench-naive', :n, sha256(convert_to(:n::text, 'UTF8')), sha256(convert_to(:rid, 'UTF8')));
END;
