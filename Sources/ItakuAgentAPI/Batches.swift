import ItakuPostgres
import Synchronization

/// Requests sent to PostgreSQL together. A request that finds no lane running starts one, and
/// goes out at once (with any that arrive while the lane starts); requests that arrive while a
/// batch is out wait, and the lane sends them all in one round trip when it comes free. PostgreSQL's cost per statement (the round trip, the transaction,
/// starting the plan) is then paid once per batch, not once per request; under light load
/// nothing waits. A second lane opens only when the batch out is slow (out longer than
/// `slowBatch`): then one slow statement does not hold every request up, while under a steady
/// load one lane's batches stay large.
///
/// A lane is a loop of its own: it sends what waits, answers it, and sends what arrived
/// meanwhile, until nothing waits. No request leads it, so cancelling a request cancels nobody
/// else's (nor its own: a statement is bounded by `statement_timeout`). A lane of lookups or case checks runs
/// on the database's thread pool (`init(on:)`): batch follows batch there with no hop to a task
/// and back, so between batches the lane does not queue behind the work of the requests it
/// answers (starting a lane still takes a task, a lease and a hop).
final class Batches<Item: Sendable, Answer: Sendable>: Sendable {
    /// One answer per item, in order.
    typealias Send = @Sendable ([Item]) async -> [Result<Answer, any Error>]
    /// One answer per item, in order, from statements run on `session`.
    typealias SendOnSession = @Sendable ([Item], PostgresSession) -> [Result<Answer, any Error>]

    private enum Runner: Sendable {
        case task(Send)
        case pool(PostgresClient, SendOnSession)
    }

    private struct Waiting {
        var item: Item
        var continuation: CheckedContinuation<Answer, any Error>
    }

    private struct State {
        var waiting: [Waiting] = []
        var running = 0
        /// When each lane's batch out was sent, by the lane's number.
        var sent: [Int: ContinuousClock.Instant] = [:]
        var nextLane = 0
        /// Whether a check for a slow batch is due (`watch`): at most one at a time.
        var watching = false

        /// Whether a new lane may start now.
        func mayStart(lanes: Int, slowBatch: Duration) -> Bool {
            if running == 0 { return true }
            guard running < lanes else { return false }
            let now = ContinuousClock.now
            return sent.values.contains { now - $0 > slowBatch }
        }

        mutating func startLane() -> Int {
            running += 1
            nextLane += 1
            return nextLane
        }
    }

    /// Batches in flight at once, at most: the second only while the first is slow.
    let lanes: Int
    /// How long a batch may be out before a second lane opens beside it.
    let slowBatch: Duration
    /// Items in one batch at most.
    let maxBatch: Int
    private let runner: Runner
    private let state = Mutex(State())

    init(lanes: Int = 2, maxBatch: Int = 64, slowBatch: Duration = .milliseconds(10), send: @escaping Send) {
        self.lanes = max(1, lanes)
        self.slowBatch = slowBatch
        self.maxBatch = max(1, maxBatch)
        self.runner = .task(send)
    }

    /// Lanes that run on `database`'s thread pool, each with a connection of its own.
    init(lanes: Int = 2, maxBatch: Int = 64, slowBatch: Duration = .milliseconds(10), on database: PostgresClient, send: @escaping SendOnSession) {
        self.lanes = max(1, lanes)
        self.slowBatch = slowBatch
        self.maxBatch = max(1, maxBatch)
        self.runner = .pool(database, send)
    }

    /// Requests waiting for a lane now.
    var waiting: Int { state.withLock { $0.waiting.count } }

    func submit(_ item: Item) async throws -> Answer {
        let (lanes, slowBatch) = (self.lanes, self.slowBatch)
        return try await withCheckedThrowingContinuation { continuation in
            let (lane, watch) = state.withLock { state -> (Int?, Bool) in
                state.waiting.append(Waiting(item: item, continuation: continuation))
                if state.mayStart(lanes: lanes, slowBatch: slowBatch) { return (state.startLane(), false) }
                // A lane is free but the batch out is quick so far: should it turn slow before
                // it answers, what waits goes out beside it then.
                let watch = state.running < lanes && !state.watching
                if watch { state.watching = true }
                return (nil, watch)
            }
            if let lane { run(lane) }
            if watch { self.watch() }
        }
    }

