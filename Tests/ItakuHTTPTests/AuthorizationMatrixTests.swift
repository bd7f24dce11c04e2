import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Every administration endpoint × every role × own, foreign and missing tenant: the expected
/// status, never a 500. A client admin gets the same 404 for another tenant as for a tenant
/// that does not exist.
@Suite("Authorization matrix")
struct AuthorizationMatrixTests {
    enum Caller: String, CaseIterable {
        case nobody, badKey, operator_, reviewer, integration, ownAdmin, foreignAdmin
    }

    struct Endpoint: Sendable {
        var method: HTTPRequest.Method
        /// `{t}` is replaced by the tenant code under test.
        var path: String
        var allowed: Set<String>
        var success: HTTPResponse.Status
        var tenantScoped: Bool
        var body: @Sendable (Int) -> String?
        var headers: HTTPFields = [:]
    }

    static let endpoints: [Endpoint] = [
        .init(method: .get, path: "/v1/tenants", allowed: ["operator_", "reviewer"], success: .ok, tenantScoped: false, body: { _ in nil }),
        .init(method: .post, path: "/v1/tenants", allowed: ["operator_"], success: .created, tenantScoped: false,
              body: { jsonText(["code": "matrix-\($0)", "name": "M"]) }),
        .init(method: .get, path: "/v1/tenants/{t}", allowed: ["operator_", "reviewer", "ownAdmin"], success: .ok, tenantScoped: true, body: { _ in nil }),
        .init(method: .patch, path: "/v1/tenants/{t}", allowed: ["operator_"], success: .ok, tenantScoped: true, body: { _ in jsonText(["name": "Acme Retail"]) }),
        .init(method: .put, path: "/v1/tenants/{t}/datasets/customers", allowed: ["ownAdmin"], success: .ok, tenantScoped: true,
              body: { _ in jsonText(customersDataset) }),
        .init(method: .get, path: "/v1/tenants/{t}/datasets/customers", allowed: ["ownAdmin"], success: .ok, tenantScoped: true, body: { _ in nil }),
        .init(method: .post, path: "/v1/tenants/{t}/datasets/customers/imports", allowed: ["ownAdmin"], success: .created, tenantScoped: true,
              body: { jsonText([["customer_no": "M\($0)", "name": "マトリクス"]]) }),
        .init(method: .put, path: "/v1/tenants/{t}/purposes/order-support", allowed: ["ownAdmin"], success: .ok, tenantScoped: true,
              body: { _ in jsonText(purpose()) }, headers: [.ifMatch: "*"]),
        .init(method: .get, path: "/v1/tenants/{t}/purposes", allowed: ["ownAdmin"], success: .ok, tenantScoped: true, body: { _ in nil }),
        .init(method: .get, path: "/v1/tenants/{t}/purposes/order-support", allowed: ["ownAdmin"], success: .ok, tenantScoped: true, body: { _ in nil }),
        .init(method: .get, path: "/v1/agents", allowed: ["operator_"], success: .ok, tenantScoped: false, body: { _ in nil }),
        .init(method: .post, path: "/v1/agents", allowed: ["operator_"], success: .created, tenantScoped: false,
              body: { jsonText(["employee_id": "M\($0)", "name": "M"]) }),
        .init(method: .patch, path: "/v1/agents/A0001", allowed: ["operator_"], success: .ok, tenantScoped: false, body: { _ in jsonText(["site": "Kobe"]) }),
        .init(method: .put, path: "/v1/tenants/{t}/assignments/A0001", allowed: ["operator_"], success: .ok, tenantScoped: true,
              body: { _ in jsonText(["purposes": ["order-support"], "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z"]) }),
        .init(method: .get, path: "/v1/tenants/{t}/assignments", allowed: ["operator_", "ownAdmin"], success: .ok, tenantScoped: true, body: { _ in nil }),
        .init(method: .get, path: "/v1/tenants/{t}/assignments/A0001", allowed: ["operator_", "ownAdmin"], success: .ok, tenantScoped: true, body: { _ in nil }),
        .init(method: .get, path: "/v1/integrations", allowed: ["operator_"], success: .ok, tenantScoped: false, body: { _ in nil }),
        .init(method: .post, path: "/v1/integrations", allowed: ["operator_"], success: .created, tenantScoped: false,
              body: { jsonText(["name": "tool-\($0)", "trust_mode": "verified", "tenants": ["acme-retail"]]) }),
        .init(method: .post, path: "/v1/keys", allowed: ["operator_"], success: .created, tenantScoped: false, body: { _ in jsonText(["role": "reviewer"]) }),
        .init(method: .delete, path: "/v1/keys/00000000-0000-4000-8000-000000000000", allowed: ["operator_"], success: .notFound,
              tenantScoped: false, body: { _ in nil }),
    ]

