import ArgumentParser
import Crypto
import Foundation
import ItakuCore
import ItakuData

/// Offline: no database, no service. The client checks a downloaded disposal record with the
/// checkpoint public key it was given (`GET /v1/access-log/checkpoints` names the key id).
struct VerifyDisposal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify-disposal",
        abstract: "Check a disposal record's signature offline and print what it says was disposed of."
    )

    @Argument(help: "The disposal record as downloaded (GET /v1/tenants/{tenant}/disposals/{id}).")
    var file: String

    @Option(help: "The checkpoint public key (base64 of 32 bytes).")
    var publicKey: String

    func run() async throws {
        guard let keyData = Data(base64Encoded: publicKey), let key = try? Curve25519.Signing.PublicKey(rawRepresentation: keyData) else {
            throw ValidationError("--public-key is not base64 of an Ed25519 public key")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        guard let signed = try? JSONDecoder().decode(SignedDisposal.self, from: data) else {
            print("NOT VALID: \(file) is not a disposal record")
            throw ExitCode(1)
        }
        let document: DisposalDocument
        do {
            document = try signed.verify(with: key)
        } catch {
            print("NOT VALID: \(error)")
            throw ExitCode(1)
        }
        // The key id in the file is not signed: name the key that verified it.
        let keyID = Keyring.keyID(key.rawRepresentation)
        print("valid: signed by key \(keyID)" + (keyID == signed.key_id ? "" : " (the file names key \(signed.key_id))"))
        print("disposal \(document.disposal_id) (\(document.kind.rawValue)): \(document.records) record(s) of \(document.tenant)/\(document.dataset)")
        print("disposed at \(document.disposed_at) by \(document.disposed_by)"
            + (document.subject_request.map { ", subject request \($0)" } ?? ""))
    }
}
