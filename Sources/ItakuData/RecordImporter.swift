import Foundation
import ItakuCore
import ItakuPostgres
import ItakuRegistry

/// Imports records into a dataset, whole or not at all.
///
/// Rows are inserted in batches as they arrive, each batch while the next is being read and
/// checked (`INSERT … SELECT FROM unnest(…)` with arrays
/// as bound parameters: PostgreSQL refuses COPY into tables with row-level security, and the
/// batches keep memory flat for a million rows). Any invalid line stops the writing; the rest
/// is still checked so the caller learns every bad line (up to `maxIssues`); the caller's
/// transaction then rolls back and nothing is kept.
public struct RecordImporter: Sendable {
    public struct Issue: Sendable, Equatable {
        public var line: Int
        public var field: String?
        public var code: String
    }

    public enum Outcome: Sendable, Equatable {
        case imported(Int)
        case rejected([Issue])
    }

    /// Receives the rows of an import.
    public final class Sink {
        public let importer: RecordImporter
        let connection: PostgresConnection
        var issues: [Issue] = []
        var keys: Set<Int>
        var count = 0
        let expires: Date?
        // The pending batch.
        var recordIDs: [String] = []
        var externalIDs: [String] = []
        var documents: [String] = []
        /// The pending batch's sealed documents' bytes.
        var documentBytes = 0
        var lookupFields: [String] = []
        var lookupKinds: [String] = []
        var lookupDigests: [String] = []
        var lookupRecords: [String] = []

        init(importer: RecordImporter, connection: PostgresConnection, existingKeys: Set<Int>) {
            self.importer = importer
            self.connection = connection
            self.keys = existingKeys
            self.expires = importer.dataset.schema.retentionDays.map { Date().addingTimeInterval(Double($0) * 86_400) }
        }

        /// Whether the import is still clean (false once any line was rejected).
        public var isClean: Bool { issues.isEmpty }

        public func reject(line: Int, field: String?, code: String) {
            if issues.count < importer.maxIssues { issues.append(Issue(line: line, field: field, code: code)) }
        }

        /// Adds one record (`values` by field name; empty strings count as absent).
        public func add(line: Int, values: [String: String]) async throws {
            let problems = importer.validator.issues(values)
            for problem in problems { reject(line: line, field: problem.field, code: problem.code) }
            let schema = importer.dataset.schema
            let key = values[schema.keyField] ?? ""
            if problems.isEmpty, !keys.insert(key.hashValue).inserted {
                reject(line: line, field: schema.keyField, code: "duplicate_key")
            }
            guard issues.isEmpty else { return }
            let recordID = UUID.timeOrdered().uuidString
            recordIDs.append(recordID)
            externalIDs.append(key)
            let document = try importer.sealer.seal(RecordDocument.json(values, order: schema.fields), record: recordID)
            documentBytes += document.utf8.count
            documents.append(document)
            for key in importer.digester.lookupKeys(of: values, schema: schema) {
                lookupFields.append(key.field)
                lookupKinds.append(key.kind)
                lookupDigests.append(key.digest)
                lookupRecords.append(recordID)
            }
            count += 1
            // By rows, and by bytes: a thousand rows of a megabyte each are one statement too many.
            if recordIDs.count >= importer.batchSize || documentBytes >= importer.batchBytes { try await flush() }
        }

        /// The batch being inserted while the next one is read and checked. At most one, and it
        /// is always awaited before the connection is used for anything else.
        var inFlight: Task<Void, any Error>?

        /// Hands the current batch to the database and returns as soon as the previous one is in.
        func flush() async throws {
            guard !recordIDs.isEmpty else { return }
            let batch = Batch(
                recordIDs: recordIDs, externalIDs: externalIDs, documents: documents,
                lookupFields: lookupFields, lookupKinds: lookupKinds, lookupDigests: lookupDigests, lookupRecords: lookupRecords
            )
            recordIDs.removeAll(keepingCapacity: true)
            externalIDs.removeAll(keepingCapacity: true)
            documents.removeAll(keepingCapacity: true)
            documentBytes = 0
            lookupFields.removeAll(keepingCapacity: true)
            lookupKinds.removeAll(keepingCapacity: true)
            lookupDigests.removeAll(keepingCapacity: true)
            lookupRecords.removeAll(keepingCapacity: true)
            try await settle()
            inFlight = Self.start(batch, tenant: importer.tenantID, dataset: importer.dataset.id, expires: expires, on: connection)
        }

        /// Waits for the batch in flight, if any; its error surfaces here.
        func settle() async throws {
            guard let inFlight else { return }
            self.inFlight = nil
            try await inFlight.value
        }

