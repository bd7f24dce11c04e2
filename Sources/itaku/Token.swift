import ArgumentParser
import Foundation
import ItakuCore
import ItakuDemo

struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mint an agent token from the local demo issuer.")

    @OptionGroup var options: SettingsOptions
    @Option(help: "The agent's employee id.") var agent: String
    @Option(help: "Lifetime in minutes (at most agents.maxTokenMinutes, or the token is refused).") var minutes = 480
    @Option(help: "The integration id the token is good for (its azp claim); omitted: any integration.")
    var integration: String?

    func run() async throws {
        let configuration = ItakuConfiguration(reader: try await options.reader())
        let keyring = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: false)
        let party = try integration.map { text -> UUID in
            guard let id = UUID(uuidString: text) else { throw ValidationError("--integration takes an integration id (a UUID)") }
            return id
        }
        print(try AgentToken.mint(employeeID: agent, keyring: keyring, lifetime: Double(minutes) * 60, authorizedParty: party))
    }
}
