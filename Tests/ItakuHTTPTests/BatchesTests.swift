import Foundation
import ItakuPostgres
import ItakuTestSupport
import Logging
import Synchronization
import Testing

@testable import ItakuAgentAPI

@Suite("Requests sent to PostgreSQL in batches", .timeLimit(.minutes(1)))
struct BatchesTests {
    /// Lets a batch's send through when the test says; counts the sends waiting.
    final class Gate: Sendable {
        private let state = Mutex<(permits: Int, waiters: [CheckedContinuation<Void, Never>])>((0, []))
        var waiters: Int { state.withLock { $0.waiters.count } }

        func pass() async {
            await withCheckedContinuation { continuation in
                let go = state.withLock { state in
                    if state.permits > 0 {
                        state.permits -= 1
                        return true
                    }
                    state.waiters.append(continuation)
                    return false
                }
                if go { continuation.resume() }
            }
        }

        func open() {
            let waiter = state.withLock { state in
                if state.waiters.isEmpty {
                    state.permits += 1
                    return nil as CheckedContinuation<Void, Never>?
                }
                return state.waiters.removeFirst()
            }
            waiter?.resume()
        }
    }

    static func until(_ condition: () -> Bool) async throws {
        for _ in 0..<5_000 where !condition() { try await Task.sleep(for: .milliseconds(1)) }
        #expect(condition())
    }

