import Foundation
import Hummingbird
import ItakuPostgres
import ItakuRegistry

/// `/v1/tenants`: operators create, list and update tenants; a client admin and reviewers may
/// read.
struct TenantsController: Sendable {
    let admin: Admin

    struct TenantBody: Codable, Sendable {
        var code: String?
        var name: String?
        var time_zone: String?
        var contract_start: String?
        var contract_end: String?
        var status: String?
        /// The case references agents may cite; absent: Itaku's default (`CaseReference`).
        var case_pattern: String?

        init(_ tenant: Tenant) {
            code = tenant.code
            name = tenant.name
            time_zone = tenant.timeZone
            contract_start = tenant.contractStart
            contract_end = tenant.contractEnd
            status = tenant.status
            case_pattern = tenant.casePattern
        }
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants", method: .post, context: RoleContext<Operators>.self) { request, context in try await create(request, context) }
        routes.on("/v1/tenants", method: .get, context: RoleContext<OperatorsAndReviewers>.self) { _, context in
            let tenants = (context.snapshot?.tenants.values.sorted { $0.code < $1.code } ?? []).map(TenantBody.init)
            return try admin.json(["tenants": tenants])
        }
        routes.on("/v1/tenants/:tenant", method: .get, context: RoleContext<AdministrativeRoles>.self) { _, context in
            let tenant = try admin.tenant(context)
            return try admin.json(TenantBody(tenant))
        }
        routes.on("/v1/tenants/:tenant", method: .patch, context: RoleContext<Operators>.self) { request, context in try await update(request, context) }
    }

    private func create(_ request: Request, _ context: RoleContext<Operators>) async throws -> Response {
        let body = try await admin.decode(TenantBody.self, from: request, context: context)
        // A new tenant is active: `status` is for a change.
        var issues: [Problem.Issue] = body.status == nil ? [] : [.init(code: "unknown_member", pointer: "status")]
        let code = body.code ?? ""
        if !Self.isCode(code) { issues.append(.init(code: "invalid_tenant_code", pointer: "code")) }
        if let issue = Problem.Issue.name(body.name ?? "", pointer: "name") { issues.append(issue) }
        issues += Self.validate(timeZone: body.time_zone, start: body.contract_start, end: body.contract_end, status: nil)
        if let pattern = body.case_pattern, !CaseReference.isValidPattern(pattern) {
            issues.append(.init(code: "invalid_case_pattern", pointer: "case_pattern"))
        }
        guard issues.isEmpty else { throw Problem.invalid(issues) }
        if context.snapshot?.tenant(code: code) != nil { throw Problem.conflict(code: "tenant_exists", "A tenant with this code exists.") }
        let name = body.name ?? "", zone = body.time_zone ?? "Asia/Tokyo"
        // The id is chosen here so that the tenant's own log shows its creation.
        let tenantID = UUID()
        do {
            _ = try await admin.change(context, tenantID: tenantID, target: "tenant:\(code)") { connection in
                let id = try await RegistryStore.createTenant(
                    id: tenantID, code: code, name: name, timeZone: zone, contractStart: body.contract_start,
                    contractEnd: body.contract_end, casePattern: body.case_pattern, on: connection
                )
                return (id, nil, 1)
            }
        } catch let error as PostgresError where error.isUniqueViolation {
            throw Problem.conflict(code: "tenant_exists", "A tenant with this code exists.")
        }
        let tenant = admin.registry.snapshot.tenant(code: code) ?? Tenant(
            id: tenantID, code: code, name: name, timeZone: zone, contractStart: body.contract_start, contractEnd: body.contract_end,
            status: "active", casePattern: body.case_pattern
        )
        return try admin.json(TenantBody(tenant), status: .created)
    }

    private func update(_ request: Request, _ context: RoleContext<Operators>) async throws -> Response {
        let tenant = try admin.tenant(context)
        let body = try await admin.decode(TenantBody.self, from: request, context: context)
        guard tenant.status != "ended" else { throw Self.ended }
        // The period is checked as it will be after the change, stored values included.
        var issues = Self.validate(
            timeZone: body.time_zone, start: body.contract_start ?? tenant.contractStart,
            end: body.contract_end ?? tenant.contractEnd, status: body.status
        )
        if body.code != nil && body.code != tenant.code { issues.append(.init(code: "code_immutable", pointer: "code")) }
        if let issue = Problem.Issue.name(body.name, pointer: "name") { issues.append(issue) }
        if let pattern = body.case_pattern, !CaseReference.isValidPattern(pattern) {
            issues.append(.init(code: "invalid_case_pattern", pointer: "case_pattern"))
        }
        guard issues.isEmpty else { throw Problem.invalid(issues) }
        // Only the values sent are written; an ended contract changes no more (it ended through
        // contract-end, which disposed of its data).
        let updated = try await admin.change(context, tenantID: tenant.id, target: "tenant:\(tenant.code)") { connection in
            guard let updated = try await RegistryStore.updateTenant(
                tenant.id, name: body.name, timeZone: body.time_zone, contractStart: body.contract_start,
                contractEnd: body.contract_end, status: body.status, casePattern: body.case_pattern, on: connection
            ) else {
                // Ended, or the period would end before it starts with a change committed meanwhile.
                guard try await RegistryStore.lockTenant(tenant.id, exclusive: false, on: connection) != "ended" else { throw Self.ended }
                throw Problem.invalid([.init(code: "invalid_contract_period", pointer: "contract_end")])
            }
            return (updated, nil, nil)
        }
        // The committed values (the registry may not have read them yet).
        return try admin.json(TenantBody(updated))
    }

    static let ended = Problem.conflict(code: "tenant_ended", "The tenant's contract ended; its settings change no more.")

    static func isCode(_ code: String) -> Bool {
        (2...63).contains(code.utf8.count)
            && code.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            && code.first != "-"
    }

    static func validate(timeZone: String?, start: String?, end: String?, status: String?) -> [Problem.Issue] {
        var issues: [Problem.Issue] = []
        if let timeZone, TimeZone(identifier: timeZone) == nil { issues.append(.init(code: "invalid_time_zone", pointer: "time_zone")) }
        if let start, !PurposeDefinition.isCalendarDate(start) { issues.append(.init(code: "invalid_date", pointer: "contract_start")) }
        if let end, !PurposeDefinition.isCalendarDate(end) { issues.append(.init(code: "invalid_date", pointer: "contract_end")) }
        if let start, let end, start > end { issues.append(.init(code: "invalid_contract_period", pointer: "contract_end")) }
        // A contract ends through contract-end only (which disposes of the tenant's data).
        if let status, !["active", "suspended"].contains(status) { issues.append(.init(code: "invalid_status", pointer: "status")) }
        return issues
    }
}
