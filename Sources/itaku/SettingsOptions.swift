import ArgumentParser
import Configuration
import Foundation
import ItakuCore
import ItakuAccessLog
import ItakuPostgres
import Logging

/// The options every subcommand shares: a config file and any `--key value` settings.
struct SettingsOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "YAML configuration file (default: Config/itaku.yaml).")
    var configFile: String?

    @Argument(parsing: .allUnrecognized, help: .hidden)
    var settings: [String] = []

    func reader() async throws -> ConfigReader {
        try await ConfigReader.itaku(arguments: settings, configFile: configFile)
    }

    /// Sets up logging once for the process: JSON lines (default) or text, at the configured level.
    func bootstrapLogging(_ configuration: ItakuConfiguration) -> Logger {
        let level = Logger.Level(rawValue: configuration.logLevel) ?? .info
        let json = configuration.logFormat != "text"
        LoggingSystem.bootstrap { label in
            if json { return JSONLogHandler(label: label, level: level) }
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: "itaku")
    }

    /// The configuration, a logger, and a small client of the runtime role's database, for
    /// commands that work on the registry directly. The caller shuts the client down.
    func runtimeDatabase() async throws -> (ItakuConfiguration, Logger, PostgresClient) {
        let configuration = ItakuConfiguration(reader: try await reader())
        try configuration.check()
        let logger = bootstrapLogging(configuration)
        var settings = PostgresConfiguration(url: configuration.databaseURL, minimumConnections: 0, maximumConnections: 2)
        settings.transactionPooler = configuration.transactionPooler
        let database = PostgresClient(configuration: settings, logger: logger)
        return (configuration, logger, database)
    }

    /// Like `runtimeDatabase`, for the cross-tenant reader role (`db.readerUrl`).
    func readerDatabase() async throws -> (ItakuConfiguration, Logger, PostgresClient) {
        let configuration = ItakuConfiguration(reader: try await reader())
        try configuration.check()
        let logger = bootstrapLogging(configuration)
        let connection = configuration.readerConnection()
        var settings = PostgresConfiguration(
            url: connection.url, parameters: connection.parameters, minimumConnections: 0, maximumConnections: 2
        )
        settings.transactionPooler = configuration.transactionPooler
        let database = PostgresClient(configuration: settings, logger: logger)
        return (configuration, logger, database)
    }
}

extension SettingsOptions {
    /// Runs `body` with the configuration, a logger, a runtime-role client and the keyring, and
    /// shuts the client down however `body` ends.
    func withRuntimeDatabase<T>(_ body: (ItakuConfiguration, Logger, PostgresClient, Keyring) async throws -> T) async throws -> T {
        let (configuration, logger, database) = try await runtimeDatabase()
        do {
            let keyring = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: configuration.generateKeyring)
            let result = try await body(configuration, logger, database, keyring)
            await database.shutdown()
            return result
        } catch {
            await database.shutdown()
            throw error
        }
    }

    /// A writer for the CLI's own `configure` entries (its own stream; no service running).
    func accessLog(_ configuration: ItakuConfiguration, database: PostgresClient, logger: Logger) throws -> AccessLogWriter {
        let keyring = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: configuration.generateKeyring)
        return AccessLogWriter(database: database, keyring: keyring, instanceID: configuration.instanceID + "-cli", logger: logger)
    }
}

extension AccessEntry {
    /// The `configure` entry of a change made with the CLI.
    static func cli(target: String, tenantID: UUID? = nil) -> AccessEntry {
        var entry = AccessEntry(tenantID: tenantID, actorRole: "cli", actorKeyID: nil, operation: .configure, decision: .allow, reason: "allowed")
        entry.target = target
        return entry
    }
}
