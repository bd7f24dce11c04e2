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
    /// The seeded demo, its clients, an access-log writer (not running: transactions only), and
    /// the first `records` of acme-retail's customers, with a dataset value naming them.
    struct Demo {
        var owner: PostgresClient
        var runtime: PostgresClient
        var accessLog: AccessLogWriter
        var tenant: UUID
        var dataset: Dataset
        var ids: [UUID]

        static func make(records: Int) async throws -> Demo {
            let (database, _, _, _) = try await seededDemo(customers: 20, policyholders: 2)
            let owner = database.makeClient(role: .owner)
            let runtime = database.makeClient(role: .runtime)
            let accessLog = AccessLogWriter(database: runtime, keyring: Keyring.generate(), instanceID: "test", logger: Logger(label: "test"))
            let tenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
            let stored = try await owner.query(
                "SELECT dataset_id, version FROM itaku.datasets WHERE tenant_id = \(tenant) AND name = 'customers'"
            )[0]
            let (datasetID, version) = (try stored.decode(0, as: UUID.self), try stored.decode(1, as: Int.self))
            let ids = try await owner.query(
                "SELECT record_id FROM itaku.records WHERE tenant_id = \(tenant) AND dataset_id = \(datasetID) ORDER BY external_id LIMIT \(Int32(records))"
            ).map { try $0.decode(0, as: UUID.self) }
            let dataset = Dataset(id: datasetID, tenantID: tenant, name: "customers", version: version, schema: DatasetSchema(fields: [], keyField: "customer_no"))
            return Demo(owner: owner, runtime: runtime, accessLog: accessLog, tenant: tenant, dataset: dataset, ids: ids)
        }
    }

    /// Sends `updates` as one batch, and then, as their callers do, each update whose shared
    /// transaction was refused alone (side by side).
    static func send(_ updates: [PostgresAgentRecordStore.Update], on database: PostgresClient, accessLog: AccessLogWriter) async -> [Result<AccessEntry, any Error>] {
        let first = await PostgresAgentRecordStore.update(updates, on: database, accessLog: accessLog)
        return await withTaskGroup(of: (Int, Result<AccessEntry, any Error>).self) { group in
            for (index, answer) in first.enumerated() {
                group.addTask {
                    guard case .failure(let error) = answer, error is PostgresAgentRecordStore.GoAlone else { return (index, answer) }
                    do { return (index, .success(try await PostgresAgentRecordStore.alone(updates[index], on: database, accessLog: accessLog))) } catch {
                        return (index, .failure(error))
                    }
                }
            }
            var results = first
            for await (index, result) in group { results[index] = result }
            return results
        }
    }

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
        let demo = try await Demo.make(records: 9)
        let (owner, runtime, accessLog, tenant, dataset, ids) = (demo.owner, demo.runtime, demo.accessLog, demo.tenant, demo.dataset, demo.ids)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let otherDataset = Dataset(id: UUID(), tenantID: tenant, name: "other", version: 1, schema: DatasetSchema(fields: [], keyField: "id"))
        // Every decision's view, in order: (update, the record it was given).
        let seen = Mutex<[(Int, UUID?)]>([])
        // One transaction: eight records, one that does not exist, and a ninth record under
        // another dataset. Update 3 carries an entry no column can store, so the shared
        // transaction is refused.
        let targets: [(Dataset, UUID)] = ids.prefix(8).map { (dataset, $0) } + [(dataset, UUID()), (otherDataset, ids[8])]
        func updates(faulty: Int?) -> [PostgresAgentRecordStore.Update] {
            targets.enumerated().map { n, target in
                let (set, id) = target
                return PostgresAgentRecordStore.Update(tenant: tenant, dataset: set, record: id) { record, _ in
                    seen.withLock { $0.append((n, record?.id)) }
                    var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .deny, reason: "not_found")
                    entry.recordIDs = [id]
                    if n == faulty { entry.caseRef = "CALL-\u{0}" }
                    return entry
                }
            }
        }
        let expected: [UUID?] = ids.prefix(8).map { $0 } + [nil, nil]

        // All fine: one shared transaction, each decision once, on its own record.
        let together = await Self.send(updates(faulty: nil), on: runtime, accessLog: accessLog)
        #expect(together.allSatisfy { (try? $0.get())?.chain != nil })
        #expect(seen.withLock { $0 }.map(\.0) == Array(targets.indices), "one pass, in order")
        #expect(seen.withLock { $0 }.map(\.1) == expected, "each decision saw its own record")
        #expect(Set(together.compactMap { try? $0.get().chain?.stream }).count == 1, "one transaction, one stream")

        // One at fault: refused together, then each alone; only it fails.
        seen.withLock { $0.removeAll() }
        let answers = await Self.send(updates(faulty: 3), on: runtime, accessLog: accessLog)
        #expect(answers.count == targets.count)
        for (n, answer) in answers.enumerated() {
            switch answer {
            case .success(let entry):
                #expect(n != 3, "the unstorable entry was refused")
                #expect(entry.chain != nil)
            case .failure(let error):
                #expect(n == 3, "update \(n) failed: \(error)")
                #expect(error as? AccessLogError == .unstorable)
            }
        }
        let views = seen.withLock { $0 }
        #expect(views.prefix(targets.count).map(\.0) == Array(targets.indices), "first the shared pass")
        for n in targets.indices {
            let mine = views.filter { $0.0 == n }
            #expect(mine.count == 2, "update \(n): together, then alone")
            #expect(mine.allSatisfy { $0.1 == expected[n] })
        }
        let logged = try await owner.query("SELECT count(*) FROM itaku.access_log WHERE operation = 'update'")[0].decode(0, as: Int.self)
        #expect(logged == targets.count * 2 - 1)
    }

    /// A record another transaction holds makes the shared transaction give up its wait (the
    /// lock timeout); then each update goes alone, and only the one on that record waits.
    @Test("a record locked elsewhere holds up only its own update, not the others of its batch")
    func lockedRecordWaitsAlone() async throws {
        let demo = try await Demo.make(records: 5)
        let (owner, runtime, accessLog, tenant, dataset, ids) = (demo.owner, demo.runtime, demo.accessLog, demo.tenant, demo.dataset, demo.ids)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        let updates = ids.map { id in
            PostgresAgentRecordStore.Update(tenant: tenant, dataset: dataset, record: id) { record, _ in
                var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .deny, reason: "not_found")
                entry.recordIDs = [id]
                return entry
            }
        }
        let held = Mutex<Bool>(false)
        let release = Mutex<Bool>(false)
        let holder = Task {
            try await owner.withConnection { connection in
                try await connection.begin(then: ["SELECT 1 FROM itaku.records WHERE record_id = \(ids[2]) FOR UPDATE"])
                held.withLock { $0 = true }
                while !release.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                try await connection.query("COMMIT")
            }
        }
        while !held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        // The shared transaction gives way (and frees its lane) while the lock is still held.
        let first = await PostgresAgentRecordStore.update(updates, on: runtime, accessLog: accessLog)
        #expect(first.allSatisfy { answer in
            if case .failure(let error) = answer { return error is PostgresAgentRecordStore.GoAlone }
            return false
        })
        #expect(held.withLock { $0 } && !release.withLock { $0 })
        let batch = Task { await Self.send(updates, on: runtime, accessLog: accessLog) }
        // The four others commit while the lock is still held.
        var committed = 0
        for _ in 0..<1_000 where committed < 4 {
            try await Task.sleep(for: .milliseconds(20))
            committed = try await owner.query("SELECT count(*) FROM itaku.access_log WHERE operation = 'update'")[0].decode(0, as: Int.self)
        }
        #expect(committed == 4, "the others did not wait for the locked record")
        release.withLock { $0 = true }
        try await holder.value
        let answers = await batch.value
        #expect(answers.allSatisfy { (try? $0.get())?.chain != nil }, "\(answers)")
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
        let both = try await owner.query(
            "SELECT record_id FROM itaku.records WHERE tenant_id = \(tenant) AND dataset_id = \(dataset.id) ORDER BY external_id LIMIT 2"
        ).map { try $0.decode(0, as: UUID.self) }
        let (id, other) = (both[0], both[1])
        let dataKeys = DataKeys(directory: state + "/data-keys", keyring: keyring)
        let digester = LookupDigester(key: keyring.digestKey(tenant: tenant.uuidString))
        func change(_ field: String, to value: String, of id: UUID) -> PostgresAgentRecordStore.Update {
            PostgresAgentRecordStore.Update(tenant: tenant, dataset: dataset, record: id) { record, writer in
                let record = try #require(record)
                let before = try dataKeys.open(record.document, tenant: tenant, record: id.uuidString)
                try await writer.write([field: value], before: before, sealer: try dataKeys.sealer(for: tenant), digester: digester)
                var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .allow, reason: "allowed")
                entry.recordIDs = [id]
                return entry
            }
        }
        // The first round shares a transaction (the record and another); the second change of the
        // record comes after it.
        let answers = await Self.send(
            [change("address", to: "東京都千代田区丸の内9-9-9", of: id), change("address", to: "大阪府大阪市北区1-1-1", of: other),
             change("email", to: "twice@example.jp", of: id)],
            on: runtime, accessLog: accessLog
        )
        #expect(answers.count == 3)
        for answer in answers { #expect((try? answer.get())?.chain != nil, "\(answer)") }
        func fields(of id: UUID) async throws -> [String: String] {
            let document = try await owner.withConnection { connection in
                try await connection.begin(then: ["SELECT set_config('itaku.tenant_id', \(tenant.lowercasedString), true)"])
                let rows = try await connection.query("SELECT fields::text FROM itaku.records WHERE record_id = \(id)")
                try await connection.query("COMMIT")
                return try rows[0].decode(0, as: String.self)
            }
            return try dataKeys.open(document, tenant: tenant, record: id.uuidString)
        }
        let first = try await fields(of: id)
        #expect(first["address"] == "東京都千代田区丸の内9-9-9")
        #expect(first["email"] == "twice@example.jp")
        #expect(try await fields(of: other)["address"] == "大阪府大阪市北区1-1-1")
    }

    /// An update decided under the registry as it was before a dataset `PUT` would check its
    /// values and make its lookup keys under the old schema: it changes nothing and answers 409
    /// `dataset_changed`, alone or in a shared transaction, and the others of its batch commit.
    @Test("an update decided under a dataset's previous schema changes nothing and answers dataset_changed")
    func staleSchema() async throws {
        let demo = try await Demo.make(records: 3)
        let (owner, runtime, accessLog, tenant, dataset, ids) = (demo.owner, demo.runtime, demo.accessLog, demo.tenant, demo.dataset, demo.ids)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        var current = dataset
        current.version += 1
        let decided = Mutex(0)
        func update(_ set: Dataset, _ id: UUID) -> PostgresAgentRecordStore.Update {
            PostgresAgentRecordStore.Update(tenant: tenant, dataset: set, record: id) { _, _ in
                decided.withLock { $0 += 1 }
                var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .allow, reason: "allowed")
                entry.recordIDs = [id]
                return entry
            }
        }
        // The customers' schema changes behind this registry's back.
        try await owner.query("UPDATE itaku.datasets SET version = version + 1 WHERE dataset_id = \(dataset.id)")
        func isDatasetChanged(_ answer: Result<AccessEntry, any Error>) -> Bool {
            guard case .failure(let error) = answer, let refusal = error as? AgentRefusal else { return false }
            return refusal.status == 409 && refusal.code == "dataset_changed"
        }

        let alone = await Self.send([update(dataset, ids[0])], on: runtime, accessLog: accessLog)
        #expect(isDatasetChanged(alone[0]))
        // Beside an update decided under the stored schema (another instance's, say).
        let together = await Self.send([update(dataset, ids[1]), update(current, ids[0]), update(dataset, ids[2])], on: runtime, accessLog: accessLog)
        #expect(isDatasetChanged(together[0]) && isDatasetChanged(together[2]))
        #expect((try? together[1].get())?.chain != nil, "the update under the stored schema commits")
        #expect(decided.withLock { $0 } == 1, "no decision ran under the old schema")
        let logged = try await owner.query("SELECT record_ids::text[] FROM itaku.access_log WHERE operation = 'update'").map { try $0.decode(0, as: [String].self) }
        #expect(logged == [[ids[0].lowercasedString]])
    }

    /// Updates hold their dataset's schema lock shared; a schema change takes it exclusively,
    /// and an update that arrives while the change waits queues behind it (a stream of updates,
    /// each overlapping the next, must not keep the change out), then finds the new schema.
    @Test("a dataset PUT waits for the updates under way, the updates after it wait for it, and then answer dataset_changed")
    func schemaChangeIsNotStarved() async throws {
        let demo = try await Demo.make(records: 2)
        let (owner, runtime, accessLog, tenant, dataset, ids) = (demo.owner, demo.runtime, demo.accessLog, demo.tenant, demo.dataset, demo.ids)
        defer { Task { await owner.shutdown(); await runtime.shutdown() } }
        func update(_ id: UUID) -> PostgresAgentRecordStore.Update {
            PostgresAgentRecordStore.Update(tenant: tenant, dataset: dataset, record: id) { _, _ in
                var entry = AccessEntry(tenantID: tenant, actorRole: "integration", actorKeyID: nil, operation: .update, decision: .allow, reason: "allowed")
                entry.recordIDs = [id]
                return entry
            }
        }
        func waiting() async throws -> Int {
            try await owner.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0].decode(0, as: Int.self)
        }
        // An update under way: its schema lock held.
        let held = Mutex(false), release = Mutex(false)
        let underWay = Task {
            try await runtime.withConnection { connection in
                try await connection.begin(then: [RegistryStore.schemaLock(dataset.id)])
                held.withLock { $0 = true }
                while !release.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
                try await connection.query("COMMIT")
            }
        }
        while !held.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(10)) }
        // The schema change waits for it.
        let change = Task {
            try await runtime.withTransaction { connection in
                let stored = try #require(try await RegistryStore.lockedDataset(tenantID: tenant, name: "customers", on: connection))
                return try await RegistryStore.putDataset(tenantID: tenant, name: "customers", schema: stored.schema, on: connection).after
            }
        }
        #expect(try await timeUntil(limit: .seconds(5)) { try await waiting() == 1 } != nil)
        // An update decided now, under the schema still stored, waits behind the change.
        let done = Mutex(false)
        let later = Task {
            let answer = await Self.send([update(ids[1])], on: runtime, accessLog: accessLog)
            done.withLock { $0 = true }
            return answer
        }
        #expect(try await timeUntil(limit: .seconds(5)) { try await waiting() == 2 } != nil)
        try await Task.sleep(for: .milliseconds(300))
        #expect(!done.withLock { $0 }, "the later update went ahead of the waiting schema change")

        release.withLock { $0 = true }
        try await underWay.value
        #expect(try await change.value == dataset.version + 1)
        let answer = await later.value
        guard case .failure(let error) = answer[0], let refusal = error as? AgentRefusal else {
            Issue.record("the later update was not refused: \(answer)")
            return
        }
        #expect(refusal.code == "dataset_changed")
    }
}
