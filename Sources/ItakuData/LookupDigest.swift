import Crypto
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import ItakuCore
import ItakuRegistry

/// Keyed digests of lookup values: HMAC-SHA-256 with the tenant's digest key over the lookup
/// kind and the normalised value. The database and the access log see only these digests.
public struct LookupDigester: Sendable {
    /// HMAC-SHA-256 (RFC 2104) as two SHA-256 states that have absorbed the key's inner and outer
    /// pads; each digest continues from copies of them. Crypto's `HMAC` takes its message as a
    /// generic `DataProtocol`, which cost more than the hashing for these short texts.
    private let inner: SHA256
    private let outer: SHA256

    public init(key: SymmetricKey) {
        var block = key.withUnsafeBytes { bytes in
            bytes.count > SHA256.blockByteCount ? SHA256.hash(data: bytes).withUnsafeBytes { Array($0) } : Array(bytes)
        }
        block.append(contentsOf: repeatElement(0, count: SHA256.blockByteCount - block.count))
        var inner = SHA256(), outer = SHA256()
        block.withUnsafeMutableBytes { block in
            for index in block.indices { block[index] ^= 0x36 }
            inner.update(bufferPointer: UnsafeRawBufferPointer(block))
            for index in block.indices { block[index] ^= 0x36 ^ 0x5C }
            outer.update(bufferPointer: UnsafeRawBufferPointer(block))
            // The key's bytes do not stay behind in freed memory.
            if let base = block.baseAddress {
                #if canImport(Glibc)
                explicit_bzero(base, block.count)
                #else
                _ = memset_s(base, block.count, 0, block.count)
                #endif
            }
        }
        self.inner = inner
        self.outer = outer
    }

    /// The HMAC of the parts' UTF-8, one after the other.
    private func mac(_ first: String, _ second: String, _ third: String = "", _ fourth: String = "") -> SHA256.Digest {
        var hash = inner
        func absorb(_ part: String) {
            var part = part
            part.withUTF8 { hash.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        absorb(first)
        absorb(second)
        absorb(third)
        absorb(fourth)
        let innerDigest = hash.finalize()
        var outer = self.outer
        innerDigest.withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize()
    }

    /// The normalised form of `value` for a lookup by `field`, or nil when it is not a valid
    /// value (or `field` is no lookup field). An individual number is its twelve digits, however
    /// it was written (`1234-5678-9012`, full-width, spaced): the validator accepts all of
    /// these, so the key and the lookup must not depend on which.
    public static func normalize(_ value: String, for field: DatasetSchema.Field) -> String? {
        guard let kind = field.lookup else { return nil }
        if kind == .exact, field.category == .individualNumber { return Normalization.individualNumberDigits(value) }
        return normalize(value, as: kind)
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
        mac(kind.rawValue, ":", normalized).withUnsafeBytes { Array($0) }
    }

    /// A record's lookup keys: the field, kind and hex digest of each lookup field's valid value.
    /// Imports and updates write exactly these; a lookup matches the keys of the field it names.
    public func lookupKeys(of values: [String: String], schema: DatasetSchema) -> [(field: String, kind: String, digest: String)] {
        var keys: [(field: String, kind: String, digest: String)] = []
        var seen: Set<String> = []
        for field in schema.fields {
            guard let kind = field.lookup, let value = values[field.name], let normalized = Self.normalize(value, for: field) else { continue }
            guard seen.insert(field.name).inserted else { continue }
            keys.append((field.name, kind.rawValue, Self.hex(digest(normalized: normalized, kind: kind))))
        }
        return keys
    }

    /// The subject digest of a record: what the access log stores instead of the client's record
    /// key, so that "every access to this customer" can be searched without the key in the log.
    public func subjectDigest(externalID: String) -> String {
        mac("subject:", externalID).withUnsafeBytes { Hex.encode($0) }
    }

    /// The digest of one field's value, for the access log's record of a correction (before and
    /// after): equal values give equal digests, and nobody without the tenant's key learns them.
    public func valueDigest(field: String, value: String) -> String {
        mac("value:", field, ":", value).withUnsafeBytes { Hex.encode($0) }
    }

    /// A digest as lower-case hex, for the access log's subject and value digests.
    public static func hex(_ bytes: [UInt8]) -> String {
        Hex.encode(bytes)
    }
}
