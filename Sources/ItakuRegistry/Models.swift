import Foundation

/// Who a key belongs to.
public enum Role: String, Sendable, Codable, CaseIterable {
    case operator_ = "operator"
    case clientAdmin = "client_admin"
    case reviewer
    case integration
}

public struct Tenant: Sendable, Codable, Equatable {
    public var id: UUID
    public var code: String
    public var name: String
    public var timeZone: String
    public var contractStart: String?
    public var contractEnd: String?
    public var status: String
    /// The case references this tenant's agents may cite (`CaseReference`); nil: the default.
    public var casePattern: String?

    public init(
        id: UUID, code: String, name: String, timeZone: String, contractStart: String?, contractEnd: String?, status: String,
        casePattern: String? = nil
    ) {
        self.id = id
        self.code = code
        self.name = name
        self.timeZone = timeZone
        self.contractStart = contractStart
        self.contractEnd = contractEnd
        self.status = status
        self.casePattern = casePattern
    }
}

public struct Agent: Sendable, Codable, Equatable {
    public var id: UUID
    public var employeeID: String
    public var name: String
    public var site: String
    public var active: Bool

    public init(id: UUID, employeeID: String, name: String, site: String, active: Bool) {
        self.id = id
        self.employeeID = employeeID
        self.name = name
        self.site = site
        self.active = active
    }
}

public struct Integration: Sendable, Codable, Equatable {
    public enum TrustMode: String, Sendable, Codable { case verified, asserted }
    public var id: UUID
    public var name: String
    public var trustMode: TrustMode
    public var tenantIDs: [UUID]

    public init(id: UUID, name: String, trustMode: TrustMode, tenantIDs: [UUID]) {
        self.id = id
        self.name = name
        self.trustMode = trustMode
        self.tenantIDs = tenantIDs
    }
}

public struct APIKey: Sendable, Equatable {
    public var id: UUID
    public var role: Role
    public var tenantID: UUID?
    public var integrationID: UUID?
    public var label: String
}

public struct Assignment: Sendable, Codable, Equatable {
    public var tenantID: UUID
    public var agentID: UUID
    public var purposes: [String]
    public var validFrom: Date
    public var validUntil: Date

    public init(tenantID: UUID, agentID: UUID, purposes: [String], validFrom: Date, validUntil: Date) {
        self.tenantID = tenantID
        self.agentID = agentID
        self.purposes = purposes
        self.validFrom = validFrom
        self.validUntil = validUntil
    }
}

/// A dataset's schema at one version.
public struct Dataset: Sendable, Equatable {
    public var id: UUID
    public var tenantID: UUID
    public var name: String
    public var version: Int
    public var schema: DatasetSchema

    public init(id: UUID, tenantID: UUID, name: String, version: Int, schema: DatasetSchema) {
        self.id = id
        self.tenantID = tenantID
        self.name = name
        self.version = version
        self.schema = schema
    }
}

/// A stored purpose version.
public struct Purpose: Sendable, Equatable {
    public var tenantID: UUID
    public var key: String
    public var version: Int
    public var definition: PurposeDefinition
    public var createdAt: Date

    public init(tenantID: UUID, key: String, version: Int, definition: PurposeDefinition, createdAt: Date) {
        self.tenantID = tenantID
        self.key = key
        self.version = version
        self.definition = definition
        self.createdAt = createdAt
    }
}
