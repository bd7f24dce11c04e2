import ArgumentParser
import Foundation
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuPostgres

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seed the demo tenants, data, agents and integrations; write fresh demo credentials."
    )

    @OptionGroup var options: SettingsOptions

    @Option(help: "Where to write the credentials (default: <state.directory>/demo.env).")
    var envFile: String?

    func run() async throws {
        try await options.withRuntimeDatabase { configuration, logger, database, keyring in
            let url = "http://\(configuration.httpHost):\(configuration.httpPort)"
            let credentials = try await DemoSeeder(
                database: database, keyring: keyring, dataKeys: DataKeys(configuration: configuration, keyring: keyring), logger: logger
            ).seed(url: url)
            let path = envFile ?? configuration.stateDirectory + "/demo.env"
            // Created with mode 0600 from its first byte (never readable by others, even briefly).
            try? FileManager.default.removeItem(atPath: path)
            guard case .created = try DurableFile.create(path, contents: Data(credentials.envFile.utf8)) else {
                throw ValidationError("could not write \(path)")
            }
            print("demo credentials written to \(path)")
        }
    }
}
