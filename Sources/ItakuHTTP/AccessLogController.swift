import Crypto
import Foundation
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuData
import NIOCore
import ItakuPostgres
import ItakuRegistry

/// `/v1/access-log/verify` and `/v1/access-log/checkpoints`: the security team verifies the
/// chains and fetches the signed checkpoints with the public key that checks them. Every such
/// read is itself an access entry (operation `review`).
struct AccessLogController: Sendable {
    let admin: Admin
    let keyring: Keyring
    /// The verification running now, if any (`POST /v1/access-log/verify`).
    let verifying = Gate(limit: 1)

    struct CheckpointBody: Encodable {
        var stream: String
        var tenant: String?
        var seq: Int64
        var hash: String
        /// To the microsecond, as signed (the message carries the microseconds).
        var created_at: String
        var key_id: String
        var signature: String
    }

    struct Checkpoints: Encodable {
        var key_id: String
        /// Base64 of the raw Ed25519 public key.
        var public_key: String
        var checkpoints: [CheckpointBody]
        var next_cursor: String?
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/access-log/checkpoints", method: .get, context: RoleContext<ClientAdminsAndReviewers>.self) { request, context in
            // Reviewers page every stream's checkpoints; a client admin those of its own tenant
            // (under row-level security), so the client can verify its export without asking the
            // BPO. Reading checkpoints writes nothing: they hold no personal data.
            let principal = context.principal
            let snapshot = context.snapshot ?? RegistrySnapshot()
            let (limit, cursor) = try Self.page(Self.parameters(request))
            let (checkpoints, next): ([Checkpoint], AccessLogQuery.Cursor?)
            if principal.role == .reviewer {
                (checkpoints, next) = try await admin.reader.withTransaction {
                    try await AccessLogStore.checkpoints(after: cursor, limit: limit, on: $0)
                }
            } else {
                guard let tenantID = principal.tenantID else { throw Problem.forbidden }
                (checkpoints, next) = try await admin.database.withTransaction { connection in
                    try await RegistryStore.setTenant(tenantID, on: connection)
                    return try await AccessLogStore.checkpoints(after: cursor, limit: limit, on: connection)
                }
            }
            return try admin.json(Checkpoints(
                key_id: keyring.checkpointKeyID,
                public_key: keyring.checkpointSigningKey.publicKey.rawRepresentation.base64EncodedString(),
                checkpoints: checkpoints.map {
                    CheckpointBody(
                        stream: $0.stream, tenant: $0.tenantID.flatMap { snapshot.tenants[$0]?.code }, seq: $0.seq,
                        hash: Hex.encode($0.hash), created_at: Timestamp.iso8601($0.createdAt), key_id: $0.keyID,
                        signature: Data($0.signature).base64EncodedString()
                    )
                },
                next_cursor: next?.token
            ))
        }
        routes.on("/v1/access-log/verify", method: .post, context: RoleContext<Reviewers>.self) { _, context in
            try admin.json(try await verify(context))
        }
        addSearchRoutes(to: &routes)
    }

    /// Verifies every chain and checkpoint for a reviewer, and records that it did.
    func verify(_ context: RoleContext<Reviewers>) async throws -> AccessLogVerifier.Report {
        let principal = context.principal
        // One walk of the whole log at a time: each holds a reader connection for up to
        // `verifyTimeLimit`, and a second started now would answer the same.
        guard verifying.enter() else { throw Self.verifyBusy }
        defer { verifying.leave() }
        // Bounded in time: a log too long to walk now answers with what was checked
        // (`complete: false`); `itaku verify-log` has no bound.
        let verifier = AccessLogVerifier(publicKey: keyring.checkpointSigningKey.publicKey, timeLimit: Self.verifyTimeLimit)
        let report = try await verifier.verify(admin.reader)
        try await review(principal, context, target: "access-log:verify", rows: report.entries)
        return report
    }

    // MARK: Search and export

    func addSearchRoutes(to routes: inout RouteTable) {
        routes.on("/v1/access-log", method: .get, context: RoleContext<Reviewers>.self) { request, context in
            try await searchResponse(Self.parameters(request), context, scoped: false)
        }
        routes.on("/v1/tenants/:tenant/access-log", method: .get, context: RoleContext<ClientAdminsAndReviewers>.self) { request, context in
            try await searchResponse(Self.parameters(request), context, scoped: true)
        }
        routes.on("/v1/access-log/export", method: .get, context: RoleContext<Reviewers>.self) { request, context in
            try await export(Self.parameters(request), context, scoped: false)
        }
        routes.on("/v1/tenants/:tenant/access-log/export", method: .get, context: RoleContext<ClientAdminsAndReviewers>.self) { request, context in
            try await export(Self.parameters(request), context, scoped: true)
        }
    }

    /// The query's parameters, the first of each name (as Hummingbird's `get` reads them).
    static func parameters(_ request: Request) -> [String: String] {
        var parameters: [String: String] = [:]
        for (name, value) in request.uri.queryParameters where parameters[String(name)] == nil {
            parameters[String(name)] = String(value)
        }
        return parameters
    }

    struct Page: Encodable {
        var next_cursor: String?
        var count: Int
    }

    static let maxPageSize = 1000
    static let verifyTimeLimit: Duration = .seconds(60)

    static let verifyBusy = Problem(
        .serviceUnavailable, code: "verify_busy", title: "Verification in progress",
        detail: "This instance is verifying the access log now; ask again when it has answered.", headers: [.retryAfter: "10"]
    )

    /// A page's `limit` (1 to 1,000, default 100) and `cursor` (one this API handed out).
    static func page(_ parameters: [String: String]) throws -> (limit: Int, cursor: AccessLogQuery.Cursor?) {
        let limit = try parameters["limit"].map { value -> Int in
            guard let limit = Int(value), (1...maxPageSize).contains(limit) else { throw badParameter("limit") }
            return limit
        } ?? 100
        let cursor = try parameters["cursor"].map { token -> AccessLogQuery.Cursor in
            guard let cursor = AccessLogQuery.Cursor(token: token) else {
                throw Problem.badRequest(code: "invalid_cursor", "The cursor is not one this API returned.", pointer: "cursor")
            }
            return cursor
        }
        return (limit, cursor)
    }

    /// One page of the selected entries, the search itself recorded as a `review` entry.
    func search<Allowed>(
        _ parameters: [String: String], _ context: RoleContext<Allowed>, scoped: Bool, target: String = "access-log:search"
    ) async throws -> (entries: [AccessEntry], next: AccessLogQuery.Cursor?) {
        let (principal, tenant, query) = try selection(parameters, context, scoped: scoped)
        let (limit, cursor) = try Self.page(parameters)
        let (entries, next) = try await pool(for: tenant).withTransaction { connection in
            try await Self.scope(connection, tenant: tenant)
            return try await query.page(after: cursor, limit: limit, on: connection)
        }
        try await review(principal, context, target: target, rows: entries.count, tenantID: tenant?.id)
        return (entries, next)
    }

    private func searchResponse<Allowed>(_ parameters: [String: String], _ context: RoleContext<Allowed>, scoped: Bool) async throws -> Response {
        let (entries, next) = try await search(parameters, context, scoped: scoped)
        let body = "{\"entries\":[" + entries.map(\.jsonObject).joined(separator: ",") + "],\"next_cursor\":"
            + (next.map { JSONText.string($0.token) } ?? "null") + ",\"count\":\(entries.count)}"
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    func export<Allowed>(_ parameters: [String: String], _ context: RoleContext<Allowed>, scoped: Bool) async throws -> Response {
        let (principal, tenant, query) = try selection(parameters, context, scoped: scoped)
        let format = parameters["format"] ?? "jsonl"
        guard ["jsonl", "csv", "ocsf"].contains(format) else { throw Self.badParameter("format") }
        // The export is itself logged before the first byte leaves.
        try await review(principal, context, target: "access-log:export:\(format)", rows: 0, tenantID: tenant?.id)
        let database = pool(for: tenant)
        let codes = (context.snapshot ?? RegistrySnapshot()).tenants.mapValues(\.code)
        let contentType = format == "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson"
        let disposition = "attachment; filename=\"itaku-access-log.\(format == "csv" ? "csv" : "\(format).jsonl")\""
        @Sendable func page(after cursor: AccessLogQuery.Cursor?) async throws -> ([AccessEntry], AccessLogQuery.Cursor?) {
            try await database.withTransaction { connection in
                try await Self.scope(connection, tenant: tenant)
                return try await query.page(after: cursor, limit: 2000, on: connection)
            }
        }
        @Sendable func text(_ entries: [AccessEntry]) -> String {
            var text = ""
            for entry in entries {
                switch format {
                case "csv": text += entry.csvLine
                case "ocsf": text += entry.ocsf(tenantCode: entry.tenantID.flatMap { codes[$0] }) + "\n"
                default: text += entry.jsonObject + "\n"
                }
            }
            return text
        }
        // The first page is read before the answer starts: a database that fails or times out
        // answers its 503, not a 200 with an empty body that looks like "nothing matched".
        let first = try await page(after: nil)
        // When it ends, a second entry says how many entries it sent (the first is written
        // before the first byte, when that is not known): a whole log's export does not look
        // like an empty one's.
        let closing = Self.reviewEntry(principal, context, target: "access-log:export:\(format):done", rows: 0, tenantID: tenant?.id)
        let accessLog = admin.accessLog
        // Then pages of 2,000 entries, each written as soon as it is read: constant memory for any size.
        return Response(status: .ok, headers: [.contentType: contentType, .contentDisposition: disposition], body: ResponseBody { writer in
            var (entries, cursor) = first
            var sent = 0
            func logSent() async {
                var done = closing
                done.occurredAt = Date()
                done.rowsReturned = sent
                _ = try? await accessLog.append(done)
            }
            do {
                if format == "csv" { try await writer.write(ByteBuffer(string: AccessEntry.csvHeader)) }
                while true {
                    let written = text(entries)
                    if !written.isEmpty { try await writer.write(ByteBuffer(string: written)) }
                    sent += entries.count
                    guard let after = cursor else { break }
                    (entries, cursor) = try await page(after: after)
                }
                try await writer.finish(nil)
            } catch {
                await logSent()
                throw error
            }
            await logSent()
        })
    }

    /// Who may read which part of the log, and the filters of the request.
    /// The part of the log the caller may read (the route admitted its role: reviewers for
    /// every tenant, client admins and reviewers for one), and the filters of the request.
    private func selection<Allowed>(
        _ parameters: [String: String], _ context: RoleContext<Allowed>, scoped: Bool
    ) throws -> (Principal, Tenant?, AccessLogQuery) {
        let principal = context.principal
        var tenant = scoped ? try admin.tenant(context) : nil
        let snapshot = context.snapshot ?? RegistrySnapshot()
        func text(_ name: String) throws -> String? {
            guard let value = parameters[name] else { return nil }
            guard PrintableText.isValid(value, maxBytes: 256) else { throw Self.badParameter(name) }
            return value
        }
        func date(_ name: String) throws -> Date? {
            guard let value = try text(name) else { return nil }
            guard let date = try? Date(value, strategy: .iso8601) else { throw Self.badParameter(name) }
            return date
        }
        func uuid(_ name: String) throws -> UUID? {
            guard let value = try text(name) else { return nil }
            guard let id = UUID(uuidString: value) else { throw Self.badParameter(name) }
            return id
        }
        if !scoped, let code = try text("tenant") {
            guard let found = snapshot.tenant(code: code) else { throw Self.badParameter("tenant") }
            tenant = found
        }
        var query = AccessLogQuery()
        query.from = try date("from")
        query.to = try date("to")
        query.tenantID = tenant?.id
        query.agent = try text("agent")
        query.integrationID = try uuid("integration")
        query.purposeKey = try text("purpose")
        query.caseRef = try text("case")
        query.operation = try text("operation")
        query.decision = try text("decision")
        query.reason = try text("reason")
        query.recordID = try uuid("record")
        query.entryID = try uuid("entry")
        query.lookupKind = try text("lookup_kind")
        if let value = try text("lookup_value") {
            // The value is digested here, with each candidate tenant's key; it is never stored.
            guard let kind = query.lookupKind.flatMap(DatasetSchema.LookupKind.init(rawValue:)),
                let normalized = LookupDigester.normalize(value, as: kind)
            else { throw Self.badParameter("lookup_value") }
            let tenants = tenant.map { [$0] } ?? Array(snapshot.tenants.values)
            // An exact value that is an individual number was looked up by its digits alone
            // (LookupDigester.normalize(_:for:)), or, before that, as written: both are searched.
            let forms = Set([normalized] + (kind == .exact ? [Normalization.individualNumberDigits(value)].compactMap { $0 } : []))
            query.lookupDigests = tenants.flatMap { tenant in
                let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString))
                return forms.map { digester.digest(normalized: $0, kind: kind) }
            }
        }
        if let subject = try text("subject") {
            // The client's record key (e.g. customer_no), digested with each candidate tenant's key.
            let tenants = tenant.map { [$0] } ?? Array(snapshot.tenants.values)
            query.subjectDigests = tenants.map {
                LookupDigester(key: keyring.digestKey(tenant: $0.id.uuidString)).subjectDigest(externalID: subject)
            }
        }
        return (principal, tenant, query)
    }

    /// One tenant's entries are read as the runtime role under that tenant's row-level
    /// security; every tenant's (a reviewer's search) only through the reader role's pool.
    private func pool(for tenant: Tenant?) -> PostgresClient {
        tenant == nil ? admin.reader : admin.database
    }

    static func scope(_ connection: PostgresConnection, tenant: Tenant?) async throws {
        if let tenant { try await RegistryStore.setTenant(tenant.id, on: connection) }
    }

    static func badParameter(_ name: String) -> Problem {
        .badRequest(code: "invalid_parameter", "The query parameter is not valid here.", pointer: name)
    }

    func review(
        _ principal: Principal, _ context: some ActingContext, target: String, rows: Int, tenantID: UUID? = nil
    ) async throws {
        try await admin.accessLog.append(Self.reviewEntry(principal, context, target: target, rows: rows, tenantID: tenantID))
    }

    static func reviewEntry(
        _ principal: Principal, _ context: some ActingContext, target: String, rows: Int, tenantID: UUID? = nil
    ) -> AccessEntry {
        var entry = AccessEntry(
            tenantID: tenantID ?? principal.tenantID, actorRole: principal.role.rawValue, actorKeyID: principal.keyID,
            operation: .review, decision: .allow, reason: "allowed"
        )
        entry.target = target
        entry.rowsReturned = rows
        entry.requestID = context.requestID
        entry.clientAddress = context.clientAddress
        return entry
    }
}
