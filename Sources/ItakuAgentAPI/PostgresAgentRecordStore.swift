import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Synchronization

/// The agent path's SQL: fixed statements, each prepared once per pooled connection, and the
/// update's transaction, opened and committed by the access log (`AccessLogWriter.transaction`).
public struct PostgresAgentRecordStore: AgentRecordStore {
    let database: PostgresClient
    let accessLog: AccessLogWriter

    public init(database: PostgresClient, accessLog: AccessLogWriter) {
        self.database = database
        self.accessLog = accessLog
    }

    public func lookup(tenant: UUID, dataset: UUID, kind: String, digest: [UInt8], limit: Int) async throws -> [StoredRecord] {
        // Each key's record by primary key, read only (migration 0015).
        let rows = try await database.query(.prepared(
            "SELECT * FROM itaku.agent_find(\(tenant), \(dataset), \(kind), \(PostgresBytes(digest)), \(limit)::integer)"
        ))
        return try rows.map(Self.record)
    }

    public func read(tenant: UUID, dataset: UUID, record: UUID) async throws -> StoredRecord? {
        let rows = try await database.query(.prepared("SELECT * FROM itaku.agent_read(\(tenant), \(dataset), \(record))"))
        return try rows.first.map(Self.record)
    }

    public func isBound(tenant: UUID, agent: String, caseRef: String, record: UUID, minutes: Int) async throws -> Bool {
        let rows = try await database.query(.prepared(
            "SELECT itaku.case_bound(\(tenant), \(agent), \(caseRef), \(record), \(Int32(clamping: minutes)))"
        ))
        return try rows.first?.decode(0, as: Bool.self) == true
    }

    public func reserve(_ r: UsageReservation) async throws -> UsageGranted {
        let tool = r.integration.map { "integration:" + $0.lowercasedString }
        let rows = try await database.query(.prepared(
            """
            SELECT * FROM itaku.reserve_usage(\(r.tenant), \(r.purpose), \("agent:" + r.agent), \(r.lookupsPerMinute)::bigint, \(tool),
                \(r.integrationLookupsPerMinute)::bigint, \(r.recordsPerHour)::bigint, \(Int32(clamping: r.records)))
            """
        ))
        return UsageGranted(
            lookup: try rows[0].decode(0, as: Bool.self), integration: try rows[0].decode(1, as: Bool.self),
            records: try rows[0].decode(2, as: Bool.self)
        )
    }

    public func count(records: Int, tenant: UUID, purpose: String, agent: String) async throws {
        try await database.query(.prepared(
            "SELECT itaku.count_records(\(tenant), \(purpose), \("agent:" + agent), \(Int32(clamping: records)))"
        ))
    }

    public func update(
        tenant: UUID, dataset: Dataset, record: UUID,
        _ body: @Sendable (StoredRecord?, any RecordWriter) async throws -> AccessEntry
    ) async throws -> AccessEntry {
        // BEGIN, the tenant and the record's lock in one round trip; the change, its entry and
        // COMMIT in one more.
        let lock: PostgresQuery = .prepared(
            """
            SELECT record_id, external_id, fields, status, coalesce(expires_at < now(), false) FROM itaku.records
            WHERE tenant_id = \(tenant) AND dataset_id = \(dataset.id) AND record_id = \(record) FOR UPDATE
            """
        )
        let (_, entries) = try await accessLog.transaction(on: database, tenant: tenant, opening: lock) { _, rows in
            let writer = Writer(dataset: dataset, record: record)
            let entry = try await body(try rows?.first.map(Self.record), writer)
            return ((), [entry], writer.statements.withLock { $0 })
        }
        return entries[0]
    }

    static func record(_ row: PostgresRow) throws -> StoredRecord {
        StoredRecord(
            id: try row.decode(0), externalID: try row.decode(1), document: try row.decode(2, as: PostgresJSON.self).text,
            status: try row.decode(3), expired: try row.decode(4, as: Bool?.self) == true
        )
    }

    /// Keeps the change's statements for the commit's round trip.
    final class Writer: RecordWriter {
        let dataset: Dataset
        let record: UUID
        let statements = Mutex<[PostgresQuery]>([])

        init(dataset: Dataset, record: UUID) {
            self.dataset = dataset
            self.record = record
        }

        func write(_ changes: [String: String], before: [String: String], sealer: FieldSealer, digester: LookupDigester) async throws {
            let (written, _) = try RecordStore.writeStatements(changes, to: record, in: dataset, before: before, sealer: sealer, digester: digester)
            statements.withLock { $0.append(contentsOf: written) }
        }
    }
}
