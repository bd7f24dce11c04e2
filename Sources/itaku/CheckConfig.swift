import ArgumentParser
import Foundation
import ItakuCore

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Print the effective configuration, with secrets redacted."
    )

    @OptionGroup var options: SettingsOptions

    func run() async throws {
        let configuration = ItakuConfiguration(reader: try await options.reader())
        let width = configuration.redactedDescription.map(\.key.count).max() ?? 0
        for (key, value) in configuration.redactedDescription {
            print(key.padding(toLength: width, withPad: " ", startingAt: 0) + " = " + value)
        }
        // Problems go to standard error, where a script that reads the settings above still shows them.
        for problem in configuration.problems { FileHandle.standardError.write(Data("unusable setting: \(problem)\n".utf8)) }
        for setting in configuration.unverifiedDatabaseURLs {
            FileHandle.standardError.write(Data("warning: \(setting) reaches PostgreSQL over TCP without verifying its certificate (sslmode=verify-full)\n".utf8))
        }
        guard configuration.problems.isEmpty else { throw ExitCode(1) }
        // The keyring is reported by key ids only; nothing secret is printed.
        let keyringSource = configuration.keyringDirectory ?? configuration.keyringFile
        if configuration.keyringDirectory == nil, !FileManager.default.fileExists(atPath: configuration.keyringFile) {
            print("keyring: \(keyringSource) does not exist" + (configuration.generateKeyring ? " (generated on first serve)" : ""))
            return
        }
        do {
            let keyring = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: false)
            print("keyring: \(keyringSource): checkpoint key \(keyring.checkpointKeyID), agent token key \(keyring.agentTokenKeyID)")
        } catch {
            FileHandle.standardError.write(Data("keyring: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
