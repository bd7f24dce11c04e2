import ArgumentParser
import ItakuCore
import ItakuHTTP

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending database migrations as the owner role (db.migrationUrl)."
    )

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let configuration = ItakuConfiguration(reader: try await options.reader())
        try configuration.check()
        let logger = options.bootstrapLogging(configuration)
        try await migrate(url: configuration.migrationURL, connectTimeout: configuration.connectTimeoutSeconds, logger: logger)
        print("migrations are up to date")
    }
}