    /// Once `slowBatch` has passed, starts a lane for what waits if a batch out has turned
    /// slow; looks again while requests still wait and a lane is free.
    private func watch() {
        let (lanes, slowBatch) = (self.lanes, self.slowBatch)
        Task {
            try? await Task.sleep(for: slowBatch)
            let (lane, again) = state.withLock { state -> (Int?, Bool) in
                state.watching = false
                var lane: Int?
                if !state.waiting.isEmpty, state.mayStart(lanes: lanes, slowBatch: slowBatch) { lane = state.startLane() }
                let again = !state.waiting.isEmpty && state.running < lanes
                if again { state.watching = true }
                return (lane, again)
            }
            if let lane { run(lane) }
            if again { watch() }
        }
    }

    /// Runs lane `lane` until nothing waits.
    private func run(_ lane: Int) {
        switch runner {
        case .task(let send):
            Task {
                while let batch = self.next(lane) {
                    let answers = await send(batch.map(\.item))
                    self.sent(lane)
                    self.answer(batch, with: answers)
                }
            }
        case .pool(let database, let send):
            Task {
                do {
                    let done = try await database.withSession { session in
                        while let batch = self.next(lane) {
                            let answers = send(batch.map(\.item), session)
                            self.sent(lane)
                            self.answer(batch, with: answers)
                            // A connection that failed takes no more, and one that another task
                            // waits for goes back to the pool: a new lane leases behind it.
                            guard session.isUsable, !session.isWanted else { return false }
                        }
                        return true
                    }
                    if !done { self.end(lane, failing: nil) }
                } catch {
                    // No connection could be leased (or the pool is closing): what waits fails
                    // with that, unless another lane is left to take it.
                    self.end(lane, failing: error)
                }
            }
        }
    }

    /// The next batch of lane `lane`, taken from those waiting; nil, and the lane ends, when
    /// nothing waits.
    private func next(_ lane: Int) -> [Waiting]? {
        state.withLock { state in
            guard !state.waiting.isEmpty else {
                state.running -= 1
                state.sent[lane] = nil
                return nil
            }
            let count = min(state.waiting.count, maxBatch)
            defer { state.waiting.removeFirst(count) }
            state.sent[lane] = .now
            return Array(state.waiting.prefix(count))
        }
    }

    /// Lane `lane`'s batch is back: it is no longer out (nor slow).
    private func sent(_ lane: Int) {
        state.withLock { _ = $0.sent.removeValue(forKey: lane) }
    }

    /// Ends lane `lane` before nothing waits. What waits goes to another lane, to a new one
    /// (`error` nil), or, with no lane left to take it, fails with `error`.
    private func end(_ lane: Int, failing error: (any Error)?) {
        let (restart, failed) = state.withLock { state -> (Int?, [Waiting]) in
            state.running -= 1
            state.sent[lane] = nil
            guard !state.waiting.isEmpty, state.running == 0 else { return (nil, []) }
            guard error != nil else { return (state.startLane(), []) }
            defer { state.waiting.removeAll() }
            return (nil, state.waiting)
        }
        if let error { for waiting in failed { waiting.continuation.resume(throwing: error) } }
        if let restart { run(restart) }
    }

    private func answer(_ batch: [Waiting], with answers: [Result<Answer, any Error>]) {
        let answers = answers.count == batch.count ? answers : Array(repeating: .failure(BatchError.answersMissing), count: batch.count)
        for (waiting, answer) in zip(batch, answers) { waiting.continuation.resume(with: answer) }
    }
}

enum BatchError: Error {
    /// `send` returned fewer or more answers than items (a defect: every item fails).
    case answersMissing
}
