import Foundation
import ItakuPostgres

/// One row of the access log: one decision, allowed or denied. It holds no personal data
/// values: lookup values and subjects appear only as keyed digests. `Docs/access-log.md` lists
/// every field.
public struct AccessEntry: Sendable, Equatable {
    public enum Operation: String, Sendable, CaseIterable, Codable {
        case lookup, read, update, configure, review
    }

    public enum Decision: String, Sendable, Codable {
        case allow, deny
    }

    public var id = UUID()
    public var occurredAt = Date()
    public var tenantID: UUID?
    public var actorRole: String
    public var actorKeyID: UUID?
    public var integrationID: UUID?
    public var agent: String?
    public var agentVerified: Bool?
    public var purposeKey: String?
    public var purposeVersion: Int?
    public var caseRef: String?
    public var operation: Operation
    public var dataset: String?
    /// For `configure`: what changed (`purpose:order-support`); for `review`: what was read.
    public var target: String?
    public var versionBefore: Int?
    public var versionAfter: Int?
    public var lookupKind: String?
    public var lookupDigest: [UInt8]?
    public var recordIDs: [UUID] = []
    public var subjectDigests: [String] = []
    /// Field name → transform, for the fields a response carried.
    public var fields: [String: String]?
    public var decision: Decision
    public var reason: String
    public var rowsReturned = 0
    public var requestID: String?
    public var clientAddress: String?

    public init(
        tenantID: UUID?, actorRole: String, actorKeyID: UUID?, operation: Operation, decision: Decision, reason: String
    ) {
        self.tenantID = tenantID
        self.actorRole = actorRole
        self.actorKeyID = actorKeyID
        self.operation = operation
        self.decision = decision
        self.reason = reason
    }
}

/// Writes access entries on a connection the caller holds, so an entry commits in the same
/// transaction as the change it records.
public enum AccessLogStore {
    public static func insert(_ entry: AccessEntry, on connection: PostgresConnection) async throws {
        let fields: PostgresJSON? = try entry.fields.map {
            PostgresJSON(String(decoding: try JSONSerialization.data(withJSONObject: $0, options: [.sortedKeys]), as: UTF8.self))
        }
        try await connection.query(
            """
            INSERT INTO itaku.access_log (
                entry_id, occurred_at, tenant_id, actor_role, actor_key_id, integration_id, agent, agent_verified,
                purpose_key, purpose_version, case_ref, operation, dataset, target, version_before, version_after,
                lookup_kind, lookup_digest, record_ids, subject_digests, fields, decision, reason, rows_returned,
                request_id, client_address)
            VALUES (
                \(entry.id), \(entry.occurredAt), \(entry.tenantID), \(entry.actorRole), \(entry.actorKeyID),
                \(entry.integrationID), \(entry.agent), \(entry.agentVerified), \(entry.purposeKey),
                \(entry.purposeVersion.map(Int32.init)), \(entry.caseRef), \(entry.operation.rawValue), \(entry.dataset),
                \(entry.target), \(entry.versionBefore.map(Int32.init)), \(entry.versionAfter.map(Int32.init)),
                \(entry.lookupKind), \(entry.lookupDigest.map(PostgresBytes.init)), \(entry.recordIDs.map(\.uuidString))::uuid[],
                \(entry.subjectDigests), \(fields), \(entry.decision.rawValue), \(entry.reason), \(Int32(entry.rowsReturned)),
                \(entry.requestID), \(entry.clientAddress))
            """
        )
    }
}
