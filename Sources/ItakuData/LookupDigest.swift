import Crypto
import Foundation
import ItakuCore
import ItakuRegistry

/// Keyed digests of lookup values: HMAC-SHA-256 with the tenant's digest key over the lookup
/// kind and the normalised value. The database and the access log see only these digests.
public struct LookupDigester: Sendable {
    let key: SymmetricKey
    /// HMAC state after the key is absorbed; each digest continues from a copy of it.
    let keyed: HMAC<SHA256>

    public init(key: SymmetricKey) {
        self.key = key
        self.keyed = HMAC<SHA256>(key: key)
    }

    private func mac(_ text: String) -> [UInt8] {
        var mac = keyed
        mac.update(data: Array(text.utf8))
        return Array(mac.finalize())
    }

    /// The normalised form of `value` for `kind`, or nil when it is not a valid value.
    public static func normalize(_ value: String, as kind: DatasetSchema.LookupKind) -> String? {
        switch kind {
        case .phone: Normalization.phone(value)
        case .email: Normalization.email(value)
        case .exact: Normalization.exact(value)
        }
    }

    public func digest(normalized: String, kind: DatasetSchema.LookupKind) -> [UInt8] {
        mac(kind.rawValue + ":" + normalized)
    }

    /// A record's lookup keys: the kind and hex digest of each lookup field's valid value, each
    /// key once. Imports and updates write exactly these.
    public func lookupKeys(of values: [String: String], schema: DatasetSchema) -> [(kind: String, digest: String)] {
        var keys: [(kind: String, digest: String)] = []
        var seen: Set<String> = []
        for field in schema.fields {
            guard let kind = field.lookup, let value = values[field.name], let normalized = Self.normalize(value, as: kind) else { continue }
            let digest = Self.hex(digest(normalized: normalized, kind: kind))
            if seen.insert(kind.rawValue + ":" + digest).inserted { keys.append((kind.rawValue, digest)) }
        }
        return keys
    }

    /// The subject digest of a record: what the access log stores instead of the client's record
    /// key, so that "every access to this customer" can be searched without the key in the log.
    public func subjectDigest(externalID: String) -> String {
        Self.hex(mac("subject:" + externalID))
    }

    /// The digest of one field's value, for the access log's record of a correction (before and
    /// after): equal values give equal digests, and nobody without the tenant's key learns them.
    public func valueDigest(field: String, value: String) -> String {
        Self.hex(mac("value:" + field + ":" + value))
    }

    /// A digest as lower-case hex, for the access log's subject and value digests.
    public static func hex(_ bytes: [UInt8]) -> String {
        Hex.encode(bytes)
    }
}
