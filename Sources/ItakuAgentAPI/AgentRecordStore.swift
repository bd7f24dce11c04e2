import Foundation
import ItakuAccessLog
import ItakuData
import ItakuPostgres
import ItakuRegistry

/// A record as stored: its sealed fields still sealed, and what the enforcer needs to decide
/// whether it may leave (`status`, `expired`).
public struct StoredRecord: Sendable {
    public var id: UUID
    public var externalID: String
    /// The sealed document (`records.fields`).
    public var document: String
    public var status: String
    public var expired: Bool

    public init(id: UUID, externalID: String, document: String, status: String, expired: Bool) {
        self.id = id
        self.externalID = externalID
        self.document = document
        self.status = status
        self.expired = expired
    }
}

/// A reservation in the shared usage counters (`records_per_hour`, `lookups_per_minute`, and an
/// asserted integration's cap): each `true` says that unit was reserved.
public struct UsageReservation: Sendable {
    public var tenant: UUID
    public var purpose: String
    public var agent: String
    public var lookupsPerMinute: Int?
    public var integration: UUID?
    public var integrationLookupsPerMinute: Int?
    public var recordsPerHour: Int?
    public var records: Int
}

public struct UsageGranted: Sendable {
    public var lookup: Bool
    public var integration: Bool
    /// Records granted of those asked for: what the hour has left of `records_per_hour`, at
    /// most the number asked (0 when the lookup or the integration was refused first).
    public var records: Int
    /// The hour they were counted in: records not carried go back to it.
    public var hour: Date?
}

/// Writes a locked record's new fields inside the update's transaction (PostgreSQL's store
/// sends them with the transaction's entry and COMMIT, in one round trip).
public protocol RecordWriter: Sendable {
    func write(_ changes: [String: String], before: [String: String], sealer: FieldSealer, digester: LookupDigester) async throws
}

/// What a lookup searches: the keys of one field with one digest. Only the field the purpose
/// allows is searched: another field of the same kind (an emergency contact's phone, a member
/// id beside the customer number) never answers for it.
public struct LookupKey: Sendable, Equatable {
    public var field: String
    public var kind: String
    public var digest: [UInt8]

    public init(field: String, kind: String, digest: [UInt8]) {
        self.field = field
        self.kind = kind
        self.digest = digest
    }
}

/// Where the agent data service reads and writes entrusted records. Every method acts for one
/// tenant (row-level security). PostgreSQL's is the one in production
/// (`PostgresAgentRecordStore`); the service depends on nothing else of the database.
public protocol AgentRecordStore: Sendable {
    /// The records a lookup key finds (at most `limit`). Reading only: the lookup's access
    /// entry, once committed, is what binds the records it released to the agent's case.
    func lookup(tenant: UUID, dataset: UUID, key: LookupKey, limit: Int) async throws -> [StoredRecord]
    func read(tenant: UUID, dataset: UUID, record: UUID) async throws -> StoredRecord?
    /// Whether an allowed lookup by this agent, through this integration, under this case
    /// returned this record within `minutes` (its committed access entry says so).
    func isBound(tenant: UUID, integration: UUID, agent: String, caseRef: String, record: UUID, minutes: Int) async throws -> Bool
    func reserve(_ reservation: UsageReservation) async throws -> UsageGranted
    /// Adds `records` (negative: gives back) to the agent's `hour` of `records_per_hour`.
    func count(records: Int, tenant: UUID, purpose: String, agent: String, hour: Date) async throws
    /// Locks the record, lets `body` decide on it (and write through the writer when it allows),
    /// and commits the change with the entry `body` returns, in one transaction (which may
    /// carry other updates too: `body` may run on another task, and more than once if that
    /// transaction is refused; it must only decide and write through the writer).
    func update(
        tenant: UUID, dataset: Dataset, record: UUID,
        _ body: @escaping @Sendable (StoredRecord?, any RecordWriter) async throws -> AccessEntry
    ) async throws -> AccessEntry
}
