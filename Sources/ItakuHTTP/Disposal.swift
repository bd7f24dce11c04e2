import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Logging
import ServiceLifecycle

/// Disposes of records and keeps the evidence: the records and their lookup keys are deleted,
/// a signed disposal record and a `dispose` access entry are written, all in the caller's
/// transaction (the tenant context set), so either everything happens or nothing does.
struct Disposer: Sendable {
    let keyring: Keyring

    enum Selection: Sendable {
        case records([UUID])
        case expired(limit: Int)
        case any(limit: Int)
    }

    struct Disposed: Sendable {
        var signed: SignedDisposal
        var document: DisposalDocument
        var entry: AccessEntry
        var createdAt: Date

        var summary: DisposalSummary { DisposalSummary(document, at: createdAt) }
    }

    /// Deletes what `selection` names in `dataset` and returns the signed record with the entry
    /// to commit; nil when there was nothing to dispose of (and `evenIfEmpty` is false).
    func dispose(
        _ selection: Selection, tenant: Tenant, dataset: Dataset, kind: DisposalDocument.Kind, by actor: Actor,
        subjectRequest: UUID? = nil, evenIfEmpty: Bool = false, on connection: PostgresConnection
    ) async throws -> Disposed? {
        let rows: PostgresRows
        switch selection {
        case .records(let ids):
            rows = try await connection.query(
                "SELECT record_id, external_id FROM itaku.dispose_records(\(dataset.id), \(ids.map { $0.lowercasedString })::uuid[])"
            )
        case .expired(let limit):
            rows = try await connection.query("SELECT record_id, external_id FROM itaku.dispose_expired(\(dataset.id), \(Int32(clamping: limit)))")
        case .any(let limit):
            rows = try await connection.query("SELECT record_id, external_id FROM itaku.dispose_dataset(\(dataset.id), \(Int32(clamping: limit)))")
        }
        guard evenIfEmpty || !rows.isEmpty else { return nil }
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.id.uuidString))
        var recordIDs: [UUID] = []
        var digests: [String] = []
        for row in rows {
            recordIDs.append(try row.decode(0))
            digests.append(digester.subjectDigest(externalID: try row.decode(1)))
        }
        let id = UUID()
        let now = Date()
        let document = DisposalDocument(
            id: id, kind: kind, tenantID: tenant.id, tenant: tenant.code, dataset: dataset.name, subjectDigests: digests, at: now,
            by: actor.description, subjectRequest: subjectRequest, dataKeyDestroyed: kind == .contractEnd ? true : nil
        )
        let signed = try SignedDisposal.sign(document, key: keyring.checkpointSigningKey, keyID: keyring.checkpointKeyID)
        try await connection.query(
            """
            INSERT INTO itaku.disposal_records (tenant_id, disposal_id, created_at, kind, dataset, records, document, key_id, signature)
            VALUES (\(tenant.id), \(id), \(now), \(kind.rawValue), \(dataset.name), \(Int32(clamping: digests.count)),
                    \(signed.document), \(signed.key_id), \(PostgresBytes(Array(Data(base64Encoded: signed.signature) ?? Data()))))
            """
        )
        var entry = AccessEntry(
            tenantID: tenant.id, actorRole: actor.role, actorKeyID: actor.keyID, operation: .dispose, decision: .allow, reason: "allowed"
        )
        entry.dataset = dataset.name
        entry.target = "disposal:\(id.lowercasedString):\(kind.rawValue)"
        // The entry names the records only when they are few (a deletion request); a retention
        // run's thousands are in the disposal record, by digest.
        if recordIDs.count <= 100 {
            entry.recordIDs = recordIDs
            entry.subjectDigests = digests
        }
        entry.rowsReturned = digests.count
        return Disposed(signed: signed, document: document, entry: entry, createdAt: now)
    }

    /// Who disposed: a caller of the API, or the retention service of an instance.
    struct Actor: Sendable, CustomStringConvertible {
        var role: String
        var keyID: UUID?
        var instance: String?

        static func service(_ instance: String) -> Actor { Actor(role: "retention_service", keyID: nil, instance: instance) }

        var description: String {
            if let instance { return "retention-service@\(instance)" }
            return role + (keyID.map { ":" + $0.lowercasedString } ?? "")
        }
    }
}

/// Disposes of expired records on a schedule: every `interval`, each tenant's datasets lose the
/// records whose `expires_at` (set from the dataset's retention period at import) has passed, in batches, each batch with
/// its signed disposal record. Several instances may run it at once: a record is deleted once
/// (`FOR UPDATE SKIP LOCKED`), and a batch that found nothing writes nothing.
final class RetentionService: Service, Sendable {
    let database: PostgresClient
    let registry: Registry
    let accessLog: AccessLogWriter
    let dataKeys: DataKeys
    let disposer: Disposer
    let instanceID: String
    let interval: Duration
    let logger: Logger
    static let batchSize = 5_000

