import Crypto
import Foundation
import Synchronization

/// The secrets Itaku needs, kept outside PostgreSQL (DESIGN.md §7):
/// - the HMAC master secret, from which each tenant's digest key is derived;
/// - the Ed25519 key that signs access-log checkpoints;
/// - the Ed25519 key of the local demo agent-token issuer.
///
/// Read from a JSON file or a secret directory (one base64 file per key); a missing file is
/// generated on first local run with mode 0600. The description never shows key material.
public struct Keyring: Sendable, CustomStringConvertible {
    public let hmacMaster: SymmetricKey
    public let checkpointSigningKey: Curve25519.Signing.PrivateKey
    public let agentTokenKey: Curve25519.Signing.PrivateKey
    /// Derived digest keys by tenant: derivation is an HKDF each time, asked for on every request.
    private let digestKeys = DigestKeyCache()

    public init(
        hmacMaster: SymmetricKey,
        checkpointSigningKey: Curve25519.Signing.PrivateKey,
        agentTokenKey: Curve25519.Signing.PrivateKey
    ) {
        self.hmacMaster = hmacMaster
        self.checkpointSigningKey = checkpointSigningKey
        self.agentTokenKey = agentTokenKey
    }

    /// A new keyring from the system's secure random generator.
    public static func generate() -> Keyring {
        Keyring(
            hmacMaster: SymmetricKey(size: .bits256),
            checkpointSigningKey: Curve25519.Signing.PrivateKey(),
            agentTokenKey: Curve25519.Signing.PrivateKey()
        )
    }

    /// Identifies the checkpoint public key: the first 16 hex digits of its SHA-256.
    public var checkpointKeyID: String { Self.keyID(checkpointSigningKey.publicKey.rawRepresentation) }
    public var agentTokenKeyID: String { Self.keyID(agentTokenKey.publicKey.rawRepresentation) }

    /// The per-tenant key for digests of lookup values and subjects (HKDF from the master).
    public func digestKey(tenant: String) -> SymmetricKey {
        if let key = digestKeys.keys.withLock({ $0[tenant] }) { return key }
        let key = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: hmacMaster, salt: Data("itaku.digest.v1".utf8), info: Data(tenant.utf8), outputByteCount: 32
        )
        digestKeys.keys.withLock { $0[tenant] = key }
        return key
    }

    /// The console's key for sealing search filters that name a person into its links.
    public var consoleFilterKey: SymmetricKey {
        HKDF<SHA256>.deriveKey(
            inputKeyMaterial: hmacMaster, salt: Data("itaku.console.filters.v1".utf8), info: Data(), outputByteCount: 32
        )
    }

    public var description: String {
        "Keyring(checkpoint key \(checkpointKeyID), agent token key \(agentTokenKeyID))"
    }

    public static func keyID(_ publicKey: some DataProtocol) -> String {
        Hex.encode(SHA256.hash(data: Array(publicKey)).prefix(8))
    }
}

// MARK: - Files

extension Keyring {
    enum Name: String, CaseIterable {
        case hmacMaster = "hmac_master"
        case checkpointSigningKey = "checkpoint_signing_key"
        case agentTokenKey = "agent_token_key"
    }

    /// Loads the keyring: from `directory` when given, else from `file`, generating the file
    /// when it is missing and `generate` is set.
    public static func load(file: String, directory: String?, generate: Bool) throws -> Keyring {
        if let directory {
            var values: [String: String] = [:]
            for name in Name.allCases {
                let path = (directory as NSString).appendingPathComponent(name.rawValue)
                guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                    throw KeyringError.missing(name.rawValue)
                }
                values[name.rawValue] = text.trimmingCharacters(in: .whitespacesAndNewlines)
            }
            return try decode(values)
        }
        if !FileManager.default.fileExists(atPath: file) {
            guard generate else { throw KeyringError.noKeyring(file) }
            let keyring = Keyring.generate()
            try keyring.write(to: file)
            return keyring
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: file))
        guard let values = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw KeyringError.malformed("not a JSON object")
        }
        return try decode(values.compactMapValues { $0 as? String })
    }

    /// Writes the keyring as JSON, readable by its owner only; never replaces an existing file.
    public func write(to file: String) throws {
        let directory = (file as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let values: [String: String] = [
            "version": "1",
            Name.hmacMaster.rawValue: hmacMaster.withUnsafeBytes { Data($0).base64EncodedString() },
            Name.checkpointSigningKey.rawValue: checkpointSigningKey.rawRepresentation.base64EncodedString(),
            Name.agentTokenKey.rawValue: agentTokenKey.rawRepresentation.base64EncodedString(),
        ]
        let data = try JSONSerialization.data(withJSONObject: values, options: [.prettyPrinted, .sortedKeys])
        // Mode 0600 from its creation, and whole or absent after a crash (every data key is
        // wrapped with a key derived from this file's master secret).
        guard (try? DurableFile.create(file, contents: data)) == .created else { throw KeyringError.cannotWrite(file) }
    }

    static func decode(_ values: [String: String]) throws -> Keyring {
        func bytes(_ name: Name, count: Int) throws -> Data {
            guard let text = values[name.rawValue] else { throw KeyringError.missing(name.rawValue) }
            guard let data = Data(base64Encoded: text), data.count == count else {
                throw KeyringError.malformed("\(name.rawValue) must be \(count) bytes in base64")
            }
            return data
        }
        return Keyring(
            hmacMaster: SymmetricKey(data: try bytes(.hmacMaster, count: 32)),
            checkpointSigningKey: try .init(rawRepresentation: bytes(.checkpointSigningKey, count: 32)),
            agentTokenKey: try .init(rawRepresentation: bytes(.agentTokenKey, count: 32))
        )
    }
}

public enum KeyringError: Error, CustomStringConvertible {
    case missing(String)
    case malformed(String)
    case noKeyring(String)
    case cannotWrite(String)

    public var description: String {
        switch self {
        case .missing(let name): "keyring: \(name) is missing"
        case .malformed(let reason): "keyring: \(reason)"
        case .noKeyring(let file): "keyring: \(file) does not exist and keyring.generate is false"
        case .cannotWrite(let file): "keyring: cannot create \(file) (it may exist already)"
        }
    }
}

private final class DigestKeyCache: Sendable {
    let keys = Mutex<[String: SymmetricKey]>([:])
}
