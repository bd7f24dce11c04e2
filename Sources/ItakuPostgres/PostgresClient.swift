import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A pool of libpq connections, run as a `Service`.
///
/// Every libpq call runs on a dedicated `NIOThreadPool` (never on Swift's cooperative threads,
/// which a blocking call would stall), sized to the pool maximum plus room for a LISTEN
/// connection and cancellations, so a queued work item never waits behind a full pool.
/// A connection that comes back broken or inside a transaction is closed, never lent again.
/// Connections open on demand; `run()` warms up the minimum and closes everything on shutdown.
public final class PostgresClient: Service, Sendable {
    public struct Stats: Sendable, Equatable {
        public var open: Int
        public var inUse: Int
        public var idle: Int
        public var waiters: Int
        public var maximum: Int
    }

    private typealias Waiter = CheckedContinuation<Grant, any Error>
    private enum Grant: Sendable {
        case connection(ConnectionHandle, idleSince: ContinuousClock.Instant?)
        case open
    }

    public let configuration: PostgresConfiguration
    let threadPool: NIOThreadPool
    private let logger: Logger
    private let state: Mutex<PoolStateMachine<ConnectionHandle, Waiter>>
    private let nextWaiterID = Atomic<Int>(0)

    public init(configuration: PostgresConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.state = Mutex(PoolStateMachine(maximum: configuration.maximumConnections))
        self.threadPool = NIOThreadPool(numberOfThreads: configuration.maximumConnections + 2)
        self.threadPool.start()
    }

    // MARK: Service

    public func run() async throws {
        await warmUp()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Opens connections up to the minimum; failures are logged, not fatal (the database may
    /// come up later, and `/readyz` says so meanwhile).
    func warmUp() async {
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<configuration.minimumConnections {
                    group.addTask { try await self.withConnection { _ in } }
                }
                try await group.waitForAll()
            }
        } catch {
            logger.warning("database not reachable at start", metadata: ["itaku.db.error": "\(error)"])
        }
    }

    /// Closes idle connections, fails waiters and stops the thread pool once leased
    /// connections have been returned. Safe to call more than once.
    public func shutdown() async {
        let (closing, failing) = state.withLock { $0.shutDown() }
        for waiter in failing { waiter.resume(throwing: PostgresError(.poolClosed)) }
        for handle in closing { try? await threadPool.runUncancellable { handle.close() } }
        while state.withLock({ $0.total > 0 }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
        try? await threadPool.shutdownGracefully()
    }

    public var stats: Stats {
        state.withLock { s in
            Stats(open: s.total, inUse: s.inUse, idle: s.idle.count, waiters: s.waiters.count, maximum: s.maximum)
        }
    }

    /// Whether a task waits for a connection now.
    public var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }

    // MARK: Leasing

    /// Lends a connection to `body` and takes it back afterwards.
    public func withConnection<Result: Sendable>(
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let handle = try await lease()
        let connection = PostgresConnection(handle: handle, threadPool: threadPool, beginStatements: configuration.beginStatements)
        do {
            let result = try await body(connection)
            await release(handle)
            return result
        } catch {
            await release(handle)
            throw error
        }
    }

