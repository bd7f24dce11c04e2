import Crypto
import Foundation
import ItakuCore

/// Where an entry stands in its stream's hash chain.
public struct ChainLink: Sendable, Equatable {
    public var stream: String
    public var seq: Int64
    public var previousHash: [UInt8]
    public var hash: [UInt8]
    /// On the last entry of its stream in each write: the checkpoint key's Ed25519 signature of
    /// `sealMessage`, so that entries appended without the key stand out.
    public var seal: [UInt8]?

    public init(stream: String, seq: Int64, previousHash: [UInt8], hash: [UInt8], seal: [UInt8]? = nil) {
        self.stream = stream
        self.seq = seq
        self.previousHash = previousHash
        self.hash = hash
        self.seal = seal
    }

    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// What a seal signs: the stream, the position and the entry's hash (which covers its content
    /// and, through the previous hash, everything before it in the stream).
    public var sealMessage: Data {
        Data("itaku.seal.v1\n\(stream)\n\(seq)\n\(AccessEntry.hex(hash))".utf8)
    }

    public func isSealValid(publicKey: Curve25519.Signing.PublicKey) -> Bool {
        guard let seal else { return false }
        return publicKey.isValidSignature(seal, for: sealMessage)
    }
}

extension AccessEntry {
    /// The bytes an entry's hash covers: every field except the hash itself, in a fixed order,
    /// as a JSON array. Built from values exactly as the database returns them (times in whole
    /// microseconds, ids lower-case, the field map sorted by key), so a verifier reading the
    /// rows back computes the same bytes.
    public func canonicalBytes(stream: String, seq: Int64) -> [UInt8] {
        var out = CanonicalArray()
        out.bytes.reserveCapacity(768)
        out.raw("\"itaku.access.v1\"")
        out.text(stream)
        out.number(seq)
        out.uuid(id)
        out.number(Self.microseconds(occurredAt))
        out.uuid(tenantID)
        out.text(actorRole)
        out.uuid(actorKeyID)
        out.uuid(integrationID)
        out.text(agent)
        out.raw(agentVerified.map { $0 ? "true" : "false" } ?? "null")
        out.text(purposeKey)
        out.number(purposeVersion.map(Int64.init))
        out.text(caseRef)
        out.text(operation.rawValue)
        out.text(dataset)
        out.text(target)
        out.number(versionBefore.map(Int64.init))
        out.number(versionAfter.map(Int64.init))
        out.text(lookupKind)
        out.text(lookupDigest.map(Self.hex))
        out.next()
        out.bytes.append(UInt8(ascii: "["))
        for (index, record) in recordIDs.enumerated() {
            if index > 0 { out.bytes.append(UInt8(ascii: ",")) }
            out.bytes.append(UInt8(ascii: "\""))
            record.appendLowercased(to: &out.bytes)
            out.bytes.append(UInt8(ascii: "\""))
        }
        out.bytes.append(UInt8(ascii: "]"))
        out.next()
        out.bytes.append(UInt8(ascii: "["))
        for (index, digest) in subjectDigests.enumerated() {
            if index > 0 { out.bytes.append(UInt8(ascii: ",")) }
            JSONText.append(digest, to: &out.bytes)
        }
        out.bytes.append(UInt8(ascii: "]"))
        if let fields {
            out.next()
            JSONText.append(fields, to: &out.bytes)
        } else {
            out.raw("null")
        }
        out.text(decision.rawValue)
        out.text(reason)
        out.number(Int64(rowsReturned))
        out.text(requestID)
        out.text(clientAddress)
        out.bytes.append(UInt8(ascii: "]"))
        return out.bytes
    }

    /// SHA-256 over the previous hash and the canonical bytes.
    public static func chainHash(previous: [UInt8], canonical: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: canonical)
        return Array(hasher.finalize())
    }

    /// Times are kept to the microsecond, PostgreSQL's precision, so they survive a round trip.
    /// Clamped to the years 1–9999, so no date (a cursor's, a filter's) can trap here.
    public static func microseconds(_ date: Date) -> Int64 {
        let seconds = min(max(date.timeIntervalSince1970, -62_135_596_800), 253_402_300_799)
        return Int64((seconds * 1_000_000).rounded())
    }

    static func hex(_ bytes: [UInt8]) -> String {
        Hex.encode(bytes)
    }
}

/// A signed statement of a stream's head: "stream S had N entries ending in hash H at time T".
public struct Checkpoint: Sendable, Equatable {
    public var id: UUID
    public var createdAt: Date
    public var stream: String
    public var tenantID: UUID?
    public var seq: Int64
    public var hash: [UInt8]
    public var keyID: String
    public var signature: [UInt8]

