-- Case binding: a lookup under a case binds the records it returned to (agent, case) for a
-- while; reads and updates of a record must cite a case that looked it up. Agents cannot
-- browse by record id.
CREATE TABLE itaku.case_bindings (
    tenant_id  uuid NOT NULL,
    agent      text NOT NULL,
    case_ref   text NOT NULL,
    record_id  uuid NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, agent, case_ref, record_id)
);
ALTER TABLE itaku.case_bindings ENABLE ROW LEVEL SECURITY;
ALTER TABLE itaku.case_bindings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON itaku.case_bindings
    USING (tenant_id = (SELECT itaku.current_tenant()))
    WITH CHECK (tenant_id = (SELECT itaku.current_tenant()));
GRANT SELECT, INSERT, UPDATE, DELETE ON itaku.case_bindings TO itaku_runtime;
