import Foundation
import HTTPTypes
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Logging
import NIOCore

/// `/v1/tenants/{tenant}/subject-requests`: the client's instructions on a data subject's
/// requests (APPI Arts. 33-35), executed by Itaku with evidence. A request locates its subject
/// once, when it is received (by a lookup field's value or by record ids), and from then on
/// holds only record ids and keyed digests. Every transition is an access-log entry committed
/// with the change it records.
///
/// Also the disposal evidence of the tenant (`/disposals`), a retention run on instruction
/// (`/retention/run`) and the contract's end (`/contract-end`).
struct SubjectRequestsController: Sendable {
    let admin: Admin
    let keyring: Keyring
    let retention: RetentionService

    static let writers: Set<Role> = [.clientAdmin, .operator_]
    static let readers: Set<Role> = [.clientAdmin, .operator_, .reviewer]
    static let maxRecords = 100

    enum Kind: String, Codable, CaseIterable {
        case disclosure, correction, deletion, suspension, resumption
    }

    struct Subject: Codable {
        var by: String?
        var value: String?
        var record_ids: [String]?
    }

    struct CreateBody: Codable {
        var kind: String?
        var dataset: String?
        var subject: Subject?
        var due_date: String?
        var reference: String?
    }

    struct ExecuteBody: Codable {
        var fields: [String: String]?
    }

    struct RejectBody: Codable {
        var reason: String?
    }

    /// A request as the API shows it.
    struct RequestBody: Codable, Sendable {
        var id: String
        var kind: String
        var state: String
        var dataset: String
        var record_ids: [String]
        var subject_digests: [String]
        var reference: String?
        var due_date: String?
        var rejection: String?
        var disposal_id: String?
        var received_at: Date
        var decided_at: Date?
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants/:tenant/subject-requests", method: .post, context: RoleContext<OperatorsAndClientAdmins>.self) { request, context in try await create(request, context) }
        routes.on("/v1/tenants/:tenant/subject-requests", method: .get, context: RoleContext<AdministrativeRoles>.self) { _, context in
            let tenant = try admin.tenant(context)
            let requests = try await inTenant(tenant) { try await Self.load(tenant: tenant, id: nil, snapshot: context.snapshot, on: $0) }
            return try admin.json(["subject_requests": requests])
        }
        routes.on("/v1/tenants/:tenant/subject-requests/:request", method: .get, context: RoleContext<AdministrativeRoles>.self) { _, context in
            let tenant = try admin.tenant(context)
            return try admin.json(try await find(tenant, context))
        }
        routes.on("/v1/tenants/:tenant/subject-requests/:request/execute", method: .post, context: RoleContext<OperatorsAndClientAdmins>.self) { request, context in
            try await execute(request, context)
        }
        routes.on("/v1/tenants/:tenant/subject-requests/:request/reject", method: .post, context: RoleContext<OperatorsAndClientAdmins>.self) { request, context in
            try await reject(request, context)
        }
        routes.on("/v1/tenants/:tenant/subject-requests/:request/package", method: .get, context: RoleContext<ClientAdmins>.self) { request, context in
            try await package(request, context)
        }
        routes.on("/v1/tenants/:tenant/disposals", method: .get, context: RoleContext<AdministrativeRoles>.self) { _, context in
            let tenant = try admin.tenant(context)
            let rows = try await inTenant(tenant) { connection in
                try await connection.query(
                    """
                    SELECT disposal_id, created_at, kind, dataset, records FROM itaku.disposal_records
                    WHERE tenant_id = \(tenant.id) ORDER BY created_at DESC, disposal_id LIMIT 1000
                    """
                )
            }
            let listed = try rows.map {
                DisposalSummary(id: try $0.decode(0, as: UUID.self).lowercasedString, createdAt: try $0.decode(1), kind: try $0.decode(2),
                                dataset: try $0.decode(3), records: Int(try $0.decode(4, as: Int32.self)))
            }
            return try admin.json(["disposals": listed])
        }
        routes.on("/v1/tenants/:tenant/disposals/:disposal", method: .get, context: RoleContext<AdministrativeRoles>.self) { _, context in
            let tenant = try admin.tenant(context)
            guard let text = context.parameters.get("disposal"), let id = UUID(uuidString: text) else { throw Problem.notFound }
            let rows = try await inTenant(tenant) { connection in
                try await connection.query(
                    "SELECT document, key_id, signature FROM itaku.disposal_records WHERE tenant_id = \(tenant.id) AND disposal_id = \(id)"
                )
            }
            guard let row = rows.first else { throw Problem.notFound }
            let signed = SignedDisposal(
                document: try row.decode(0), keyID: try row.decode(1), signature: Data(try row.decode(2, as: PostgresBytes.self).bytes)
            )
            return try admin.json(signed, headers: [.contentDisposition: "attachment; filename=\"disposal-\(id.lowercasedString).json\""])
        }
        routes.on("/v1/tenants/:tenant/retention/run", method: .post, context: RoleContext<OperatorsAndClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            let principal = context.principal
            let documents = try await retention.run(
                tenant: tenant, actor: .init(role: principal.role.rawValue, keyID: principal.keyID), requestID: context.requestID,
                clientAddress: context.clientAddress
            )
            return try admin.json(["disposals": documents])
        }
        routes.on("/v1/tenants/:tenant/contract-end", method: .post, context: RoleContext<OperatorsAndClientAdmins>.self) { request, context in
            try await contractEnd(request, context)
        }
    }

