import Foundation
import ItakuEnforcer

/// One call of an agent tool, as the HTTP layer read it: who calls (the integration, and the
/// agent its token or header named), what it asks, and under which purpose and case. Nothing
/// here is trusted yet: the service validates every value before it reaches a decision, a
/// bind or the log.
public struct AgentCall: Sendable {
    public enum Input: Sendable {
        case lookup(by: String, value: String)
        case read
        case update(changes: [String: String])
    }

    public var input: Input
    public var tenantCode: String
    public var dataset: String
    /// The record of a read or update, as the path gave it.
    public var record: String?
    public var integrationID: UUID
    public var actorKeyID: UUID
    public var agent: String?
    public var agentVerified: Bool
    /// `Itaku-Purpose` and `Itaku-Case`, as sent.
    public var purpose: String?
    public var caseRef: String?
    /// Fields asked for; nil: the purpose's visible fields.
    public var fields: [String]?
    public var requestID: String?
    public var clientAddress: String?

    public init(
        input: Input, tenantCode: String, dataset: String, record: String? = nil, integrationID: UUID, actorKeyID: UUID,
        agent: String?, agentVerified: Bool, purpose: String?, caseRef: String?, fields: [String]? = nil,
        requestID: String? = nil, clientAddress: String? = nil
    ) {
        self.input = input
        self.tenantCode = tenantCode
        self.dataset = dataset
        self.record = record
        self.integrationID = integrationID
        self.actorKeyID = actorKeyID
        self.agent = agent
        self.agentVerified = agentVerified
        self.purpose = purpose
        self.caseRef = caseRef
        self.fields = fields
        self.requestID = requestID
        self.clientAddress = clientAddress
    }

    var operation: AccessRequest.Operation {
        switch input {
        case .lookup: .lookup
        case .read: .read
        case .update: .update
        }
    }
}

/// A record as it leaves the gateway: the purpose's fields, each through its transform.
public struct AgentRecord: Sendable, Equatable {
    public var id: UUID
    public var fields: [String: String]
}

/// What an allowed call answers; its access entry is durably committed before this exists.
public enum AgentResult: Sendable {
    case records(accessID: UUID, records: [AgentRecord], withheld: Int)
    case updated(accessID: UUID, recordID: UUID, fields: [String])
}

/// A call refused: by the enforcer (then `accessID` names its logged denial) or for its own
/// malformed input. The HTTP layer answers it as problem+json, status and code as given.
public struct AgentRefusal: Error, Sendable, Equatable {
    public struct Issue: Sendable, Equatable {
        public var code: String
        public var pointer: String?
    }

    public var status: Int
    public var code: String
    public var title: String
    public var detail: String?
    public var pointer: String?
    public var issues: [Issue] = []
    public var accessID: UUID?
    public var retryAfter: Int?

    static func badRequest(_ code: String, _ detail: String, pointer: String?) -> AgentRefusal {
        AgentRefusal(status: 400, code: code, title: "Bad request", detail: detail, pointer: pointer)
    }

    static func invalid(_ code: String, _ issues: [Issue]) -> AgentRefusal {
        AgentRefusal(
            status: 422, code: code, title: "Invalid request", detail: "The request does not satisfy the rules; see errors.",
            pointer: issues.first?.pointer, issues: issues
        )
    }
}
