import Foundation
import ItakuPostgres
import ItakuTestSupport
import Testing

@Suite("Case bindings read from the access log")
struct CaseBindingTests {
    /// What `itaku.case_bound` answers for entries written straight into the log: only an
    /// allowed lookup by the same agent under the same case, naming the record, within the
    /// minutes given, binds it.
    @Test("only an allowed lookup of the same agent and case, naming the record, within the binding minutes, binds")
    func boundByTheLog() async throws {
        let (database, _, _, _) = try await seededDemo(customers: 10, policyholders: 2)
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let tenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
        let record = UUID(), other = UUID()
        var seq: Int64 = 0
        func entry(agent: String, case reference: String, operation: String, decision: String, records: [UUID], minutesAgo: Int) async throws {
            seq += 1
            try await owner.query(
                """
                INSERT INTO itaku.access_log (entry_id, occurred_at, tenant_id, actor_role, agent, case_ref, operation, decision, reason,
                    record_ids, stream, seq, prev_hash, hash)
                VALUES (gen_random_uuid(), now() - make_interval(mins => \(Int32(minutesAgo))), \(tenant), 'integration', \(agent),
                    \(reference), \(operation), \(decision), 'allowed', \(records.map(\.lowercasedString))::uuid[], 'test/bindings', \(seq),
                    '\\x00'::bytea, '\\x00'::bytea)
                """
            )
        }
        func bound(_ agent: String, _ reference: String, _ id: UUID, minutes: Int32 = 30) async throws -> Bool {
            try await runtime.query("SELECT itaku.case_bound(\(tenant), \(agent), \(reference), \(id), \(minutes))")[0].decode(0, as: Bool.self)
        }
        try await entry(agent: "A0001", case: "CALL-1", operation: "lookup", decision: "allow", records: [other, record], minutesAgo: 10)
        try await entry(agent: "A0001", case: "CALL-2", operation: "lookup", decision: "allow", records: [record], minutesAgo: 40)
        try await entry(agent: "A0001", case: "CALL-3", operation: "lookup", decision: "deny", records: [record], minutesAgo: 1)
        try await entry(agent: "A0001", case: "CALL-4", operation: "read", decision: "allow", records: [record], minutesAgo: 1)

        #expect(try await bound("A0001", "CALL-1", record))
        #expect(try await bound("A0001", "CALL-1", other))
        #expect(try await !bound("A0001", "CALL-1", UUID()), "a record the lookup did not name")
        #expect(try await !bound("A0002", "CALL-1", record), "another agent")
        #expect(try await !bound("A0001", "CALL-9", record), "another case")
        #expect(try await !bound("A0001", "CALL-2", record), "a lookup older than the binding minutes")
        #expect(try await bound("A0001", "CALL-2", record, minutes: 60), "within longer binding minutes")
        #expect(try await !bound("A0001", "CALL-1", record, minutes: 5), "beyond shorter binding minutes")
        #expect(try await !bound("A0001", "CALL-3", record), "a denied lookup")
        #expect(try await !bound("A0001", "CALL-4", record), "a read, not a lookup")
        // The previous release's check (during an upgrade) reads the log too.
        #expect(try await runtime.query("SELECT itaku.case_bound(\(tenant), 'A0001', 'CALL-1', \(record))")[0].decode(0, as: Bool.self))
    }
}