    // MARK: Receiving

    private func create(_ request: Request, _ context: RoleContext<OperatorsAndClientAdmins>) async throws -> Response {
        let tenant = try admin.tenant(context)
        let principal = context.principal
        let body = try await admin.decode(CreateBody.self, from: request, context: context)
        var issues: [Problem.Issue] = []
        let kind = body.kind.flatMap(Kind.init(rawValue:))
        if kind == nil { issues.append(.init(code: "invalid_kind", pointer: "kind")) }
        let dataset = body.dataset.flatMap { context.snapshot?.datasets[tenant.id]?[$0] }
        if dataset == nil { issues.append(.init(code: "unknown_dataset", pointer: "dataset")) }
        if let due = body.due_date, PostgresDate(iso: due) == nil { issues.append(.init(code: "invalid_date", pointer: "due_date")) }
        if let reference = body.reference, !Self.isReference(reference) { issues.append(.init(code: "invalid_reference", pointer: "reference")) }
        // The subject: a lookup field and its value, or record ids; not both.
        var lookup: (field: String, kind: DatasetSchema.LookupKind, digest: [UInt8])?
        var ids: [UUID]?
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString))
        switch (body.subject?.by, body.subject?.value, body.subject?.record_ids) {
        case (let by?, let value?, nil):
            if let dataset {
                if let field = dataset.schema.field(by), let kind = field.lookup {
                    if let normalized = LookupDigester.normalize(value, for: field) {
                        lookup = (by, kind, digester.digest(normalized: normalized, kind: kind))
                    } else {
                        issues.append(.init(code: "invalid_lookup_value", pointer: "subject.value"))
                    }
                } else {
                    issues.append(.init(code: "invalid_lookup_key", pointer: "subject.by"))
                }
            }
        case (nil, nil, let texts?):
            let parsed = texts.compactMap(UUID.init(uuidString:))
            if texts.isEmpty || texts.count > Self.maxRecords || parsed.count != texts.count {
                issues.append(.init(code: "invalid_record_ids", pointer: "subject.record_ids"))
            } else {
                ids = Array(Set(parsed))
            }
        default:
            issues.append(.init(code: "invalid_subject", pointer: "subject"))
        }
        guard issues.isEmpty, let kind, let dataset else { throw Problem.invalid(issues) }

        let requestID = UUID()
        let entryTemplate = entry(principal, context, tenant: tenant, dataset: dataset, target: Self.target(requestID, kind, "received"))
        let created: RequestBody = try await transaction(tenant) { [lookup, ids] connection in
            let found: [(UUID, String)]
            if let lookup {
                found = try await RecordStore.locate(in: dataset, field: lookup.field, kind: lookup.kind, digest: lookup.digest, on: connection)
            } else {
                found = try await RecordStore.existing(ids ?? [], in: dataset, on: connection)
            }
            guard !found.isEmpty else {
                throw Problem(.unprocessableContent, code: "subject_not_found", title: "Subject not found",
                              detail: "No record of the dataset matches the subject.")
            }
            guard found.count <= Self.maxRecords else {
                throw Problem(.unprocessableContent, code: "subject_too_broad", title: "Subject too broad",
                              detail: "The subject matches more than \(Self.maxRecords) records; name them by record id.")
            }
            // A phone number or an e-mail address may be shared (a household, a company desk):
            // a value that finds more than one record does not say whose they are, and acting
            // on all of them would disclose, correct or delete other people's records.
            guard lookup == nil || found.count == 1 else {
                let key = dataset.schema.keyField
                let by = dataset.schema.field(key)?.lookup == nil ? "by record ids" : "by the dataset's key field (\(key)) or by record ids"
                throw Problem(.unprocessableContent, code: "subject_ambiguous", title: "Subject ambiguous",
                              detail: "The value matches \(found.count) records, which may be different people's; name the subject \(by).",
                              pointer: "subject")
            }
            let recordIDs = found.map(\.0), digests = found.map { digester.subjectDigest(externalID: $0.1) }
            try await connection.query(
                """
                INSERT INTO itaku.subject_requests (tenant_id, request_id, kind, dataset_id, record_ids, subject_digests, reference, due_date)
                VALUES (\(tenant.id), \(requestID), \(kind.rawValue), \(dataset.id), \(recordIDs.map { $0.lowercasedString })::uuid[],
                        \(digests), \(body.reference), \(body.due_date.flatMap(PostgresDate.init(iso:))))
                """
            )
            var entry = entryTemplate
            entry.recordIDs = recordIDs
            entry.subjectDigests = digests
            let loaded = try await Self.load(tenant: tenant, id: requestID, snapshot: context.snapshot, on: connection)
            return (loaded[0], [entry])
        }
        return try admin.json(created, status: .created, headers: [.location: "/v1/tenants/\(tenant.code)/subject-requests/\(created.id)"])
    }

    static let datasetChanged = Problem.conflict(
        code: "dataset_changed", "The dataset's schema changed while this correction was made; nothing was changed. Execute it again."
    )

    static func isReference(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.unicodeScalars.allSatisfy {
            CharacterSet.alphanumerics.contains($0) && $0.isASCII || "-_.:#/".unicodeScalars.contains($0)
        }
    }

    // MARK: Executing

    private func execute(_ request: Request, _ context: RoleContext<OperatorsAndClientAdmins>) async throws -> Response {
        let tenant = try admin.tenant(context)
        let principal = context.principal
        let pending = try await find(tenant, context)
        guard let kind = Kind(rawValue: pending.kind), let dataset = context.snapshot?.datasets[tenant.id]?[pending.dataset] else {
            throw Problem.internalError
        }
        // A correction names its changes; the other kinds take no body.
        var changes: [String: String] = [:]
        if kind == .correction {
            let body = try await admin.decode(ExecuteBody.self, from: request, context: context)
            changes = body.fields ?? [:]
            var issues: [Problem.Issue] = []
            if changes.isEmpty { issues.append(.init(code: "fields_required", pointer: "fields")) }
            for (name, value) in changes.sorted(by: { $0.key < $1.key }) {
                guard let field = dataset.schema.field(name) else {
                    // A field an earlier schema had, which the records may still hold, is removed
                    // by an empty value (its removal logged as the others are); nothing else. A
                    // name no record holds is refused in the transaction (a misspelt field).
                    if !(value.isEmpty && DatasetSchema.isFieldName(name)) {
                        issues.append(.init(code: "unknown_field", pointer: "fields.\(name)"))
                    }
                    continue
                }
                if name == dataset.schema.keyField {
                    issues.append(.init(code: "key_field_immutable", pointer: "fields.\(name)"))
                } else if value.isEmpty {
                    // An empty value removes an optional field; a required one must keep a value.
                    if field.required == true { issues.append(.init(code: "required", pointer: "fields.\(name)")) }
                } else if let code = RecordValidator.problem(value, field) {
                    issues.append(.init(code: code, pointer: "fields.\(name)"))
                }
            }
            guard issues.isEmpty else { throw Problem.invalid(issues) }
        }
        guard let requestID = UUID(uuidString: pending.id) else { throw Problem.internalError }
        let recordIDs = pending.record_ids.compactMap(UUID.init(uuidString:))
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString))
        let disposer = Disposer(keyring: keyring)
        let dataKeys = admin.dataKeys
        let actor = Disposer.Actor(role: principal.role.rawValue, keyID: principal.keyID)
        let template = entry(principal, context, tenant: tenant, dataset: dataset, target: Self.target(requestID, kind, "executed"))
        let executed: RequestBody = try await transaction(tenant) { [changes] connection in
            try await Self.lockPending(tenant: tenant, id: requestID, on: connection)
            var entries: [AccessEntry] = []
            var disposalID: UUID?
            switch kind {
            case .disclosure:
                var entry = template
                entry.recordIDs = recordIDs
                entry.subjectDigests = pending.subject_digests
                entries.append(entry)
            case .suspension, .resumption:
                try await connection.query(
                    """
                    UPDATE itaku.records SET status = \(kind == .suspension ? "suspended" : "active"), updated_at = now()
                    WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id)
                      AND record_id = ANY (\(recordIDs.map { $0.lowercasedString })::uuid[])
                    """
                )
                var entry = template
                entry.recordIDs = recordIDs
                entry.subjectDigests = pending.subject_digests
                entries.append(entry)
            case .deletion:
                guard let disposed = try await disposer.dispose(
                    .records(recordIDs), tenant: tenant, dataset: dataset, kind: .deletion, by: actor, subjectRequest: requestID,
                    evenIfEmpty: true, on: connection
                ) else { throw Problem.internalError }
                disposalID = UUID(uuidString: disposed.document.disposal_id)
                var entry = template
                entry.recordIDs = recordIDs
                entry.subjectDigests = pending.subject_digests
                var disposal = disposed.entry
                disposal.requestID = context.requestID
                disposal.clientAddress = context.clientAddress
                entries += [entry, disposal]
            case .correction:
                // The values were checked, and the lookup keys are made, under the schema this
                // request read: if a `PUT` changed it since, nothing is changed (and no schema
                // change commits until this one does).
                guard try await RegistryStore.lockDataset(tenantID: tenant.id, datasetID: dataset.id, on: connection) == dataset.version else {
                    throw Self.datasetChanged
                }
                // Fields the schema lacks (to remove, from an earlier schema): each must be held
                // by a record of the request, or it is a misspelt name, refused (and rolled back).
                let dropped = Set(changes.keys.filter { dataset.schema.field($0) == nil })
                var held: Set<String> = []
                // One entry a record, naming each changed field with the digests of its value
                // before and after: the change is evidenced, the values stay out of the log.
                // Records are locked in record id order, as agents' shared updates lock them,
                // so that the two cannot deadlock.
                for recordID in recordIDs.sorted(by: { $0.uuidString < $1.uuidString }) {
                    let rows = try await connection.query(
                        """
                        SELECT external_id, fields FROM itaku.records
                        WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id) AND record_id = \(recordID) FOR UPDATE
                        """
                    )
                    guard let row = rows.first else { continue }
                    let externalID: String = try row.decode(0)
                    let before = try dataKeys.open(try row.decode(1, as: PostgresJSON.self).text, tenant: tenant.id, record: recordID.uuidString)
                    // This record's changes: a dropped field only where the record holds it.
                    let applied = changes.filter { !dropped.contains($0.key) || before[$0.key] != nil }
                    held.formUnion(dropped.filter { before[$0] != nil })
                    guard !applied.isEmpty else { continue }
                    try await RecordStore.write(
                        applied, to: recordID, in: dataset, before: before, sealer: try dataKeys.sealer(for: tenant.id), digester: digester,
                        on: connection
                    )
                    var entry = template
                    entry.recordIDs = [recordID]
                    entry.subjectDigests = [digester.subjectDigest(externalID: externalID)]
                    entry.fields = Dictionary(uniqueKeysWithValues: applied.keys.map { name in
                        (name, "\(before[name].map { digester.valueDigest(field: name, value: $0) } ?? "absent")->"
                            + (changes[name].flatMap { $0.isEmpty ? nil : digester.valueDigest(field: name, value: $0) } ?? "absent"))
                    })
                    entries.append(entry)
                }
                let misspelt = dropped.subtracting(held).sorted()
                guard misspelt.isEmpty else {
                    throw Problem.invalid(misspelt.map { .init(code: "unknown_field", pointer: "fields.\($0)") })
                }
                if entries.isEmpty {
                    var entry = template
                    entry.subjectDigests = pending.subject_digests
                    entries.append(entry)
                }
            }
            try await connection.query(
                """
                UPDATE itaku.subject_requests SET state = 'executed', decided_at = now(), disposal_id = \(disposalID)
                WHERE tenant_id = \(tenant.id) AND request_id = \(requestID)
                """
            )
            let loaded = try await Self.load(tenant: tenant, id: requestID, snapshot: context.snapshot, on: connection)
            return (loaded[0], entries)
        }
        return try admin.json(executed)
    }

    private func reject(_ request: Request, _ context: RoleContext<OperatorsAndClientAdmins>) async throws -> Response {
        let tenant = try admin.tenant(context)
        let principal = context.principal
        let pending = try await find(tenant, context)
        let body = try await admin.decode(RejectBody.self, from: request, context: context)
        let reason = body.reason ?? ""
        guard PrintableText.isValid(reason, maxBytes: 500) else {
            throw Problem.invalid([.init(code: "invalid_reason", pointer: "reason")])
        }
        guard let requestID = UUID(uuidString: pending.id), let kind = Kind(rawValue: pending.kind),
              let dataset = context.snapshot?.datasets[tenant.id]?[pending.dataset] else { throw Problem.internalError }
        var entry = entry(principal, context, tenant: tenant, dataset: dataset, target: Self.target(requestID, kind, "rejected"))
        entry.recordIDs = pending.record_ids.compactMap(UUID.init(uuidString:))
        entry.subjectDigests = pending.subject_digests
        let rejected: RequestBody = try await transaction(tenant) { [entry] connection in
            try await Self.lockPending(tenant: tenant, id: requestID, on: connection)
            try await connection.query(
                """
                UPDATE itaku.subject_requests SET state = 'rejected', decided_at = now(), rejection = \(reason)
                WHERE tenant_id = \(tenant.id) AND request_id = \(requestID)
                """
            )
            return (try await Self.load(tenant: tenant, id: requestID, snapshot: context.snapshot, on: connection)[0], [entry])
        }
        return try admin.json(rejected)
    }

    // MARK: Disclosure

    /// The disclosure package: the subject's records with their fields as stored, and every
    /// access to them (lookups, reads, updates) found by the subject's digests in the log.
    private func package(_ request: Request, _ context: RoleContext<ClientAdmins>) async throws -> Response {
        // The package holds record values: only the client's own admin takes it (a BPO operator
        // may execute the request on the client's instruction, but never sees the data).
        let tenant = try admin.tenant(context)
        let principal = context.principal
        let pending = try await find(tenant, context)
        guard pending.kind == Kind.disclosure.rawValue else {
            throw Problem.conflict(code: "not_a_disclosure", "Only a disclosure request has a package.")
        }
        guard pending.state == "executed" else {
            throw Problem.conflict(code: "request_not_executed", "The package exists once the request is executed.")
        }
        let parameters = request.uri.queryParameters
        let format = parameters.get("format") ?? "json"
        let part = parameters.get("part") ?? "history"
        guard ["json", "csv"].contains(format) else {
            throw Problem.badRequest(code: "invalid_parameter", "format is json or csv.", pointer: "format")
        }
        guard ["history", "fields"].contains(part) else {
            throw Problem.badRequest(code: "invalid_parameter", "part is history or fields.", pointer: "part")
        }
        guard let requestID = UUID(uuidString: pending.id), let dataset = context.snapshot?.datasets[tenant.id]?[pending.dataset] else {
            throw Problem.internalError
        }
        let recordIDs = pending.record_ids.compactMap(UUID.init(uuidString:))
        let dataKeys = admin.dataKeys
        var template = entry(principal, context, tenant: tenant, dataset: dataset, target: Self.target(requestID, .disclosure, "package"))
        template.recordIDs = recordIDs
        template.subjectDigests = pending.subject_digests
        let (records, history): ([PackageRecord], [AccessEntry]) = try await transaction(tenant) { [template] connection in
            let rows = try await connection.query(
                """
                SELECT record_id, external_id, fields, status FROM itaku.records
                WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id)
                  AND record_id = ANY (\(recordIDs.map { $0.lowercasedString })::uuid[])
                ORDER BY external_id
                """
            )
            let records = try rows.map { row in
                let id: UUID = try row.decode(0)
                return PackageRecord(
                    record_id: id.lowercasedString, external_id: try row.decode(1),
                    fields: try dataKeys.open(try row.decode(2, as: PostgresJSON.self).text, tenant: tenant.id, record: id.uuidString),
                    status: try row.decode(3)
                )
            }
            // The agents' accesses to the subject, oldest first (the column list is program text).
            // Of this dataset only: a subject digest is of the record's key, and another dataset
            // may use the same key for someone else (ticket 1001 is not customer 1001).
            var binds = PostgresBindings()
            binds.append(tenant.id)
            binds.append(pending.subject_digests)
            binds.append(dataset.name)
            let history = try await connection.query(PostgresQuery(
                unsafeSQL: """
                    SELECT \(AccessLogStore.columns) FROM itaku.access_log
                    WHERE tenant_id = $1 AND subject_digests && $2::text[] AND dataset = $3 AND operation IN ('lookup', 'read', 'update')
                    ORDER BY occurred_at, entry_id LIMIT 100000
                    """,
                binds: binds
            )).map(AccessLogStore.entry)
            var entry = template
            entry.rowsReturned = records.count
            return ((records, history), [entry])
        }
        let name = "disclosure-\(pending.id)"
        if format == "csv" {
            var csv: String
            if part == "fields" {
                csv = "record_id,external_id,field,value\n"
                for record in records {
                    for (field, value) in record.fields.sorted(by: { $0.key < $1.key }) {
                        csv += [record.record_id, record.external_id, field, value].map(AccessEntry.csvCell).joined(separator: ",") + "\n"
                    }
                }
            } else {
                csv = "entry_id,occurred_at,operation,decision,reason,agent,purpose,purpose_version,case,fields,record_ids\n"
                for entry in history {
                    let item = HistoryItem(entry)
                    csv += [item.entry_id, Self.iso(item.occurred_at), item.operation, item.decision, item.reason, item.agent,
                            item.purpose, item.purpose_version.map(String.init), item.case, item.fields.joined(separator: " "),
                            item.record_ids.joined(separator: " ")].map { AccessEntry.csvCell($0 ?? "") }.joined(separator: ",") + "\n"
                }
            }
            return Response(status: .ok, headers: [
                .contentType: "text/csv; charset=utf-8", .contentDisposition: "attachment; filename=\"\(name)-\(part).csv\"",
            ], body: .init(byteBuffer: ByteBuffer(string: csv)))
        }
        struct Package: Encodable {
            var request: RequestBody
            var generated_at: Date
            var records: [PackageRecord]
            var access_history: [HistoryItem]
        }
        return try admin.json(
            Package(request: pending, generated_at: Date(), records: records, access_history: history.map(HistoryItem.init)),
            headers: [.contentDisposition: "attachment; filename=\"\(name).json\""]
        )
    }

    struct PackageRecord: Encodable, Sendable {
        var record_id: String
        var external_id: String
        var fields: [String: String]
        var status: String
    }

    /// One access to the subject, as the package shows it: who, when, under which purpose,
    /// which fields.
    struct HistoryItem: Encodable, Sendable {
        var entry_id: String
        var occurred_at: Date
        var operation: String
        var decision: String
        var reason: String
        var agent: String?
        var purpose: String?
        var purpose_version: Int?
        var `case`: String?
        var fields: [String]
        var record_ids: [String]

        init(_ entry: AccessEntry) {
            entry_id = entry.id.lowercasedString
            occurred_at = entry.occurredAt
            operation = entry.operation.rawValue
            decision = entry.decision.rawValue
            reason = entry.reason
            agent = entry.agent
            purpose = entry.purposeKey
            purpose_version = entry.purposeVersion
            self.case = entry.caseRef
            fields = (entry.fields ?? [:]).keys.sorted()
            record_ids = entry.recordIDs.map { $0.lowercasedString }
        }
    }

    static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }

    // MARK: The contract's end

    private func contractEnd(_ request: Request, _ context: RoleContext<OperatorsAndClientAdmins>) async throws -> Response {
        let tenant = try admin.tenant(context)
        let principal = context.principal
        struct Body: Codable { var confirm: String? }
        let body = try await admin.decode(Body.self, from: request, context: context)
        guard body.confirm == tenant.code else {
            throw Problem.invalid([.init(code: "confirmation_required", pointer: "confirm")])
        }
        let disposer = Disposer(keyring: keyring)
        let dataKeys = admin.dataKeys
        let actor = Disposer.Actor(role: principal.role.rawValue, keyID: principal.keyID)
        let requestID = context.requestID, clientAddress = context.clientAddress
        let disposals: [DisposalSummary] = try await transaction(tenant) { connection in
            var disposals: [DisposalSummary] = []
            var entries: [AccessEntry] = []
            // The tenant's row, exclusively: imports and dataset changes in flight finish first,
            // later ones see the tenant ended. The datasets are then those the database has,
            // not those this instance's registry knew of.
            // Once is the contract's end: again would sign new certificates for nothing.
            guard try await RegistryStore.lockTenant(tenant.id, exclusive: true, on: connection) != "ended" else {
                throw Problem.conflict(code: "tenant_ended", "The tenant's contract has already ended; its disposal records are at /v1/tenants/\(tenant.code)/disposals.")
            }
            let datasets = try await RegistryStore.datasets(tenantID: tenant.id, on: connection)
            // One instruction, one transaction; a disposal record per 5,000 records, so no
            // signed document grows without bound (each dataset gets one, even when empty).
            for dataset in datasets {
                var first = true
                while var disposed = try await disposer.dispose(
                    .any(limit: RetentionService.batchSize), tenant: tenant, dataset: dataset, kind: .contractEnd, by: actor,
                    evenIfEmpty: first, on: connection
                ) {
                    first = false
                    disposed.entry.requestID = requestID
                    disposed.entry.clientAddress = clientAddress
                    disposals.append(disposed.summary)
                    entries.append(disposed.entry)
                    if disposed.document.records < RetentionService.batchSize { break }
                }
            }
            // Crypto-shredding: with the tenant's data key gone, no copy of its records (a
            // backup, a replica's old pages) can be opened again. Destroyed before the commit:
            // should the commit fail, the records are kept but sealed for good, which is what the
            // instruction asked for.
            try dataKeys.destroy(tenant: tenant.id)
            // The tenant is ended: agents are refused (purpose_inactive) and imports too, so no
            // new key and no new records appear after the instruction.
            try await connection.query("UPDATE itaku.tenants SET status = 'ended', updated_at = now() WHERE tenant_id = \(tenant.id)")
            // The end itself is an entry too (a tenant without datasets has no disposal entry).
            var ended = AccessEntry(
                tenantID: tenant.id, actorRole: principal.role.rawValue, actorKeyID: principal.keyID, operation: .configure,
                decision: .allow, reason: "allowed"
            )
            ended.target = "tenant:\(tenant.code):ended"
            ended.requestID = requestID
            ended.clientAddress = clientAddress
            entries.append(ended)
            try await RegistryStore.announceChange("tenant:\(tenant.code):ended", on: connection)
            return (disposals, entries)
        }
        // Committed (and the key destroyed): answered as done whatever the refresh does.
        do {
            try await admin.registry.reload()
        } catch {
            admin.registry.reloadSoon()
            context.logger.warning("registry reload after the contract's end failed; retrying", metadata: ["itaku.error": "\(error)"])
        }
        return try admin.json(["disposals": disposals])
    }

    // MARK: Shared steps

    private func find(_ tenant: Tenant, _ context: some ActingContext) async throws -> RequestBody {
        guard let text = context.parameters.get("request"), let id = UUID(uuidString: text) else { throw Problem.notFound }
        let found = try await inTenant(tenant) { try await Self.load(tenant: tenant, id: id, snapshot: context.snapshot, on: $0) }
        guard let request = found.first else { throw Problem.notFound }
        return request
    }

    private static func lockPending(tenant: Tenant, id: UUID, on connection: PostgresConnection) async throws {
        let rows = try await connection.query(
            "SELECT state FROM itaku.subject_requests WHERE tenant_id = \(tenant.id) AND request_id = \(id) FOR UPDATE"
        )
        guard let state: String = try rows.first?.decode(0) else { throw Problem.notFound }
        guard state == "received" else {
            throw Problem.conflict(code: "request_not_pending", "The request was \(state) already.")
        }
    }

    static func load(tenant: Tenant, id: UUID?, snapshot: RegistrySnapshot?, on connection: PostgresConnection) async throws -> [RequestBody] {
        let rows = try await connection.query(
            """
            SELECT request_id, kind, state, dataset_id, record_ids::text[], subject_digests, reference, due_date, rejection,
                   disposal_id, received_at, decided_at
            FROM itaku.subject_requests
            WHERE tenant_id = \(tenant.id) AND (\(id)::uuid IS NULL OR request_id = \(id))
            ORDER BY received_at DESC, request_id LIMIT 1000
            """
        )
        let names = Dictionary((snapshot?.datasets[tenant.id] ?? [:]).values.map { ($0.id, $0.name) }, uniquingKeysWith: { first, _ in first })
        return try rows.map { row in
            RequestBody(
                id: try row.decode(0, as: UUID.self).lowercasedString, kind: try row.decode(1), state: try row.decode(2),
                dataset: names[try row.decode(3, as: UUID.self)] ?? "", record_ids: try row.decode(4, as: [String].self),
                subject_digests: try row.decode(5, as: [String].self), reference: try row.decode(6),
                due_date: try row.decode(7, as: PostgresDate?.self)?.description, rejection: try row.decode(8),
                disposal_id: try row.decode(9, as: UUID?.self)?.lowercasedString, received_at: try row.decode(10),
                decided_at: try row.decode(11)
            )
        }
    }

    private static func target(_ id: UUID, _ kind: Kind, _ step: String) -> String {
        "subject-request:\(id.lowercasedString):\(kind.rawValue):\(step)"
    }

    private func entry(_ principal: Principal, _ context: some ActingContext, tenant: Tenant, dataset: Dataset, target: String) -> AccessEntry {
        var entry = AccessEntry(
            tenantID: tenant.id, actorRole: principal.role.rawValue, actorKeyID: principal.keyID,
            operation: .subjectRequest, decision: .allow, reason: "allowed"
        )
        entry.dataset = dataset.name
        entry.target = target
        entry.requestID = context.requestID
        entry.clientAddress = context.clientAddress
        return entry
    }

    /// A read in the tenant's context (row-level security), nothing written.
    private func inTenant<T: Sendable>(_ tenant: Tenant, _ body: @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await admin.database.withTransaction { connection in
            try await RegistryStore.setTenant(tenant.id, on: connection)
            return try await body(connection)
        }
    }

    /// A change in the tenant's context that commits together with its access entries.
    private func transaction<T: Sendable>(
        _ tenant: Tenant, _ body: @Sendable (PostgresConnection) async throws -> (T, [AccessEntry])
    ) async throws -> T {
        try await recordedTransaction(database: admin.database, accessLog: admin.accessLog, tenant: tenant.id, body)
    }
}
