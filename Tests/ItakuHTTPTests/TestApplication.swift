import Configuration
import Foundation
import Hummingbird
import ItakuHTTP
import ItakuTestSupport
import Logging
import Synchronization

/// Builds Itaku exactly as `itaku serve` does, pointed at a test database, on a free port,
/// with its own keyring in a temporary folder.
func makeApplication(
    database: TestDatabase,
    settings: [AbsoluteConfigKey: ConfigValue] = [:],
    logger: Logger = Logger(label: "itaku.test")
) async throws -> some ApplicationProtocol {
    let state = try TestStateFolders.make()
    var values: [AbsoluteConfigKey: ConfigValue] = [
        "http.port": 0,
        "state.directory": .init(.string(state), isSecret: false),
        "db.url": .init(.string(database.url(role: .runtime)), isSecret: true),
        "db.migrationUrl": .init(.string(database.url(role: .owner)), isSecret: true),
        "db.pool.minimum": 1,
        "db.pool.maximum": 4,
    ]
    values.merge(settings) { $1 }
    return try await buildApplication(reader: ConfigReader(provider: InMemoryProvider(values: values)), logger: logger)
}

/// Asks `condition` every 20 ms until it holds or `limit` has passed: how long it took to hold,
/// or nil if it never did. For changes that reach another instance "within a second".
func timeUntil(limit: Duration = .seconds(2), _ condition: () async throws -> Bool) async rethrows -> Duration? {
    let clock = ContinuousClock()
    let start = clock.now
    while clock.now - start < limit {
        if try await condition() { return clock.now - start }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return nil
}

/// A change that must reach another instance within `limit`, made up to `attempts` times until
/// one does (`change` makes the attempt-th change, `reached` says whether the other instance
/// shows it). On a machine that the tests beside this one load, a reload can be held up now and
/// then; one change within the limit shows the path works. Returns each attempt's time.
func reachesWithin(
    _ limit: Duration = .seconds(1), attempts: Int = 3,
    change: (Int) async throws -> Void, reached: (Int) async throws -> Bool
) async throws -> [Duration?] {
    var times: [Duration?] = []
    for attempt in 1...attempts where !times.contains(where: { $0.map { $0 < limit } == true }) {
        try await change(attempt)
        times.append(try await timeUntil { try await reached(attempt) })
    }
    return times
}

/// A log handler that keeps records in memory, so a test can read what Itaku logged.
final class CapturedLogs: Sendable {
    struct Record: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let records = Mutex<[Record]>([])

    var all: [Record] { records.withLock { $0 } }

    func logger() -> Logger {
        Logger(label: "itaku.test") { _ in Handler(sink: self) }
    }

    fileprivate func append(_ record: Record) {
        records.withLock { $0.append(record) }
    }

    private struct Handler: LogHandler {
        let sink: CapturedLogs
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.append(Record(level: event.level, message: event.message.description, metadata: merged.mapValues { "\($0)" }))
        }
    }
}
