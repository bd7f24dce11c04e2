import Foundation
import ItakuCore
import ItakuPostgres

/// A selection of access entries: the filters of search and export. Every filter becomes a
/// bound parameter; the SQL text depends only on which filters are present.
public struct AccessLogQuery: Sendable {
    public var from: Date?
    public var to: Date?
    public var tenantID: UUID?
    public var agent: String?
    public var integrationID: UUID?
    public var purposeKey: String?
    public var caseRef: String?
    public var operation: String?
    public var decision: String?
    public var reason: String?
    public var recordID: UUID?
    /// One entry, by its id (the console's detail page).
    public var entryID: UUID?
    public var lookupKind: String?
    /// Digests of a lookup value, one per tenant key that may apply.
    public var lookupDigests: [[UInt8]]?
    public var subjectDigests: [String]?

    public init() {}

    /// Where a page starts: entries strictly older than this (time, id) pair.
    public struct Cursor: Sendable, Equatable {
        public var occurredAt: Date
        public var entryID: UUID

        public init(occurredAt: Date, entryID: UUID) {
            self.occurredAt = occurredAt
            self.entryID = entryID
        }

        /// Opaque to clients: base64url of "microseconds:uuid".
        public var token: String {
            Data("\(AccessEntry.microseconds(occurredAt)):\(entryID.lowercasedString)".utf8).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        }

        public init?(token: String) {
            let base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            guard let data = Data(base64Encoded: base64), let text = String(data: data, encoding: .utf8) else { return nil }
            let parts = text.split(separator: ":")
            // A cursor names a time Itaku could have written: 1970 to the last second of 9999 (its
            // microseconds there would round past the year in a Double).
            guard parts.count == 2, let micros = Int64(parts[0]), (0...253_402_300_799_000_000).contains(micros),
                let id = UUID(uuidString: String(parts[1]))
            else { return nil }
            self.occurredAt = Date(timeIntervalSince1970: Double(micros) / 1_000_000)
            self.entryID = id
        }
    }

    /// One page, newest first, and the cursor of the next page if there may be one.
    public func page(
        after cursor: Cursor?, limit: Int, on connection: PostgresConnection
    ) async throws -> (entries: [AccessEntry], next: Cursor?) {
        var binds = PostgresBindings()
        var conditions: [String] = []
        func add<T: PostgresEncodable>(_ sql: String, _ value: T) {
            binds.append(value)
            conditions.append(sql.replacingOccurrences(of: "?", with: "$\(binds.count)"))
        }
        if let from { add("occurred_at >= ?", from) }
        if let to { add("occurred_at < ?", to) }
        if let tenantID { add("tenant_id = ?", tenantID) }
        if let agent { add("agent = ?", agent) }
        if let integrationID { add("integration_id = ?", integrationID) }
        if let purposeKey { add("purpose_key = ?", purposeKey) }
        if let caseRef { add("case_ref = ?", caseRef) }
        if let operation { add("operation = ?", operation) }
        if let decision { add("decision = ?", decision) }
        if let reason { add("reason = ?", reason) }
        if let recordID { add("? = ANY(record_ids)", recordID) }
        if let entryID { add("entry_id = ?", entryID) }
        if let lookupKind { add("lookup_kind = ?", lookupKind) }
        if let lookupDigests { add("lookup_digest = ANY(?::text[]::bytea[])", lookupDigests.map { "\\x" + AccessEntry.hex($0) }) }
        if let subjectDigests { add("subject_digests && ?::text[]", subjectDigests) }
        if let cursor {
            binds.append(cursor.occurredAt)
            binds.append(cursor.entryID)
            conditions.append("(occurred_at, entry_id) < ($\(binds.count - 1), $\(binds.count))")
        }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        let rows = try await connection.query(
            PostgresQuery(
                unsafeSQL: "SELECT \(AccessLogStore.columns) FROM itaku.access_log \(filter) ORDER BY occurred_at DESC, entry_id DESC LIMIT \(limit + 1)",
                binds: binds
            )
        )
        var entries = try rows.prefix(limit).map(AccessLogStore.entry)
        var next: Cursor?
        if rows.count > limit, let last = entries.last {
            next = Cursor(occurredAt: last.occurredAt, entryID: last.id)
        }
        if entries.count > limit { entries.removeLast(entries.count - limit) }
        return (entries, next)
    }
}
