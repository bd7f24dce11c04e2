import Foundation
import Hummingbird
import ItakuPostgres
import ItakuRegistry

/// `/v1/agents`: operators register the BPO's agents and (de)activate them.
struct AgentsController: Sendable {
    let admin: Admin

    struct AgentBody: Codable, Sendable {
        var employee_id: String?
        var name: String?
        var site: String?
        var active: Bool?

        init(_ agent: Agent) {
            employee_id = agent.employeeID
            name = agent.name
            site = agent.site
            active = agent.active
        }
    }

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/v1/agents", method: .get, context: RoleContext<Operators>.self) { _, context in
            let agents = (context.snapshot?.agents.values.sorted { $0.employeeID < $1.employeeID } ?? []).map(AgentBody.init)
            return try admin.json(["agents": agents])
        }
        routes.on("/v1/agents", method: .post, context: RoleContext<Operators>.self) { request, context in
            let body = try await admin.decode(AgentBody.self, from: request, context: context)
            let employeeID = body.employee_id ?? "", name = body.name ?? "", site = body.site ?? ""
            // The agent's record as listed; `active` is for a change, not for a new agent.
            var issues: [Problem.Issue] = body.active == nil ? [] : [.init(code: "unknown_member", pointer: "active")]
            if !Self.isEmployeeID(employeeID) { issues.append(.init(code: "invalid_employee_id", pointer: "employee_id")) }
            issues += [Problem.Issue.name(name, pointer: "name"), Problem.Issue.name(site, pointer: "site", required: nil)].compactMap { $0 }
            guard issues.isEmpty else { throw Problem.invalid(issues) }
            let id: UUID
            do {
                id = try await admin.change(context, tenantID: nil, target: "agent:\(employeeID)") { connection in
                    (try await RegistryStore.createAgent(employeeID: employeeID, name: name, site: site, on: connection), nil, nil)
                }
            } catch let error as PostgresError where error.isUniqueViolation {
                throw Problem.conflict(code: "agent_exists", "An agent with this employee id exists.")
            }
            let agent = admin.registry.snapshot.agents[id] ?? Agent(id: id, employeeID: employeeID, name: name, site: site, active: true)
            return try admin.json(AgentBody(agent), status: .created)
        }
        routes.on("/v1/agents/:agent", method: .patch, context: RoleContext<Operators>.self) { request, context in
            guard let employeeID = context.parameters.get("agent"), let agent = context.snapshot?.agent(employeeID: employeeID) else {
                throw Problem.notFound
            }
            let body = try await admin.decode(AgentBody.self, from: request, context: context)
            let issues = [Problem.Issue.name(body.name, pointer: "name"), Problem.Issue.name(body.site, pointer: "site", required: nil)].compactMap { $0 }
            guard issues.isEmpty else { throw Problem.invalid(issues) }
            if let id = body.employee_id, id != agent.employeeID {
                throw Problem.invalid([.init(code: "employee_id_immutable", pointer: "employee_id")])
            }
            let updated = try await admin.change(context, tenantID: nil, target: "agent:\(agent.employeeID)") { connection in
                guard let updated = try await RegistryStore.updateAgent(agent.id, name: body.name, site: body.site, active: body.active, on: connection) else {
                    throw Problem.notFound
                }
                return (updated, nil, nil)
            }
            // The committed values (the registry may not have read them yet).
            return try admin.json(AgentBody(updated))
        }
    }

    static func isEmployeeID(_ id: String) -> Bool {
        (1...64).contains(id.utf8.count)
            && id.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2D || $0 == 0x2E || $0 == 0x5F }
    }
}
