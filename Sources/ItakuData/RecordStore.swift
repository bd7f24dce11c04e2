import Foundation
import ItakuCore
import ItakuPostgres
import ItakuRegistry

/// SQL on entrusted records shared by the agent path and the data-subject requests. Runs on a
/// connection in a transaction whose tenant context is set.
public enum RecordStore {
    /// When a lookup field changed, the lookup index follows: every key of the record that its
    /// new values do not give is removed (whatever normalisation made it), and theirs are added,
    /// in one statement.
    public static func replaceLookupKeys(
        of recordID: UUID, in dataset: Dataset, values: [String: String], digester: LookupDigester, on connection: PostgresConnection
    ) async throws {
        try await connection.query(replaceLookupKeysQuery(of: recordID, in: dataset, values: values, digester: digester))
    }

    static func replaceLookupKeysQuery(of recordID: UUID, in dataset: Dataset, values: [String: String], digester: LookupDigester) -> PostgresQuery {
        let keys = digester.lookupKeys(of: values, schema: dataset.schema)
        let (fields, kinds, digests) = (keys.map(\.field), keys.map(\.kind), keys.map(\.digest))
        // Keys written before keys named their field (field '') are replaced by named ones.
        return
            """
            WITH new AS (SELECT * FROM unnest(\(fields)::text[], \(kinds)::text[], \(digests)::text[]) AS t(field, kind, digest)),
            gone AS (
                DELETE FROM itaku.lookup_keys
                WHERE tenant_id = \(dataset.tenantID) AND dataset_id = \(dataset.id) AND record_id = \(recordID)
                  AND (field, kind, encode(digest, 'hex')) NOT IN (SELECT field, kind, digest FROM new)
            )
            INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, field, kind, digest, record_id)
            SELECT \(dataset.tenantID), \(dataset.id), field, kind, decode(digest, 'hex'), \(recordID) FROM new
            ON CONFLICT DO NOTHING
            """
    }

    /// Writes a record's new fields (`before` with `changes`; an empty value removes the field),
    /// sealed with the tenant's data key, and keeps the lookup index in step when a lookup field
    /// changed. The record is locked by the caller. Returns the new fields.
    @discardableResult
    public static func write(
        _ changes: [String: String], to recordID: UUID, in dataset: Dataset, before: [String: String], sealer: FieldSealer,
        digester: LookupDigester, on connection: PostgresConnection
    ) async throws -> [String: String] {
        let (statements, after) = try writeStatements(changes, to: recordID, in: dataset, before: before, sealer: sealer, digester: digester)
        try await connection.pipeline(statements)
        return after
    }

    /// The statements of `write`, to run later in the transaction (with its commit): the
    /// record's update, and the lookup index's when a lookup field changed. Also the new fields.
    public static func writeStatements(
        _ changes: [String: String], to recordID: UUID, in dataset: Dataset, before: [String: String], sealer: FieldSealer,
        digester: LookupDigester
    ) throws -> ([PostgresQuery], [String: String]) {
        let after = before.merging(changes) { $1 }.filter { !$0.value.isEmpty }
        let sealed = try sealer.seal(RecordDocument.json(after, order: dataset.schema.fields), record: recordID.uuidString)
        var statements: [PostgresQuery] = [.prepared(
            """
            UPDATE itaku.records SET fields = \(PostgresJSON(sealed)), updated_at = now()
            WHERE tenant_id = \(dataset.tenantID) AND dataset_id = \(dataset.id) AND record_id = \(recordID)
            """
        )]
        if changes.keys.contains(where: { dataset.schema.field($0)?.lookup != nil }) {
            statements.append(replaceLookupKeysQuery(of: recordID, in: dataset, values: after, digester: digester))
        }
        return (statements, after)
    }

