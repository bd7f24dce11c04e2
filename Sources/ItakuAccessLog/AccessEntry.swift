import Foundation
import ItakuCore
import ItakuPostgres

/// One row of the access log: one decision, allowed or denied. It holds no personal data
/// values: lookup values and subjects appear only as keyed digests. `Docs/access-log.md` lists
/// every field.
public struct AccessEntry: Sendable, Equatable {
    public enum Operation: String, Sendable, CaseIterable, Codable {
        case lookup, read, update, configure, review
        /// A data-subject request's transitions and its disclosure package's downloads.
        case subjectRequest = "subject_request"
        /// Records disposed of: retention, a deletion request, or the contract's end.
        case dispose
    }

    public enum Decision: String, Sendable, Codable {
        case allow, deny
    }

    /// Time-ordered, so the log's primary key grows at its right end.
    public var id = UUID.timeOrdered()
    public var occurredAt = Date()
    public var tenantID: UUID?
    public var actorRole: String
    public var actorKeyID: UUID?
    public var integrationID: UUID?
    public var agent: String?
    public var agentVerified: Bool?
    public var purposeKey: String?
    public var purposeVersion: Int?
    public var caseRef: String?
    public var operation: Operation
    public var dataset: String?
    /// For `configure`: what changed (`purpose:order-support`); for `review`: what was read.
    public var target: String?
    public var versionBefore: Int?
    public var versionAfter: Int?
    public var lookupKind: String?
    public var lookupDigest: [UInt8]?
    public var recordIDs: [UUID] = []
    public var subjectDigests: [String] = []
    /// Field name → transform, for the fields a response carried.
    public var fields: [String: String]?
    public var decision: Decision
    public var reason: String
    public var rowsReturned = 0
    public var requestID: String?
    public var clientAddress: String?
    /// Chain position, set by the writer: the stream (gateway process × tenant), the entry's
    /// number in it from 1, the previous entry's hash (32 zero bytes for the first) and this
    /// entry's hash. Nil for entries written outside a chain.
    public var chain: ChainLink?

    public init(
        tenantID: UUID?, actorRole: String, actorKeyID: UUID?, operation: Operation, decision: Decision, reason: String
    ) {
        self.tenantID = tenantID
        self.actorRole = actorRole
        self.actorKeyID = actorKeyID
        self.operation = operation
        self.decision = decision
        self.reason = reason
    }
}

/// The access log's SQL.
public enum AccessLogStore {
    /// The columns, in the order `entry(_:)` reads them.
    public static let columns = """
        entry_id, occurred_at, tenant_id, actor_role, actor_key_id, integration_id, agent, agent_verified,
        purpose_key, purpose_version, case_ref, operation, dataset, target, version_before, version_after,
        lookup_kind, lookup_digest, record_ids, subject_digests, fields, decision, reason, rows_returned,
        request_id, client_address, stream, seq, prev_hash, hash, seal
        """

    /// Whether every value of the entry can be stored: text without NUL, times PostgreSQL holds.
    /// Checked before an entry joins a batch, so one bad entry cannot fail the others.
    public static func isStorable(_ entry: AccessEntry) -> Bool {
        var check = PostgresParameterCheck()
        bind(entry, fields: nil, into: &check)
        // The fields document is written only to be sent: its text holds `\u0000`, which jsonb
        // refuses, exactly when a name or a value holds NUL.
        return check.isEncodable && !(entry.fields ?? [:]).contains { $0.key.containsNUL || $0.value.containsNUL }
    }

    /// Inserts one entry on a connection the caller holds, unchained, in the caller's transaction.
    public static func insert(_ entry: AccessEntry, on connection: PostgresConnection) async throws {
        try await insert([entry], on: connection)
    }

    /// Inserts entries with prepared multi-row statements, in one round trip (`insertQueries`).
    public static func insert(_ entries: [AccessEntry], on connection: PostgresConnection) async throws {
        guard !entries.isEmpty else { return }
        try await connection.pipeline(insertQueries(entries))
    }

