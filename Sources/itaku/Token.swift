import ArgumentParser
import ItakuCore
import ItakuDemo

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mint an agent token from the local demo issuer.")

    @OptionGroup var options: SettingsOptions
    @Option(help: "The agent's employee id.") var agent: String
    @Option(help: "Lifetime in minutes.") var minutes = 480

    func run() async throws {
        let configuration = ItakuConfiguration(reader: try await options.reader())
        let keyring = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: false)
        print(try AgentToken.mint(employeeID: agent, keyring: keyring, lifetime: Double(minutes) * 60))
    }
}