    /// The records of a subject, located by a lookup field's value: (record id, external id).
    /// Only that field's keys match.
    public static func locate(
        in dataset: Dataset, field: String, kind: DatasetSchema.LookupKind, digest: [UInt8], on connection: PostgresConnection
    ) async throws -> [(UUID, String)] {
        // The digest's keys first, then each key's record by primary key, as itaku.agent_find
        // does (migration 0015). Both steps are fenced: a plain join could be driven from the
        // records in external_id order instead, reading many records for the one a key names.
        let rows = try await connection.query(
            """
            WITH keys AS MATERIALIZED (
                SELECT k.record_id FROM itaku.lookup_keys k
                WHERE k.digest = \(PostgresBytes(digest)) AND k.kind = \(kind.rawValue) AND k.dataset_id = \(dataset.id)
                  AND k.tenant_id = \(dataset.tenantID) AND k.field = \(field)
            )
            SELECT r.record_id, r.external_id FROM keys k
            CROSS JOIN LATERAL (
                SELECT r.record_id, r.external_id FROM itaku.records r
                WHERE r.tenant_id = \(dataset.tenantID) AND r.dataset_id = \(dataset.id) AND r.record_id = k.record_id
                OFFSET 0
            ) r
            ORDER BY r.external_id LIMIT 101
            """
        )
        return try rows.map { (try $0.decode(0), try $0.decode(1)) }
    }

    /// Records of `dataset` among `ids`: (record id, external id).
    public static func existing(_ ids: [UUID], in dataset: Dataset, on connection: PostgresConnection) async throws -> [(UUID, String)] {
        let rows = try await connection.query(
            """
            SELECT record_id, external_id FROM itaku.records
            WHERE tenant_id = \(dataset.tenantID) AND dataset_id = \(dataset.id) AND record_id = ANY (\(ids.map { $0.lowercasedString })::uuid[])
            ORDER BY external_id
            """
        )
        return try rows.map { (try $0.decode(0), try $0.decode(1)) }
    }

    /// Rebuilds `dataset`'s lookup index from its records, under `dataset.schema`: every key of
    /// the dataset goes, and each record's keys under that schema are written. A schema whose
    /// lookup fields changed (one added, renamed, or of another kind or category) needs it, as
    /// do keys written by earlier releases. Runs in the caller's transaction, its tenant set;
    /// the records are read in pages, shared-locked (an update in flight finishes first).
    /// Returns how many records were read.
    @discardableResult
    public static func rebuildLookupKeys(
        in dataset: Dataset, dataKeys: DataKeys, digester: LookupDigester, on connection: PostgresConnection
    ) async throws -> Int {
        let (tenant, id) = (dataset.tenantID, dataset.id)
        try await connection.query("DELETE FROM itaku.lookup_keys WHERE tenant_id = \(tenant) AND dataset_id = \(id)")
        var last = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        var count = 0
        while true {
            let rows = Array(try await connection.query(
                """
                SELECT record_id, fields FROM itaku.records WHERE tenant_id = \(tenant) AND dataset_id = \(id) AND record_id > \(last)
                ORDER BY record_id LIMIT 2000 FOR SHARE
                """
            ))
            guard !rows.isEmpty else { return count }
            var fields: [String] = [], kinds: [String] = [], digests: [String] = [], records: [String] = []
            for row in rows {
                let record: UUID = try row.decode(0)
                let values = try dataKeys.open(try row.decode(1, as: PostgresJSON.self).text, tenant: tenant, record: record.uppercasedString)
                for key in digester.lookupKeys(of: values, schema: dataset.schema) {
                    fields.append(key.field)
                    kinds.append(key.kind)
                    digests.append(key.digest)
                    records.append(record.lowercasedString)
                }
                last = record
            }
            if !fields.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, field, kind, digest, record_id)
                    SELECT \(tenant), \(id), f, k, decode(d, 'hex'), r::uuid
                    FROM unnest(\(fields)::text[], \(kinds)::text[], \(digests)::text[], \(records)::text[]) AS t(f, k, d, r)
                    ON CONFLICT DO NOTHING
                    """
                )
            }
            count += rows.count
        }
    }
}
