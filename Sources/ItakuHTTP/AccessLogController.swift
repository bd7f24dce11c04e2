import Crypto
import Foundation
import Hummingbird
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuRegistry

/// `/v1/access-log/verify` and `/v1/access-log/checkpoints`: the security team verifies the
/// chains and fetches the signed checkpoints with the public key that checks them. Every such
/// read is itself an access entry (operation `review`).
struct AccessLogController: Sendable {
    let admin: Admin
    let keyring: Keyring

    struct CheckpointBody: Encodable {
        var stream: String
        var tenant: String?
        var seq: Int64
        var hash: String
        var created_at: Date
        var key_id: String
        var signature: String
    }

    struct Checkpoints: Encodable {
        var key_id: String
        /// Base64 of the raw Ed25519 public key.
        var public_key: String
        var checkpoints: [CheckpointBody]
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/access-log/checkpoints", method: .get) { _, context in
            let principal = try admin.principal(context, [.reviewer])
            let snapshot = context.snapshot ?? RegistrySnapshot()
            let checkpoints = try await admin.database.withTransaction { try await AccessLogStore.checkpoints(on: $0) }
            try await review(principal, context, target: "access-log:checkpoints", rows: checkpoints.count)
            return try admin.json(Checkpoints(
                key_id: keyring.checkpointKeyID,
                public_key: keyring.checkpointSigningKey.publicKey.rawRepresentation.base64EncodedString(),
                checkpoints: checkpoints.map {
                    CheckpointBody(
                        stream: $0.stream, tenant: $0.tenantID.flatMap { snapshot.tenants[$0]?.code }, seq: $0.seq,
                        hash: $0.hash.map { String(format: "%02x", $0) }.joined(), created_at: $0.createdAt, key_id: $0.keyID,
                        signature: Data($0.signature).base64EncodedString()
                    )
                }
            ))
        }
        routes.on("/v1/access-log/verify", method: .post) { _, context in
            let principal = try admin.principal(context, [.reviewer])
            let report = try await AccessLogVerifier(publicKey: keyring.checkpointSigningKey.publicKey).verify(admin.database)
            try await review(principal, context, target: "access-log:verify", rows: report.entries)
            return try admin.json(report)
        }
    }

    private func review(_ principal: Principal, _ context: ItakuRequestContext, target: String, rows: Int) async throws {
        var entry = AccessEntry(
            tenantID: principal.tenantID, actorRole: principal.role.rawValue, actorKeyID: principal.keyID,
            operation: .review, decision: .allow, reason: "allowed"
        )
        entry.target = target
        entry.rowsReturned = rows
        entry.requestID = context.requestID
        try await admin.accessLog.append(entry)
    }
}