    @Test("requests that arrive while the lane is busy go in one batch, and each gets its own answer")
    func waitingRequestsGoTogether() async throws {
        let gate = Gate()
        let sent = Mutex<[[Int]]>([])
        let batches = Batches<Int, Int>(lanes: 1) { items in
            sent.withLock { $0.append(items) }
            await gate.pass()
            return items.map { .success($0 * 10) }
        }
        let first = Task { try await batches.submit(0) }
        try await Self.until { gate.waiters == 1 }
        let rest = (1...9).map { item in Task { try await batches.submit(item) } }
        try await Self.until { batches.waiting == 9 }
        gate.open()
        try await Self.until { gate.waiters == 1 }
        gate.open()
        #expect(try await first.value == 0)
        for (index, task) in rest.enumerated() { #expect(try await task.value == (index + 1) * 10) }
        let batchesSent = sent.withLock { $0 }
        #expect(batchesSent.count == 2)
        #expect(batchesSent.first == [0])
        #expect(batchesSent.last.map(Set.init) == Set(1...9))
        #expect(batches.waiting == 0)
    }

    @Test("with two lanes, requests wait for the batch out while it is quick; once it has been out too long, they go out beside it")
    func secondLaneOnlyForASlowBatch() async throws {
        let gate = Gate()
        let sent = Mutex<[(items: [Int], at: ContinuousClock.Instant)]>([])
        let batches = Batches<Int, Int>(lanes: 2, slowBatch: .seconds(2)) { items in
            sent.withLock { $0.append((items, .now)) }
            await gate.pass()
            return items.map { .success($0 * 10) }
        }
        let first = Task { try await batches.submit(0) }
        try await Self.until { gate.waiters == 1 }
        // The batch out is quick so far: these wait for it rather than go alone.
        let waiting = (1...3).map { item in Task { try await batches.submit(item) } }
        try await Self.until { batches.waiting == 3 }
        #expect(gate.waiters == 1)
        // Slow now, with no new request to notice: those waiting go out beside it.
        try await Self.until { gate.waiters == 2 }
        let batchesSent = sent.withLock { $0 }
        #expect(batchesSent.count == 2)
        #expect(batchesSent.last.map { Set($0.items) } == Set(1...3))
        if batchesSent.count == 2 { #expect(batchesSent[1].at - batchesSent[0].at >= .milliseconds(1900)) }
        gate.open()
        gate.open()
        #expect(try await first.value == 0)
        for (index, task) in waiting.enumerated() { #expect(try await task.value == (index + 1) * 10) }
        #expect(batches.waiting == 0)
    }

    @Test("a cancelled request cancels no batch: the lane answers everyone in it, the cancelled one too")
    func cancellationSparesTheBatch() async throws {
        let gate = Gate()
        let batches = Batches<Int, Int>(lanes: 1) { items in
            await gate.pass()
            // What a cancelled statement does: it fails.
            return items.map { Task.isCancelled ? .failure(CancellationError()) : .success($0 * 10) }
        }
        let first = Task { try await batches.submit(0) }
        try await Self.until { gate.waiters == 1 }
        let leader = Task { try await batches.submit(1) }
        try await Self.until { batches.waiting == 1 }
        let others = [2, 3].map { item in Task { try await batches.submit(item) } }
        try await Self.until { batches.waiting == 3 }
        gate.open()
        #expect(try await first.value == 0)
        // The lane now sends the batch [1, 2, 3], in a task of its own.
        try await Self.until { gate.waiters == 1 }
        leader.cancel()
        gate.open()
        #expect(try await others[0].value == 20)
        #expect(try await others[1].value == 30)
        #expect(try await leader.value == 10)
    }

    @Test("a failed batch fails each of its requests, and the lane passes on")
    func failedBatchFailsItsRequests() async throws {
        struct Refused: Error {}
        let batches = Batches<Int, Int>(lanes: 1) { items in
            items.map { $0 < 0 ? .failure(Refused()) : .success($0) }
        }
        await #expect(throws: Refused.self) { try await batches.submit(-1) }
        #expect(try await batches.submit(5) == 5)
        let answers = try await withThrowingTaskGroup(of: Int.self) { group in
            for item in 0..<50 { group.addTask { try await batches.submit(item) } }
            return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
        }
        #expect(answers == Set(0..<50))
        #expect(batches.waiting == 0)
    }

    @Test("no batch is larger than its most; a send that loses answers fails its requests, never hangs them")
    func mostPerBatchAndMissingAnswers() async throws {
        let gate = Gate()
        let sent = Mutex<[Int]>([])
        let batches = Batches<Int, Int>(lanes: 1, maxBatch: 3) { items in
            sent.withLock { $0.append(items.count) }
            await gate.pass()
            return items.map { .success($0) }
        }
        let first = Task { try await batches.submit(0) }
        try await Self.until { gate.waiters == 1 }
        let rest = (1...7).map { item in Task { try await batches.submit(item) } }
        try await Self.until { batches.waiting == 7 }
        for _ in 0..<4 {
            try await Self.until { gate.waiters == 1 }
            gate.open()
        }
        #expect(try await first.value == 0)
        for (index, task) in rest.enumerated() { #expect(try await task.value == index + 1) }
        #expect(sent.withLock { $0 } == [1, 3, 3, 1])

        let lossy = Batches<Int, Int>(lanes: 1) { items in items.dropLast().map { .success($0) } }
        await #expect(throws: BatchError.self) { try await lossy.submit(1) }
        #expect(lossy.waiting == 0)
    }

    @Test("a lane on the thread pool whose connection broke leaves what waits to a new lane; with no connection to be had, what waits fails and nothing hangs")
    func poolLanesRecoverOrFail() async throws {
        struct Lost: Error {}
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let client = database.makeClient(role: .owner, maximumConnections: 2)
        defer { Task { await client.shutdown() } }
        let started = Mutex(false)
        let others = Mutex(false)
        let batches = Batches<Int, Int>(lanes: 1, on: client) { items, session in
            if items == [0] {
                // Once the others wait, this batch's connection is ended by the server.
                started.withLock { $0 = true }
                for _ in 0..<5_000 where !others.withLock({ $0 }) { usleep(1_000) }
                _ = try? session.query("SELECT pg_terminate_backend(pg_backend_pid())")
                return [.failure(Lost())]
            }
            return items.map { item in Result { try session.query("SELECT \(item) * 10")[0].decode(0, as: Int.self) } }
        }
        let first = Task { try await batches.submit(0) }
        try await Self.until { started.withLock { $0 } }
        let rest = (1...9).map { item in Task { try await batches.submit(item) } }
        try await Self.until { batches.waiting == 9 }
        others.withLock { $0 = true }
        await #expect(throws: Lost.self) { try await first.value }
        for (index, task) in rest.enumerated() { #expect(try await task.value == (index + 1) * 10) }

        // A pool whose server is not there: every request fails with the lease's error.
        let nowhere = PostgresClient(
            configuration: PostgresConfiguration(url: "postgresql://itaku@127.0.0.1:1/itaku", minimumConnections: 0, connectTimeoutSeconds: 2),
            logger: .init(label: "itaku.test")
        )
        defer { Task { await nowhere.shutdown() } }
        let failing = Batches<Int, Int>(lanes: 1, on: nowhere) { items, _ in items.map { .success($0) } }
        let results = await withTaskGroup(of: Bool.self) { group in
            for item in 0..<20 { group.addTask { (try? await failing.submit(item)) == nil } }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results == Array(repeating: true, count: 20))
        #expect(failing.waiting == 0)
    }
}