        struct Batch: Sendable {
            var recordIDs: [String]
            var externalIDs: [String]
            var documents: [String]
            var lookupFields: [String]
            var lookupKinds: [String]
            var lookupDigests: [String]
            var lookupRecords: [String]
        }

        static func start(
            _ batch: Batch, tenant: UUID, dataset: UUID, expires: Date?, on connection: PostgresConnection
        ) -> Task<Void, any Error> {
            Task { try await insert(batch, tenant: tenant, dataset: dataset, expires: expires, on: connection) }
        }

        static func insert(_ batch: Batch, tenant: UUID, dataset: UUID, expires: Date?, on connection: PostgresConnection) async throws {
            let (recordIDs, externalIDs, documents) = (batch.recordIDs, batch.externalIDs, batch.documents)
            let (lookupFields, lookupKinds) = (batch.lookupFields, batch.lookupKinds)
            let (lookupDigests, lookupRecords) = (batch.lookupDigests, batch.lookupRecords)
            try await connection.query(
                """
                INSERT INTO itaku.records (tenant_id, dataset_id, record_id, external_id, fields, expires_at)
                SELECT \(tenant), \(dataset), r::uuid, e, f::jsonb, \(expires)
                FROM unnest(\(recordIDs)::text[], \(externalIDs)::text[], \(documents)::text[]) AS t(r, e, f)
                """
            )
            if !lookupKinds.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, field, kind, digest, record_id)
                    SELECT \(tenant), \(dataset), f, k, decode(d, 'hex'), r::uuid
                    FROM unnest(\(lookupFields)::text[], \(lookupKinds)::text[], \(lookupDigests)::text[], \(lookupRecords)::text[])
                        AS t(f, k, d, r)
                    """
                )
            }
        }
    }

    public let tenantID: UUID
    public let dataset: Dataset
    public let digester: LookupDigester
    /// Seals each record's fields with the tenant's data key.
    public let sealer: FieldSealer
    public var maxIssues = 1000
    public var batchSize = 2000
    /// A batch's sealed documents at most (bytes; a batch holds at least one record).
    public var batchBytes = 16 << 20
    public let validator: RecordValidator

    public init(tenantID: UUID, dataset: Dataset, digester: LookupDigester, sealer: FieldSealer) {
        self.tenantID = tenantID
        self.dataset = dataset
        self.digester = digester
        self.sealer = sealer
        self.validator = RecordValidator(schema: dataset.schema)
    }

    /// Runs an import on `connection`, inside the caller's transaction. `feed` hands the rows
    /// to the sink. On `.rejected` the caller must roll back.
    public func run(on connection: PostgresConnection, _ feed: (Sink) async throws -> Void) async throws -> Outcome {
        try await RegistryStore.setTenant(tenantID, on: connection)
        var existing: Set<Int> = []
        for row in try await connection.query(
            "SELECT external_id FROM itaku.records WHERE tenant_id = \(tenantID) AND dataset_id = \(dataset.id)"
        ) {
            existing.insert(try row.decode(0, as: String.self).hashValue)
        }
        let sink = Sink(importer: self, connection: connection, existingKeys: existing)
        do {
            try await feed(sink)
        } catch {
            // Nothing else may touch the connection while a batch is still being inserted.
            try? await sink.settle()
            throw error
        }
        guard sink.isClean else {
            try? await sink.settle()
            return .rejected(sink.issues)
        }
        try await sink.flush()
        try await sink.settle()
        return .imported(sink.count)
    }
}

/// A record's fields as the JSON object that is sealed: fields in the schema's order, then any
/// stored under an earlier schema that this one no longer has (in name order), empty values left
/// out. An update or a correction rewrites the whole document: a field the schema dropped keeps
/// its value, rather than vanish without an entry saying so.
public enum RecordDocument {
    public static func json(_ values: [String: String], order: [DatasetSchema.Field]) -> String {
        var json = "{"
        var first = true
        func add(_ name: String, _ value: String) {
            if !first { json += "," }
            first = false
            json += JSONText.string(name) + ":" + JSONText.string(value)
        }
        var written = 0
        for field in order {
            guard let value = values[field.name] else { continue }
            written += 1
            if !value.isEmpty { add(field.name, value) }
        }
        if written < values.count {
            let known = Set(order.map(\.name))
            for (name, value) in values.filter({ !known.contains($0.key) && !$0.value.isEmpty }).sorted(by: { $0.key < $1.key }) {
                add(name, value)
            }
        }
        return json + "}"
    }
}
