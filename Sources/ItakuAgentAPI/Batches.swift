import Synchronization

/// Requests sent to PostgreSQL together. A request that finds a lane free goes at once, alone;
/// requests that arrive while every lane is busy wait, and the next lane to come free sends them
/// all in one round trip (`send`). PostgreSQL's cost per statement (the round trip, the
/// transaction, starting the plan) is then paid once per batch, not once per request; under
/// light load nothing waits.
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
    }

    /// Batches in flight at once. Two measured best on the benchmark (two cores): one batch
    /// fills while the other is out, and a slow batch does not hold every request up.
    let lanes: Int
    /// Items in one batch at most.
    let maxBatch: Int
    private let send: Send
    private let state = Mutex(State())

    init(lanes: Int = 2, maxBatch: Int = 64, send: @escaping Send) {
        self.lanes = max(1, lanes)
        self.maxBatch = max(1, maxBatch)
        self.send = send
    }

    /// Requests waiting for a lane now.
    var waiting: Int { state.withLock { $0.waiting.count } }

    func submit(_ item: Item) async throws -> Answer {
        let leads = state.withLock { state in
            guard state.leading < lanes else { return false }
            state.leading += 1
            return true
        }
        if !leads {
            let turn = await withCheckedContinuation { continuation in
                let leadsNow = state.withLock { state in
                    if state.leading < lanes {
                        state.leading += 1
                        return true
                    }
                    state.waiting.append(Waiting(item: item, continuation: continuation))
                    return false
                }
                if leadsNow { continuation.resume(returning: .lead) }
            }
            if case .answered(let answer) = turn { return try answer.get() }
        }
        return try await lead(item)
    }

    /// Sends `own` with the items waiting, answers them, and passes the lane on.
    private func lead(_ own: Item) async throws -> Answer {
        let others = state.withLock { state in
            let count = min(state.waiting.count, maxBatch - 1)
            defer { state.waiting.removeFirst(count) }
            return Array(state.waiting.prefix(count))
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
