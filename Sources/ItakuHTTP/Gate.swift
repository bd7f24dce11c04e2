import Synchronization

/// A count of long-running requests of one kind (imports, log verifications) in progress, up to
/// a limit: one that finds the limit reached is refused at once (503 with `Retry-After`), never
/// queued behind others that may take their time.
final class Gate: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) { self.limit = max(1, limit) }

    func enter() -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }
}
