import Foundation
import Hummingbird
import ItakuRegistry

/// `/v1/tenants/{tenant}/assignments/{agent}`: operators assign an agent to some of a tenant's
/// purposes for a validity window, and end assignments; the tenant's client admin may read.
struct AssignmentsController: Sendable {
    let admin: Admin

    struct AssignmentBody: Codable, Sendable {
        var agent: String?
        var purposes: [String]?
        var valid_from: Date?
        var valid_until: Date?
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/tenants/:tenant/assignments", method: .get, context: RoleContext<OperatorsAndClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            let snapshot = context.snapshot ?? RegistrySnapshot()
            let list = (snapshot.assignments[tenant.id] ?? [:]).values.compactMap { Self.body($0, snapshot) }
                .sorted { ($0.agent ?? "") < ($1.agent ?? "") }
            return try admin.json(["assignments": list])
        }
        routes.on("/v1/tenants/:tenant/assignments/:agent", method: .get, context: RoleContext<OperatorsAndClientAdmins>.self) { _, context in
            let tenant = try admin.tenant(context)
            let snapshot = context.snapshot ?? RegistrySnapshot()
            guard let agent = context.parameters.get("agent").flatMap(snapshot.agent(employeeID:)),
                let assignment = snapshot.assignments[tenant.id]?[agent.id], let body = Self.body(assignment, snapshot)
            else { throw Problem.notFound }
            return try admin.json(body)
        }
        routes.on("/v1/tenants/:tenant/assignments/:agent", method: .put, context: RoleContext<Operators>.self) { request, context in
            let tenant = try admin.tenant(context)
            guard let agent = context.parameters.get("agent").flatMap({ context.snapshot?.agent(employeeID: $0) }) else {
                throw Problem.notFound
            }
            let body = try await admin.decode(AssignmentBody.self, from: request, context: context)
            // The path names the agent; a body naming another is refused, not passed over.
            var issues: [Problem.Issue] = body.agent.map { $0 == agent.employeeID } == false ? [.init(code: "unknown_member", pointer: "agent")] : []
            let purposes = body.purposes ?? []
            if purposes.isEmpty { issues.append(.init(code: "purposes_required", pointer: "purposes")) }
            for (index, key) in purposes.enumerated() where context.snapshot?.purposes[tenant.id]?[key] == nil {
                issues.append(.init(code: "unknown_purpose", pointer: "purposes[\(index)]"))
            }
            guard let from = body.valid_from, let until = body.valid_until else {
                throw Problem.invalid(issues + [.init(code: "validity_required", pointer: body.valid_from == nil ? "valid_from" : "valid_until")])
            }
            if until <= from { issues.append(.init(code: "invalid_validity", pointer: "valid_until")) }
            guard issues.isEmpty else { throw Problem.invalid(issues) }
            let assignment = Assignment(tenantID: tenant.id, agentID: agent.id, purposes: purposes, validFrom: from, validUntil: until)
            let created = try await admin.change(context, tenantID: tenant.id, target: "assignment:\(agent.employeeID)") { connection in
                (try await RegistryStore.putAssignment(assignment, on: connection), nil, nil)
            }
            // The committed values (the registry may not have read them yet).
            let response = AssignmentBody(agent: agent.employeeID, purposes: purposes, valid_from: from, valid_until: until)
            return try admin.json(response, status: created ? .created : .ok)
        }
        routes.on("/v1/tenants/:tenant/assignments/:agent", method: .delete, context: RoleContext<Operators>.self) { _, context in
            let tenant = try admin.tenant(context)
            guard let agent = context.parameters.get("agent").flatMap({ context.snapshot?.agent(employeeID: $0) }),
                context.snapshot?.assignments[tenant.id]?[agent.id] != nil
            else { throw Problem.notFound }
            // One deleted meanwhile changes nothing: rolled back, no entry, 404.
            try await admin.change(context, tenantID: tenant.id, target: "assignment:\(agent.employeeID)") { connection in
                guard try await RegistryStore.deleteAssignment(tenantID: tenant.id, agentID: agent.id, on: connection) else { throw Problem.notFound }
                return ((), nil, nil)
            }
            return Response(status: .noContent)
        }
    }

    static func body(_ assignment: Assignment, _ snapshot: RegistrySnapshot) -> AssignmentBody? {
        guard let agent = snapshot.agents[assignment.agentID] else { return nil }
        return AssignmentBody(agent: agent.employeeID, purposes: assignment.purposes, valid_from: assignment.validFrom, valid_until: assignment.validUntil)
    }
}
