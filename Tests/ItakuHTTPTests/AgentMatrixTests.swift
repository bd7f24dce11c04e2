import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuCore
import ItakuDemo
import ItakuEnforcer
import ItakuPostgres
import ItakuRegistry
import ItakuTestSupport
import Logging
import Testing

/// Drives `Resources/agent-matrix.json` through real HTTP against a real PostgreSQL.
@Suite("Agent authorization matrix")
struct AgentMatrixTests {
    struct Matrix: Decodable {
        struct Row: Decodable {
            var name: String
            var tool: String
            var identity: String
            var agent: String
            var tenant: String
            var purpose: String
            var `case`: String
            var operation: String
            var by: String?
            var fields: [String]?
            var update: [String: String]?
            var status: Int
            var code: String?
        }
        var rows: [Row]
    }

    @Test("every cell answers as the data file says; bodies hold only the purpose's fields, each through its transform; one entry per request")
    func matrix() async throws {
        let url = try #require(Bundle.module.url(forResource: "agent-matrix", withExtension: "json", subdirectory: "Resources"))
        let matrix = try JSONDecoder().decode(Matrix.self, from: Data(contentsOf: url))
        let (database, state, keyring, credentials) = try await seededDemo(customers: 200, policyholders: 200)
        let app = try await makeApplication(database: database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        // The first customer of each dataset, as stored: what every answer is checked against.
        let customer = try #require(Array(DemoCustomers(count: 1)).first)
        let holderPhone = try #require(Array(DemoCustomers(count: 1, seed: 7)).first?["phone"])
        let purposes = Dictionary(uniqueKeysWithValues: DemoSeeder.acmePurposes(start: "2026-01-01", end: "2026-12-31").map { ($0.0, $0.1) })
        let tokens = try ["A0001", "A0002", "A0003"].reduce(into: [String: String]()) {
            $0[$1] = try AgentToken.mint(employeeID: $1, keyring: keyring, lifetime: 3600)
        }
        let owner = database.makeClient(role: .owner)
        let acmeID = try await owner.query("SELECT tenant_id FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: UUID.self)
        let transformer = FieldTransformer(key: keyring.digestKey(tenant: acmeID.uuidString))
        let rows = matrix.rows

        let failures = try await app.test(.live) { client -> [String] in
            var failures: [String] = []
            // A lookup by A0001 under case BOUND binds the first customer for the read and update rows.
            let found = try await client.call(
                .post, "/v1/tenants/acme-retail/datasets/customers/lookup", key: credentials["ITAKU_INTEGRATION_KEY"],
                json: ["by": "customer_no", "value": customer["customer_no"] ?? ""],
                headers: [.init("Itaku-Agent")!: tokens["A0001"]!, .init("Itaku-Purpose")!: "order-support", .init("Itaku-Case")!: "BOUND-1"]
            )
            let recordID = try #require((found["records"] as? [[String: Any]])?.first?["record_id"] as? String)
            for (index, row) in rows.enumerated() {
                var headers: HTTPFields = [.itakuRequestIDForTests: "matrix-\(index)", .init("Itaku-Purpose")!: row.purpose]
                switch row.identity {
                case "token": headers[.init("Itaku-Agent")!] = tokens[row.agent]
                case "id": headers[.init("Itaku-Agent-Id")!] = row.agent
                default: break
                }
                if row.case != "none" { headers[.init("Itaku-Case")!] = row.case == "bound" ? "BOUND-1" : "ELSEWHERE-2" }
                let key = credentials[row.tool == "verified" ? "ITAKU_INTEGRATION_KEY" : "ITAKU_ASSERTED_INTEGRATION_KEY"]
                let base = "/v1/tenants/\(row.tenant)/datasets/\(row.tenant == "kobe-insurance" ? "policyholders" : "customers")"
                let response: JSONResponse
                switch row.operation {
                case "lookup":
                    let value = row.tenant == "kobe-insurance" ? holderPhone : (row.by == "email" ? customer["email"] : customer[row.by ?? "phone"]) ?? ""
                    var body: [String: Any] = ["by": row.by ?? "phone", "value": value]
                    if let fields = row.fields { body["fields"] = fields }
                    response = try await client.call(.post, base + "/lookup", key: key, json: body, headers: headers)
                case "read":
                    let query = row.fields.map { "?fields=" + $0.joined(separator: ",") } ?? ""
                    response = try await client.call(.get, base + "/records/\(recordID)" + query, key: key, headers: headers)
                default:
                    response = try await client.call(.patch, base + "/records/\(recordID)", key: key, json: ["fields": row.update ?? [:]], headers: headers)
                }
                if Int(response.status.code) != row.status || (row.code != nil && response.code != row.code) {
                    failures.append("\(row.name): \(response.status.code) \(response.code ?? "") expected \(row.status) \(row.code ?? "")")
                }
                if response.status.code >= 400 {
                    if response.headers[.contentType] != "application/problem+json" { failures.append("\(row.name): not problem+json") }
                    if response.body["access_id"] == nil { failures.append("\(row.name): denial without access_id") }
                }
                // Every field of a 200 body is the purpose's, through the purpose's transform.
                if response.status == .ok, row.tenant == "acme-retail", row.operation != "update", let purpose = purposes[row.purpose],
                    let rules = purpose.datasets["customers"]
                {
                    for record in (response.body["records"] as? [[String: Any]]) ?? [] {
                        let fields = (record["fields"] as? [String: String]) ?? [:]
                        for (name, shown) in fields {
                            guard let transform = rules.fields[name], let field = DemoSeeder.customersSchema.field(name) else {
                                failures.append("\(row.name): field \(name) outside the purpose")
                                continue
                            }
                            if record["record_id"] as? String == recordID, name != "postal_code",
                                shown != transformer.apply(transform, to: customer[name] ?? "", field: field)
                            {
                                failures.append("\(row.name): \(name) did not go through \(transform.rawValue)")
                            }
                        }
                        if let asked = row.fields, !Set(fields.keys).isSubset(of: Set(asked)) { failures.append("\(row.name): more fields than asked") }
                    }
                    if row.purpose == "survey-outreach", ((response.body["records"] as? [Any])?.count ?? 0) > 1 { failures.append("\(row.name): over max results") }
                }
                if response.text.contains(customer["my_number"] ?? "-") || response.text.contains(customer["card_last4"].map { "\"\($0)\"" } ?? "-") {
                    failures.append("\(row.name): a withheld value left the gateway")
                }
            }
            return failures
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")

        // Exactly one entry per request, with its decision and reason.
        let logged = try await owner.query("SELECT request_id, decision, reason, agent_verified FROM itaku.access_log WHERE request_id LIKE 'matrix-%'")
        await owner.shutdown()
        var byRequest: [String: [(String, String, Bool?)]] = [:]
        for entry in logged {
            byRequest[try entry.decode(0, as: String.self), default: []].append((try entry.decode(1), try entry.decode(2), try entry.decode(3)))
        }
        for (index, row) in rows.enumerated() {
            let entries = byRequest["matrix-\(index)"] ?? []
            #expect(entries.count == 1, "\(row.name): \(entries.count) entries")
            guard let entry = entries.first else { continue }
            #expect(entry.0 == (row.status == 200 ? "allow" : "deny"), "\(row.name)")
            if let code = row.code { #expect(entry.1 == code, "\(row.name)") }
            if row.status == 200 { #expect(entry.2 == (row.identity == "token"), "\(row.name): verified flag") }
        }
    }
}
