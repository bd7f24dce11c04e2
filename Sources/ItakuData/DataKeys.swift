import Crypto
import Foundation
import ItakuCore
import Synchronization

/// Each tenant's data key: the AES-256-GCM key its records' fields are sealed with.
///
/// A data key lives only in the key directory (`keyring.dataKeysDirectory`), one file per
/// tenant, wrapped (AES-GCM) by a key derived from the keyring's master secret; never in the
/// database. A database backup therefore holds ciphertext only, and destroying a tenant's key
/// file (the contract's end) leaves every backup of that tenant's records unreadable for good,
/// while other tenants' keys stay. Instances share the directory; the first to need a key
/// creates it (an exclusive link, so two instances never make two keys).
public final class DataKeys: Sendable {
    public enum KeyError: Error, CustomStringConvertible {
        /// The tenant's key was destroyed (or never made): its sealed records cannot be opened.
        case destroyed(UUID)
        case unreadable(UUID)

        public var description: String {
            switch self {
            case .destroyed(let tenant): "the data key of tenant \(tenant.lowercasedString) does not exist (destroyed?)"
            case .unreadable(let tenant): "the data key file of tenant \(tenant.lowercasedString) cannot be unwrapped"
            }
        }
    }

    public let directory: String
    private let wrapping: SymmetricKey
    /// Keys in use, with when their file was last seen: a key destroyed by another instance is
    /// dropped here within a second.
    private let cache = Mutex<[UUID: (key: SymmetricKey, seen: ContinuousClock.Instant)]>([:])

    public init(directory: String, keyring: Keyring) {
        self.directory = directory
        self.wrapping = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: keyring.hmacMaster, info: Data("itaku data-key wrapping v1".utf8), outputByteCount: 32
        )
    }

    private func path(_ tenant: UUID) -> String { directory + "/" + tenant.lowercasedString + ".key" }

    private func authenticated(_ tenant: UUID) -> Data { Data(("itaku data key " + tenant.lowercasedString).utf8) }

    /// Marks a tenant whose key was destroyed: no key is ever made for it again.
    private func tombstone(_ tenant: UUID) -> String { directory + "/" + tenant.lowercasedString + ".destroyed" }

    /// The tenant's key, made on first use; never again once destroyed (`KeyError.destroyed`).
    public func key(for tenant: UUID) throws -> SymmetricKey {
        if let key = try existingKey(for: tenant) { return key }
        // A request that still saw the tenant before its contract ended must not make it a new
        // key: records sealed with it would be readable after the end.
        if FileManager.default.fileExists(atPath: tombstone(tenant)) { throw KeyError.destroyed(tenant) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let key = SymmetricKey(size: .bits256)
        let sealed = try AES.GCM.seal(key.withUnsafeBytes { Data($0) }, using: wrapping, authenticating: authenticated(tenant))
        guard let combined = sealed.combined else { throw KeyError.unreadable(tenant) }
        // Created 0600 and exclusively, and durable with its name before any record is sealed
        // with it; whoever links first made the tenant's one key.
        _ = try DurableFile.create(path(tenant), contents: combined)
        guard let made = try existingKey(for: tenant) else { throw KeyError.unreadable(tenant) }
        return made
    }

    /// The tenant's key if it exists.
    public func existingKey(for tenant: UUID) throws -> SymmetricKey? {
        let now = ContinuousClock.now
        if let cached = cache.withLock({ $0[tenant] }), now - cached.seen < .seconds(1) { return cached.key }
        guard let data = FileManager.default.contents(atPath: path(tenant)) else {
            cache.withLock { _ = $0.removeValue(forKey: tenant) }
            return nil
        }
        guard let box = try? AES.GCM.SealedBox(combined: data),
              let raw = try? AES.GCM.open(box, using: wrapping, authenticating: authenticated(tenant)) else {
            throw KeyError.unreadable(tenant)
        }
        let key = SymmetricKey(data: raw)
        cache.withLock { $0[tenant] = (key, now) }
        return key
    }

    /// Destroys the tenant's key: its sealed records, wherever copies of them are, can no
    /// longer be opened. Returns whether there was a key.
    @discardableResult
    public func destroy(tenant: UUID) throws -> Bool {
        cache.withLock { _ = $0.removeValue(forKey: tenant) }
        // The tombstone first: from here on no instance makes the tenant a key.
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        _ = try DurableFile.create(tombstone(tenant), contents: Data("destroyed \(Date().timeIntervalSince1970)\n".utf8))
        let path = path(tenant)
        guard FileManager.default.fileExists(atPath: path) else { return false }
        // Overwrite before unlinking, so the wrapped key is not left in the file's old blocks
        // for an ordinary read of the disk (a copy-on-write file system may still keep them).
        if let handle = FileHandle(forWritingAtPath: path) {
            let size = (try? handle.seekToEnd()) ?? 0
            try? handle.seek(toOffset: 0)
            try? handle.write(contentsOf: Data(count: Int(size)))
            try? handle.synchronize()
            try? handle.close()
        }
        try FileManager.default.removeItem(atPath: path)
        try DurableFile.syncDirectory(directory)
        return true
    }
}

