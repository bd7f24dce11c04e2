import ArgumentParser
import Hummingbird
import ItakuCore
import ItakuHTTP

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the HTTP API (the default command).")

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let reader = try await options.reader()
        let logger = options.bootstrapLogging(ItakuConfiguration(reader: reader))
        let app = try await buildApplication(reader: reader, logger: logger)
        // Handles SIGTERM and SIGINT: stop accepting, finish in-flight requests, close the pool.
        try await app.runService()
    }
}