    /// Runs one statement on a pooled connection.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query) }
    }

    /// Runs `body` inside `BEGIN` … `COMMIT`; any error rolls back and is rethrown. A connection
    /// left in a transaction (rollback impossible) is closed on release, never reused.
    public func withTransaction<Result: Sendable>(
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection { connection in
            try await connection.begin()
            do {
                let result = try await body(connection)
                try await connection.commit()
                return result
            } catch {
                _ = try? await connection.query("ROLLBACK")
                throw error
            }
        }
    }

    private func lease() async throws -> ConnectionHandle {
        while true {
            let id = nextWaiterID.add(1, ordering: .relaxed).newValue
            let grant: Grant = try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (continuation: Waiter) in
                    let action = state.withLock { state -> PoolStateMachine<ConnectionHandle, Waiter>.LeaseAction in
                        // Checked under the lock: a cancellation that lands after this check
                        // finds the waiter queued and resumes it.
                        if Task.isCancelled { return .fail }
                        return state.lease(id: id, waiter: continuation, now: .now)
                    }
                    switch action {
                    case .use(let handle, let since): continuation.resume(returning: .connection(handle, idleSince: since))
                    case .open: continuation.resume(returning: .open)
                    case .wait: break
                    case .fail:
                        let closed = state.withLock { $0.isShutDown }
                        continuation.resume(throwing: closed ? PostgresError(.poolClosed) : CancellationError())
                    }
                }
            } onCancel: {
                state.withLock { $0.cancelWaiter(id: id) }?.resume(throwing: CancellationError())
            }

            switch grant {
            case .open:
                do {
                    let configuration = self.configuration
                    return try await threadPool.runIfActive { try ConnectionHandle.connect(configuration) }
                } catch {
                    state.withLock { $0.openFailed() }?.resume(returning: .open)
                    throw error
                }
            case .connection(let handle, let since):
                guard let since, ContinuousClock.now - since > configuration.probeIdleAfter else { return handle }
                if (try? await threadPool.runIfActive { handle.probe() }) == true { return handle }
                // The server dropped it while idle: discard and lease again.
                await release(handle, reusable: false)
            }
        }
    }

    private func release(_ handle: ConnectionHandle, reusable known: Bool? = nil) async {
        let reusable: Bool
        if let known {
            reusable = known
        } else {
            // As the last operation left it, recorded on the pool thread: no hop to read it.
            reusable = handle.reusableWhenSettled
        }
        let action = state.withLock { $0.release(handle, reusable: reusable, now: .now) }
        switch action {
        case .none:
            break
        case .handOver(let handle, let waiter):
            waiter.resume(returning: .connection(handle, idleSince: nil))
        case .close(let handle, let waiter):
            if !reusable { logger.debug("closing a connection that is broken or inside a transaction") }
            _ = try? await threadPool.runUncancellable { handle.close() }
            waiter?.resume(returning: .open)
        }
    }

    // MARK: LISTEN

    /// LISTENs on `channels` over a dedicated connection (not one of the pool's) and calls
    /// `onNotification` for each NOTIFY until the task is cancelled or the connection breaks.
    /// `onReady` runs once LISTEN is in effect. Callers that must survive restarts loop over it.
    /// The connection goes to `configuration.listenURL` when set (past a transaction pooler).
    public func listen(
        on channels: [String],
        onReady: @Sendable () async -> Void = {},
        onNotification: @Sendable (PostgresNotification) async -> Void
    ) async throws {
        let configuration = self.configuration.listenConfiguration
        let handle = try await threadPool.runIfActive { try ConnectionHandle.connect(configuration) }
        do {
            for channel in channels {
                let quoted = try await threadPool.runIfActive { try handle.escapeIdentifier(channel) }
                _ = try await threadPool.runIfActive { try handle.execute("LISTEN \(quoted)", PostgresBindings()) }
            }
            await onReady()
            while !Task.isCancelled {
                let notes = try await threadPool.runIfActive { try handle.waitForNotifications(timeoutMilliseconds: 200) }
                for note in notes { await onNotification(note) }
            }
        } catch {
            _ = try? await threadPool.runUncancellable { handle.close() }
            throw error
        }
        _ = try? await threadPool.runUncancellable { handle.close() }
    }
}

extension NIOThreadPool {
    /// Like `runIfActive`, but the work runs even if the calling task is cancelled: for taking a
    /// connection back and closing it, which must happen whatever became of the request.
    func runUncancellable<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            submit { state in
                switch state {
                case .active: continuation.resume(with: Result(catching: body))
                case .cancelled: continuation.resume(throwing: PostgresError(.poolClosed))
                }
            }
        }
    }
}
