import Foundation
import HTTPTypes
import Hummingbird
import ItakuAccessLog
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Logging
import NIOCore

/// What the administration controllers share: authorization, body decoding, and making a
/// change together with its `configure` access entry and registry notification.
struct Admin: Sendable {
    let database: PostgresClient
    /// The cross-tenant reader role's pool: only reviewers' reads across tenants use it.
    let reader: PostgresClient
    let registry: Registry
    let accessLog: AccessLogWriter
    /// The tenants' data keys: records' fields are sealed with them.
    let dataKeys: DataKeys

    // MARK: Authorization

    /// The caller, if its role may use the endpoint at all (403 otherwise).
    func principal(_ context: ItakuRequestContext, _ roles: Set<Role>) throws -> Principal {
        guard let principal = context.principal else { throw Problem(.unauthorized, code: "unauthenticated", title: "Unauthenticated") }
        guard roles.contains(principal.role) else { throw Problem.forbidden }
        return principal
    }

    /// The tenant of the path. A client admin of another tenant gets the same 404 as for a
    /// tenant that does not exist.
    func tenant(_ context: ItakuRequestContext, _ roles: Set<Role>) throws -> (Principal, Tenant) {
        let principal = try principal(context, roles)
        guard let code = context.parameters.get("tenant"), let tenant = context.snapshot?.tenant(code: code) else {
            throw Problem.notFound
        }
        if principal.role == .clientAdmin && principal.tenantID != tenant.id { throw Problem.notFound }
        return (principal, tenant)
    }

    /// The tenant of the path, for a caller whose role the route already admitted. A client
    /// admin of another tenant gets the same 404 as for a tenant that does not exist.
    func tenant<Allowed>(_ context: RoleContext<Allowed>) throws -> Tenant {
        guard let code = context.parameters.get("tenant"), let tenant = context.snapshot?.tenant(code: code) else {
            throw Problem.notFound
        }
        if context.principal.role == .clientAdmin && context.principal.tenantID != tenant.id { throw Problem.notFound }
        return tenant
    }

    // MARK: Bodies

    /// Reads a body as `type`, refusing members the type does not know (`unknownMembers`) but
    /// those named in `alsoTaking`, which are passed over (what a GET shows and a PUT of the
    /// same carries back).
    func decode<T: Codable>(
        _ type: T.Type, from request: Request, context: some RequestContext, alsoTaking: Set<String> = []
    ) async throws -> T {
        try Self.decode(type, from: try await request.body.collect(upTo: context.maxUploadSize), alsoTaking: alsoTaking)
    }

