import Foundation
import ItakuAccessLog
import ItakuCore
import ItakuEnforcer
import ItakuRegistry

/// One agent call on its way to a decision: what the enforcer judges, the entry that will
/// record it, and the first problem with the call's own input, answered (and logged) only if
/// the enforcer's checks pass. Every caller-chosen value is checked here, before it can reach
/// a bind or the log.
struct PendingCall {
    static let maxFields = 200

    var access: AccessRequest
    var entry: AccessEntry
    var refusal: AgentRefusal?
    /// The tenant, if the calling integration serves it; otherwise nil, as for an unknown one.
    var tenant: Tenant?
    /// The record of a read or update, if the path named one that could exist.
    var recordID: UUID?
    /// Records reserved for `records_per_hour`; what the answer does not carry is given back.
    var reservedRecords = 0
    /// The hour they were counted in (records not carried go back to it).
    var reservedHour: Date?

    init(_ call: AgentCall, snapshot: RegistrySnapshot) {
        access = AccessRequest(
            tenantCode: call.tenantCode, dataset: call.dataset, operation: call.operation, integrationID: call.integrationID,
            agent: call.agent, agentVerified: call.agentVerified
        )
        entry = AccessEntry(
            tenantID: nil, actorRole: "integration", actorKeyID: call.actorKeyID,
            operation: AccessEntry.Operation(rawValue: call.operation.rawValue) ?? .read, decision: .deny, reason: ""
        )
        // Path names that could not name a dataset are not written anywhere: they answer as
        // an unknown dataset would.
        if !DatasetSchema.isFieldName(access.dataset) { access.dataset = "" }
        // The tenant the path names, resolved once; whether this integration serves it is
        // checked below.
        let named = snapshot.tenant(code: call.tenantCode)
        let served = named.flatMap { snapshot.integrations[call.integrationID]?.tenantIDs.contains($0.id) == true ? $0 : nil }
        // A purpose key that is not printable text is simply not a purpose (purpose_unknown).
        if let purpose = call.purpose, PrintableText.isValid(purpose, maxBytes: 128) { access.purposeKey = purpose }
        // A case reference is stored as given, so it must match the tenant's pattern; any other
        // is refused (400 invalid_case) and not written. Only a tenant this integration serves
        // has its own pattern applied: any other answers as an unknown one, by the default.
        if let reference = call.caseRef {
            if CaseReference.isAcceptable(reference, pattern: served?.casePattern) {
                access.caseRef = reference
            } else {
                refuse(.badRequest(
                    "invalid_case", "The Itaku-Case header is not a case reference this tenant accepts.", pointer: "Itaku-Case"
                ))
            }
        }
        ask(for: call.fields)
        recordID = call.record.flatMap(UUID.init(uuidString:))
        tenant = served
        entry.integrationID = call.integrationID
        // Caller-chosen names reach the log only when they name something registered: an
        // unknown agent id, purpose key or dataset name could be anything, a phone number
        // included.
        entry.agent = call.agent.flatMap { snapshot.agent(employeeID: $0) == nil ? nil : $0 }
        entry.agentVerified = call.agentVerified
        entry.purposeKey = access.purposeKey.flatMap { key in named.flatMap { snapshot.purposes[$0.id]?[key] } == nil ? nil : key }
        entry.caseRef = access.caseRef
        entry.dataset = named.flatMap { snapshot.datasets[$0.id]?[access.dataset] } == nil ? nil : access.dataset
        entry.requestID = call.requestID
        entry.clientAddress = call.clientAddress
    }

    mutating func refuse(_ problem: AgentRefusal) {
        if refusal == nil { refusal = problem }
    }

    /// The fields asked for, in the order asked. A name that could not be a field (an empty
    /// one too), a name asked twice, or more than 200 names refuse the request
    /// (`invalid_fields`, as the contract says); such names are not written anywhere.
    mutating func ask(for fields: [String]?) {
        guard let fields else { return }
        var seen: Set<String> = []
        var names: [String] = []
        for name in fields {
            guard DatasetSchema.isFieldName(name) else {
                refuse(.badRequest("invalid_fields", "A field name is not valid.", pointer: "fields"))
                continue
            }
            if seen.insert(name).inserted {
                names.append(name)
            } else {
                refuse(.badRequest("invalid_fields", "A field is named twice.", pointer: "fields"))
            }
        }
        if names.count > Self.maxFields {
            refuse(.badRequest("invalid_fields", "Too many fields.", pointer: "fields"))
            names = []
        }
        access.fields = names
    }
}
