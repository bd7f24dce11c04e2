-- The log table of B1: the columns of Itaku's access log, with its indexes, unpartitioned.
DROP TABLE IF EXISTS bench_naive_log;
CREATE TABLE bench_naive_log (LIKE itaku.access_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
ALTER TABLE bench_naive_log ADD PRIMARY KEY (entry_id, occurred_at);
CREATE INDEX ON bench_naive_log (tenant_id, occurred_at DESC, entry_id DESC);
CREATE INDEX ON bench_naive_log (agent, occurred_at DESC, entry_id DESC) WHERE agent IS NOT NULL;
CREATE INDEX ON bench_naive_log (occurred_at DESC, entry_id DESC);
