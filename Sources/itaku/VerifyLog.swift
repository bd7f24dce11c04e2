import ArgumentParser
import Crypto
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres

struct VerifyLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-log",
        abstract: "Check every access-log chain and checkpoint signature; name the first bad entry of each stream."
    )

    @OptionGroup var options: SettingsOptions

    @Option(help: "The checkpoint public key (base64 of 32 bytes). Default: the keyring's.")
    var publicKey: String?

    func run() async throws {
        let (configuration, _, database) = try await options.runtimeDatabase()
        defer { Task { await database.shutdown() } }
        let key: Curve25519.Signing.PublicKey
        if let publicKey {
            guard let data = Data(base64Encoded: publicKey) else { throw ValidationError("--public-key is not base64") }
            key = try Curve25519.Signing.PublicKey(rawRepresentation: data)
        } else {
            key = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: false)
                .checkpointSigningKey.publicKey
        }
        let report = try await AccessLogVerifier(publicKey: key).verify(database)
        for stream in report.streams {
            let state = stream.firstProblem.map { "FIRST PROBLEM \($0.problem) at seq \($0.seq.map(String.init) ?? "-")" + ($0.entryID.map { " (entry \($0.uuidString.lowercased()))" } ?? "") } ?? "ok"
            print("\(stream.stream): \(stream.entries) entries, \(stream.checkpoints) checkpoints: \(state)")
        }
        for finding in report.unchained { print("entry \(finding.entryID?.uuidString.lowercased() ?? "?") belongs to no chain") }
        print(report.clean ? "clean: \(report.entries) entries, \(report.checkpoints) checkpoints" : "NOT CLEAN")
        if !report.clean { throw ExitCode(1) }
    }
}