    init(
        database: PostgresClient, registry: Registry, accessLog: AccessLogWriter, keyring: Keyring, dataKeys: DataKeys,
        instanceID: String, interval: Duration, logger: Logger
    ) {
        self.database = database
        self.registry = registry
        self.accessLog = accessLog
        self.dataKeys = dataKeys
        self.disposer = Disposer(keyring: keyring)
        self.instanceID = instanceID
        self.interval = interval
        self.logger = logger
    }

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: self.interval)
                    if Task.isCancelled { return }
                    for tenant in self.registry.snapshot.tenants.values {
                        do {
                            let disposed = try await self.run(tenant: tenant, actor: .service(self.instanceID))
                            if !disposed.isEmpty {
                                self.logger.info("retention disposed of expired records", metadata: [
                                    "itaku.tenant": "\(tenant.code)", "itaku.records": "\(disposed.reduce(0) { $0 + $1.records })",
                                ])
                            }
                        } catch {
                            self.logger.warning("retention run failed; will retry", metadata: ["itaku.tenant": "\(tenant.code)", "itaku.error": "\(error)"])
                        }
                    }
                }
            }
            try? await gracefulShutdown()
            group.cancelAll()
        }
    }

    /// One run for one tenant: every dataset's expired records disposed of, batch by batch,
    /// until none is left, then plain records sealed. A dataset that fails (its disposal, or
    /// the sealing) holds up no other, and sealing never holds up disposal; the first error is
    /// thrown once every dataset had its turn. Returns the disposal records written.
    func run(tenant: Tenant, actor: Disposer.Actor, requestID: String? = nil, clientAddress: String? = nil) async throws -> [DisposalSummary] {
        var documents: [DisposalSummary] = []
        var failure: (any Error)?
        // Every dataset: records that expired under a retention period since removed are
        // withheld from agents and must still go.
        let datasets = (registry.snapshot.datasets[tenant.id] ?? [:]).values.sorted { $0.name < $1.name }
        for dataset in datasets {
            do {
                while true {
                    let disposer = self.disposer
                    let batch: DisposalSummary? = try await recordedTransaction(
                        database: database, accessLog: accessLog, tenant: tenant.id
                    ) { connection in
                        // Nothing expired: nothing deleted, nothing to record.
                        guard var disposed = try await disposer.dispose(
                            .expired(limit: Self.batchSize), tenant: tenant, dataset: dataset, kind: .retention, by: actor, on: connection
                        ) else { return (nil, []) }
                        disposed.entry.requestID = requestID
                        disposed.entry.clientAddress = clientAddress
                        return (disposed.summary, [disposed.entry])
                    }
                    guard let batch else { break }
                    documents.append(batch)
                    if batch.records < Self.batchSize { break }
                }
            } catch {
                failure = failure ?? error
            }
        }
        if tenant.status != "ended" {
            for dataset in datasets {
                do { try await sealPlainRecords(of: tenant, in: dataset) } catch { failure = failure ?? error }
            }
        }
        if let failure { throw failure }
        return documents
    }

    /// Seals the records stored before sealing existed, 1,000 a transaction, their stored JSON
    /// as it is: after one pass of the service no record of the tenant is plain in the database.
    @discardableResult
    func sealPlainRecords(of tenant: Tenant, in dataset: Dataset) async throws -> Int {
        var sealed = 0
        let dataKeys = self.dataKeys
        while true {
            let count: Int = try await database.withTransaction { connection in
                try await RegistryStore.setTenant(tenant.id, on: connection)
                let rows = try await connection.query(
                    """
                    SELECT record_id, fields FROM itaku.records
                    WHERE tenant_id = \(tenant.id) AND dataset_id = \(dataset.id) AND NOT fields ? '$sealed'
                    LIMIT 1000 FOR UPDATE SKIP LOCKED
                    """
                )
                guard !rows.isEmpty else { return 0 }
                let sealer = try dataKeys.sealer(for: tenant.id)
                var ids: [String] = [], documents: [String] = []
                for row in rows {
                    let id: UUID = try row.decode(0)
                    ids.append(id.lowercasedString)
                    documents.append(try sealer.seal(try row.decode(1, as: PostgresJSON.self).text, record: id.uuidString))
                }
                try await connection.query(
                    """
                    UPDATE itaku.records r SET fields = t.f::jsonb
                    FROM unnest(\(ids)::text[], \(documents)::text[]) AS t(id, f)
                    WHERE r.tenant_id = \(tenant.id) AND r.dataset_id = \(dataset.id) AND r.record_id = t.id::uuid
                    """
                )
                return rows.count
            }
            sealed += count
            if count < 1000 { return sealed }
        }
    }
}

/// A disposal record as lists and runs show it: the signed document is fetched by id.
struct DisposalSummary: Encodable, Sendable {
    var id: String
    var created_at: Date
    var kind: String
    var dataset: String
    var records: Int

    init(id: String, createdAt: Date, kind: String, dataset: String, records: Int) {
        self.id = id
        created_at = createdAt
        self.kind = kind
        self.dataset = dataset
        self.records = records
    }

    init(_ document: DisposalDocument, at date: Date) {
        self.init(id: document.disposal_id, createdAt: date, kind: document.kind.rawValue, dataset: document.dataset, records: document.records)
    }
}
