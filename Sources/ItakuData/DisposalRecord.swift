import Crypto
import Foundation
import ItakuCore

/// The evidence of one disposal run: which tenant's dataset, how many records, the keyed
/// digests of their external ids, when, by whom, and why. The document is canonical JSON
/// (sorted keys) signed as it is stored, with the access log's checkpoint key (Ed25519), so a
/// client verifies it offline with the public key (`itaku verify-disposal`).
public struct DisposalDocument: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        /// The dataset's retention ran out (the retention service, or a run on instruction).
        case retention
        /// A data subject's deletion request.
        case deletion
        /// The contract ended: the whole dataset.
        case contractEnd = "contract_end"
    }

    public var disposal_id: String
    public var kind: Kind
    public var tenant_id: String
    public var tenant: String
    public var dataset: String
    public var records: Int
    /// Keyed digests (the tenant's digest key) of the disposed records' external ids, sorted:
    /// the same digests the access log's entries carry, so each disposed subject's accesses
    /// can be found (`subject` filter of the log search); the ids themselves are not revealed.
    public var subject_digests: [String]
    public var disposed_at: String
    /// `retention-service@<instance>`, or the role and key id of the caller who instructed it.
    public var disposed_by: String
    public var subject_request: String?
    /// The contract's end: the tenant's data key was destroyed with the records, so no copy of
    /// them (backups included) can be opened again.
    public var data_key_destroyed: Bool?

    public init(
        id: UUID, kind: Kind, tenantID: UUID, tenant: String, dataset: String, subjectDigests: [String], at: Date,
        by: String, subjectRequest: UUID? = nil, dataKeyDestroyed: Bool? = nil
    ) {
        disposal_id = id.lowercasedString
        self.kind = kind
        tenant_id = tenantID.lowercasedString
        self.tenant = tenant
        self.dataset = dataset
        records = subjectDigests.count
        subject_digests = subjectDigests.sorted()
        disposed_at = Self.timestamp(at)
        disposed_by = by
        subject_request = subjectRequest?.lowercasedString
        data_key_destroyed = dataKeyDestroyed
    }

    /// The exact text that is signed and stored.
    public func canonicalText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}

/// A signed disposal document as the API hands it out and `itaku verify-disposal` reads it.
public struct SignedDisposal: Codable, Sendable {
    public var document: String
    public var key_id: String
    /// base64 of the Ed25519 signature over the UTF-8 bytes of `document`.
    public var signature: String

    public init(document: String, keyID: String, signature: Data) {
        self.document = document
        key_id = keyID
        self.signature = signature.base64EncodedString()
    }

    public static func sign(_ document: DisposalDocument, key: Curve25519.Signing.PrivateKey, keyID: String) throws -> SignedDisposal {
        let text = try document.canonicalText()
        return SignedDisposal(document: text, keyID: keyID, signature: try key.signature(for: Data(text.utf8)))
    }

    public enum VerificationError: Error, Equatable, CustomStringConvertible {
        case badSignature
        case malformed

        public var description: String {
            switch self {
            case .badSignature: "the signature does not match the document: it was changed, or signed with another key"
            case .malformed: "not a disposal record"
            }
        }
    }

    /// The document, if the signature over it verifies with `publicKey`.
    public func verify(with publicKey: Curve25519.Signing.PublicKey) throws -> DisposalDocument {
        guard let signature = Data(base64Encoded: signature) else { throw VerificationError.malformed }
        guard publicKey.isValidSignature(signature, for: Data(document.utf8)) else { throw VerificationError.badSignature }
        guard let decoded = try? JSONDecoder().decode(DisposalDocument.self, from: Data(document.utf8)),
              decoded.records == decoded.subject_digests.count else { throw VerificationError.malformed }
        return decoded
    }
}