/// Seals and opens a record's fields with its tenant's data key. A sealed record is stored as
/// `{"$sealed": "<base64 of nonce, ciphertext and tag>"}` (field names never start with `$`);
/// the record's tenant and id are authenticated with it, so a sealed document moved to another
/// record does not open. Records stored before sealing (plain JSON) open as they are.
public struct FieldSealer: Sendable {
    public let tenantID: UUID
    let key: SymmetricKey

    public init(tenantID: UUID, key: SymmetricKey) {
        self.tenantID = tenantID
        self.key = key
    }

    public enum SealError: Error, CustomStringConvertible {
        case cannotOpen

        public var description: String { "a sealed record could not be opened with its tenant's data key" }
    }

    static let marker = "$sealed"

    private func authenticated(_ record: String) -> Data {
        Data(("itaku record " + tenantID.lowercasedString + " " + record.lowercased()).utf8)
    }

    /// The stored form of `json` (the record's fields as a JSON object) for record `record`.
    public func seal(_ json: String, record: String) throws -> String {
        let box = try AES.GCM.seal(Data(json.utf8), using: key, authenticating: authenticated(record))
        guard let combined = box.combined else { throw SealError.cannotOpen }
        return "{\"\(Self.marker)\":\"" + combined.base64EncodedString() + "\"}"
    }

    /// The fields of a stored document, sealed or plain.
    public func open(_ document: String, record: String) throws -> [String: String] {
        try Self.open(document, record: record) { box, record in
            try AES.GCM.open(box, using: key, authenticating: authenticated(record))
        }
    }

    /// Whether the stored document is sealed.
    /// (jsonb writes a one-key object as `{"$sealed": …}`; `seal` writes `{"$sealed":…}`.)
    public static func isSealed(_ document: String) -> Bool {
        document.hasPrefix("{\"\(marker)\"")
    }

    static func open(_ document: String, record: String, _ decrypt: (AES.GCM.SealedBox, String) throws -> Data) throws -> [String: String] {
        let sealed: String
        if let base64 = sealedText(document) {
            sealed = String(base64)
        } else {
            let object = (try? JSONSerialization.jsonObject(with: Data(document.utf8))) as? [String: Any] ?? [:]
            guard let text = object[marker] as? String else { return object.compactMapValues { $0 as? String } }
            sealed = text
        }
        guard let data = Data(base64Encoded: sealed), let box = try? AES.GCM.SealedBox(combined: data),
              let plain = try? decrypt(box, record),
              let fields = plain.withUnsafeBytes({ JSONText.stringObject($0.bindMemory(to: UInt8.self)) })
                ?? (try? JSONDecoder().decode([String: String].self, from: plain))
        else { throw SealError.cannotOpen }
        return fields
    }

    /// The base64 text of a sealed document as jsonb or `seal` writes it (`{"$sealed": "…"}`),
    /// taken without a JSON parser: base64 has no character JSON escapes (what is not base64
    /// fails to decode after). Anything else is nil and goes through the parser.
    static func sealedText(_ document: String) -> Substring? {
        let utf8 = document.utf8
        let found: Range<Int>?? = utf8.withContiguousStorageIfAvailable { bytes in
            for prefix in sealedPrefixes where bytes.starts(with: prefix) {
                let end = bytes.count - 2
                guard end >= prefix.count, bytes[end] == UInt8(ascii: "\""), bytes[end + 1] == UInt8(ascii: "}") else { return nil }
                // Base64 and nothing JSON would escape: no quote, backslash or control character.
                for byte in bytes[prefix.count..<end] where byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") {
                    return nil
                }
                return prefix.count..<end
            }
            return nil
        }
        // Strings from the database are contiguous; any other goes through the parser.
        guard let range = found ?? nil else { return nil }
        return Substring(utf8[utf8.index(utf8.startIndex, offsetBy: range.lowerBound)..<utf8.index(utf8.startIndex, offsetBy: range.upperBound)])
    }

    /// `{"$sealed": "` as jsonb writes it, and `{"$sealed":"` as `seal` does.
    private static let sealedPrefixes = [Array("{\"\(marker)\": \"".utf8), Array("{\"\(marker)\":\"".utf8)]
}

extension DataKeys {
    /// The data keys of `keyring.dataKeysDirectory`.
    public convenience init(configuration: ItakuConfiguration, keyring: Keyring) {
        self.init(directory: configuration.dataKeysDirectory, keyring: keyring)
    }

    /// The sealer of a tenant's records, making its key on first use.
    public func sealer(for tenant: UUID) throws -> FieldSealer {
        FieldSealer(tenantID: tenant, key: try key(for: tenant))
    }

    /// Opens a stored document of the tenant: plain documents need no key; a sealed one whose
    /// key is gone throws `KeyError.destroyed`.
    public func open(_ document: String, tenant: UUID, record: String) throws -> [String: String] {
        guard FieldSealer.isSealed(document) else { return try FieldSealer.open(document, record: record) { _, _ in Data() } }
        guard let key = try existingKey(for: tenant) else { throw KeyError.destroyed(tenant) }
        return try FieldSealer(tenantID: tenant, key: key).open(document, record: record)
    }
}