    /// The signed message.
    public static func message(stream: String, seq: Int64, hash: [UInt8], createdAt: Date) -> Data {
        Data("itaku.checkpoint.v1\n\(stream)\n\(seq)\n\(AccessEntry.hex(hash))\n\(AccessEntry.microseconds(createdAt))".utf8)
    }

    public static func sign(
        stream: String, tenantID: UUID?, seq: Int64, hash: [UInt8], at createdAt: Date, keyring: Keyring
    ) throws -> Checkpoint {
        let signature = try keyring.checkpointSigningKey.signature(for: message(stream: stream, seq: seq, hash: hash, createdAt: createdAt))
        return Checkpoint(
            id: UUID(), createdAt: createdAt, stream: stream, tenantID: tenantID, seq: seq, hash: hash,
            keyID: keyring.checkpointKeyID, signature: Array(signature)
        )
    }

    public func isValid(publicKey: Curve25519.Signing.PublicKey) -> Bool {
        publicKey.isValidSignature(signature, for: Self.message(stream: stream, seq: seq, hash: hash, createdAt: createdAt))
    }
}

// MARK: - Checkpoints outside the database

/// Every checkpoint is also written to the service's own log, one line each (`logMetadata`).
/// Shipped off the database's host, those lines are anchors that someone with the database
/// alone cannot take back: `itaku verify-log --anchors FILE` holds the log to them, so that
/// a stream cut back to an earlier seal, or deleted whole with its checkpoints, is found.
extension Checkpoint {
    /// The message of a checkpoint's log line.
    public static let logMessage = "access-log checkpoint"

    /// The checkpoint as the metadata of its log line: nothing but ids, counts, hashes and the
    /// signature.
    public var logMetadata: [String: String] {
        var metadata = [
            "itaku.checkpoint.stream": stream, "itaku.checkpoint.seq": String(seq), "itaku.checkpoint.hash": AccessEntry.hex(hash),
            "itaku.checkpoint.created_at": String(AccessEntry.microseconds(createdAt)), "itaku.checkpoint.key_id": keyID,
            "itaku.checkpoint.signature": AccessEntry.hex(signature),
        ]
        if let tenantID { metadata["itaku.checkpoint.tenant_id"] = tenantID.lowercasedString }
        return metadata
    }

    /// The checkpoint of one line of the service's JSON log (`JSONLogHandler`); nil for any
    /// other line. The signature is not checked here.
    public init?(logLine: String) {
        var line = logLine
        guard line.contains(Self.logMessage),
            let object = line.withUTF8({ JSONText.flatObject($0) }),
            case .string(Self.logMessage) = object["message"],
            case .string(let stream) = object["itaku.checkpoint.stream"],
            case .string(let seqText) = object["itaku.checkpoint.seq"], let seq = Int64(seqText),
            case .string(let hashText) = object["itaku.checkpoint.hash"], let hash = Hex.decode(hashText),
            case .string(let timeText) = object["itaku.checkpoint.created_at"], let micros = Int64(timeText),
            case .string(let keyID) = object["itaku.checkpoint.key_id"],
            case .string(let signatureText) = object["itaku.checkpoint.signature"], let signature = Hex.decode(signatureText)
        else { return nil }
        var tenantID: UUID?
        if case .string(let tenant) = object["itaku.checkpoint.tenant_id"] { tenantID = UUID(uuidString: tenant) }
        self.init(
            id: UUID(), createdAt: Date(timeIntervalSince1970: Double(micros) / 1_000_000), stream: stream, tenantID: tenantID,
            seq: seq, hash: hash, keyID: keyID, signature: signature
        )
    }
}

/// The canonical form's JSON array, written element by element into one buffer.
private struct CanonicalArray {
    var bytes: [UInt8] = [UInt8(ascii: "[")]

    /// Starts the next element (a comma after the first).
    mutating func next() {
        if bytes.count > 1 { bytes.append(UInt8(ascii: ",")) }
    }

    mutating func raw(_ text: StaticString) {
        next()
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func text(_ value: String?) {
        next()
        if let value { JSONText.append(value, to: &bytes) } else { bytes.append(contentsOf: "null".utf8) }
    }

    mutating func number(_ value: Int64?) {
        next()
        if let value { bytes.append(contentsOf: String(value).utf8) } else { bytes.append(contentsOf: "null".utf8) }
    }

    mutating func uuid(_ value: UUID?) {
        next()
        guard let value else { return bytes.append(contentsOf: "null".utf8) }
        bytes.append(UInt8(ascii: "\""))
        value.appendLowercased(to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }
}
