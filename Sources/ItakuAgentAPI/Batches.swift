import Synchronization

/// Requests sent to PostgreSQL together. A request that finds no batch out goes at once, alone;
/// requests that arrive while one is out wait, and the lane sends them all in one round trip
/// when it comes free (`send`). PostgreSQL's cost per statement (the round trip, the
/// transaction, starting the plan) is then paid once per batch, not once per request; under
/// light load nothing waits. A second lane opens only when the batch out is slow (out longer
/// than `slowBatch`): then one slow statement does not hold every request up, while under a
/// steady load one lane's batches stay large.
///
/// There is no task of its own: the caller that takes a lane leads. It sends its own request with
/// those waiting, answers them, and hands the lane to the first caller still waiting (or frees
/// it). A batch that carries others' requests runs in a task of its own, so that cancelling the
/// leader cancels nobody else's request.
final class Batches<Item: Sendable, Answer: Sendable>: Sendable {
    /// One answer per item, in order.
    typealias Send = @Sendable ([Item]) async -> [Result<Answer, any Error>]

    private enum Turn: Sendable {
        case answered(Result<Answer, any Error>)
        case lead
    }

    private struct Waiting {
        var item: Item
        var continuation: CheckedContinuation<Turn, Never>
    }

    private struct State {
        var waiting: [Waiting] = []
        var leading = 0
        /// When each batch out was sent, by its lead's number.
        var sent: [Int: ContinuousClock.Instant] = [:]
        var nextLead = 0
        /// Whether a check for a slow batch is due (`watch`): at most one at a time.
        var watching = false

        /// Whether a new lead may take a lane now.
        func mayLead(lanes: Int, slowBatch: Duration) -> Bool {
            if leading == 0 { return true }
            guard leading < lanes else { return false }
            let now = ContinuousClock.now
            return sent.values.contains { now - $0 > slowBatch }
        }
    }

    /// Batches in flight at once, at most: the second only while the first is slow.
    let lanes: Int
    /// How long a batch may be out before a second lane opens beside it.
    let slowBatch: Duration
    /// Items in one batch at most.
    let maxBatch: Int
    private let send: Send
    private let state = Mutex(State())

    init(lanes: Int = 2, maxBatch: Int = 64, slowBatch: Duration = .milliseconds(10), send: @escaping Send) {
        self.lanes = max(1, lanes)
        self.slowBatch = slowBatch
        self.maxBatch = max(1, maxBatch)
        self.send = send
    }

    /// Requests waiting for a lane now.
    var waiting: Int { state.withLock { $0.waiting.count } }

    func submit(_ item: Item) async throws -> Answer {
        let (lanes, slowBatch) = (self.lanes, self.slowBatch)
        let leads = state.withLock { state in
            guard state.mayLead(lanes: lanes, slowBatch: slowBatch) else { return false }
            state.leading += 1
            return true
        }
        if !leads {
            let turn = await withCheckedContinuation { continuation in
                let (leadsNow, watch) = state.withLock { state in
                    if state.mayLead(lanes: lanes, slowBatch: slowBatch) {
                        state.leading += 1
                        return (true, false)
                    }
                    state.waiting.append(Waiting(item: item, continuation: continuation))
                    // A lane is free but the batch out is quick so far: should it turn slow
                    // before it answers, the waiting go out beside it then.
                    let watch = state.leading < lanes && !state.watching
                    if watch { state.watching = true }
                    return (false, watch)
                }
                if leadsNow { continuation.resume(returning: .lead) }
                if watch { self.watch() }
            }
            if case .answered(let answer) = turn { return try answer.get() }
        }
        return try await lead(item)
    }

    /// Once `slowBatch` has passed, sends the first waiting request to lead the free lane (with
    /// those behind it) if a batch out has turned slow; looks again while requests still wait
    /// and a lane is free.
    private func watch() {
        let (lanes, slowBatch) = (self.lanes, self.slowBatch)
        Task {
            try? await Task.sleep(for: slowBatch)
            let (promoted, again) = state.withLock { state -> (Waiting?, Bool) in
                state.watching = false
                var promoted: Waiting?
                if !state.waiting.isEmpty, state.mayLead(lanes: lanes, slowBatch: slowBatch) {
                    state.leading += 1
                    promoted = state.waiting.removeFirst()
                }
                let again = !state.waiting.isEmpty && state.leading < lanes
                if again { state.watching = true }
                return (promoted, again)
            }
            promoted?.continuation.resume(returning: .lead)
            if again { watch() }
        }
    }

    /// Sends `own` with the items waiting, answers them, and passes the lane on.
    private func lead(_ own: Item) async throws -> Answer {
        let (others, lead) = state.withLock { state in
            let count = min(state.waiting.count, maxBatch - 1)
            defer { state.waiting.removeFirst(count) }
            state.nextLead += 1
            state.sent[state.nextLead] = .now
            return (Array(state.waiting.prefix(count)), state.nextLead)
        }
        let items = [own] + others.map(\.item)
        let send = self.send
        var answers = others.isEmpty ? await send(items) : await Task { await send(items) }.value
        if answers.count != items.count {
            answers = Array(repeating: .failure(BatchError.answersMissing), count: items.count)
        }
        for (index, other) in others.enumerated() {
            other.continuation.resume(returning: .answered(answers[index + 1]))
        }
        let next = state.withLock { state -> Waiting? in
            state.sent[lead] = nil
            guard !state.waiting.isEmpty else {
                state.leading -= 1
                return nil
            }
            return state.waiting.removeFirst()
        }
        next?.continuation.resume(returning: .lead)
        return try answers[0].get()
    }
}

enum BatchError: Error {
    /// `send` returned fewer or more answers than items (a defect: every item fails).
    case answersMissing
}
