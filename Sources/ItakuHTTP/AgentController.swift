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
    /// `agents.assertedLookupsPerMinute`: an asserted integration's lookups per tenant and
    /// purpose, whatever agents it names.
    var assertedLookupsPerMinute = 600

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
        var call = try await begin(request, context, operation: .lookup)
        let body = try await admin.decode(LookupBody.self, from: request, context: context)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        call.access.lookupField = body.by
        call.ask(for: body.fields)
        // Only a tenant this integration serves is looked at before the decision: for any other,
        // "not yours" must answer exactly like "does not exist".
        let tenant = served(snapshot.tenant(code: call.access.tenantCode), call.access, snapshot)
        let schema = tenant.flatMap { snapshot.datasets[$0.id]?[call.access.dataset] }?.schema
        let kind = schema?.field(body.by)?.lookup
        var digest: [UInt8]?
        if let tenant, let kind {
            // The value is digested at once; only the digest is used and logged.
            if let normalized = LookupDigester.normalize(body.value, as: kind) {
                digest = digester(tenant.id).digest(normalized: normalized, kind: kind)
                call.entry.lookupKind = kind.rawValue
                call.entry.lookupDigest = digest
            } else {
                call.refuse(.badRequest(code: "invalid_lookup_value", "The value is not a valid \(kind.rawValue).", pointer: "value"))
            }
        }
        let decision = try await decide(&call, snapshot: snapshot)
        guard let tenant, let kind, let digest, let schema, let dataset = snapshot.datasets[tenant.id]?[call.access.dataset] else {
            throw Problem.internalError
        }
        // Found and, under a case, bound to it, in one round trip (migration 0007).
        let until = Date().addingTimeInterval(Double(caseBinding.components.seconds))
        let access = call.access
        let rows = try await admin.database.withConnection { connection in
            try await connection.query(.prepared(
                """
                SELECT * FROM itaku.agent_lookup(\(tenant.id), \(dataset.id), \(kind.rawValue), \(PostgresBytes(digest)),
                    \(decision.maxResults)::integer, \(access.agent), \(access.caseRef), \(until))
                """
            ))
        }
        return try await answer(
            rows, decision: decision, entry: call.entry, tenant: tenant, schema: schema, access: access, reservedRecords: call.reservedRecords
        )
    }

    // MARK: Read

    private func read(_ request: Request, _ context: ItakuRequestContext) async throws -> Response {
        var call = try await begin(request, context, operation: .read)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        call.ask(for: request.uri.queryParameters.get("fields").map {
            $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        })
        let recordID = context.parameters.get("record").flatMap(UUID.init(uuidString:))
        let tenant = served(snapshot.tenant(code: call.access.tenantCode), call.access, snapshot)
        call.access.caseBound = try await isBound(recordID, tenant: tenant, access: call.access)
        // The record asked for is in the entry, allowed or not (an id is not personal data).
        if let recordID { call.entry.recordIDs = [recordID] }
        let decision = try await decide(&call, snapshot: snapshot)
        call.entry.recordIDs = []
        guard let tenant, let recordID, let dataset = snapshot.datasets[tenant.id]?[call.access.dataset] else { throw Problem.internalError }
        let rows = try await admin.database.withConnection { connection in
            try await connection.query(.prepared("SELECT * FROM itaku.agent_read(\(tenant.id), \(dataset.id), \(recordID))"))
        }
        return try await answer(
            rows, decision: decision, entry: call.entry, tenant: tenant, schema: dataset.schema, access: call.access,
            reservedRecords: call.reservedRecords
        )
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
        var call = try await begin(request, context, operation: .update)
        let body = try await admin.decode(UpdateBody.self, from: request, context: context)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        let recordID = context.parameters.get("record").flatMap(UUID.init(uuidString:))
        let tenant = served(snapshot.tenant(code: call.access.tenantCode), call.access, snapshot)
        let dataset = tenant.flatMap { snapshot.datasets[$0.id]?[call.access.dataset] }
        let names = body.fields.keys.sorted()
        if names.isEmpty { call.refuse(.invalid([.init(code: "fields_required", pointer: "fields")])) }
        if !names.allSatisfy(DatasetSchema.isFieldName) || names.count > AccessCall.maxFields {
            call.refuse(.badRequest(code: "invalid_fields", "A field name is not valid.", pointer: "fields"))
        }
        // Values are checked against the schema (the value is never echoed); the answer comes
        // after the enforcer's own checks, as a logged decision.
        if let schema = dataset?.schema {
            let issues: [Problem.Issue] = names.compactMap { name in
                guard let field = schema.field(name), let value = body.fields[name], !value.isEmpty else { return nil }
                return RecordValidator.problem(value, field).map { Problem.Issue(code: $0, pointer: "fields.\(name)") }
            }
            if !issues.isEmpty {
                var problem = Problem.invalid(issues)
                problem.code = "invalid_value"
                call.refuse(problem)
            }
        }
        call.access.fields = []
        call.access.updating = names.filter(DatasetSchema.isFieldName)
        call.access.caseBound = try await isBound(recordID, tenant: tenant, access: call.access)
        if let recordID { call.entry.recordIDs = [recordID] }
        let decision = try await decide(&call, snapshot: snapshot)
        let access = call.access
        guard let tenant, let dataset, let recordID else { throw Problem.internalError }
        call.entry.purposeVersion = decision.purposeVersion
        let changes = body.fields
        let dataKeys = admin.dataKeys
        let accessLog = admin.accessLog
        let digester = self.digester(tenant.id)
        let prepared = call.entry
        let written: AccessEntry = try await admin.database.withConnection { connection in
            try await connection.begin()
            do {
                try await RegistryStore.setTenant(tenant.id, on: connection)
                let current = try await connection.query(
                    """
                    SELECT status, coalesce(expires_at < now(), false), external_id, fields FROM itaku.records
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
                    try await connection.begin()
                    entry.decision = .deny
                    entry.reason = row == nil ? "not_found" : status == "suspended" ? "subject_suspended" : "record_expired"
                    let denied = try await accessLog.commit(with: [entry], on: connection)[0]
                    throw Problem(row == nil ? .notFound : .forbidden, code: entry.reason, title: "Access denied",
                                  accessID: denied.id.uuidString.lowercased())
                }
                entry.fields = Dictionary(access.updating.map { ($0, "updated") }, uniquingKeysWith: { first, _ in first })
                guard let row else { throw Problem.internalError }
                let externalID: String = try row.decode(2)
                let before = try dataKeys.open(try row.decode(3, as: PostgresJSON.self).text, tenant: tenant.id, record: recordID.uuidString)
                try await RecordStore.write(
                    changes, to: recordID, in: dataset, before: before, sealer: try dataKeys.sealer(for: tenant.id), digester: digester,
                    on: connection
                )
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

    /// One agent call on its way to a decision: what the enforcer judges, the entry that will
    /// record it, and the first problem with the request's own input, answered (and logged)
    /// only if the enforcer's checks pass.
    struct AccessCall {
        static let maxFields = 200

        var access: AccessRequest
        var entry: AccessEntry
        var refusal: Problem?
        /// Records reserved for `records_per_hour`; what the answer does not carry is given back.
        var reservedRecords = 0

        mutating func refuse(_ problem: Problem) {
            if refusal == nil { refusal = problem }
        }

        /// The fields asked for, in the order asked. A name that could not be a field (an empty
        /// one too), a name asked twice, or more than 200 names refuse the request
        /// (`invalid_fields`, as the contract says); such names are not written anywhere.
        mutating func ask(for fields: [String]?) {
            guard let fields else { return }
            var seen: Set<String> = []
            var names: [String] = []
            for name in fields {
                guard DatasetSchema.isFieldName(name) else {
                    refuse(.badRequest(code: "invalid_fields", "A field name is not valid.", pointer: "fields"))
                    continue
                }
                if seen.insert(name).inserted {
                    names.append(name)
                } else {
                    refuse(.badRequest(code: "invalid_fields", "A field is named twice.", pointer: "fields"))
                }
            }
            if names.count > Self.maxFields {
                refuse(.badRequest(code: "invalid_fields", "Too many fields.", pointer: "fields"))
                names = []
            }
            access.fields = names
        }
    }

    /// Bound means: a lookup by this agent under this case returned this record, lately. A
    /// record that does not exist is simply not bound, so record ids cannot be probed.
    private func isBound(_ recordID: UUID?, tenant: Tenant?, access: AccessRequest) async throws -> Bool {
        guard let tenant, let recordID, let agent = access.agent, let caseRef = access.caseRef else { return false }
        let rows = try await admin.database.withConnection { connection in
            try await connection.query(.prepared("SELECT itaku.case_bound(\(tenant.id), \(agent), \(caseRef), \(recordID))"))
        }
        return try rows.first?.decode(0, as: Bool.self) == true
    }

    /// The caller must be an integration; the agent is established from a verified token, or,
    /// for an asserted integration only, from `Itaku-Agent-Id` (recorded as unverified).
    private func begin(
        _ request: Request, _ context: ItakuRequestContext, operation: AccessRequest.Operation
    ) async throws -> AccessCall {
        let principal = try admin.principal(context, [.integration])
        guard let integrationID = principal.integrationID else { throw Problem.forbidden }
        let snapshot = context.snapshot ?? RegistrySnapshot()
        var agent: String?
        var verified = false
        if let token = request.headers[.itakuAgent] {
            agent = await tokens.employeeID(from: token, integration: integrationID)
            verified = agent != nil
        } else if let named = request.headers[.itakuAgentID], AgentsController.isEmployeeID(named),
            snapshot.integrations[integrationID]?.trustMode == .asserted
        {
            agent = named
        }
        var call = AccessCall(
            access: AccessRequest(
                tenantCode: context.parameters.get("tenant") ?? "", dataset: context.parameters.get("dataset") ?? "",
                operation: operation, integrationID: integrationID, agent: agent, agentVerified: verified
            ),
            entry: AccessEntry(
                tenantID: nil, actorRole: principal.role.rawValue, actorKeyID: principal.keyID,
                operation: AccessEntry.Operation(rawValue: operation.rawValue) ?? .read, decision: .deny, reason: ""
            )
        )
        // Path names that could not name a dataset are not written anywhere: they answer as
        // an unknown dataset would.
        if !DatasetSchema.isFieldName(call.access.dataset) { call.access.dataset = "" }
        // A purpose key that is not printable text is simply not a purpose (purpose_unknown).
        if let purpose = request.headers[.itakuPurpose], PrintableText.isValid(purpose, maxBytes: 128) {
            call.access.purposeKey = purpose
        }
        // A case reference is stored as given, so it must match the tenant's pattern; any other
        // is refused (400 invalid_case) and not written.
        if let reference = request.headers[.itakuCase] {
            let pattern = snapshot.tenant(code: call.access.tenantCode)?.casePattern
            if CaseReference.isAcceptable(reference, pattern: pattern) {
                call.access.caseRef = reference
            } else {
                call.refuse(.badRequest(
                    code: "invalid_case", "The Itaku-Case header is not a case reference this tenant accepts.", pointer: "Itaku-Case"
                ))
            }
        }
        call.entry.integrationID = integrationID
        // Caller-chosen names reach the log only when they name something registered: an
        // unknown agent id or purpose key could be anything, a phone number included.
        call.entry.agent = agent.flatMap { snapshot.agent(employeeID: $0) == nil ? nil : $0 }
        call.entry.agentVerified = verified
        let tenantID = snapshot.tenant(code: call.access.tenantCode)?.id
        call.entry.purposeKey = call.access.purposeKey.flatMap { key in
            tenantID.flatMap { snapshot.purposes[$0]?[key] } == nil ? nil : key
        }
        call.entry.caseRef = call.access.caseRef
        call.entry.dataset = call.access.dataset.isEmpty ? nil : call.access.dataset
        call.entry.requestID = context.requestID
        call.entry.clientAddress = context.clientAddress
        return call
    }

    /// Decides, reserves the volume the purpose allows, and logs a denial (answering its
    /// problem) or returns the allowing decision. The enforcer's checks come first, in
    /// DESIGN.md §6 order; a request the enforcer allows but whose input is malformed is then
    /// denied with that input's code, logged like any other decision.
    private func decide(_ call: inout AccessCall, snapshot: RegistrySnapshot) async throws -> Decision {
        let now = Date()
        var decision = ScopeEnforcer.decide(call.access, snapshot: snapshot, now: now)
        var refusal: Problem?
        if decision.isAllowed, let problem = call.refusal {
            refusal = problem
        } else if decision.reason == .caseRequired, let problem = call.refusal, problem.code == "invalid_case" {
            // The tool did send a case, one the tenant does not accept: say so (400), at the
            // place of the case check.
            refusal = problem
        } else if decision.isAllowed, let tenantID = decision.tenantID, let purpose = call.access.purposeKey {
            // Usage is reserved atomically (every instance shares the counters), so concurrent
            // requests can never pass a limit together. A reservation that finds the limit
            // reached decides volume_exceeded through the enforcer itself.
            let limits = snapshot.purposes[tenantID]?[purpose]?.definition.limits
            let asserted = snapshot.integrations[call.access.integrationID]?.trustMode == .asserted
            // Records are reserved as many as the answer may carry; what it does not carry is
            // given back after it (answer(...)).
            let wanted = call.access.operation == .lookup ? decision.maxResults : 1
            if let usage = try await reserve(
                tenantID: tenantID, purpose: purpose, agent: call.access.agent, limits: limits,
                integration: asserted ? call.access.integrationID : nil, operation: call.access.operation, records: wanted
            ) {
                call.access.lookupsLastMinute = usage.lookupsLastMinute
                call.access.recordsLastHour = usage.recordsLastHour
                if usage.recordsReserved { call.reservedRecords = wanted }
                decision = ScopeEnforcer.decide(call.access, snapshot: snapshot, now: now)
                if usage.integrationExceeded && decision.isAllowed {
                    decision = ScopeEnforcer.volumeExceeded(decision, now: now, snapshot: snapshot)
                }
            }
        }
        call.entry.tenantID = decision.tenantID
        call.entry.purposeVersion = decision.purposeVersion
        call.entry.reason = refusal?.code ?? decision.reason.rawValue
        guard decision.isAllowed, refusal == nil else {
            call.entry.decision = .deny
            if !decision.deniedFields.isEmpty {
                call.entry.fields = Dictionary(decision.deniedFields.map { ($0, "denied") }, uniquingKeysWith: { first, _ in first })
            }
            let written = try await admin.accessLog.append(call.entry)
            var problem = refusal ?? Problem(
                HTTPResponse.Status(code: decision.reason.httpStatus), code: decision.reason.rawValue, title: "Access denied",
                detail: decision.deniedFields.isEmpty ? nil : "Not allowed under this purpose: " + decision.deniedFields.joined(separator: ", ")
            )
            problem.accessID = written.id.uuidString.lowercased()
            if let retryAfter = decision.retryAfter { problem.headers[.retryAfter] = String(max(1, retryAfter)) }
            throw problem
        }
        call.entry.decision = .allow
        return decision
    }

    struct Usage {
        var lookupsLastMinute = 0
        var recordsLastHour = 0
        var integrationExceeded = false
        var recordsReserved = false
    }

    /// Reserves this lookup in the usage counters, when the purpose has limits or the
    /// integration is asserted (capped as a whole, whatever agent it names). Nil: nothing to
    /// count. The counts say "limit reached" exactly when the reservation was refused.
    private func reserve(
        tenantID: UUID, purpose: String, agent: String?, limits: PurposeDefinition.Limits?, integration: UUID?,
        operation: AccessRequest.Operation, records: Int
    ) async throws -> Usage? {
        let perMinute = operation == .lookup ? limits?.lookupsPerMinute : nil
        let perHour = limits?.recordsPerHour
        let integrationLimit = operation == .lookup ? integration.map { _ in assertedLookupsPerMinute } : nil
        guard let agent, perMinute != nil || perHour != nil || integrationLimit != nil else { return nil }
        let who = "agent:" + agent
        let tool = integration.map { "integration:" + $0.uuidString.lowercased() }
        let rows = try await admin.database.withConnection { connection in
            try await connection.query(.prepared(
                """
                SELECT * FROM itaku.reserve_usage(\(tenantID), \(purpose), \(who), \(perMinute)::bigint, \(tool),
                    \(integrationLimit)::bigint, \(perHour)::bigint, \(Int32(clamping: records)))
                """
            ))
        }
        var usage = Usage()
        if let perMinute, try rows[0].decode(0, as: Bool.self) == false { usage.lookupsLastMinute = perMinute }
        if try rows[0].decode(1, as: Bool.self) == false { usage.integrationExceeded = true }
        if let perHour {
            if try rows[0].decode(2, as: Bool.self) { usage.recordsReserved = true } else { usage.recordsLastHour = perHour }
        }
        return usage
    }

    /// Adds `records` (negative: gives back) to the hour's counter, for `records_per_hour`.
    private func count(records: Int, tenantID: UUID, purpose: String, agent: String) async throws {
        try await admin.database.withConnection { connection in
            try await connection.query(.prepared(
                "SELECT itaku.count_records(\(tenantID), \(purpose), \("agent:" + agent), \(Int32(clamping: records)))"
            ))
        }
    }

    /// Withholds suspended and expired records, transforms the rest, and answers once the entry
    /// is durably committed. (A lookup bound its records to the case in the same round trip.)
    private func answer(
        _ rows: PostgresRows, decision: Decision, entry: AccessEntry, tenant: Tenant, schema: DatasetSchema, access: AccessRequest,
        reservedRecords: Int
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
            let values = try admin.dataKeys.open(try row.decode(2, as: PostgresJSON.self).text, tenant: tenant.id, record: id.uuidString)
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
        entry.fields = Dictionary(decision.fields.map { ($0.name, $0.transform.rawValue) }, uniquingKeysWith: { first, _ in first })
        entry.rowsReturned = records.count
        if !withheld.isEmpty { entry.target = "withheld:" + withheld.joined(separator: ",") }
        // Invariant 1: the data leaves only after its entry is durably committed.
        let written = try await admin.accessLog.append(entry)
        // Give back the records reserved but not carried. Bookkeeping only: the entry is
        // committed and the answer goes out even if this fails.
        if reservedRecords > records.count, let tenantID = decision.tenantID, let purpose = access.purposeKey, let agent = access.agent {
            try? await count(records: records.count - reservedRecords, tenantID: tenantID, purpose: purpose, agent: agent)
        }
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
