-- B0 (pgbench, prepared): a point lookup by the indexed key of the records table.
\set n random(1, :records)
SELECT record_id, fields FROM itaku.records
WHERE tenant_id = :tenant AND dataset_id = :dataset AND external_id = 'B' || lpad(:n::text, 7, '0');
