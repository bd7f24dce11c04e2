-- A checkpoint's signature covers its stream, sequence number, hash and time, not its
-- tenant_id column; the stream names the tenant (INSTANCE/BOOT/TENANT, or …/TENANT/txN; `global`
-- for entries without one). The runtime role, which writes checkpoints, could copy a valid one
-- under another tenant's id: that tenant's list of checkpoints then showed another tenant's
-- stream, and the relabelled tenant's own list lost it (its export checker would miss the
-- checkpoint that says how long its stream was). From now on the column must name the
-- stream's tenant. NOT VALID: rows written before are not rechecked (their streams, which the
-- verifier reads, are signed).
ALTER TABLE itaku.access_log_checkpoints ADD CONSTRAINT access_log_checkpoints_tenant_of_stream
    CHECK (stream ~ ('/' || coalesce(tenant_id::text, 'global') || '(/tx[0-9]+)?$')) NOT VALID;
