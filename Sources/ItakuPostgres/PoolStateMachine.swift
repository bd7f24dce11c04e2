/// The connection pool's bookkeeping as a pure value: each event returns what to do next, and
/// the caller does it outside the lock (the shape of PostgresNIO's `PoolStateMachine`).
///
/// `total` counts connections that are open or being opened; it never exceeds `maximum`.
struct PoolStateMachine<Connection, Waiter> {
    struct IdleConnection {
        var connection: Connection
        var since: ContinuousClock.Instant
    }

    enum LeaseAction {
        /// Use this idle connection (probe it first if it sat idle long).
        case use(Connection, idleSince: ContinuousClock.Instant)
        /// A slot is reserved: open a new connection.
        case open
        /// The waiter was queued; it is resumed by a later release.
        case wait
        /// The pool is closed.
        case fail
    }

    enum ReleaseAction {
        case none
        /// Give this connection to the waiter.
        case handOver(Connection, to: Waiter)
        /// Close the connection; if a waiter is named, its slot is reserved and it must open one.
        case close(Connection, openFor: Waiter?)
    }

    let maximum: Int
    private(set) var total = 0
    private(set) var idle: [IdleConnection] = []
    private(set) var waiters: [(id: Int, waiter: Waiter)] = []
    private(set) var isShutDown = false

    init(maximum: Int) {
        self.maximum = maximum
    }

    var inUse: Int { total - idle.count }

    mutating func lease(id: Int, waiter: Waiter, now: ContinuousClock.Instant) -> LeaseAction {
        if isShutDown { return .fail }
        if let entry = idle.popLast() { return .use(entry.connection, idleSince: entry.since) }
        if total < maximum {
            total += 1
            return .open
        }
        waiters.append((id, waiter))
        return .wait
    }

    /// A connection comes back. `reusable` is false when it is broken or inside a transaction.
    mutating func release(_ connection: Connection, reusable: Bool, now: ContinuousClock.Instant) -> ReleaseAction {
        if reusable && !isShutDown {
            if !waiters.isEmpty {
                return .handOver(connection, to: waiters.removeFirst().waiter)
            }
            idle.append(IdleConnection(connection: connection, since: now))
            return .none
        }
        total -= 1
        return .close(connection, openFor: reserveSlotForWaiter())
    }

    /// Opening a connection failed; its slot is freed and possibly given to a waiter.
    mutating func openFailed() -> Waiter? {
        total -= 1
        return reserveSlotForWaiter()
    }

    /// A waiting task was cancelled; returns its waiter if it was still queued.
    mutating func cancelWaiter(id: Int) -> Waiter? {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return nil }
        return waiters.remove(at: index).waiter
    }

    /// Removes every idle connection and every waiter; later releases close their connection.
    mutating func shutDown() -> (close: [Connection], fail: [Waiter]) {
        isShutDown = true
        let closing = idle.map(\.connection)
        total -= idle.count
        idle.removeAll()
        let failing = waiters.map(\.waiter)
        waiters.removeAll()
        return (closing, failing)
    }

    private mutating func reserveSlotForWaiter() -> Waiter? {
        guard !isShutDown, total < maximum, !waiters.isEmpty else { return nil }
        total += 1
        return waiters.removeFirst().waiter
    }
}
