import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuTestSupport
import Logging
import Testing

@Suite("Transactions carrying access entries")
struct TransactionTests {
    @Test("a transaction whose opening statement fails rolls back, writes no entry, and its connection is lent again")
    func failedOpening() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let client = database.makeClient(role: .runtime, maximumConnections: 1)
        let owner = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown(); await owner.shutdown() } }
        let writer = AccessLogWriter(database: client, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
        let before = try await client.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self)
        let error = await #expect(throws: PostgresError.self) {
            _ = try await writer.transaction(on: client, tenant: UUID(), opening: "SELECT 1 / 0") { _, _ in
                Issue.record("the body ran after a failed opening")
                return ((), [AccessEntry(tenantID: nil, actorRole: "cli", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")], [])
            }
        }
        #expect(error?.sqlState == "22012")
        // Rolled back, not closed: the one pooled connection is the same session.
        #expect(try await client.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self) == before)
        #expect(try await owner.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self) == 0)

        // The next transaction on it commits its entry.
        let (_, written) = try await writer.transaction(on: client) { _ in
            ((), [AccessEntry(tenantID: nil, actorRole: "cli", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")])
        }
        #expect(written.count == 1 && written[0].chain != nil)
        #expect(try await owner.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self) == 1)
    }

    /// A reader that polls the log by time (`from` = the newest time it has read) must not miss
    /// entries that a long transaction commits later: they are dated at their commit.
    @Test("a transaction's entries are dated when it commits, not when they were made")
    func entriesDatedAtCommit() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        let client = database.makeClient(role: .runtime, maximumConnections: 2)
        let owner = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown(); await owner.shutdown() } }
        let writer = AccessLogWriter(database: client, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
        let service = Task { try await writer.run() }
        defer { service.cancel() }
        let made = (0..<2).map { _ in AccessEntry(tenantID: nil, actorRole: "cli", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed") }
        let (_, written) = try await writer.transaction(on: client) { _ in
            // Meanwhile an entry made later commits at once; a poller reads up to it.
            try await writer.append(AccessEntry(tenantID: nil, actorRole: "cli", actorKeyID: nil, operation: .review, decision: .allow, reason: "allowed"))
            try await Task.sleep(for: .milliseconds(300))
            return ((), made)
        }
        let polled = try await owner.query("SELECT max(occurred_at) FROM itaku.access_log WHERE operation = 'review'")[0].decode(0, as: Date.self)
        let stored = try await owner.query("SELECT occurred_at FROM itaku.access_log WHERE operation = 'configure'").map { try $0.decode(0, as: Date.self) }
        #expect(stored.count == 2)
        #expect(stored.allSatisfy { $0 > polled }, "\(stored) after \(polled)")
        #expect(stored.allSatisfy { $0 >= made[1].occurredAt.addingTimeInterval(0.3) })
        #expect(written.map { AccessEntry.microseconds($0.occurredAt) } == stored.map(AccessEntry.microseconds))
    }
}
