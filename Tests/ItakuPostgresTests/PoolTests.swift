import Foundation
import ItakuPostgres
import Logging
import ItakuTestSupport
import Synchronization
import Testing

@Suite("Connection pool")
struct PoolTests {
    @Test("cancelling pg_sleep(10) ends with SQLSTATE 57014 within a second; the connection serves the next query")
    func cancelInFlightQuery() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        try await client.withConnection { connection in
            let clock = ContinuousClock()
            let start = clock.now
            let sleeper = Task { try await connection.query("SELECT pg_sleep(10)") }
            try await Task.sleep(for: .milliseconds(300))
            sleeper.cancel()
            let result = await sleeper.result
            let elapsed = clock.now - start
            guard case .failure(let error) = result, let error = error as? PostgresError else {
                Issue.record("expected a PostgresError, got \(result)")
                return
            }
            #expect(error.sqlState == PostgresError.SQLState.queryCanceled)
            #expect(elapsed < .seconds(1.3))
            let next = try await connection.query("SELECT 1 + 1")
            #expect(try next[0].decode(0, as: Int32.self) == 2)
        }
    }

    @Test("a connection left inside a transaction or broken is never lent again")
    func neverLendsDirtyOrBrokenConnections() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner, maximumConnections: 1)
        let observer = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown(); await observer.shutdown() } }

        let openTransactionPID = try await client.withConnection { connection in
            try await connection.query("BEGIN")
            try await connection.query("CREATE TABLE half_done (n int)")
            return try await connection.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self)
        }
        let nextPID = try await client.withConnection { connection in
            // SAVEPOINT works only inside a transaction block: refused here means "not in one".
            let savepoint = await #expect(throws: PostgresError.self) { try await connection.query("SAVEPOINT probe") }
            #expect(savepoint?.sqlState == "25P01")
            return try await connection.query("SELECT pg_backend_pid()")[0].decode(0, as: Int32.self)
        }
        #expect(nextPID != openTransactionPID)
        let leftover = try await observer.query("SELECT count(*) FROM pg_tables WHERE tablename = 'half_done'")
        #expect(try leftover[0].decode(0, as: Int.self) == 0)

        // Break the pooled connection from outside; the next lease must still work.
        try await observer.query("SELECT pg_terminate_backend(\(nextPID))")
        try await Task.sleep(for: .milliseconds(100))
        _ = try? await client.query("SELECT 1")
        let answer = try await client.query("SELECT 41 + 1")[0].decode(0, as: Int32.self)
        #expect(answer == 42)
    }

    @Test("200 concurrent tasks on a pool of 8 never hold more than 8 server connections")
    func poolRespectsMaximum() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        var configuration = database.configuration(role: .owner, maximumConnections: 8)
        configuration.applicationName = "itaku-pool-test"
        let client = PostgresClient(configuration: configuration, logger: .init(label: "test"))
        let observer = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown(); await observer.shutdown() } }

        let peak = Atomic<Int>(0)
        let done = Atomic<Bool>(false)
        let monitor = Task {
            while !done.load(ordering: .relaxed) {
                let rows = try await observer.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'itaku-pool-test'"
                )
                let count = try rows[0].decode(0, as: Int.self)
                peak.max(count, ordering: .relaxed)
                #expect(client.stats.open <= 8)
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for n in 0..<200 {
                group.addTask {
                    try await client.query("SELECT \(Int32(n)) FROM pg_sleep(0.02)")[0].decode(0, as: Int32.self)
                }
            }
            var sum = 0
            for try await value in group { sum += Int(value) }
            #expect(sum == (0..<200).reduce(0, +))
        }
        done.store(true, ordering: .relaxed)
        try await monitor.value
        #expect(peak.load(ordering: .relaxed) <= 8)
        #expect(peak.load(ordering: .relaxed) >= 2)
    }

    @Test("a task waiting for a connection gives up at once when cancelled")
    func waiterCancellation() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner, maximumConnections: 1)
        defer { Task { await client.shutdown() } }
        let (held, heldContinuation) = AsyncStream.makeStream(of: Void.self)
        let holder = Task {
            try await client.withConnection { connection in
                heldContinuation.yield()
                try await connection.query("SELECT pg_sleep(1.5)")
            }
        }
        for await _ in held { break }
        let clock = ContinuousClock()
        let waiter = Task { try await client.query("SELECT 1") }
        try await Task.sleep(for: .milliseconds(100))
        #expect(client.stats.waiters == 1)
        let start = clock.now
        waiter.cancel()
        let result = await waiter.result
        #expect(clock.now - start < .seconds(1))
        guard case .failure(let error) = result else {
            Issue.record("the cancelled waiter got a connection")
            return
        }
        #expect(error is CancellationError)
        try await holder.value
        #expect(client.stats.waiters == 0)
        #expect(try await client.query("SELECT 2")[0].decode(0, as: Int32.self) == 2)
    }

    @Test("a server that is stopped and started again is used again without a new client")
    func survivesServerRestart() async throws {
        let cluster = try TestCluster.start()
        defer { cluster.destroy() }
        let database = try await cluster.makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner)
        defer { Task { await client.shutdown() } }
        #expect(try await client.query("SELECT 1")[0].decode(0, as: Int32.self) == 1)
        try cluster.stopServer()
        let down = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
        #expect(down?.isConnectionError == true)
        try cluster.restartServer()
        // The idle connection died with the old server; the pool must replace it.
        try await Task.sleep(for: .milliseconds(1100))
        #expect(try await client.query("SELECT 3")[0].decode(0, as: Int32.self) == 3)
    }
}