    /// Reads a body as `type`, passing over members it does not know: only for the agent API,
    /// whose bodies carry no rules (a member it does not take changes nothing it decides).
    func decodeLenient<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext) async throws -> T {
        try Self.read(type, from: try await request.body.collect(upTo: context.maxUploadSize))
    }

    static func read<T: Decodable>(_ type: T.Type, from buffer: ByteBuffer) throws -> T {
        do {
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            return try decoder.decode(T.self, from: Data(buffer.readableBytesView))
        } catch let error as DecodingError {
            // Only the path of the problem is reported: the decoder's message can quote values.
            throw Problem.badRequest(code: "invalid_json", "The body is not the JSON this endpoint takes.", pointer: Self.pointer(error))
        }
    }

    /// `decode` of a body already collected, refusing members the type does not know: 422
    /// `unknown_member` at each one's path. A decoder passes over them, so a misspelt rule
    /// (`bussiness_hours`, `retention_dayz`, `records_per_hours`) would otherwise leave the
    /// definition without it: open around the clock, kept for ever, unlimited.
    static func decode<T: Codable>(_ type: T.Type, from buffer: ByteBuffer, alsoTaking: Set<String> = []) throws -> T {
        let value = try read(type, from: buffer)
        guard let unknown = unknownMembers(of: value, in: buffer) else {
            throw Problem.badRequest(code: "invalid_json", "The body is not the JSON this endpoint takes.")
        }
        let refused = unknown.filter { !alsoTaking.contains($0) }
        guard refused.isEmpty else { throw Problem.invalid(refused.map { .init(code: "unknown_member", pointer: $0.isEmpty ? nil : $0) }) }
        return value
    }

    /// The paths of the members of `buffer`'s JSON that `value`, encoded again, does not have
    /// (a member whose value is null is as good as absent). A member's name is in the path if it
    /// could be a name at all (a letter, then letters, digits and `_`, at most 64); otherwise the
    /// path ends at its parent: the answer does not repeat a phone number written there.
    /// Nil if either cannot be read as JSON (then the body is refused, not let through).
    static func unknownMembers(of value: some Encodable, in buffer: ByteBuffer) -> [String]? {
        guard let raw = try? JSONSerialization.jsonObject(with: Data(buffer.readableBytesView), options: [.fragmentsAllowed]),
            let known = try? JSONSerialization.jsonObject(with: JSONEncoder().encode(value), options: [.fragmentsAllowed])
        else { return nil }
        var paths: [String] = []
        let isLetter = { (byte: UInt8) in (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) }
        func walk(_ raw: Any, _ known: Any, _ path: String) {
            guard paths.count < 20 else { return }
            if let raw = raw as? [String: Any], let known = known as? [String: Any] {
                for (name, member) in raw.sorted(by: { $0.key < $1.key }) where !(member is NSNull) {
                    let named = name.utf8.count <= 64 && name.utf8.first.map(isLetter) == true
                        && name.utf8.allSatisfy { isLetter($0) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
                    let child = named ? (path.isEmpty ? name : path + "." + name) : path
                    if let counterpart = known[name] {
                        walk(member, counterpart, child)
                    } else if !paths.contains(child) {
                        paths.append(child)
                    }
                }
            } else if let raw = raw as? [Any], let known = known as? [Any], raw.count == known.count {
                for (index, (member, counterpart)) in zip(raw, known).enumerated() { walk(member, counterpart, path + "[\(index)]") }
            }
        }
        walk(raw, known, "")
        return paths
    }

    static func pointer(_ error: DecodingError) -> String? {
        let path: [any CodingKey]
        switch error {
        case .keyNotFound(let key, let context): path = context.codingPath + [key]
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context): path = context.codingPath
        @unknown default: return nil
        }
        let text = path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? nil : text)
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }

    // MARK: Changes

    /// Runs `body` in a transaction that also records a `configure` entry (who changed what,
    /// versions before and after, chained in the access log) and notifies every instance; then
    /// refreshes this instance's snapshot so the change is in force before the response leaves.
    /// Once committed, the change is answered as done: a refresh that fails is logged and
    /// retried by the registry (which every instance also reloads on the notice), never turned
    /// into an error for a change that was made (a key's secret would be lost with it).
    func change<Result: Sendable>(
        _ context: some ActingContext, tenantID: UUID?, target: String,
        _ body: @Sendable (PostgresConnection) async throws -> (Result, before: Int?, after: Int?)
    ) async throws -> Result {
        guard let principal = context.actor else { throw Problem.forbidden }
        let requestID = context.requestID
        let clientAddress = context.clientAddress
        let accessLog = self.accessLog
        let result = try await recordedTransaction(database: database, accessLog: accessLog) { connection in
            let (value, before, after) = try await body(connection)
            var entry = AccessEntry(
                tenantID: tenantID, actorRole: principal.role.rawValue, actorKeyID: principal.keyID,
                operation: .configure, decision: .allow, reason: "allowed"
            )
            entry.target = target
            entry.versionBefore = before
            entry.versionAfter = after
            entry.requestID = requestID
            entry.clientAddress = clientAddress
            try await RegistryStore.announceChange(target, on: connection)
            return (value, [entry])
        }
        do {
            try await registry.reload()
        } catch {
            registry.reloadSoon()
            context.logger.warning("registry reload after a committed change failed; retrying", metadata: ["itaku.error": "\(error)"])
        }
        return result
    }
}

/// One transaction that commits together with the access entries its body returns, or rolls
/// back on any error: a change and its evidence, or neither (`AccessLogWriter.transaction`).
/// With `tenant`, the transaction acts for that tenant (row-level security) from its start.
func recordedTransaction<T: Sendable>(
    database: PostgresClient, accessLog: AccessLogWriter, tenant: UUID? = nil,
    _ body: (PostgresConnection) async throws -> (T, [AccessEntry])
) async throws -> T {
    try await accessLog.transaction(on: database, tenant: tenant, body).0
}

extension Array where Element == ValidationIssue {
    var problems: [Problem.Issue] { map { Problem.Issue(code: $0.code, pointer: $0.pointer) } }
}

extension PostgresError {
    var isUniqueViolation: Bool { sqlState == SQLState.uniqueViolation }
}
