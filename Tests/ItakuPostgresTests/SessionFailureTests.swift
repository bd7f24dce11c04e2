import Foundation
import ItakuPostgres
import Logging
import ItakuTestSupport
import Testing

/// What the server ends, refuses or rolls back reaches the caller as what it is: a session that
/// is gone is a connection error (503 upstream), a session that cannot write is not lent again,
/// and nothing rolled back is reported as committed.
@Suite("Sessions the server ends or spoils")
struct SessionFailureTests {
    @Test("a session the server ends for idling is a connection error, and the next query gets a fresh one")
    func idleSessionTimeout() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        // Never probed before it is lent: the dead session must reach the query itself.
        var configuration = database.configuration(role: .owner, maximumConnections: 1)
        configuration.probeIdleAfter = .seconds(3600)
        let client = PostgresClient(configuration: configuration, logger: Logger(label: "itaku.test"))
        defer { Task { await client.shutdown() } }
        try await client.query("SET idle_session_timeout = '100ms'")
        try await Task.sleep(for: .milliseconds(400))
        let error = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
        #expect(error?.kind == .connectionClosed, "\(String(describing: error))")
        #expect(error?.isConnectionError == true)
        #expect(try await client.query("SELECT 2")[0].decode(0, as: Int.self) == 2)
    }

    @Test("a read-only session (a standby after a failover) is a connection error and is not lent again")
    func readOnlySession() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown() } }
        try await client.query("SET default_transaction_read_only = on")
        let error = await #expect(throws: PostgresError.self) { try await client.query("CREATE TABLE written (n int)") }
        #expect(error?.sqlState == "25006")
        #expect(error?.isConnectionError == true)
        try await client.query("CREATE TABLE written (n int)")
    }

    @Test("a transaction whose body swallowed a failed statement is not reported as committed")
    func abortedTransactionIsNotCommitted() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.query("CREATE TABLE items (n int)")
        let error = await #expect(throws: PostgresError.self) {
            try await client.withTransaction { connection in
                try await connection.query("INSERT INTO items VALUES (1)")
                _ = try? await connection.query("SELECT 1 / 0")
            }
        }
        #expect(error?.sqlState == "25P02")
        #expect(try await client.query("SELECT count(*) FROM items")[0].decode(0, as: Int.self) == 0)
    }

    @Test("a prepared statement a migration changed the shape of fails once, and its connection is replaced")
    func preparedStatementChangedShape() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner, maximumConnections: 1)
        let other = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown(); await other.shutdown() } }
        try await client.query("CREATE TABLE shaped (a int)")
        try await client.query("INSERT INTO shaped VALUES (1)")
        #expect(try await client.query(PostgresQuery(unsafeSQL: "SELECT * FROM shaped").prepared()).columns.count == 1)
        try await other.query("ALTER TABLE shaped ADD COLUMN b int")
        await #expect(throws: PostgresError.self) { try await client.query(PostgresQuery(unsafeSQL: "SELECT * FROM shaped").prepared()) }
        #expect(try await client.query(PostgresQuery(unsafeSQL: "SELECT * FROM shaped").prepared()).columns.count == 2)
    }

    @Test("a date beyond what a Date holds (infinity) is refused as a mismatch, never a trap")
    func infiniteDate() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        let rows = try await client.query("SELECT 'infinity'::date, '-infinity'::date, '2026-12-06'::date")
        #expect(throws: (any Error).self) { try rows[0].decode(0, as: Date.self) }
        #expect(throws: (any Error).self) { try rows[0].decode(1, as: Date.self) }
        #expect(try rows[0].decode(2, as: Date.self) == Date(timeIntervalSince1970: 1_796_515_200))
    }
}
