import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuPostgres
import ItakuRegistry
import ItakuTestSupport
import Logging
import Synchronization
import Testing

@testable import ItakuAgentAPI

@Suite("Updates committed together")
struct UpdateBatchTests {
    static let customers = "/v1/tenants/acme-retail/datasets/customers"

    static func agent(_ token: String, case reference: String) -> HTTPFields {
        [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: reference]
    }

    /// Many agents' updates at once share transactions; each must still commit exactly its own
    /// change and its own entry, and two updates of one record must both land (the second sees
    /// the first's change, never the record as it was before both).
    @Test("updates sent at once each commit their own change and entry, and two updates of one record both land")
    func concurrentUpdates() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 40, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let integration = try #require(credentials["ITAKU_INTEGRATION_KEY"]), token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let customers = Array(Array(DemoCustomers(count: 40)).prefix(16))
        try await app.test(.live) { client in
            // Each customer's record, found under a case of its own.
            var records: [String] = []
            for (n, customer) in customers.enumerated() {
                let found = try await client.call(
                    .post, Self.customers + "/lookup", key: integration, json: ["by": "customer_no", "value": customer["customer_no"]!],
                    headers: Self.agent(token, case: "CALL-\(3000 + n)")
                )
                let id = try #require((found["records"] as? [[String: Any]])?.first?["record_id"] as? String, "\(found.text)")
                records.append(id)
            }
            // Every record's address at once, and for four of them their e-mail too.
            let statuses = try await withThrowingTaskGroup(of: (String, Int, String?).self) { group in
                for (n, id) in records.enumerated() {
                    group.addTask {
                        let answer = try await client.call(
                            .patch, Self.customers + "/records/\(id)", key: integration,
                            json: ["fields": ["address": "東京都千代田区丸の内\(n + 1)-1-1"]], headers: Self.agent(token, case: "CALL-\(3000 + n)")
                        )
                        return ("address \(n)", Int(answer.status.code), answer["access_id"] as? String)
                    }
                    if n < 4 {
                        group.addTask {
                            let answer = try await client.call(
                                .patch, Self.customers + "/records/\(id)", key: integration,
                                json: ["fields": ["email": "batch\(n)@example.jp"]], headers: Self.agent(token, case: "CALL-\(3000 + n)")
                            )
                            return ("email \(n)", Int(answer.status.code), answer["access_id"] as? String)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.count == 20)
            #expect(statuses.allSatisfy { $0.1 == 200 }, "\(statuses)")
            #expect(Set(statuses.compactMap(\.2)).count == 20, "each update has an entry of its own")

            for (n, id) in records.enumerated() {
                let read = try await client.call(.get, Self.customers + "/records/\(id)", key: integration, headers: Self.agent(token, case: "CALL-\(3000 + n)"))
                let fields = try #require((read["records"] as? [[String: Any]])?.first?["fields"] as? [String: String], "\(read.text)")
                #expect(fields["address"] == "東京都千代田区丸の内\(n + 1)-1-1")
                if n < 4 { #expect(fields["email"] == "b***@example.jp", "both updates of record \(n) landed") }
            }
        }
        let owner = database.makeClient(role: .owner)
        let updates = try await owner.query(
            "SELECT count(*), count(DISTINCT entry_id) FROM itaku.access_log WHERE operation = 'update' AND decision = 'allow'"
        )
        await owner.shutdown()
        #expect(try updates[0].decode(0, as: Int.self) == 20)
        #expect(try updates[0].decode(1, as: Int.self) == 20)
    }

    /// A transaction of several updates that PostgreSQL or the log refuses is rolled back whole;
    /// then each update is tried alone, so only the one at fault fails. Each decision sees its
    /// own locked record, and a record of another dataset or none at all is no record.
    @Test("when a shared transaction is refused, each update is tried alone and only the one at fault fails")
    func refusedTogetherTriedAlone() async throws {
        let (database, _, _, _) = try await seededDemo(customers: 20, policyholders: 2)
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let accessLog = AccessLogWriter(database: runtime, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
        let tenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
        let datasetID = try await owner.query(
            "SELECT dataset_id FROM itaku.datasets WHERE tenant_id = \(tenant) AND name = 'customers'"
        )[0].decode(0, as: UUID.self)
        let ids = try await owner.query(
            "SELECT record_id FROM itaku.records WHERE tenant_id = \(tenant) AND dataset_id = \(datasetID) ORDER BY external_id LIMIT 8"
        ).map { try $0.decode(0, as: UUID.self) }
        let dataset = Dataset(id: datasetID, tenantID: tenant, name: "customers", version: 1, schema: DatasetSchema(fields: [], keyField: "customer_no"))
        let otherDataset = Dataset(id: UUID(), tenantID: tenant, name: "other", version: 1, schema: DatasetSchema(fields: [], keyField: "id"))
        let seen = Mutex<[UUID: UUID?]>([:])
        let otherSaw = Mutex<[UUID?]>([])
        // One batch: eight records, one that does not exist, and the first record again under
        // another dataset (a second round). Update 3 carries an entry no column can store, so
        // the shared transaction is refused.
        let targets: [(Dataset, UUID)] = ids.map { (dataset, $0) } + [(dataset, UUID()), (otherDataset, ids[0])]
        let updates = targets.enumerated().map { n, target in
            let (set, id) = target
            return PostgresAgentRecordStore.Update(tenant: tenant, dataset: set, record: id) { record, _ in
                if set.id == dataset.id { seen.withLock { _ = $0.updateValue(record?.id, forKey: id) } } else { otherSaw.withLock { $0.append(record?.id) } }
                var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .deny, reason: "not_found")
                entry.recordIDs = [id]
                if n == 3 { entry.caseRef = "CALL-\u{0}" }
                return entry
            }
        }
        let answers = await PostgresAgentRecordStore.update(updates, on: runtime, accessLog: accessLog)
        #expect(answers.count == targets.count)
        let results = Dictionary(uniqueKeysWithValues: answers.enumerated().map { ($0, $1) })
        for n in targets.indices {
            switch results[n] {
            case .success(let entry):
                #expect(n != 3, "the unstorable entry was refused")
                #expect(entry.chain != nil)
            case .failure(let error):
                #expect(n == 3, "update \(n) failed: \(error)")
                #expect(error as? AccessLogError == .unstorable)
            case nil:
                Issue.record("update \(n) got no answer")
            }
        }
        let saw = seen.withLock { $0 }
        for id in ids { #expect(saw[id] == .some(id), "the decision saw its locked record") }
        #expect(saw[targets[8].1] == .some(nil), "a record that does not exist")
        #expect(otherSaw.withLock { $0 } == [nil], "a record of another dataset")
        let logged = try await owner.query("SELECT count(*) FROM itaku.access_log WHERE operation = 'update'")[0].decode(0, as: Int.self)
        #expect(logged == targets.count - 1)
    }

    /// Two changes of one record sent in one batch go in two rounds: the second decides on the
    /// record as the first left it, so neither change is lost.
    @Test("two updates of one record in one batch: the second sees the first's change")
    func sameRecordTwice() async throws {
        let (database, state, keyring, _) = try await seededDemo(customers: 5, policyholders: 1)
        let owner = database.makeClient(role: .owner)
        let runtime = database.makeClient(role: .runtime)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let accessLog = AccessLogWriter(database: runtime, keyring: keyring, instanceID: "test", logger: Logger(label: "test"))
        let snapshot = try await owner.withConnection { try await RegistryStore.loadSnapshot(on: $0) }
        let tenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
        let dataset = try #require(snapshot.datasets[tenant]?["customers"])
        let id = try await owner.query(
            "SELECT record_id FROM itaku.records WHERE tenant_id = \(tenant) AND dataset_id = \(dataset.id) ORDER BY external_id LIMIT 1"
        )[0].decode(0, as: UUID.self)
        let dataKeys = DataKeys(directory: state + "/data-keys", keyring: keyring)
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.uuidString))
        func change(_ field: String, to value: String) -> PostgresAgentRecordStore.Update {
            PostgresAgentRecordStore.Update(tenant: tenant, dataset: dataset, record: id) { record, writer in
                let record = try #require(record)
                let before = try dataKeys.open(record.document, tenant: tenant, record: id.uuidString)
                try await writer.write([field: value], before: before, sealer: try dataKeys.sealer(for: tenant), digester: digester)
                var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .allow, reason: "allowed")
                entry.recordIDs = [id]
                return entry
            }
        }
        let answers = await PostgresAgentRecordStore.update(
            [change("address", to: "東京都千代田区丸の内9-9-9"), change("email", to: "twice@example.jp")], on: runtime, accessLog: accessLog
        )
        #expect(answers.count == 2)
        for answer in answers { #expect((try? answer.get())?.chain != nil, "\(answer)") }
        let document = try await owner.withConnection { connection in
            try await connection.begin(then: ["SELECT set_config('itaku.tenant_id', \(tenant.lowercasedString), true)"])
            let rows = try await connection.query("SELECT fields::text FROM itaku.records WHERE record_id = \(id)")
            try await connection.query("COMMIT")
            return try rows[0].decode(0, as: String.self)
        }
        let fields = try dataKeys.open(document, tenant: tenant, record: id.uuidString)
        #expect(fields["address"] == "東京都千代田区丸の内9-9-9")
        #expect(fields["email"] == "twice@example.jp")
    }
}
