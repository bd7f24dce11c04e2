import Configuration
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuCore
import ItakuDemo
import ItakuPostgres
import ItakuTestSupport
import Logging
import NIOCore
import Testing

@Suite("Agent data API edges")
struct AgentEdgeTests {
    @Test("a dataset or field name that names nothing registered is not written to the access log")
    func unregisteredNamesStayOutOfTheLog() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 3, policyholders: 1)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let customer = try #require(Array(DemoCustomers(count: 1)).first)
        let integration = credentials["ITAKU_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let base: HTTPFields = [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "survey-outreach", .init("Itaku-Case")!: "CALL-7"]
        try await app.test(.live) { client in
            var headers = base
            headers[.init("Itaku-Request-Id")!] = "names-dataset"
            let dataset = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/tel09012345678/lookup", key: integration,
                json: ["by": "customer_no", "value": customer["customer_no"] ?? ""], headers: headers
            )
            #expect(dataset.status == .notFound)
            headers[.init("Itaku-Request-Id")!] = "names-field"
            let field = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: integration,
                json: ["by": "customer_no", "value": customer["customer_no"] ?? "", "fields": ["name", "birth_date", "x09012345678"]], headers: headers
            )
            #expect(field.status == .forbidden && field.code == "field_not_allowed")
        }
        let owner = database.makeClient(role: .owner)
        let rows = try await owner.query("SELECT request_id, dataset, fields::text FROM itaku.access_log WHERE request_id LIKE 'names-%'")
        await owner.shutdown()
        let entries = Dictionary(uniqueKeysWithValues: try rows.map {
            (try $0.decode(0, as: String.self), (try $0.decode(1, as: String?.self), try $0.decode(2, as: String?.self)))
        })
        #expect(entries.count == 2)
        #expect(entries["names-dataset"].map { $0.0 == nil } == true)
        #expect(entries["names-field"]?.0 == "customers")
        #expect(entries["names-field"]?.1?.contains("birth_date") == true)
        #expect(entries.values.allSatisfy { !"\($0)".contains("09012345678") })
    }

    @Test("a tenant's data key that this instance's keyring cannot unwrap answers 503 data_key_unavailable: no record is released, and the log names the tenant")
    func unreadableDataKey() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 3, policyholders: 1)
        let owner = database.makeClient(role: .owner)
        let tenant = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
        // The key file as another keyring would have wrapped it: there, but not openable here.
        let file = state + "/data-keys/" + tenant.lowercasedString + ".key"
        #expect(FileManager.default.fileExists(atPath: file))
        try Data((0..<60).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: file))
        let logs = CapturedLogs()
        let app = try await makeApplication(
            database: database, settings: ["state.directory": .init(.string(state), isSecret: false)], logger: logs.logger()
        )
        let customer = try #require(Array(DemoCustomers(count: 1)).first)
        let headers: HTTPFields = [
            .init("Itaku-Agent")!: try #require(credentials["ITAKU_AGENT_TOKEN"]), .init("Itaku-Purpose")!: "survey-outreach",
            .init("Itaku-Case")!: "CALL-11", .init("Itaku-Request-Id")!: "unreadable-key",
        ]
        try await app.test(.live) { client in
            let found = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: credentials["ITAKU_INTEGRATION_KEY"],
                json: ["by": "customer_no", "value": customer["customer_no"] ?? ""], headers: headers
            )
            #expect(found.status == .serviceUnavailable)
            #expect(found.code == "data_key_unavailable")
            #expect(!found.text.contains(customer["name"] ?? "-"))
        }
        let released = try await owner.query(
            "SELECT count(*) FROM itaku.access_log WHERE request_id = 'unreadable-key' AND decision = 'allow'"
        )[0].decode(0, as: Int.self)
        await owner.shutdown()
        #expect(released == 0)
        let records = logs.all
        #expect(records.contains { $0.level == .error && $0.message == "data key unreadable" && $0.metadata["itaku.error"]?.contains(tenant.lowercasedString) == true })
        #expect(!records.contains { $0.message == "unhandled error" })
    }

    @Test("volume limits answer 429 with Retry-After; a suspended record is withheld and logged; bad tokens and malformed requests get 4xx, never 500")
    func edges() async throws {
        let (database, state, keyring, credentials) = try await seededDemo(customers: 50, policyholders: 5)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let customer = try #require(Array(DemoCustomers(count: 2)).last)
        let integration = credentials["ITAKU_INTEGRATION_KEY"]
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"])
        let lookup = "/v1/tenants/acme-retail/datasets/customers/lookup"
        let headers: HTTPFields = [.init("Itaku-Agent")!: token, .init("Itaku-Purpose")!: "survey-outreach", .init("Itaku-Case")!: "CALL-9"]
        let bodyText = jsonText(["by": "customer_no", "value": customer["customer_no"] ?? ""])

        // Suspend the second customer (利用停止) before anything is asked.
        let owner = database.makeClient(role: .owner)
        try await owner.query("UPDATE itaku.records SET status = 'suspended' WHERE external_id = \(customer["customer_no"] ?? "")")

        try await app.test(.live) { client in
            // survey-outreach counts lookups per clock minute (the first one below counts too):
            // start well inside a minute, so that a minute turning half-way cannot reset the
            // count (a slow machine takes seconds for these eleven lookups).
            let second = Calendar(identifier: .gregorian).component(.second, from: Date())
            if second > 40 { try await Task.sleep(for: .seconds(61 - second)) }
            let withheld = try await client.call(.post, lookup, key: integration, json: jsonObject(bodyText), headers: headers)
            #expect(withheld.status == .ok)
            #expect((withheld["records"] as? [Any])?.isEmpty == true)
            #expect(withheld["withheld"] as? Int == 1)
            #expect(!withheld.text.contains(customer["name"] ?? "-"))

            // survey-outreach allows 10 lookups a minute: the 11th is refused with Retry-After.
            for _ in 0..<9 { _ = try await client.call(.post, lookup, key: integration, json: jsonObject(bodyText), headers: headers) }
            let limited = try await client.call(.post, lookup, key: integration, json: jsonObject(bodyText), headers: headers)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.code == "volume_exceeded")
            #expect(Int(limited.headers[.retryAfter] ?? "") ?? 0 >= 1)
            #expect(limited.body["access_id"] != nil)

            // Tokens that do not verify: expired, for another audience, or garbage.
            var expired = headers
            expired[.init("Itaku-Agent")!] = try AgentToken.mint(employeeID: "A0001", keyring: keyring, lifetime: -3600)
            var stranger = headers
            stranger[.init("Itaku-Agent")!] = try AgentToken.mint(employeeID: "A0001", keyring: Keyring.generate(), lifetime: 3600)
            var garbage = headers
            garbage[.init("Itaku-Agent")!] = "not.a.token"
            for variant in [expired, stranger, garbage] {
                let refused = try await client.call(.post, lookup, key: integration, json: jsonObject(bodyText), headers: variant)
                #expect(refused.status == .unauthorized && refused.code == "agent_unverified")
            }

            // Malformed requests: a clear 4xx problem, never a 500.
            var badCase = headers
            badCase[.init("Itaku-Case")!] = String(repeating: "x", count: 300)
            let responses = [
                try await client.call(.post, lookup, key: integration, json: jsonObject(bodyText), headers: badCase),
                try await client.call(.post, lookup, key: integration, text: "{not json", contentType: "application/json", headers: headers),
                try await client.call(.post, lookup, key: integration, json: ["by": "phone"], headers: headers),
                try await client.call(.post, lookup, key: integration, json: ["by": "phone", "value": "abc"], headers: headers),
                try await client.call(.post, lookup, key: integration, text: String(repeating: "a", count: 2 << 20), contentType: "application/json", headers: headers),
                try await client.call(.get, "/v1/tenants/acme-retail/datasets/customers/records/not-a-uuid", key: integration, headers: headers),
                try await client.call(.post, lookup, key: credentials["ITAKU_REVIEWER_KEY"], json: jsonObject(bodyText), headers: headers),
            ]
            for response in responses {
                #expect((400..<500).contains(Int(response.status.code)), "\(response.status.code) \(response.text.prefix(200))")
                #expect(response.headers[.contentType] == "application/problem+json")
            }
            // In DESIGN.md §6 order: a case reference the tenant does not accept (400, at the
            // case check), and survey-outreach does not look up by phone.
            #expect(responses.map { $0.code ?? "" } == [
                "invalid_case", "invalid_json", "invalid_json", "lookup_key_not_allowed", "payload_too_large", "operation_not_allowed", "forbidden",
            ])
        }
        let entries = try await owner.query(
            "SELECT reason, target FROM itaku.access_log WHERE operation = 'lookup' AND agent = 'A0001' ORDER BY occurred_at"
        ).map { (try $0.decode(0, as: String.self), try $0.decode(1, as: String?.self)) }
        await owner.shutdown()
        #expect(entries.first?.1?.hasPrefix("withheld:") == true && entries.first?.1?.hasSuffix(":subject_suspended") == true)
        #expect(entries.filter { $0.0 == "volume_exceeded" }.count == 1)
    }
}
