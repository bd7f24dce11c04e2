import Foundation
import ItakuPostgres
import Logging
import ServiceLifecycle
import Synchronization

/// Holds the current `RegistrySnapshot` and keeps it fresh: reloaded right after a change made
/// through this instance, on NOTIFY from any instance (within a second), and every 30 s as a
/// safety net should a notification be lost while the listener reconnects.
public final class Registry: Service, Sendable {
    public static let changeChannel = "itaku_registry"

    private let database: PostgresClient
    private let logger: Logger
    private let current = Mutex(RegistrySnapshot())
    private let reloads = Mutex<Int>(0)

    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    /// The snapshot to use for the whole of one request.
    public var snapshot: RegistrySnapshot { current.withLock { $0 } }

    /// Reads the registry from PostgreSQL and swaps the new snapshot in.
    public func reload() async throws {
        let fresh = try await database.withTransaction { try await RegistryStore.loadSnapshot(on: $0) }
        current.withLock { $0 = fresh }
        reloads.withLock { $0 += 1 }
    }

    public func run() async throws {
        try? await reload()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.listenForChanges() }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(30))
                    try? await self.reload()
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    private func listenForChanges() async {
        while !Task.isCancelled {
            do {
                try await database.listen(on: [Self.changeChannel], onReady: { try? await self.reload() }) { _ in
                    do { try await self.reload() } catch {
                        self.logger.warning("registry reload failed", metadata: ["itaku.error": "\(error)"])
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("registry listener lost its connection; retrying", metadata: ["itaku.error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }
}
