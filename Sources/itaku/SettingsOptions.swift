import ArgumentParser
import Configuration
import Foundation
import ItakuCore
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
}
