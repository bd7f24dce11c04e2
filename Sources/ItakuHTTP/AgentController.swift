import Foundation
import HTTPTypes
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuEnforcer
import ItakuPostgres
import ItakuRegistry
import NIOCore

extension HTTPField.Name {
    static let itakuPurpose = Self("Itaku-Purpose")!
    static let itakuCase = Self("Itaku-Case")!
    static let itakuAgent = Self("Itaku-Agent")!
    static let itakuAgentID = Self("Itaku-Agent-Id")!
}

/// The agent data API: an agent tool looks a caller up and reads the records its case found,
/// always under a purpose and a case. Every decision, allowed or denied, is one access entry,
/// and no personal data leaves before that entry is durably committed.
struct AgentController: Sendable {
    let admin: Admin
    let keyring: Keyring
    let tokens: AgentTokens
    var caseBinding: Duration = .seconds(30 * 60)

    struct LookupBody: Decodable {
        var by: String
        var value: String
        var fields: [String]?
    }

    struct Record: Encodable {
        var record_id: String
        var fields: [String: String]
    }

    struct Answer: Encodable {
        var access_id: String
        var records: [Record]
        var withheld: Int
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants/:tenant/datasets/:dataset/lookup", method: .post) { request, context in
            try await lookup(request, context)
        }
        routes.on("/v1/tenants/:tenant/datasets/:dataset/records/:record", method: .get) { request, context in
            try await read(request, context)
        }
        routes.on("/v1/tenants/:tenant/datasets/:dataset/records/:record", method: .patch) { request, context in
            try await update(request, context)
        }
    }

    // MARK: Lookup

    private func lookup(_ request: Request, _ context: ItakuRequestContext) async throws -> Response {
        var (access, entry) = try await begin(request, context, operation: .lookup)
        let body = try await admin.decode(LookupBody.self, from: request, context: context)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        access.lookupField = body.by
        access.fields = body.fields
        // Only a tenant this integration serves is looked at before the decision: for any other,
        // "not yours" must answer exactly like "does not exist".
        let tenant = served(snapshot.tenant(code: access.tenantCode), access, snapshot)
        let schema = tenant.flatMap { snapshot.datasets[$0.id]?[access.dataset] }?.schema
        let kind = schema?.field(body.by)?.lookup
        var digest: [UInt8]?
        if let tenant, let kind {
            // The value is digested at once; only the digest is used and logged.
            guard let normalized = LookupDigester.normalize(body.value, as: kind) else {
                throw Problem.badRequest(code: "invalid_lookup_value", "The value is not a valid \(kind.rawValue).", pointer: "value")
            }
            digest = digester(tenant.id).digest(normalized: normalized, kind: kind)
            entry.lookupKind = kind.rawValue
            entry.lookupDigest = digest
        }
        let decision = try await decide(access, entry: &entry, snapshot: snapshot)
        guard let tenant, let kind, let digest, let schema, let dataset = snapshot.datasets[tenant.id]?[access.dataset] else {
            throw Problem.internalError
        }
        // Found and, under a case, bound to it, in one round trip (migration 0007).
        let until = Date().addingTimeInterval(Double(caseBinding.components.seconds))
        let rows = try await admin.database.withConnection { connection in
            try await connection.query(
                """
                SELECT * FROM itaku.agent_lookup(\(tenant.id), \(dataset.id), \(kind.rawValue), \(PostgresBytes(digest)),
                    \(decision.maxResults)::integer, \(access.agent), \(access.caseRef), \(until))
                """
            )
        }
        return try await answer(rows, decision: decision, entry: entry, tenant: tenant, schema: schema, access: access)
    }

    // MARK: Read

    private func read(_ request: Request, _ context: ItakuRequestContext) async throws -> Response {
        var (access, entry) = try await begin(request, context, operation: .read)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        access.fields = request.uri.queryParameters.get("fields").map { $0.split(separator: ",").map(String.init) }
        let recordID = context.parameters.get("record").flatMap(UUID.init(uuidString:))
        let tenant = served(snapshot.tenant(code: access.tenantCode), access, snapshot)
        access.caseBound = try await isBound(recordID, tenant: tenant, access: access)
        // The record asked for is in the entry, allowed or not (an id is not personal data).
        if let recordID { entry.recordIDs = [recordID] }
        let decision = try await decide(access, entry: &entry, snapshot: snapshot)
        entry.recordIDs = []
        guard let tenant, let recordID, let dataset = snapshot.datasets[tenant.id]?[access.dataset] else { throw Problem.internalError }
        let rows = try await admin.database.withConnection { connection in
            try await connection.query("SELECT * FROM itaku.agent_read(\(tenant.id), \(dataset.id), \(recordID))")
        }
        return try await answer(rows, decision: decision, entry: entry, tenant: tenant, schema: dataset.schema, access: access)
    }

    // MARK: Update

    struct UpdateBody: Decodable {
        var fields: [String: String]
    }

    struct Updated: Encodable {
        var access_id: String
        var record_id: String
        var updated: [String]
    }

    private func update(_ request: Request, _ context: ItakuRequestContext) async throws -> Response {
        var (access, entry) = try await begin(request, context, operation: .update)
        let body = try await admin.decode(UpdateBody.self, from: request, context: context)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        let recordID = context.parameters.get("record").flatMap(UUID.init(uuidString:))
        let tenant = served(snapshot.tenant(code: access.tenantCode), access, snapshot)
        let dataset = tenant.flatMap { snapshot.datasets[$0.id]?[access.dataset] }
        guard !body.fields.isEmpty else { throw Problem.invalid([.init(code: "fields_required", pointer: "fields")]) }
        // Values are checked against the schema before anything is decided (the value is never echoed).
        if let schema = dataset?.schema {
            let issues: [Problem.Issue] = body.fields.keys.sorted().compactMap { name in
                guard let field = schema.field(name), let value = body.fields[name], !value.isEmpty else { return nil }
                return RecordValidator.problem(value, field).map { Problem.Issue(code: $0, pointer: "fields.\(name)") }
            }
            if !issues.isEmpty {
                var problem = Problem.invalid(issues)
                problem.code = "invalid_value"
                throw problem
            }
        }
        access.fields = []
        access.updating = body.fields.keys.sorted()
        access.caseBound = try await isBound(recordID, tenant: tenant, access: access)
        if let recordID { entry.recordIDs = [recordID] }
        let decision = try await decide(access, entry: &entry, snapshot: snapshot)
        guard let tenant, let dataset, let recordID else { throw Problem.internalError }
        entry.purposeVersion = decision.purposeVersion
        let patch = "{" + body.fields.sorted { $0.key < $1.key }.map { JSONText.string($0.key) + ":" + JSONText.string($0.value) }.joined(separator: ",") + "}"
        let accessLog = admin.accessLog
        let digester = self.digester(tenant.id)
        let prepared = entry
        let written: AccessEntry = try await admin.database.withConnection { connection in
            try await connection.query("BEGIN")
            do {
                try await RegistryStore.setTenant(tenant.id, on: connection)
                let current = try await connection.query(
                    """
                    SELECT status, coalesce(expires_at < now(), false) FROM itaku.records
                    WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id) AND record_id = \(recordID) FOR UPDATE
                    """
                )
                var entry = prepared
                let row = current.first
                let status: String? = try row?.decode(0)
                let expired = try row?.decode(1, as: Bool.self) ?? false
                if row == nil || status == "suspended" || expired {
                    // Withheld (or bound but not in this dataset): the denial is the entry,
                    // committed in place of the change.
                    try await connection.query("ROLLBACK")
                    try await connection.query("BEGIN")
                    entry.decision = .deny
                    entry.reason = row == nil ? "not_found" : status == "suspended" ? "subject_suspended" : "record_expired"
                    let denied = try await accessLog.commit(with: [entry], on: connection)[0]
                    throw Problem(row == nil ? .notFound : .forbidden, code: entry.reason, title: "Access denied",
                                  accessID: denied.id.uuidString.lowercased())
                }
                entry.fields = Dictionary(uniqueKeysWithValues: access.updating.map { ($0, "updated") })
                let updated = try await connection.query(
                    """
                    UPDATE itaku.records SET fields = fields || \(PostgresJSON(patch)), updated_at = now()
                    WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id) AND record_id = \(recordID)
                    RETURNING external_id, fields
                    """
                )
                let externalID: String = try updated[0].decode(0)
                let document = try updated[0].decode(1, as: PostgresJSON.self).text
                // When a lookup field changed, the lookup index follows: every key of the record
                // that its new values do not give is removed (whatever normalisation made it), and
                // theirs are added, in one statement.
                if access.updating.contains(where: { dataset.schema.field($0)?.lookup != nil }) {
                    let values = (try? JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: String]) ?? [:]
                    let keys = digester.lookupKeys(of: values, schema: dataset.schema)
                    let (kinds, digests) = (keys.map(\.kind), keys.map(\.digest))
                    try await connection.query(
                        """
                        WITH new AS (SELECT * FROM unnest(\(kinds)::text[], \(digests)::text[]) AS t(kind, digest)),
                        gone AS (
                            DELETE FROM itaku.lookup_keys
                            WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id) AND record_id = \(recordID)
                              AND (kind, encode(digest, 'hex')) NOT IN (SELECT kind, digest FROM new)
                        )
                        INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, kind, digest, record_id)
                        SELECT \(tenant.id), \(dataset.id), kind, decode(digest, 'hex'), \(recordID) FROM new
                        ON CONFLICT DO NOTHING
                        """
                    )
                }
                entry.subjectDigests = [digester.subjectDigest(externalID: externalID)]
                // The change and its entry commit together, or neither does.
                return try await accessLog.commit(with: [entry], on: connection)[0]
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
        return try admin.json(Updated(access_id: written.id.uuidString.lowercased(), record_id: recordID.uuidString.lowercased(), updated: access.updating))
    }

    // MARK: Shared steps

    /// Bound means: a lookup by this agent under this case returned this record, lately. A
    /// record that does not exist is simply not bound, so record ids cannot be probed.
    private func isBound(_ recordID: UUID?, tenant: Tenant?, access: AccessRequest) async throws -> Bool {
        guard let tenant, let recordID, let agent = access.agent, let caseRef = access.caseRef else { return false }
        let rows = try await admin.database.withConnection { connection in
            try await connection.query("SELECT itaku.case_bound(\(tenant.id), \(agent), \(caseRef), \(recordID))")
        }
        return try rows.first?.decode(0, as: Bool.self) == true
    }

    /// The caller must be an integration; the agent is established from a verified token, or,
    /// for an asserted integration only, from `Itaku-Agent-Id` (recorded as unverified).
    private func begin(
        _ request: Request, _ context: ItakuRequestContext, operation: AccessRequest.Operation
    ) async throws -> (AccessRequest, AccessEntry) {
        let principal = try admin.principal(context, [.integration])
        guard let integrationID = principal.integrationID else { throw Problem.forbidden }
        var agent: String?
        var verified = false
        if let token = request.headers[.itakuAgent] {
            agent = await tokens.employeeID(from: token)
            verified = agent != nil
        } else if let named = request.headers[.itakuAgentID], AgentsController.isEmployeeID(named),
            context.snapshot?.integrations[integrationID]?.trustMode == .asserted
        {
            agent = named
        }
        func header(_ name: HTTPField.Name) throws -> String? {
            guard let value = request.headers[name] else { return nil }
            guard (1...128).contains(value.utf8.count), value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F }) else {
                throw Problem.badRequest(code: "invalid_header", "The \(name.rawName) header is malformed.", pointer: name.rawName)
            }
            return value
        }
        var access = AccessRequest(
            tenantCode: context.parameters.get("tenant") ?? "", dataset: context.parameters.get("dataset") ?? "",
            operation: operation, integrationID: integrationID, agent: agent, agentVerified: verified
        )
        access.purposeKey = try header(.itakuPurpose)
        access.caseRef = try header(.itakuCase)
        var entry = AccessEntry(
            tenantID: nil, actorRole: principal.role.rawValue, actorKeyID: principal.keyID,
            operation: AccessEntry.Operation(rawValue: operation.rawValue) ?? .read, decision: .deny, reason: ""
        )
        entry.integrationID = integrationID
        entry.agent = agent
        entry.agentVerified = verified
        entry.purposeKey = access.purposeKey
        entry.caseRef = access.caseRef
        entry.dataset = access.dataset
        entry.requestID = context.requestID
        return (access, entry)
    }

    /// Counts recent use for the volume limits, decides, and logs a denial (answering its
    /// problem) or returns the allowing decision. Counting reads the shared access log, so the
    /// limits hold across instances.
    private func decide(_ access: AccessRequest, entry: inout AccessEntry, snapshot: RegistrySnapshot) async throws -> Decision {
        var access = access
        // Counted only when the purpose sets limits: with limits, the allowed entries of the
        // window are bounded by them; without, there is nothing to count.
        if let tenant = snapshot.tenant(code: access.tenantCode), let agent = access.agent, let purpose = access.purposeKey,
            let limits = snapshot.purposes[tenant.id]?[purpose]?.definition.limits,
            limits.lookupsPerMinute != nil || limits.recordsPerHour != nil
        {
            let usage = try await admin.database.withTransaction { connection in
                try await RegistryStore.setTenant(tenant.id, on: connection)
                return try await connection.query(
                    """
                    SELECT count(*) FILTER (WHERE operation = 'lookup' AND occurred_at > now() - interval '1 minute'),
                           coalesce(sum(rows_returned), 0)::bigint
                    FROM itaku.access_log
                    WHERE tenant_id = \(tenant.id) AND agent = \(agent) AND purpose_key = \(purpose)
                      AND decision = 'allow' AND occurred_at > now() - interval '1 hour'
                    """
                )
            }
            access.lookupsLastMinute = try usage[0].decode(0, as: Int.self)
            access.recordsLastHour = try usage[0].decode(1, as: Int.self)
        }
        let decision = ScopeEnforcer.decide(access, snapshot: snapshot, now: Date())
        entry.tenantID = decision.tenantID
        entry.purposeVersion = decision.purposeVersion
        entry.reason = decision.reason.rawValue
        guard decision.isAllowed else {
            entry.decision = .deny
            if !decision.deniedFields.isEmpty { entry.fields = Dictionary(uniqueKeysWithValues: decision.deniedFields.map { ($0, "denied") }) }
            let written = try await admin.accessLog.append(entry)
            var problem = Problem(
                HTTPResponse.Status(code: decision.reason.httpStatus), code: decision.reason.rawValue, title: "Access denied",
                detail: decision.deniedFields.isEmpty ? nil : "Not allowed under this purpose: " + decision.deniedFields.joined(separator: ", "),
                accessID: written.id.uuidString.lowercased()
            )
            if let retryAfter = decision.retryAfter { problem.headers[.retryAfter] = String(max(1, retryAfter)) }
            throw problem
        }
        entry.decision = .allow
        return decision
    }

    /// Withholds suspended and expired records, transforms the rest, and answers once the entry
    /// is durably committed. (A lookup bound its records to the case in the same round trip.)
    private func answer(
        _ rows: PostgresRows, decision: Decision, entry: AccessEntry, tenant: Tenant, schema: DatasetSchema, access: AccessRequest
    ) async throws -> Response {
        var entry = entry
        let transformer = FieldTransformer(key: keyring.digestKey(tenant: tenant.id.uuidString))
        var records: [Record] = []
        var withheld: [String] = []
        for row in rows {
            let id: UUID = try row.decode(0)
            let status: String = try row.decode(3)
            let expired = try row.decode(4, as: Bool?.self) == true
            if status == "suspended" || expired {
                withheld.append("\(id.uuidString.lowercased()):\(status == "suspended" ? "subject_suspended" : "record_expired")")
                continue
            }
            let document = try row.decode(2, as: PostgresJSON.self).text
            let values = (try? JSONSerialization.jsonObject(with: Data(document.utf8)) as? [String: String]) ?? [:]
            var fields: [String: String] = [:]
            for (name, transform) in decision.fields {
                guard let value = values[name], let field = schema.field(name),
                    let shown = transformer.apply(transform, to: value, field: field)
                else { continue }
                fields[name] = shown
            }
            records.append(Record(record_id: id.uuidString.lowercased(), fields: fields))
            entry.recordIDs.append(id)
            entry.subjectDigests.append(digester(tenant.id).subjectDigest(externalID: try row.decode(1)))
        }
        entry.fields = Dictionary(uniqueKeysWithValues: decision.fields.map { ($0.name, $0.transform.rawValue) })
        entry.rowsReturned = records.count
        if !withheld.isEmpty { entry.target = "withheld:" + withheld.joined(separator: ",") }
        // Invariant 1: the data leaves only after its entry is durably committed.
        let written = try await admin.accessLog.append(entry)
        if access.operation == .read && records.isEmpty && withheld.isEmpty {
            var problem = Problem.notFound
            problem.accessID = written.id.uuidString.lowercased()
            throw problem
        }
        return try admin.json(Answer(access_id: written.id.uuidString.lowercased(), records: records, withheld: withheld.count))
    }

    /// The tenant, if the calling integration serves it; otherwise nil, as for an unknown one.
    private func served(_ tenant: Tenant?, _ access: AccessRequest, _ snapshot: RegistrySnapshot) -> Tenant? {
        guard let tenant, snapshot.integrations[access.integrationID]?.tenantIDs.contains(tenant.id) == true else { return nil }
        return tenant
    }

    private func digester(_ tenantID: UUID) -> LookupDigester {
        LookupDigester(key: keyring.digestKey(tenant: tenantID.uuidString))
    }
}