    /// The sizes of the prepared inserts for large batches; what remains (under 16 entries) is
    /// one statement of its own size. Any batch is then at most a few prepared statements (500,
    /// the writer's largest, is 256 + 128 + 64 + 32 + 16 + 4), each parsed and planned once per
    /// connection, and a small batch is one.
    static let statementSizes = [256, 128, 64, 32, 16]

    /// The INSERTs of `entries`, largest first: every value a bound parameter, every statement
    /// prepared. Sent in one pipeline they are one transaction (or part of the caller's).
    static func insertQueries(_ entries: [AccessEntry]) -> [PostgresQuery] {
        var queries: [PostgresQuery] = []
        var rest = entries[...]
        for size in statementSizes {
            while rest.count >= size {
                queries.append(insertQuery(rest.prefix(size)))
                rest = rest.dropFirst(size)
            }
        }
        if !rest.isEmpty { queries.append(insertQuery(rest)) }
        return queries
    }

    /// One prepared INSERT of `entries` (a count in `statementSizes`, or under 16).
    static func insertQuery(_ entries: ArraySlice<AccessEntry>) -> PostgresQuery {
        var binds = PostgresBindings(capacity: entries.count * 31)
        for entry in entries { bind(entry, into: &binds) }
        return PostgresQuery(unsafeSQL: insertSQL[entries.count] ?? Self.insertSQL(rows: entries.count), binds: binds).prepared()
    }

    /// The statements' text by size, made once.
    private static let insertSQL: [Int: String] = Dictionary(
        uniqueKeysWithValues: (statementSizes + Array(1..<16)).map { ($0, insertSQL(rows: $0)) }
    )

    static func insertSQL(rows: Int) -> String {
        let values = (0..<rows).map { row in
            "(" + (1...31).map { column in "$\(row * 31 + column)" + (column == 19 ? "::uuid[]" : "") }.joined(separator: ",") + ")"
        }
        return "INSERT INTO itaku.access_log (\(columns)) VALUES " + values.joined(separator: ",")
    }

    static func bind(_ entry: AccessEntry, into binds: inout some PostgresParameters) {
        let fields: PostgresJSON? = entry.fields.map { fields in
            var text: [UInt8] = []
            text.reserveCapacity(256)
            JSONText.append(fields, to: &text)
            return PostgresJSON(String(decoding: text, as: UTF8.self))
        }
        bind(entry, fields: fields, into: &binds)
    }

    /// Every column of `entry`, with `fields` as its fields document.
    private static func bind(_ entry: AccessEntry, fields: PostgresJSON?, into binds: inout some PostgresParameters) {
        func optional<T: PostgresEncodable>(_ value: T?, _ type: PostgresType) {
            if let value { binds.append(value) } else { binds.appendNull(type) }
        }
        binds.append(entry.id)
        binds.append(entry.occurredAt)
        optional(entry.tenantID, .uuid)
        binds.append(entry.actorRole)
        optional(entry.actorKeyID, .uuid)
        optional(entry.integrationID, .uuid)
        optional(entry.agent, .text)
        optional(entry.agentVerified, .bool)
        optional(entry.purposeKey, .text)
        optional(entry.purposeVersion.map { Int32(clamping: $0) }, .int4)
        optional(entry.caseRef, .text)
        binds.append(entry.operation.rawValue)
        optional(entry.dataset, .text)
        optional(entry.target, .text)
        optional(entry.versionBefore.map { Int32(clamping: $0) }, .int4)
        optional(entry.versionAfter.map { Int32(clamping: $0) }, .int4)
        optional(entry.lookupKind, .text)
        optional(entry.lookupDigest.map(PostgresBytes.init), .bytea)
        binds.append(PostgresArray(entry.recordIDs))
        binds.append(entry.subjectDigests)
        optional(fields, .jsonb)
        binds.append(entry.decision.rawValue)
        binds.append(entry.reason)
        binds.append(Int32(clamping: entry.rowsReturned))
        optional(entry.requestID, .text)
        optional(entry.clientAddress, .text)
        optional(entry.chain?.stream, .text)
        optional(entry.chain?.seq, .int8)
        optional(entry.chain.map { PostgresBytes($0.previousHash) }, .bytea)
        optional(entry.chain.map { PostgresBytes($0.hash) }, .bytea)
        optional(entry.chain?.seal.map(PostgresBytes.init), .bytea)
    }

