import ArgumentParser
import Crypto
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres

/// Measures the access-log writer on the configured database: how many entries per second it
/// durably commits with a given number of concurrent callers.
struct BenchLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-log", abstract: "Measure access-log writer throughput.", shouldDisplay: false
    )

    @OptionGroup var options: SettingsOptions
    @Option(help: "Entries to write.") var entries = 100_000
    @Option(help: "Concurrent callers, each awaiting its own commit.") var concurrency = 64
    @Option(help: "The tenant (code) the entries belong to; none by default.") var tenant: String?
    @Option(help: "Agents the entries name, A0001 and on.") var agents = 50

    func run() async throws {
        let (configuration, logger, _) = try await options.runtimeDatabase()
        let database = PostgresClient(
            configuration: PostgresConfiguration(url: configuration.databaseURL, minimumConnections: 2, maximumConnections: 4), logger: logger
        )
        let keyring = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: false)
        let writer = AccessLogWriter(database: database, keyring: keyring, instanceID: "bench", logger: logger)
        let service = Task { try await writer.run() }
        var tenantID: UUID?
        if let tenant {
            let rows = try await database.withConnection { try await $0.query("SELECT tenant_id FROM itaku.tenants WHERE code = \(tenant)") }
            guard let row = rows.first else { throw ValidationError("no tenant \(tenant)") }
            tenantID = try row.decode(0, as: UUID.self)
        }
        let total = entries, callers = concurrency, agents = max(1, agents), owner = tenantID
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<callers {
                group.addTask {
                    for n in stride(from: worker, to: total, by: callers) {
                        var entry = AccessEntry(tenantID: owner, actorRole: "integration", actorKeyID: nil, operation: .lookup, decision: .allow, reason: "allowed")
                        entry.agent = "A" + String(10_001 + n % agents).dropFirst()
                        entry.purposeKey = "order-support"
                        entry.purposeVersion = 1
                        entry.caseRef = "BENCH-\(n)"
                        entry.dataset = "customers"
                        entry.lookupKind = "phone"
                        entry.lookupDigest = Array(SHA256.hash(data: Data("\(n)".utf8)))
                        entry.recordIDs = [UUID()]
                        entry.subjectDigests = [Hex.encode(SHA256.hash(data: Data("subject \(n)".utf8)))]
                        entry.fields = ["name": "plain", "name_kana": "plain", "phone": "plain", "address": "plain", "email": "mask"]
                        entry.rowsReturned = 1
                        try await writer.append(entry)
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        await writer.checkpoint()
        service.cancel()
        await database.shutdown()
        print(String(format: "%d entries, %d concurrent callers: %.2f s, %.0f entries/s", total, callers, seconds, Double(total) / seconds))
    }
}
