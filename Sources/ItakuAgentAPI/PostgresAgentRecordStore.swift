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
    /// Lookups and case checks, each sent together with those that wait for a lane
    /// (`Batches`, migration 0016).
    let lookups: Batches<Lookup, [StoredRecord]>
    let bindings: Batches<Binding, Bool>
    /// Updates, committed together: one transaction per tenant and batch (`together`).
    let updates: Batches<Update, AccessEntry>

    public init(database: PostgresClient, accessLog: AccessLogWriter) {
        self.database = database
        self.accessLog = accessLog
        self.lookups = Batches(on: database) { Self.find($0, on: $1) }
        self.bindings = Batches(on: database) { Self.bound($0, on: $1) }
        // Updates hold their records' locks while out: both lanes open at once, as measured best.
        self.updates = Batches(slowBatch: .zero) { await Self.update($0, on: database, accessLog: accessLog) }
    }

    public func lookup(tenant: UUID, dataset: UUID, key: LookupKey, limit: Int) async throws -> [StoredRecord] {
        try await lookups.submit(Lookup(tenant: tenant, dataset: dataset, key: key, limit: limit))
    }

    public func read(tenant: UUID, dataset: UUID, record: UUID) async throws -> StoredRecord? {
        let rows = try await database.query(.prepared("SELECT * FROM itaku.agent_read(\(tenant), \(dataset), \(record))"))
        return try rows.first.map(Self.record)
    }

    public func isBound(tenant: UUID, integration: UUID, agent: String, caseRef: String, record: UUID, minutes: Int) async throws -> Bool {
        try await bindings.submit(Binding(tenant: tenant, integration: integration, agent: agent, caseRef: caseRef, record: record, minutes: minutes))
    }

    public func reserve(_ r: UsageReservation) async throws -> UsageGranted {
        let tool = r.integration.map { "integration:" + $0.lowercasedString }
        let rows = try await database.query(.prepared(
            """
            SELECT *, date_trunc('hour', now()) FROM itaku.reserve_usage_up_to(\(r.tenant), \(r.purpose), \("agent:" + r.agent),
                \(r.lookupsPerMinute)::bigint, \(tool), \(r.integrationLookupsPerMinute)::bigint, \(r.recordsPerHour)::bigint,
                \(Int32(clamping: r.records)))
            """
        ))
        return UsageGranted(
            lookup: try rows[0].decode(0, as: Bool.self), integration: try rows[0].decode(1, as: Bool.self),
            records: Int(try rows[0].decode(2, as: Int32.self)),
            // now() is the statement's transaction's: the hour the function counted in.
            hour: try rows[0].decode(3, as: Date.self)
        )
    }

    public func count(records: Int, tenant: UUID, purpose: String, agent: String, hour: Date) async throws {
        try await database.query(.prepared(
            "SELECT itaku.count_records_in(\(tenant), \(purpose), \("agent:" + agent), \(hour), \(Int32(clamping: records)))"
        ))
    }

    public func update(
        tenant: UUID, dataset: Dataset, record: UUID,
        _ body: @escaping @Sendable (StoredRecord?, any RecordWriter) async throws -> AccessEntry
    ) async throws -> AccessEntry {
        let update = Update(tenant: tenant, dataset: dataset, record: record, body: body)
        do {
            return try await updates.submit(update)
        } catch is GoAlone {
            // Its shared transaction was refused: this update alone, on the caller's own time,
            // not holding the lane (a busy record then holds up only its own update).
            return try await Self.alone(update, on: database, accessLog: accessLog)
        }
    }

    /// The answer to each update of a shared transaction that was refused, and so wrote
    /// nothing: try again in a transaction of its own.
    struct GoAlone: Error {}

    /// One update in its own transaction: BEGIN, the tenant and the record's lock in one round
    /// trip; the change, its entry and COMMIT in one more.
    static func alone(_ update: Update, on database: PostgresClient, accessLog: AccessLogWriter) async throws -> AccessEntry {
        // The dataset's schema lock first (`datasetChanged`), then the record's, with the version.
        let lock: PostgresQuery = .prepared(
            """
            SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false), d.version
            FROM itaku.datasets d JOIN itaku.records r ON r.tenant_id = d.tenant_id AND r.dataset_id = d.dataset_id
            WHERE d.tenant_id = \(update.tenant) AND d.dataset_id = \(update.dataset.id) AND r.record_id = \(update.record) FOR UPDATE OF r
            """
        )
        let (_, entries) = try await accessLog.transaction(
            on: database, tenant: update.tenant, preparing: [RegistryStore.schemaLock(update.dataset.id)], opening: lock
        ) { _, rows in
            let writer = Writer(dataset: update.dataset, record: update.record)
            let row = rows?.first
            if let row, try row.decode(5, as: Int.self) != update.dataset.version { throw Self.datasetChanged }
            let entry = try await update.body(try row.map(Self.record), writer)
            return ((), [entry], writer.statements.withLock { $0 })
        }
        return entries[0]
    }

    /// An update decided under a schema that is no longer the dataset's: a dataset `PUT`
    /// committed after this instance read the registry. Its change would be checked, and its
    /// lookup keys made, under the old schema, so nothing is changed (and nothing logged: no
    /// data was read or written); the tool sends it again, decided under the new schema.
    ///
    /// An update holds its dataset's schema lock shared until it commits
    /// (`RegistryStore.schemaLock`), and reads the version in the statement after it: a `PUT`,
    /// which takes the lock exclusively and rebuilds the dataset's lookup keys, waits for the
    /// updates under way, and the updates after it see its version.
    static let datasetChanged = AgentRefusal(
        status: 409, code: "dataset_changed", title: "Conflict",
        detail: "The dataset's schema changed while this update was made; nothing was changed. Send it again."
    )

    /// A record from the five columns starting at `first`: id, external id, fields, status,
    /// expired.
    static func record(_ row: PostgresRow, from first: Int) throws -> StoredRecord {
        StoredRecord(
            id: try row.decode(first), externalID: try row.decode(first + 1),
            document: try row.decode(first + 2, as: PostgresJSON.self).text,
            status: try row.decode(first + 3), expired: try row.decode(first + 4, as: Bool?.self) == true
        )
    }

    static func record(_ row: PostgresRow) throws -> StoredRecord { try record(row, from: 0) }

    // MARK: Batches

    struct Lookup: Sendable {
        var tenant: UUID
        var dataset: UUID
        var key: LookupKey
        var limit: Int
    }

    struct Binding: Sendable {
        var tenant: UUID
        var integration: UUID
        var agent: String
        var caseRef: String
        var record: UUID
        var minutes: Int
    }

    /// Each lookup's records, at most its limit, in external id order: key by key, read only.
    static func find(_ lookups: [Lookup], on session: PostgresSession) -> [Result<[StoredRecord], any Error>] {
        do {
            var found = Array(repeating: [StoredRecord](), count: lookups.count)
            let results = try perTenant(lookups, tenant: \.tenant, on: session) { tenant, batch in
                // One alone: the function for one (migration 0017), numbered as item 1.
                if batch.count == 1, let lookup = batch.first {
                    return .prepared(
                        """
                        SELECT 1::integer, * FROM itaku.agent_find(\(tenant), \(lookup.dataset), \(lookup.key.field),
                            \(lookup.key.kind), \(PostgresBytes(lookup.key.digest)), \(Int32(clamping: lookup.limit)))
                        """
                    )
                }
                return .prepared(
                    """
                    SELECT * FROM itaku.agent_find_batch(\(tenant), \(PostgresArray(batch.map(\.dataset))),
                        \(batch.map(\.key.field)), \(batch.map(\.key.kind)),
                        \(PostgresArray(batch.map { PostgresBytes($0.key.digest) })), \(PostgresArray(batch.map { Int32(clamping: $0.limit) })))
                    """
                )
            }
            for (items, rows) in results {
                for row in rows { found[try item(row, of: items)].append(try record(row, from: 1)) }
            }
            return found.map { .success($0) }
        } catch {
            return Array(repeating: .failure(error), count: lookups.count)
        }
    }

    /// Whether each agent's allowed lookup under its case returned its record within its minutes.
    static func bound(_ checks: [Binding], on session: PostgresSession) -> [Result<Bool, any Error>] {
        // Text with NUL cannot be in the log, so it binds nothing, and it is never sent: it
        // would fail the batch's statement for every request in it.
        let sendable = checks.indices.filter { !checks[$0].agent.containsNUL && !checks[$0].caseRef.containsNUL }
        guard sendable.count == checks.count else {
            var answers = Array(repeating: Result<Bool, any Error>.success(false), count: checks.count)
            for (index, answer) in zip(sendable, bound(sendable.map { checks[$0] }, on: session)) { answers[index] = answer }
            return answers
        }
        guard !checks.isEmpty else { return [] }
        do {
            var bound = Array(repeating: false, count: checks.count)
            let results = try perTenant(checks, tenant: \.tenant, on: session) { tenant, batch in
                if batch.count == 1, let check = batch.first {
                    return .prepared(
                        """
                        SELECT 1::integer WHERE itaku.case_bound(\(tenant), \(check.integration), \(check.agent), \(check.caseRef),
                            \(check.record), \(Int32(clamping: check.minutes)))
                        """
                    )
                }
                return .prepared(
                    """
                    SELECT item FROM itaku.case_bound_batch(\(tenant), \(PostgresArray(batch.map(\.integration))), \(batch.map(\.agent)), \(batch.map(\.caseRef)),
                        \(PostgresArray(batch.map(\.record))), \(PostgresArray(batch.map { Int32(clamping: $0.minutes) })))
                    """
                )
            }
            for (items, rows) in results {
                for row in rows { bound[try item(row, of: items)] = true }
            }
            return bound.map { .success($0) }
        } catch {
            return Array(repeating: .failure(error), count: checks.count)
        }
    }

    struct Update: Sendable {
        var tenant: UUID
        var dataset: Dataset
        var record: UUID
        var body: @Sendable (StoredRecord?, any RecordWriter) async throws -> AccessEntry
    }

    /// Updates sent together. Each tenant's updates of distinct records share one transaction
    /// (`together`; tenants side by side); a second update of a record waits for a later round,
    /// so it sees the first one's change.
    static func update(_ updates: [Update], on database: PostgresClient, accessLog: AccessLogWriter) async -> [Result<AccessEntry, any Error>] {
        var answers = [Result<AccessEntry, any Error>?](repeating: nil, count: updates.count)
        var pending = Array(updates.indices)
        while !pending.isEmpty {
            var tenants: [UUID] = []
            var rounds: [UUID: [Int]] = [:]
            var taken: Set<[UUID]> = []
            var later: [Int] = []
            for index in pending {
                let update = updates[index]
                guard taken.insert([update.tenant, update.record]).inserted else {
                    later.append(index)
                    continue
                }
                if rounds[update.tenant] == nil { tenants.append(update.tenant) }
                rounds[update.tenant, default: []].append(index)
            }
            let results = await withTaskGroup(of: [(Int, Result<AccessEntry, any Error>)].self) { group in
                for tenant in tenants {
                    let indices = rounds[tenant]!
                    group.addTask {
                        Array(zip(indices, await together(indices.map { updates[$0] }, tenant: tenant, on: database, accessLog: accessLog)))
                    }
                }
                return await group.reduce(into: []) { $0 += $1 }
            }
            for (index, result) in results { answers[index] = result }
            pending = later
        }
        return answers.map { $0 ?? .failure(BatchError.answersMissing) }
    }

    /// How long a shared transaction waits for a record's lock before each of its updates goes
    /// alone: below PostgreSQL's deadlock_timeout (1 s), so that against an operator's
    /// transaction holding several records (a correction, a disposal) the batch gives way first.
    static let sharedLockTimeout: Duration = .milliseconds(500)

    /// Updates of one tenant's distinct records in one transaction: BEGIN, the tenant and every
    /// record's lock (in record id order, so that two batches cannot deadlock) in one round trip;
    /// every change, every entry and COMMIT in one more. An update whose decision throws fails
    /// alone. If PostgreSQL or the log refuses the transaction (it reported why, so it did not
    /// commit: a lock it could not take, a refused change or entry), each update answers
    /// `GoAlone` and its caller tries again in a transaction of its own, so only the one at
    /// fault fails or waits, and the lane is free at once; if the commit's outcome is unknown,
    /// every update of it fails, never tried twice.
    static func together(_ updates: [Update], tenant: UUID, on database: PostgresClient, accessLog: AccessLogWriter) async -> [Result<AccessEntry, any Error>] {
        if updates.count == 1 {
            do { return [.success(try await alone(updates[0], on: database, accessLog: accessLog))] } catch { return [.failure(error)] }
        }
        // The datasets' schema locks (`datasetChanged`), in id order, before the statement that
        // reads their versions and locks the records.
        let schemaLocks = Set(updates.map(\.dataset.id)).sorted { $0.uuidString < $1.uuidString }.map(RegistryStore.schemaLock)
        let lock: PostgresQuery = .prepared(
            """
            SELECT r.record_id, r.external_id, r.fields, r.status, coalesce(r.expires_at < now(), false), r.dataset_id, d.version
            FROM unnest(\(PostgresArray(updates.map(\.dataset.id))), \(PostgresArray(updates.map(\.record))))
                AS q(dataset_id, record_id)
            JOIN itaku.datasets d ON d.tenant_id = \(tenant) AND d.dataset_id = q.dataset_id
            JOIN itaku.records r ON r.tenant_id = \(tenant) AND r.dataset_id = q.dataset_id AND r.record_id = q.record_id
            ORDER BY r.record_id FOR UPDATE OF r
            """
        )
        do {
            let (outcomes, entries) = try await accessLog.transaction(
                on: database, tenant: tenant, lockTimeout: sharedLockTimeout, preparing: schemaLocks, opening: lock
            ) { _, rows -> ([Result<Int, any Error>], [AccessEntry], [PostgresQuery]) in
                var locked: [UUID: (dataset: UUID, record: StoredRecord, version: Int)] = [:]
                for row in rows.map(Array.init) ?? [] {
                    let record = try Self.record(row)
                    locked[record.id] = (try row.decode(5, as: UUID.self), record, try row.decode(6, as: Int.self))
                }
                var outcomes: [Result<Int, any Error>] = []
                var entries: [AccessEntry] = []
                var statements: [PostgresQuery] = []
                for update in updates {
                    let writer = Writer(dataset: update.dataset, record: update.record)
                    let found = locked[update.record].flatMap { $0.dataset == update.dataset.id ? $0 : nil }
                    let record = found?.record
                    do {
                        if let found, found.version != update.dataset.version { throw Self.datasetChanged }
                        let entry = try await update.body(record, writer)
                        outcomes.append(.success(entries.count))
                        entries.append(entry)
                        statements += writer.statements.withLock { $0 }
                    } catch {
                        outcomes.append(.failure(error))
                    }
                }
                return (outcomes, entries, statements)
            }
            return outcomes.map { outcome in outcome.map { entries[$0] } }
        } catch let error where Self.refused(error) {
            // Nothing of it was written: each update again alone, by its own caller.
            return Array(repeating: .failure(GoAlone()), count: updates.count)
        } catch {
            return Array(repeating: .failure(error), count: updates.count)
        }
    }

    /// Whether a shared transaction certainly did not commit: the log refused its entries, or
    /// PostgreSQL refused a statement and said why.
    static func refused(_ error: any Error) -> Bool {
        if let error = error as? AccessLogError { return error == .writeFailed || error == .unstorable }
        if let error = error as? PostgresError { return error.isRefusal }
        return false
    }

    /// Runs one statement per tenant among `requests` (row-level security acts for one tenant
    /// per statement), all in one round trip. Returns each statement's rows with the indices of
    /// the requests it carried, in the order of its items.
    private static func perTenant<Request>(
        _ requests: [Request], tenant: (Request) -> UUID, on session: PostgresSession,
        statement: (UUID, [Request]) -> PostgresQuery
    ) throws -> [(items: [Int], rows: PostgresRows)] {
        var tenants: [UUID] = []
        var items: [UUID: [Int]] = [:]
        for (index, request) in requests.enumerated() {
            let id = tenant(request)
            if items[id] == nil { tenants.append(id) }
            items[id, default: []].append(index)
        }
        let statements = tenants.map { id in statement(id, items[id]!.map { requests[$0] }) }
        let results = statements.count == 1 ? [try session.query(statements[0])] : try session.pipeline(statements)
        return zip(tenants, results).map { (items[$0]!, $1) }
    }

    /// The request a batch's row answers: its first column numbers the statement's items from 1.
    private static func item(_ row: PostgresRow, of items: [Int]) throws -> Int {
        let item = Int(try row.decode(0, as: Int32.self))
        guard items.indices.contains(item - 1) else {
            throw PostgresError(.decoding, detail: "a batch answered item \(item) of \(items.count)")
        }
        return items[item - 1]
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