    /// Reads an entry back from a row selected with `columns`.
    public static func entry(_ row: PostgresRow) throws -> AccessEntry {
        try entry(row, strict: false)
    }

    /// `entry(_:)`; `strict` (the verifier) refuses an operation or decision that Itaku never
    /// writes, rather than reading it as the nearest one: a changed value must not read back as
    /// the entry that was hashed.
    public static func entry(_ row: PostgresRow, strict: Bool) throws -> AccessEntry {
        let operation = AccessEntry.Operation(rawValue: try row.decode(11))
        let decision = AccessEntry.Decision(rawValue: try row.decode(21))
        if strict, operation == nil || decision == nil {
            throw PostgresError(.decoding, detail: "an access entry's operation or decision is not one Itaku writes")
        }
        var entry = AccessEntry(
            tenantID: try row.decode(2), actorRole: try row.decode(3), actorKeyID: try row.decode(4),
            operation: operation ?? .review, decision: decision ?? .deny, reason: try row.decode(22)
        )
        entry.id = try row.decode(0)
        entry.occurredAt = try row.decode(1)
        entry.integrationID = try row.decode(5)
        entry.agent = try row.decode(6)
        entry.agentVerified = try row.decode(7)
        entry.purposeKey = try row.decode(8)
        entry.purposeVersion = try row.decode(9, as: Int32?.self).map(Int.init)
        entry.caseRef = try row.decode(10)
        entry.dataset = try row.decode(12)
        entry.target = try row.decode(13)
        entry.versionBefore = try row.decode(14, as: Int32?.self).map(Int.init)
        entry.versionAfter = try row.decode(15, as: Int32?.self).map(Int.init)
        entry.lookupKind = try row.decode(16)
        entry.lookupDigest = try row.decode(17, as: PostgresBytes?.self)?.bytes
        entry.recordIDs = try row.decode(18, as: [String]?.self)?.compactMap(UUID.init(uuidString:)) ?? []
        entry.subjectDigests = try row.decode(19, as: [String]?.self) ?? []
        if let json = try row.decode(20, as: PostgresJSON?.self) {
            // Itaku writes only string values; anything else is read back as its own text, so
            // an entry whose fields were edited into another shape no longer matches its hash.
            if let object = try? JSONSerialization.jsonObject(with: Data(json.text.utf8)) as? [String: Any] {
                entry.fields = object.mapValues { ($0 as? String) ?? "\u{0}\($0)" }
            } else {
                entry.fields = ["\u{0}": json.text]
            }
        }
        entry.rowsReturned = Int(try row.decode(23, as: Int32.self))
        entry.requestID = try row.decode(24)
        entry.clientAddress = try row.decode(25)
        if let stream = try row.decode(26, as: String?.self), let seq = try row.decode(27, as: Int64?.self) {
            entry.chain = ChainLink(
                stream: stream, seq: seq,
                previousHash: try row.decode(28, as: PostgresBytes?.self)?.bytes ?? [],
                hash: try row.decode(29, as: PostgresBytes?.self)?.bytes ?? [],
                seal: try row.decode(30, as: PostgresBytes?.self)?.bytes
            )
        }
        return entry
    }

    // MARK: Checkpoints

