import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuData
import ItakuDemo
import ItakuPostgres
import ItakuTestSupport
import Testing

/// A lookup searches the field the purpose allows, and no other field of the same kind.
@Suite("Lookup keys name their field")
struct LookupFieldTests {
    static let base = "/v1/tenants/acme-retail"
    static let lookup = base + "/datasets/customers/lookup"

    @Test("a lookup by phone or customer number finds only that field's values: an emergency contact's phone, a member id or a key that names no field never answers for it")
    func lookupsMatchTheirField() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 20, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), integration = credentials["ITAKU_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let customers = Array(DemoCustomers(count: 4))
        let (taro, hanako, saburo) = (customers[1], customers[2], customers[3])
        let owner = database.makeClient(role: .owner)

        try await app.test(.live) { client in
            func found(_ by: String, _ value: String, case reference: String) async throws -> [String] {
                let answer = try await client.call(
                    .post, Self.lookup, key: integration, json: ["by": by, "value": value], headers: HardeningTests.agent(token, case: reference)
                )
                #expect(answer.status == .ok, "\(answer.text)")
                return (answer["records"] as? [[String: Any]] ?? []).compactMap { ($0["fields"] as? [String: Any])?["name"] as? String }
            }
            #expect(try await found("phone", taro["phone"] ?? "", case: "CALL-2001") == [taro["name"]])

            // A second phone field and a second exact field.
            let dataset = try await client.call(.get, Self.base + "/datasets/customers", key: admin)
            var fields = try #require(dataset["fields"] as? [[String: Any]])
            fields.append(["name": "emergency_phone", "type": "phone", "category": "contact", "lookup": "phone"])
            fields.append(["name": "member_id", "type": "string", "category": "basic", "lookup": "exact"])
            let changed = try await client.call(
                .put, Self.base + "/datasets/customers", key: admin,
                json: ["fields": fields, "key_field": dataset["key_field"] ?? "customer_no", "retention_days": dataset["retention_days"] ?? NSNull()]
            )
            #expect(changed.status == .ok, "\(changed.text)")

            // A new customer whose emergency contact is Taro's phone and whose member id is
            // Hanako's customer number.
            let names = fields.compactMap { $0["name"] as? String }
            var row = Dictionary(uniqueKeysWithValues: names.map { ($0, "") })
            row["customer_no"] = "C-LOOKUP-1"
            row["name"] = "Jiro Lookup"
            row["phone"] = "03-5555-0101"
            row["emergency_phone"] = taro["phone"] ?? ""
            row["member_id"] = hanako["customer_no"] ?? ""
            let csv = names.joined(separator: ",") + "\n" + names.map { row[$0] ?? "" }.joined(separator: ",") + "\n"
            let imported = try await client.call(.post, Self.base + "/datasets/customers/imports", key: admin, text: csv)
            #expect(imported.status == .created, "\(imported.text)")

            #expect(try await found("phone", taro["phone"] ?? "", case: "CALL-2003") == [taro["name"]])
            #expect(try await found("customer_no", hanako["customer_no"] ?? "", case: "CALL-2004") == [hanako["name"]])
            #expect(try await found("phone", "03-5555-0101", case: "CALL-2005") == ["Jiro Lookup"])

            // A data subject located by phone is the one with that phone, not the one naming it
            // as an emergency contact.
            let request = try await client.call(
                .post, Self.base + "/subject-requests", key: admin,
                json: ["kind": "disclosure", "dataset": "customers", "subject": ["by": "phone", "value": taro["phone"] ?? ""]]
            )
            #expect((request["record_ids"] as? [String])?.count == 1, "\(request.text)")

            // A key that names no field (written before keys named theirs, where the schema had
            // two lookup fields of its kind) answers for none: never for the wrong one.
            try await owner.query(
                """
                UPDATE itaku.lookup_keys SET field = '' WHERE kind = 'phone'
                  AND record_id = (SELECT record_id FROM itaku.records WHERE external_id = \(saburo["customer_no"] ?? ""))
                """
            )
            #expect(try await found("phone", saburo["phone"] ?? "", case: "CALL-2006") == [])
            #expect(try await found("customer_no", saburo["customer_no"] ?? "", case: "CALL-2007") == [saburo["name"]])
        }
        let keys = try await owner.query(
            "SELECT field, count(*) FROM itaku.lookup_keys k JOIN itaku.records r USING (tenant_id, dataset_id, record_id) WHERE r.external_id = 'C-LOOKUP-1' GROUP BY field ORDER BY field"
        )
        #expect(try keys.map { try $0.decode(0, as: String.self) } == ["customer_no", "emergency_phone", "member_id", "phone"])
        await owner.shutdown()
    }

    @Test("a schema that makes fields lookup fields indexes the records already there; an individual number is found however it was written")
    func lookupFieldsAddedLater() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 10, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"])
        let taro = Array(DemoCustomers(count: 4))[1]
        // A valid individual number, and the same number as people write it.
        let first11 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
        let number = first11.map(String.init).joined() + String(Normalization.individualNumberCheckDigit(first11))
        let hyphenated = "\(number.prefix(4))-\(number.dropFirst(4).prefix(4))-\(number.suffix(4))"
        let fullWidth = String(String.UnicodeScalarView(number.unicodeScalars.map { Unicode.Scalar($0.value + 0xFEE0)! }))
        try await app.test(.live) { client in
            func located(_ by: String, _ value: String) async throws -> JSONResponse {
                try await client.call(
                    .post, Self.base + "/subject-requests", key: admin,
                    json: ["kind": "disclosure", "dataset": "customers", "subject": ["by": by, "value": value]]
                )
            }
            #expect(try await located("name", taro["name"] ?? "").code == "invalid_lookup_key")
            let imported = try await client.call(
                .post, Self.base + "/datasets/customers/imports", key: admin,
                text: "customer_no,name,phone,my_number\nC-MN-1,Mina Number,03-5555-0199,\(hyphenated)\n"
            )
            #expect(imported.status == .created, "\(imported.text)")

            // The name and the individual number become lookup fields.
            let dataset = try await client.call(.get, Self.base + "/datasets/customers", key: admin)
            let fields = try #require(dataset["fields"] as? [[String: Any]]).map { field -> [String: Any] in
                var field = field
                if ["name", "my_number"].contains(field["name"] as? String) { field["lookup"] = "exact" }
                return field
            }
            let changed = try await client.call(
                .put, Self.base + "/datasets/customers", key: admin,
                json: ["fields": fields, "key_field": dataset["key_field"] ?? "customer_no", "retention_days": dataset["retention_days"] ?? NSNull()]
            )
            #expect(changed.status == .ok, "\(changed.text)")

            // Records imported before are found by the new lookup fields.
            let byName = try await located("name", taro["name"] ?? "")
            #expect((byName["record_ids"] as? [String])?.count == 1, "\(byName.text)")
            for written in [number, hyphenated, fullWidth, "\(number.prefix(4)) \(number.dropFirst(4).prefix(4)) \(number.suffix(4))"] {
                let found = try await located("my_number", written)
                #expect((found["record_ids"] as? [String])?.count == 1, "\(written): \(found.text)")
            }
        }
    }

    @Test("a record that may not be released takes no place of one that may: one phone, a suspended record and an active one, one result allowed")
    func releasableRecordsFirst() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 10, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), integration = credentials["ITAKU_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let owner = database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        try await app.test(.live) { client in
            try await Self.limit(client, admin: admin, recordsPerHour: 100, maxResults: 1)
            // Two records of one household phone; the first by external id is suspended.
            let imported = try await client.call(
                .post, Self.base + "/datasets/customers/imports", key: admin,
                text: "customer_no,name,phone\nA-HOUSE-1,Aki House,03-5555-0177\nB-HOUSE-2,Ben House,03-5555-0177\n"
            )
            #expect(imported.status == .created, "\(imported.text)")
            try await owner.asTenant("acme-retail") { connection, tenantID in
                try await connection.query("UPDATE itaku.records SET status = 'suspended' WHERE tenant_id = \(tenantID) AND external_id = 'A-HOUSE-1'")
            }
            // Alone (agent_find) and in a batch beside another lookup (agent_find_batch).
            for round in 0..<2 {
                async let other = round == 1
                    ? client.call(.post, Self.lookup, key: integration, json: ["by": "phone", "value": "03-5555-0199"], headers: HardeningTests.agent(token, case: "CALL-3100"))
                    : nil
                let answer = try await client.call(
                    .post, Self.lookup, key: integration, json: ["by": "phone", "value": "03-5555-0177"],
                    headers: HardeningTests.agent(token, case: "CALL-310\(round + 1)")
                )
                _ = try await other
                let names = (answer["records"] as? [[String: Any]] ?? []).compactMap { ($0["fields"] as? [String: Any])?["name"] as? String }
                #expect(names == ["Ben House"], "\(answer.text)")
            }
        }
    }

    @Test("migration 0017 names the keys written before keys named their field after their kind's one lookup field, and leaves a kind with two fields unnamed")
    func migrationNamesEarlierKeys() async throws {
        let (database, _, _, _) = try await seededDemo(customers: 10, policyholders: 2)
        let owner = database.makeClient(role: .owner)
        // The keys as the previous release left them, in a dataset that also has a second
        // phone field.
        try await owner.query("UPDATE itaku.lookup_keys SET field = ''")
        try await owner.query(
            """
            UPDATE itaku.datasets SET schema = jsonb_set(schema, '{fields}', (schema->'fields') || '[{"name": "emergency_phone", "type": "phone", "category": "contact", "lookup": "phone"}]'::jsonb)
            WHERE name = 'customers' AND tenant_id = (SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail')
            """
        )
        // The migration's naming, as written in it.
        let migration = try String(
            contentsOfFile: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Sources/ItakuSchema/Migrations/0017_lookup_keys_name_their_field.sql").path,
            encoding: .utf8
        )
        let start = try #require(migration.range(of: "ALTER TABLE itaku.lookup_keys NO FORCE ROW LEVEL SECURITY;"))
        let end = try #require(migration.range(of: "ALTER TABLE itaku.datasets FORCE ROW LEVEL SECURITY;"))
        try await owner.withTransaction { connection in
            try await connection.executeScript(String(migration[start.lowerBound..<end.upperBound]))
        }
        let named = try await owner.query(
            """
            SELECT t.code, k.kind, k.field, count(*) FROM itaku.lookup_keys k JOIN itaku.tenants t USING (tenant_id)
            GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
            """
        )
        let rows = try named.map { "\(try $0.decode(0, as: String.self)) \(try $0.decode(1, as: String.self)) \(try $0.decode(2, as: String.self))" }
        // acme-retail: phone has two fields now (unnamed); e-mail and the customer number one each.
        #expect(rows.contains("acme-retail phone "), "\(rows)")
        #expect(rows.contains("acme-retail email email") && rows.contains("acme-retail exact customer_no"), "\(rows)")
        #expect(!rows.contains { $0.hasPrefix("kobe-insurance") && $0.hasSuffix(" ") }, "\(rows)")
        #expect(try await owner.query("SELECT relforcerowsecurity FROM pg_class WHERE relname IN ('lookup_keys', 'datasets')").allSatisfy {
            try $0.decode(0, as: Bool.self)
        })
        await owner.shutdown()
    }

    @Test("records_per_hour is a limit: a lookup returns at most what the hour has left, the hour's first one too, then volume_exceeded")
    func recordsPerHourIsALimit() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 10, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), integration = credentials["ITAKU_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        try await app.test(.live) { client in
            // Order support: at most 3 records a lookup, 2 records an hour.
            try await Self.limit(client, admin: admin, recordsPerHour: 2, maxResults: 3)
            // Three customers of one household phone.
            let csv = "customer_no,name,phone\nC-HOME-1,Home One,03-5555-0199\nC-HOME-2,Home Two,03-5555-0199\nC-HOME-3,Home Three,03-5555-0199\n"
            #expect(try await client.call(.post, Self.base + "/datasets/customers/imports", key: admin, text: csv).status == .created)

            let first = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": "03-5555-0199"], headers: HardeningTests.agent(token, case: "CALL-3001")
            )
            #expect(first.status == .ok, "\(first.text)")
            #expect((first["records"] as? [[String: Any]])?.count == 2, "\(first.text)")
            let second = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": "03-5555-0199"], headers: HardeningTests.agent(token, case: "CALL-3002")
            )
            #expect(second.status == .tooManyRequests && second.code == "volume_exceeded", "\(second.text)")
        }
    }

    /// Sets order support's `records_per_hour` and its customers' `max_results`.
    static func limit(_ client: some TestClientProtocol, admin: String, recordsPerHour: Int, maxResults: Int) async throws {
        let current = try await client.call(.get, base + "/purposes/order-support", key: admin)
        var definition = try #require(current["definition"] as? [String: Any])
        var limits = definition["limits"] as? [String: Any] ?? [:]
        limits["records_per_hour"] = recordsPerHour
        definition["limits"] = limits
        var datasets = try #require(definition["datasets"] as? [String: Any])
        var customers = try #require(datasets["customers"] as? [String: Any])
        customers["max_results"] = maxResults
        datasets["customers"] = customers
        definition["datasets"] = datasets
        let etag = try #require(current.headers[.eTag])
        let changed = try await client.call(.put, base + "/purposes/order-support", key: admin, json: definition, headers: [.ifMatch: etag])
        #expect(changed.status == .ok, "\(changed.text)")
    }

    @Test("records a lookup reserved but did not carry go back to the hour they were counted in")
    func unusedRecordsGoBack() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 10, policyholders: 2)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"]), integration = credentials["ITAKU_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), phone = try #require(credentials["ITAKU_DEMO_PHONE"])
        let owner = database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        try await app.test(.live) { client in
            try await Self.limit(client, admin: admin, recordsPerHour: 5, maxResults: 3)
            // One record found of the three reserved: two go back.
            let found = try await client.call(
                .post, Self.lookup, key: integration, json: ["by": "phone", "value": phone], headers: HardeningTests.agent(token, case: "CALL-4001")
            )
            #expect((found["records"] as? [Any])?.count == 1, "\(found.text)")
            // An update refused before it changed anything (its dataset's schema changed behind
            // this instance's registry) gives back the record it reserved.
            let record = try #require((found["records"] as? [[String: Any]])?.first?["record_id"] as? String)
            try await owner.asTenant("acme-retail") { connection, tenantID in
                try await connection.query("UPDATE itaku.datasets SET version = version + 1 WHERE tenant_id = \(tenantID)")
            }
            let stale = try await client.call(
                .patch, Self.base + "/datasets/customers/records/\(record)", key: integration,
                json: ["fields": ["address": "東京都千代田区丸の内1-1-1"]], headers: HardeningTests.agent(token, case: "CALL-4001")
            )
            #expect(stale.status == .conflict && stale.code == "dataset_changed", "\(stale.text)")
        }
        // (Summed: the hour may turn while the test runs.)
        let used = try await owner.query("SELECT coalesce(sum(used), 0)::int8 FROM itaku.usage_counters WHERE who LIKE '%/records'")
        #expect(try used[0].decode(0, as: Int.self) == 1)
        // An answer that leaves after the hour turned gives back to the hour of the reservation.
        let tenant = try await tenantID(database, "acme-retail")
        try await owner.query(
            """
            INSERT INTO itaku.usage_counters (tenant_id, purpose_key, who, window_start, used) VALUES
                (\(tenant), 'hours', 'agent:A9/records', date_trunc('hour', now()) - interval '1 hour', 5),
                (\(tenant), 'hours', 'agent:A9/records', date_trunc('hour', now()), 5)
            """
        )
        let runtime = database.makeClient(role: .runtime)
        try await runtime.query("SELECT itaku.count_records_in(\(tenant), 'hours', 'agent:A9', date_trunc('hour', now()) - interval '1 hour', -3)")
        await runtime.shutdown()
        let hours = try await owner.query(
            "SELECT used FROM itaku.usage_counters WHERE purpose_key = 'hours' ORDER BY window_start"
        ).map { try $0.decode(0, as: Int.self) }
        #expect(hours == [2, 5])
    }
}
