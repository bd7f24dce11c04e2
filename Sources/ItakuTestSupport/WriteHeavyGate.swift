import Synchronization

/// Tests share one PostgreSQL cluster, and so one WAL: copying a database (`cloneDatabase`)
/// writes all of it to the WAL, and every commit of every other test waits behind that for a
/// moment. A test that times something across commits (a change reaching another instance
/// "within a second") holds this gate while it measures, and copies wait for it, and it for
/// them: the measurement sees the machine, not a neighbour's copy.
public final class WriteHeavyGate: Sendable {
    public static let shared = WriteHeavyGate()

    private let state = Mutex<(held: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.held {
                    state.waiters.append(continuation)
                    return false
                }
                state.held = true
                return true
            }
            if now { continuation.resume() }
        }
        defer {
            let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
                guard !state.waiters.isEmpty else {
                    state.held = false
                    return nil
                }
                return state.waiters.removeFirst()
            }
            next?.resume()
        }
        return try await body()
    }
}