    @Test("each role × endpoint × tenant answers as the rules say, never 500")
    func matrix() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            // Two tenants, each with a dataset and a purpose, an agent assigned in acme, and one key per role.
            var keys: [Caller: String] = [.operator_: op, .badKey: "itk_not-a-real-key-000000000000000000"]
            for code in ["acme-retail", "kobe-insurance"] {
                let admin = try await client.setUpTenant(code, operatorKey: op)
                keys[code == "acme-retail" ? .ownAdmin : .foreignAdmin] = admin
                _ = try await client.call(.put, "/v1/tenants/\(code)/purposes/order-support", key: admin, json: purpose())
            }
            _ = try await client.call(.post, "/v1/agents", key: op, json: ["employee_id": "A0001", "name": "A"])
            _ = try await client.call(.put, "/v1/tenants/acme-retail/assignments/A0001", key: op, json: [
                "purposes": ["order-support"], "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2027-01-01T00:00:00Z",
            ])
            keys[.reviewer] = try await client.call(.post, "/v1/keys", key: op, json: ["role": "reviewer"])["key"] as? String
            let integration = try await client.call(.post, "/v1/integrations", key: op, json: ["name": "desk", "trust_mode": "asserted", "tenants": ["acme-retail"]])
            keys[.integration] = try await client.call(
                .post, "/v1/keys", key: op, json: ["role": "integration", "integration": integration["id"] as? String ?? ""]
            )["key"] as? String

            var counter = 0
            var failures: [String] = []
            for endpoint in Self.endpoints {
                let tenants = endpoint.tenantScoped ? ["acme-retail", "no-such-tenant"] : ["acme-retail"]
                for caller in Caller.allCases {
                    for tenant in tenants {
                        counter += 1
                        let path = endpoint.path.replacingOccurrences(of: "{t}", with: tenant)
                        let expected = Self.expected(endpoint, caller: caller, tenant: tenant)
                        let response = try await client.call(
                            endpoint.method, path, key: caller == .nobody ? nil : keys[caller],
                            json: endpoint.body(counter).map(jsonObject), headers: endpoint.headers
                        )
                        if response.status != expected {
                            failures.append("\(endpoint.method) \(path) as \(caller): \(response.status.code), expected \(expected.code) \(response.code ?? "")")
                        }
                        if response.status.code >= 400 && response.headers[.contentType] != "application/problem+json" {
                            failures.append("\(endpoint.method) \(path) as \(caller): error without problem+json")
                        }
                        #expect(response.status.code < 500)
                    }
                }
            }
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
            #expect(counter > 200)
        }
    }

    static func expected(_ endpoint: Endpoint, caller: Caller, tenant: String) -> HTTPResponse.Status {
        switch caller {
        case .nobody, .badKey: return .unauthorized
        case .foreignAdmin:
            // A client admin of another tenant: tenant-scoped endpoints answer as if the tenant did not exist.
            if endpoint.tenantScoped && endpoint.allowed.contains("ownAdmin") { return .notFound }
            return .forbidden
        default:
            guard endpoint.allowed.contains(caller == .ownAdmin ? "ownAdmin" : String(describing: caller)) else { return .forbidden }
            if endpoint.tenantScoped && tenant == "no-such-tenant" { return .notFound }
            return endpoint.success
        }
    }
}
