-- Tamper evidence for the access log: entries form hash chains per stream (one stream per
-- gateway process and tenant), and checkpoints sign the stream heads with an Ed25519 key kept
-- outside PostgreSQL. The runtime role may only INSERT and SELECT checkpoints.

CREATE UNIQUE INDEX access_log_stream_seq ON itaku.access_log (stream, seq, occurred_at) WHERE stream IS NOT NULL;

CREATE TABLE itaku.access_log_checkpoints (
    checkpoint_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    created_at    timestamptz NOT NULL,
    stream        text NOT NULL,
    tenant_id     uuid,
    seq           bigint NOT NULL,
    hash          bytea NOT NULL,
    key_id        text NOT NULL,
    signature     bytea NOT NULL
);
CREATE INDEX access_log_checkpoints_stream ON itaku.access_log_checkpoints (stream, seq DESC);
GRANT SELECT, INSERT ON itaku.access_log_checkpoints TO itaku_runtime;
CREATE TRIGGER access_log_checkpoints_append_only BEFORE UPDATE OR DELETE ON itaku.access_log_checkpoints
    FOR EACH ROW EXECUTE FUNCTION itaku.refuse_change();
CREATE TRIGGER access_log_checkpoints_no_truncate BEFORE TRUNCATE ON itaku.access_log_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION itaku.refuse_change();
ALTER TABLE itaku.access_log_checkpoints ENABLE ALWAYS TRIGGER access_log_checkpoints_append_only;
ALTER TABLE itaku.access_log_checkpoints ENABLE ALWAYS TRIGGER access_log_checkpoints_no_truncate;
