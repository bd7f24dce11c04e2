import Foundation

/// An immutable view of the whole registry. Requests read one snapshot from start to end; a
/// change builds a new snapshot and swaps it in whole.
public struct RegistrySnapshot: Sendable {
    public var tenants: [UUID: Tenant] = [:]
    public var tenantIDsByCode: [String: UUID] = [:]
    /// Latest dataset version per tenant and name.
    public var datasets: [UUID: [String: Dataset]] = [:]
    /// Latest purpose version per tenant and key.
    public var purposes: [UUID: [String: Purpose]] = [:]
    public var agents: [UUID: Agent] = [:]
    public var agentIDsByEmployeeID: [String: UUID] = [:]
    public var assignments: [UUID: [UUID: Assignment]] = [:]
    public var integrations: [UUID: Integration] = [:]
    /// Live (unrevoked) keys by SHA-256 of the key.
    public var keys: [Data: APIKey] = [:]
    public var loadedAt = Date.distantPast

    public init() {}

    public func tenant(code: String) -> Tenant? {
        tenantIDsByCode[code].flatMap { tenants[$0] }
    }

    public func agent(employeeID: String) -> Agent? {
        agentIDsByEmployeeID[employeeID].flatMap { agents[$0] }
    }
}
