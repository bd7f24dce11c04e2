import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuPostgres
import ItakuTestSupport
import Logging
import Testing

@testable import ItakuAgentAPI

@Suite("Case bindings read from the access log")
struct CaseBindingTests {
    /// What the agent path's case check answers for entries written straight into the log: only
    /// an allowed lookup by the same agent through the same integration under the same case,
    /// naming the record, within the minutes given, binds it. The checks run all at once, so most go to PostgreSQL in batches
    /// (`itaku.case_bound_batch`): each must get its own answer.
    @Test("only an allowed lookup of the same agent and case, naming the record, within the binding minutes, binds")
    func boundByTheLog() async throws {
        let (database, _, _, _) = try await seededDemo(customers: 10, policyholders: 2)
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let store = PostgresAgentRecordStore(
            database: runtime, accessLog: AccessLogWriter(database: runtime, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
        )
        let tenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
        let otherTenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code <> 'acme-retail' LIMIT 1")[0].decode(0, as: UUID.self)
        let record = UUID(), other = UUID(), desk = UUID()
        var seq: Int64 = 0
        func entry(agent: String, case reference: String, operation: String, decision: String, records: [UUID], minutesAgo: Int) async throws {
            seq += 1
            try await owner.query(
                """
                INSERT INTO itaku.access_log (entry_id, occurred_at, tenant_id, actor_role, integration_id, agent, case_ref, operation, decision,
                    reason, record_ids, stream, seq, prev_hash, hash)
                VALUES (gen_random_uuid(), now() - make_interval(mins => \(Int32(minutesAgo))), \(tenant), 'integration', \(desk), \(agent),
                    \(reference), \(operation), \(decision), 'allowed', \(records.map(\.lowercasedString))::uuid[], 'test/bindings', \(seq),
                    '\\x00'::bytea, '\\x00'::bytea)
                """
            )
        }
        try await entry(agent: "A0001", case: "CALL-1", operation: "lookup", decision: "allow", records: [other, record], minutesAgo: 10)
        try await entry(agent: "A0001", case: "CALL-2", operation: "lookup", decision: "allow", records: [record], minutesAgo: 40)
        try await entry(agent: "A0001", case: "CALL-3", operation: "lookup", decision: "deny", records: [record], minutesAgo: 1)
        try await entry(agent: "A0001", case: "CALL-4", operation: "read", decision: "allow", records: [record], minutesAgo: 1)

        struct Check: Sendable {
            var expected: Bool
            var why: String
            var tenant: UUID
            var agent: String
            var caseRef: String
            var record: UUID
            var minutes = 30
            var integration: UUID? = nil
        }
        let checks = [
            Check(expected: true, why: "the lookup's record", tenant: tenant, agent: "A0001", caseRef: "CALL-1", record: record),
            Check(expected: true, why: "the lookup's other record", tenant: tenant, agent: "A0001", caseRef: "CALL-1", record: other),
            Check(expected: false, why: "a record the lookup did not name", tenant: tenant, agent: "A0001", caseRef: "CALL-1", record: UUID()),
            Check(expected: false, why: "another agent", tenant: tenant, agent: "A0002", caseRef: "CALL-1", record: record),
            Check(expected: false, why: "another case", tenant: tenant, agent: "A0001", caseRef: "CALL-9", record: record),
            Check(expected: false, why: "a lookup older than the binding minutes", tenant: tenant, agent: "A0001", caseRef: "CALL-2", record: record),
            Check(expected: true, why: "within longer binding minutes", tenant: tenant, agent: "A0001", caseRef: "CALL-2", record: record, minutes: 60),
            Check(expected: false, why: "beyond shorter binding minutes", tenant: tenant, agent: "A0001", caseRef: "CALL-1", record: record, minutes: 5),
            Check(expected: false, why: "a denied lookup", tenant: tenant, agent: "A0001", caseRef: "CALL-3", record: record),
            Check(expected: false, why: "a read, not a lookup", tenant: tenant, agent: "A0001", caseRef: "CALL-4", record: record),
            Check(expected: false, why: "another tenant's case", tenant: otherTenant, agent: "A0001", caseRef: "CALL-1", record: record),
            Check(expected: false, why: "another integration naming the agent", tenant: tenant, agent: "A0001", caseRef: "CALL-1", record: record, integration: UUID()),
        ]
        // Several rounds of all checks at once: batches of every size and mix of tenants.
        let answers = try await withThrowingTaskGroup(of: (Int, Bool).self) { group in
            for round in 0..<5 {
                for (index, check) in checks.enumerated() {
                    group.addTask {
                        let bound = try await store.isBound(
                            tenant: check.tenant, integration: check.integration ?? desk, agent: check.agent, caseRef: check.caseRef,
                            record: check.record, minutes: check.minutes
                        )
                        return (round * checks.count + index, bound)
                    }
                }
            }
            return try await group.reduce(into: [Int: Bool]()) { $0[$1.0] = $1.1 }
        }
        #expect(answers.count == checks.count * 5)
        for (index, bound) in answers {
            let check = checks[index % checks.count]
            #expect(bound == check.expected, "\(check.why)")
        }
        // All in one batch (one statement per tenant in one round trip), and a check whose text
        // cannot be stored, which binds nothing and fails nobody else's.
        let batch: [PostgresAgentRecordStore.Binding] = checks.map {
            .init(tenant: $0.tenant, integration: $0.integration ?? desk, agent: $0.agent, caseRef: $0.caseRef, record: $0.record, minutes: $0.minutes)
        } + [.init(tenant: tenant, integration: desk, agent: "A0001\u{0}", caseRef: "CALL-1", record: record, minutes: 30)]
        let direct = try await runtime.withSession { PostgresAgentRecordStore.bound(batch, on: $0) }
        #expect(direct.map { try? $0.get() } == checks.map(\.expected) + [false])
        // The previous release's checks (during an upgrade) read the log too.
        #expect(try await runtime.query("SELECT itaku.case_bound(\(tenant), 'A0001', 'CALL-1', \(record), 30)")[0].decode(0, as: Bool.self))
        #expect(try await runtime.query("SELECT itaku.case_bound(\(tenant), 'A0001', 'CALL-1', \(record))")[0].decode(0, as: Bool.self))
    }

    /// Lookups sent together, across tenants and datasets, each find exactly their own key's
    /// records (`itaku.agent_find_batch`), and a key nobody has finds nothing.
    @Test("lookups sent together each find their own key's records, in every tenant")
    func lookupsInBatches() async throws {
        let (database, _, _, _) = try await seededDemo(customers: 30, policyholders: 10)
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let store = PostgresAgentRecordStore(
            database: runtime, accessLog: AccessLogWriter(database: runtime, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
        )
        struct Key: Sendable {
            var tenant: UUID
            var dataset: UUID
            var field: String
            var kind: String
            var digest: [UInt8]
            var records: Set<UUID>
            var lookupKey: LookupKey { LookupKey(field: field, kind: kind, digest: digest) }
        }
        // One phone shared by two records (a household), so that a limit shows.
        try await owner.query(
            """
            INSERT INTO itaku.lookup_keys (tenant_id, dataset_id, field, kind, digest, record_id)
            SELECT k.tenant_id, k.dataset_id, k.field, k.kind, k.digest,
                (SELECT r.record_id FROM itaku.records r WHERE r.dataset_id = k.dataset_id AND r.record_id <> k.record_id LIMIT 1)
            FROM itaku.lookup_keys k WHERE k.kind = 'phone' LIMIT 1
            """
        )
        // Every key of both demo tenants, with the records it names.
        var keys: [Key] = []
        for row in try await owner.query(
            "SELECT tenant_id, dataset_id, kind, digest, array_agg(record_id::text), field FROM itaku.lookup_keys GROUP BY 1, 2, 3, 4, 6"
        ) {
            keys.append(Key(
                tenant: try row.decode(0), dataset: try row.decode(1), field: try row.decode(5), kind: try row.decode(2),
                digest: try row.decode(3, as: PostgresBytes.self).bytes,
                records: Set(try row.decode(4, as: [String].self).compactMap(UUID.init(uuidString:)))
            ))
        }
        #expect(Set(keys.map(\.tenant)).count == 2)
        #expect(keys.count > 40)
        let found = try await withThrowingTaskGroup(of: (Int, [StoredRecord]).self) { group in
            for (index, key) in keys.enumerated() {
                group.addTask {
                    (index, try await store.lookup(tenant: key.tenant, dataset: key.dataset, key: key.lookupKey, limit: 10))
                }
            }
            let some = keys[0]
            group.addTask {
                (-1, try await store.lookup(
                    tenant: some.tenant, dataset: some.dataset,
                    key: LookupKey(field: some.field, kind: some.kind, digest: [UInt8](repeating: 7, count: 32)), limit: 10
                ))
            }
            return try await group.reduce(into: [Int: [StoredRecord]]()) { $0[$1.0] = $1.1 }
        }
        #expect(found[-1]?.isEmpty == true, "a key nobody has")
        // All in one batch, across tenants, each with its own limit.
        // (The shared phone's limit is 1, as is every other key's; the rest's is 10.)
        func limit(_ n: Int) -> Int { keys[n].records.count > 1 || n % 2 == 1 ? 1 : 10 }
        let lookups: [PostgresAgentRecordStore.Lookup] = keys.enumerated().map { n, key in
            .init(tenant: key.tenant, dataset: key.dataset, key: key.lookupKey, limit: limit(n))
        }
        let together = try await runtime.withSession { PostgresAgentRecordStore.find(lookups, on: $0) }
        #expect(together.count == keys.count)
        for (n, key) in keys.enumerated() {
            let records = (try? together[n].get()) ?? []
            if limit(n) == 10 {
                #expect(Set(records.map(\.id)) == key.records)
            } else {
                #expect(records.count == 1 && key.records.contains(records[0].id), "limit 1")
            }
        }
        #expect(keys.contains { $0.records.count > 1 }, "some key finds several records (the limit is seen)")
        for (index, key) in keys.enumerated() {
            let records = found[index] ?? []
            #expect(Set(records.map(\.id)) == key.records)
            #expect(records.map(\.externalID) == records.map(\.externalID).sorted())
        }
    }
}
