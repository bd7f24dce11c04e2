import Foundation
import Hummingbird
import ItakuCore
import ItakuPostgres
import ItakuRegistry

/// `/v1/integrations` and `/v1/keys`: operators register agent tools and issue and revoke keys.
struct IntegrationsController: Sendable {
    let admin: Admin

    struct IntegrationBody: Codable, Sendable {
        var id: UUID?
        var name: String?
        var trust_mode: String?
        var tenants: [String]?
    }

    struct KeyRequest: Codable {
        var role: String?
        var tenant: String?
        var integration: UUID?
        var label: String?
    }

    struct KeyResponse: Encodable {
        var id: UUID
        /// Shown once: only its hash is stored.
        var key: String
        var role: String
        var tenant: String?
        var integration: UUID?
        var label: String
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/integrations", method: .get, context: RoleContext<Operators>.self) { _, context in
            let snapshot = context.snapshot ?? RegistrySnapshot()
            let list = snapshot.integrations.values.sorted { $0.name < $1.name }.map { Self.body($0, snapshot) }
            return try admin.json(["integrations": list])
        }
        routes.on("/v1/integrations", method: .post, context: RoleContext<Operators>.self) { request, context in try await createIntegration(request, context) }
        routes.on("/v1/keys", method: .post, context: RoleContext<Operators>.self) { request, context in try await createKey(request, context) }
        routes.on("/v1/keys/:id", method: .delete, context: RoleContext<Operators>.self) { _, context in
            // Only live keys can be revoked; anything else is 404 and changes (and logs) nothing.
            guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
                context.snapshot?.keys.values.contains(where: { $0.id == id }) == true
            else { throw Problem.notFound }
            // A key revoked meanwhile (by another request or instance) changes nothing: the
            // transaction rolls back and no entry claims a revocation.
            try await admin.change(context, tenantID: nil, target: "key:\(id.lowercasedString)") { connection in
                guard try await RegistryStore.revokeKey(id, on: connection) else { throw Problem.notFound }
                return ((), nil, nil)
            }
            return Response(status: .noContent)
        }
    }

    private func createIntegration(_ request: Request, _ context: RoleContext<Operators>) async throws -> Response {
        let body = try await admin.decode(IntegrationBody.self, from: request, context: context)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        // The id is Itaku's to give.
        var issues: [Problem.Issue] = body.id == nil ? [] : [.init(code: "unknown_member", pointer: "id")]
        let name = body.name ?? ""
        if !TenantsController.isCode(name) { issues.append(.init(code: "invalid_integration_name", pointer: "name")) }
        let mode = Integration.TrustMode(rawValue: body.trust_mode ?? "")
        if mode == nil { issues.append(.init(code: "invalid_trust_mode", pointer: "trust_mode")) }
        var tenantIDs: [UUID] = []
        for (index, code) in (body.tenants ?? []).enumerated() {
            if let tenant = snapshot.tenant(code: code) { tenantIDs.append(tenant.id) } else {
                issues.append(.init(code: "unknown_tenant", pointer: "tenants[\(index)]"))
            }
        }
        guard issues.isEmpty, let mode else { throw Problem.invalid(issues) }
        let ids = tenantIDs
        let id: UUID
        do {
            id = try await admin.change(context, tenantID: nil, target: "integration:\(name)") { connection in
                (try await RegistryStore.createIntegration(name: name, trustMode: mode, tenantIDs: ids, on: connection), nil, nil)
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw Problem.conflict(code: "integration_exists", "An integration with this name exists.")
        }
        let fresh = admin.registry.snapshot
        let integration = fresh.integrations[id] ?? Integration(id: id, name: name, trustMode: mode, tenantIDs: ids)
        return try admin.json(Self.body(integration, fresh.integrations[id] == nil ? context.snapshot ?? fresh : fresh), status: .created)
    }

    private func createKey(_ request: Request, _ context: RoleContext<Operators>) async throws -> Response {
        let body = try await admin.decode(KeyRequest.self, from: request, context: context)
        let snapshot = context.snapshot ?? RegistrySnapshot()
        guard let role = body.role.flatMap(Role.init(rawValue:)) else {
            throw Problem.invalid([.init(code: "invalid_role", pointer: "role")])
        }
        if let issue = Problem.Issue.name(body.label, pointer: "label", required: nil) { throw Problem.invalid([issue]) }
        var tenant: Tenant?
        var integrationID: UUID?
        if (role != .clientAdmin && body.tenant != nil) || (role != .integration && body.integration != nil) {
            throw Problem.invalid([.init(code: "unexpected_binding", pointer: body.tenant != nil && role != .clientAdmin ? "tenant" : "integration")])
        }
        switch role {
        case .clientAdmin:
            guard let found = body.tenant.flatMap(snapshot.tenant(code:)) else {
                throw Problem.invalid([.init(code: body.tenant == nil ? "tenant_required" : "unknown_tenant", pointer: "tenant")])
            }
            tenant = found
        case .integration:
            guard let id = body.integration, snapshot.integrations[id] != nil else {
                throw Problem.invalid([.init(code: body.integration == nil ? "integration_required" : "unknown_integration", pointer: "integration")])
            }
            integrationID = id
        case .operator_, .reviewer:
            break
        }
        let keyID = UUID.random()
        let (key, id) = try await Self.issue(id: keyID, role: role, tenantID: tenant?.id, integrationID: integrationID, label: body.label ?? "") { issue in
            try await admin.change(context, tenantID: tenant?.id, target: "key:\(role.rawValue):\(keyID.lowercasedString)") { connection in
                (try await issue(connection), nil, nil)
            }
        }
        return try admin.json(
            KeyResponse(id: id, key: key, role: role.rawValue, tenant: tenant?.code, integration: integrationID, label: body.label ?? ""),
            status: .created
        )
    }

    /// Generates a key and stores its hash through `store` (which supplies the transaction).
    static func issue(
        id: UUID, role: Role, tenantID: UUID?, integrationID: UUID?, label: String,
        store: (@Sendable (PostgresConnection) async throws -> UUID) async throws -> UUID
    ) async throws -> (key: String, id: UUID) {
        let key = APIKeys.generate()
        let id = try await store { connection in
            try await RegistryStore.createKey(
                id: id, hash: APIKeys.hash(key), displayPrefix: APIKeys.displayPrefix(key), role: role,
                tenantID: tenantID, integrationID: integrationID, label: label, on: connection
            )
        }
        return (key, id)
    }

    static func body(_ integration: Integration, _ snapshot: RegistrySnapshot) -> IntegrationBody {
        IntegrationBody(
            id: integration.id, name: integration.name, trust_mode: integration.trustMode.rawValue,
            tenants: integration.tenantIDs.compactMap { snapshot.tenants[$0]?.code }.sorted()
        )
    }
}
