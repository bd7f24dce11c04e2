import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuCore
import ItakuData
import ItakuDemo
import ItakuPostgres
import Logging
import ItakuRegistry
import ItakuTestSupport
import NIOCore

/// A migrated database with one operator key, made the way `itaku keys create` makes it.
struct AdminFixture {
    let database: TestDatabase
    let operatorKey: String

    static func make(on cluster: TestCluster? = nil) async throws -> AdminFixture {
        let database = try await (cluster ?? TestCluster.shared()).makeDatabase()
        let owner = database.makeClient(role: .runtime)
        let key = APIKeys.generate()
        try await owner.withTransaction { connection in
            _ = try await RegistryStore.createKey(
                hash: APIKeys.hash(key), displayPrefix: APIKeys.displayPrefix(key), role: .operator_, tenantID: nil,
                integrationID: nil, label: "test", on: connection
            )
        }
        await owner.shutdown()
        return AdminFixture(database: database, operatorKey: key)
    }
}

/// A response as a test reads it: status, headers and the JSON body (if any).
struct JSONResponse {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: [String: Any]
    var text: String

    var code: String? { body["code"] as? String }
    var pointer: String? { body["pointer"] as? String }
    subscript(key: String) -> Any? { body[key] }
}

extension TestClientProtocol {
    /// Sends `json` (an object or array) or raw `text` with `key` as the bearer.
    func call(
        _ method: HTTPRequest.Method, _ uri: String, key: String?, json: Any? = nil, text: String? = nil,
        contentType: String? = nil, headers extra: HTTPFields = [:]
    ) async throws -> JSONResponse {
        var headers = extra
        if let key { headers[.authorization] = "Bearer \(key)" }
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: json))
            headers[.contentType] = "application/json"
        } else if let text {
            body = ByteBuffer(string: text)
            headers[.contentType] = contentType ?? "text/csv; charset=utf-8"
        }
        return try await execute(uri: uri, method: method, headers: headers, body: body) { response in
            let text = String(buffer: response.body)
            let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            return JSONResponse(status: response.status, headers: response.headers, body: object, text: text)
        }
    }
}

extension TestClientProtocol {
    /// Creates tenant `code` as the operator, issues its client-admin key, and (unless told
    /// otherwise) defines its `customers` dataset; returns the client-admin key.
    func setUpTenant(_ code: String, operatorKey: String, withDataset: Bool = true) async throws -> String {
        _ = try await call(.post, "/v1/tenants", key: operatorKey, json: ["code": code, "name": code])
        let created = try await call(.post, "/v1/keys", key: operatorKey, json: ["role": "client_admin", "tenant": code])
        guard let key = created["key"] as? String else { throw TestSetupError.noKey(created.text) }
        if withDataset { _ = try await call(.put, "/v1/tenants/\(code)/datasets/customers", key: key, json: customersDataset) }
        return key
    }
}

enum TestSetupError: Error { case noKey(String) }

/// The customers dataset of the tests: a phone lookup, an e-mail lookup and an exact key.
var customersDataset: [String: Any] { [
    "key_field": "customer_no",
    "retention_days": 365,
    "fields": [
        ["name": "customer_no", "type": "string", "category": "basic", "lookup": "exact"],
        ["name": "name", "type": "string", "category": "basic"],
        ["name": "phone", "type": "phone", "category": "contact", "lookup": "phone"],
        ["name": "email", "type": "email", "category": "contact", "lookup": "email"],
        ["name": "address", "type": "address", "category": "contact"],
        ["name": "birth_date", "type": "date", "category": "basic"],
        ["name": "my_number", "type": "string", "category": "individual_number"],
        ["name": "health_note", "type": "string", "category": "sensitive"],
    ],
] }

func purpose(fields: [String: String] = ["name": "plain", "phone": "last4"], updatable: [String] = [], basis: String = "contract") -> [String: Any] {
    [
        "name": "Order support",
        "legal_basis": basis,
        "case_required": true,
        "datasets": ["customers": [
            "operations": updatable.isEmpty ? ["lookup", "read"] : ["lookup", "read", "update"],
            "lookup_keys": ["phone"], "fields": fields, "updatable": updatable, "max_results": 3,
        ]],
    ]
}

/// `object` as JSON text, for Sendable test arguments.
func jsonText(_ object: Any) -> String {
    String(decoding: (try? JSONSerialization.data(withJSONObject: object, options: .sortedKeys)) ?? Data(), as: UTF8.self)
}

func jsonObject(_ text: String) -> Any {
    (try? JSONSerialization.jsonObject(with: Data(text.utf8))) ?? [:]
}

/// A migrated database with the demo seeded (`customers` acme-retail customers), and the state
/// folder whose keyring made its digests and tokens: build the application on that folder.
func seededDemo(customers: Int, policyholders: Int) async throws -> (TestDatabase, String, Keyring, [String: String]) {
    let database = try await TestCluster.shared().makeDatabase()
    let state = try TestStateFolders.make()
    // The keyring is made the way the application makes it, before the application starts.
    let keyring = try Keyring.load(file: state + "/keyring.json", directory: nil, generate: true)
    let runtime = database.makeClient(role: .runtime)
    var seeder = DemoSeeder(
        database: runtime, keyring: keyring, dataKeys: DataKeys(directory: state + "/data-keys", keyring: keyring), logger: Logger(label: "test")
    )
    seeder.customers = customers
    seeder.policyholders = policyholders
    do {
        let credentials = Dictionary(uniqueKeysWithValues: try await seeder.seed(url: "").values.map { ($0.0, $0.1) })
        await runtime.shutdown()
        return (database, state, keyring, credentials)
    } catch {
        await runtime.shutdown()
        throw error
    }
}

extension PostgresClient {
    /// Runs `body` in one transaction acting for the tenant of `code` (row-level security is
    /// forced on the owner too), with the tenant's id: for a test that changes a tenant's rows
    /// behind the service's back.
    func asTenant<T: Sendable>(_ code: String, _ body: (PostgresConnection, UUID) async throws -> T) async throws -> T {
        try await withTransaction { connection in
            let tenantID = try await connection.query("SELECT tenant_id FROM itaku.tenants WHERE code = \(code)")[0].decode(0, as: UUID.self)
            try await connection.query("SELECT set_config('itaku.tenant_id', \(tenantID.uuidString), true)")
            return try await body(connection, tenantID)
        }
    }
}