    static func insert(_ checkpoints: [Checkpoint], on connection: PostgresConnection) async throws {
        for checkpoint in checkpoints {
            try await connection.query(
                """
                INSERT INTO itaku.access_log_checkpoints (checkpoint_id, created_at, stream, tenant_id, seq, hash, key_id, signature)
                VALUES (\(checkpoint.id), \(checkpoint.createdAt), \(checkpoint.stream), \(checkpoint.tenantID), \(checkpoint.seq),
                        \(PostgresBytes(checkpoint.hash)), \(checkpoint.keyID), \(PostgresBytes(checkpoint.signature)))
                """
            )
        }
    }

    /// Every checkpoint the connection's role may see (the reader role: all of them).
    public static func checkpoints(on connection: PostgresConnection) async throws -> [Checkpoint] {
        try await connection.query(
            "SELECT checkpoint_id, created_at, stream, tenant_id, seq, hash, key_id, signature FROM itaku.access_log_checkpoints ORDER BY stream, seq"
        ).map(checkpoint)
    }

    /// The newest checkpoint of each stream.
    public static func latestCheckpoints(on connection: PostgresConnection) async throws -> [String: Checkpoint] {
        let rows = try await connection.query(
            """
            SELECT DISTINCT ON (stream) checkpoint_id, created_at, stream, tenant_id, seq, hash, key_id, signature
            FROM itaku.access_log_checkpoints ORDER BY stream, seq DESC, created_at DESC, checkpoint_id DESC
            """
        )
        return Dictionary(try rows.map(checkpoint).map { ($0.stream, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The stream's checkpoint next below `checkpoint` in (seq, created_at, id) order, the order
    /// `latestCheckpoints` picks in: one at the same number (a forgery beside the real one)
    /// does not hide the other.
    public static func checkpoint(before checkpoint: Checkpoint, on connection: PostgresConnection) async throws -> Checkpoint? {
        try await connection.query(
            """
            SELECT checkpoint_id, created_at, stream, tenant_id, seq, hash, key_id, signature FROM itaku.access_log_checkpoints
            WHERE stream = \(checkpoint.stream) AND checkpoint_id <> \(checkpoint.id)
              AND (seq, created_at, checkpoint_id) < (\(checkpoint.seq), \(checkpoint.createdAt), \(checkpoint.id))
            ORDER BY seq DESC, created_at DESC, checkpoint_id DESC LIMIT 1
            """
        ).first.map(Self.checkpoint)
    }

    /// One page of checkpoints, newest first, after `cursor` (created_at, id), under the
    /// connection's row-level security; and the cursor of the next page when there may be one.
    public static func checkpoints(
        after cursor: AccessLogQuery.Cursor?, limit: Int, on connection: PostgresConnection
    ) async throws -> ([Checkpoint], AccessLogQuery.Cursor?) {
        let rows = try await connection.query(
            """
            SELECT checkpoint_id, created_at, stream, tenant_id, seq, hash, key_id, signature FROM itaku.access_log_checkpoints
            WHERE \(cursor == nil) OR (created_at, checkpoint_id) < (\(cursor?.occurredAt), \(cursor?.entryID))
            ORDER BY created_at DESC, checkpoint_id DESC LIMIT \(limit + 1)
            """
        )
        let page = try rows.prefix(limit).map(checkpoint)
        let next = rows.count > limit ? page.last.map { AccessLogQuery.Cursor(occurredAt: $0.createdAt, entryID: $0.id) } : nil
        return (page, next)
    }

    private static func checkpoint(_ row: PostgresRow) throws -> Checkpoint {
        Checkpoint(
            id: try row.decode(0), createdAt: try row.decode(1), stream: try row.decode(2), tenantID: try row.decode(3),
            seq: try row.decode(4), hash: try row.decode(5, as: PostgresBytes.self).bytes, keyID: try row.decode(6),
            signature: try row.decode(7, as: PostgresBytes.self).bytes
        )
    }
}
