import ArgumentParser
import Crypto
import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres

struct VerifyLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-log",
        abstract: "Check every access-log chain, seal and checkpoint; name every problem of each stream."
    )

    @OptionGroup var options: SettingsOptions

    @Option(help: "The checkpoint public key (base64 of 32 bytes). Default: the keyring's.")
    var publicKey: String?

    @Option(
        help: ArgumentHelp(
            "A file of the service's JSON log: its checkpoint lines are anchors (repeatable).",
            discussion: "Each stream's newest anchor must still name its entry: a stream cut back, or deleted with its checkpoints, is found."
        )
    )
    var anchors: [String] = []

    func run() async throws {
        let (configuration, _, database) = try await options.readerDatabase()
        defer { Task { await database.shutdown() } }
        let key: Curve25519.Signing.PublicKey
        if let publicKey {
            guard let data = Data(base64Encoded: publicKey) else { throw ValidationError("--public-key is not base64") }
            key = try Curve25519.Signing.PublicKey(rawRepresentation: data)
        } else {
            key = try Keyring.load(file: configuration.keyringFile, directory: configuration.keyringDirectory, generate: false)
                .checkpointSigningKey.publicKey
        }
        var anchored: [Checkpoint] = []
        for file in anchors {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
            anchored += text.split(separator: "\n").compactMap { Checkpoint(logLine: String($0)) }
        }
        if !anchors.isEmpty {
            let forged = anchored.filter { !$0.isValid(publicKey: key) }.count
            print("anchors: \(anchored.count) checkpoints read" + (forged == 0 ? "" : ", \(forged) not signed by this key (not used)"))
        }
        let report = try await AccessLogVerifier(publicKey: key).verify(database, anchors: anchored)
        for stream in report.streams {
            print("\(stream.stream): \(stream.entries) entries, \(stream.checkpoints) checkpoints, verified through \(stream.verifiedThrough): "
                + (stream.problems.isEmpty ? "ok" : "\(stream.problems.count) problem(s)"))
            for finding in stream.problems {
                print("  \(finding.problem) at seq \(finding.seq.map(String.init) ?? "-")" + (finding.entryID.map { " (entry \($0.lowercasedString))" } ?? ""))
            }
        }
        for finding in report.unchained { print("entry \(finding.entryID?.lowercasedString ?? "?") belongs to no chain") }
        for weakened in report.schema { print("schema: \(weakened)") }
        print(report.clean ? "clean: \(report.entries) entries, \(report.checkpoints) checkpoints" : "NOT CLEAN")
        if !report.clean { throw ExitCode(1) }
    }
}
