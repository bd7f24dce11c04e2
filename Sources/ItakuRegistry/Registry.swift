import Foundation
import ItakuPostgres
import Logging
import ServiceLifecycle
import Synchronization

/// Holds the current `RegistrySnapshot` and keeps it fresh: reloaded right after a change made
/// through this instance, within 50 ms of a NOTIFY from any instance, and every 30 s (or a third
/// of `maxAge`) as a safety net should a notification be lost while the listener reconnects.
/// A snapshot read longer than `maxAge` ago is not fresh: the instance then refuses to act on
/// it (a key revoked or an assignment ended since would still be in it).
public final class Registry: Service, Sendable {
    public static let changeChannel = "itaku_registry"

    private let database: PostgresClient
    private let logger: Logger
    /// The snapshot in force, its reload's ticket, and when that reload began to read (what the
    /// snapshot says held at least then).
    private let current = Mutex<(ticket: Int, snapshot: RegistrySnapshot, readAt: ContinuousClock.Instant?)>((0, RegistrySnapshot(), nil))
    public let maxAge: Duration
    private let tickets = Atomic<Int>(0)
    /// Set by a NOTIFY; the refresher reloads and clears it.
    private let dirty = Mutex(false)

    public init(database: PostgresClient, logger: Logger, maxAge: Duration = .seconds(120)) {
        self.database = database
        self.logger = logger
        self.maxAge = maxAge
    }

    /// Asks the refresher to reload at its next turn (within 50 ms), as a notice does.
    public func reloadSoon() {
        dirty.withLock { $0 = true }
    }

    /// Whether the snapshot in force was read within `maxAge` (false before the first read).
    public var isFresh: Bool {
        guard let readAt = current.withLock({ $0.readAt }) else { return false }
        return ContinuousClock.now - readAt <= maxAge
    }

    /// The snapshot to use for the whole of one request.
    public var snapshot: RegistrySnapshot { current.withLock { $0.snapshot } }

    /// Reads the registry from PostgreSQL and swaps the new snapshot in.
    ///
    /// Reloads can overlap (a NOTIFY and a change on this instance). Each takes a ticket before
    /// it reads; a snapshot replaces the current one only if its reload started later, so a slow
    /// reload that began before a change never puts the older state back.
    public func reload() async throws {
        let ticket = tickets.add(1, ordering: .relaxed).newValue
        let started = ContinuousClock.now
        // One snapshot of the database for all its reads: a dataset and a purpose changed
        // between two of them never meet in one registry.
        let fresh = try await database.withTransaction { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return try await RegistryStore.loadSnapshot(on: connection)
        }
        current.withLock { current in
            guard ticket > current.ticket else { return }
            current = (ticket, fresh, started)
        }
    }

    public func run() async throws {
        try? await reload()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listenForChanges() }
            group.addTask { await self.refreshWhenChanged() }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// Reloads at most every 50 ms while notifications arrive (a burst of changes costs one
    /// reload), and every 30 s regardless. A reload that fails is tried again after a pause
    /// that doubles up to 5 s (a quarter of `maxAge` if less): a database that is down is not
    /// asked twenty times a second, nor is the log filled with its failures (`Outage`).
    private func refreshWhenChanged() async {
        var sinceFullReload = ContinuousClock.now
        let outage = Outage(logger: logger, failing: "registry reload failed", recovered: "registry reload works again")
        while !Task.isCancelled {
            try? await Task.sleep(for: outage.pause(after: .milliseconds(50), upTo: min(.seconds(5), maxAge / 4)))
            let changed = dirty.withLock { dirty in
                defer { dirty = false }
                return dirty
            }
            guard changed || ContinuousClock.now - sinceFullReload > min(.seconds(30), maxAge / 3) else { continue }
            do {
                try await reload()
                sinceFullReload = .now
                outage.ended()
            } catch {
                dirty.withLock { $0 = true }
                outage.failed(error)
            }
        }
    }

    private func listenForChanges() async {
        let outage = Outage(logger: logger, failing: "registry listener lost its connection; retrying", recovered: "registry listener is listening again")
        while !Task.isCancelled {
            do {
                // Once listening, reload: changes made while the listener was down are not lost.
                try await database.listen(on: [Self.changeChannel], onReady: {
                    self.dirty.withLock { $0 = true }
                    outage.ended()
                }) { _ in
                    self.dirty.withLock { $0 = true }
                }
            } catch {
                if Task.isCancelled { return }
                outage.failed(error)
                try? await Task.sleep(for: outage.pause(after: .milliseconds(500), upTo: .seconds(5)))
            }
        }
    }
}

/// The failures of one thing tried again and again (a reload, a listener) while the database is
/// away: the first is logged at once, then one line every 30 s with how many failed since, and
/// one when it works again. A connection that comes and goes logs no more often than that: a
/// warning at most every 30 s, and a notice only after a warning. Its pause doubles with each
/// failure in a row.
final class Outage: Sendable {
    private struct State {
        var failures = 0
        var unlogged = 0
        var loggedAt: ContinuousClock.Instant?
        /// A warning was logged and no notice since.
        var announced = false
    }

    let logger: Logger
    let failing: Logger.Message
    let recovered: Logger.Message
    private let state = Mutex(State())

    init(logger: Logger, failing: Logger.Message, recovered: Logger.Message) {
        self.logger = logger
        self.failing = failing
        self.recovered = recovered
    }

    /// Failures in a row so far.
    var failures: Int { state.withLock { $0.failures } }

    /// How long to wait before the next try: `base`, doubled for each failure in a row, at most
    /// `limit`.
    func pause(after base: Duration, upTo limit: Duration) -> Duration {
        min(limit, base * (1 << min(failures, 16)))
    }

    func failed(_ error: any Error) {
        let now = ContinuousClock.now
        let count: Int? = state.withLock { state in
            state.failures += 1
            state.unlogged += 1
            guard state.loggedAt.map({ now - $0 >= .seconds(30) }) ?? true else { return nil }
            defer { state.unlogged = 0 }
            state.loggedAt = now
            state.announced = true
            return state.unlogged
        }
        guard let count else { return }
        logger.warning(failing, metadata: ["itaku.error": "\(error)", "itaku.failures": "\(count)"])
    }

    func ended() {
        let failures: Int? = state.withLock { state in
            defer {
                state.failures = 0
                state.announced = false
            }
            return state.announced ? state.failures : nil
        }
        guard let failures else { return }
        logger.notice(recovered, metadata: ["itaku.failures": "\(failures)"])
    }
}
