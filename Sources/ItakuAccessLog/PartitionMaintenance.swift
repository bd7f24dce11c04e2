import ItakuPostgres
import Logging
import ServiceLifecycle

/// Keeps the access log's monthly partitions created three months ahead: at start and every
/// hour, so a long-running gateway never meets a month without a partition (an insert would
/// then fail, and requests would answer 503).
public struct PartitionMaintenance: Service {
    let database: PostgresClient
    let logger: Logger
    var interval: Duration = .seconds(3600)

    public init(database: PostgresClient, logger: Logger) {
        self.database = database
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await database.query("SELECT itaku.ensure_access_log_partitions(3)")
                } catch {
                    logger.warning("could not create access-log partitions", metadata: ["itaku.error": "\(error)"])
                }
                // Cancelled at shutdown: that ends the loop, it is not a failure of the service.
                try? await Task.sleep(for: interval)
            }
        }
    }
}
