import Foundation
import ItakuCore
import ItakuRegistry

/// What an agent tool asks to do, as the enforcer sees it.
public struct AccessRequest: Sendable {
    public enum Operation: String, Sendable { case lookup, read, update }

    public var tenantCode: String
    public var dataset: String
    public var operation: Operation
    public var integrationID: UUID
    /// The agent's employee id, and whether a signed token vouched for it.
    public var agent: String?
    public var agentVerified: Bool
    public var purposeKey: String?
    public var caseRef: String?
    /// For lookups: the field searched by.
    public var lookupField: String?
    /// Fields asked for; nil means the purpose's visible fields.
    public var fields: [String]?
    /// For updates: the fields being changed.
    public var updating: [String] = []
    /// For reads and updates: whether a lookup under the same case returned the record. False
    /// until the caller has checked the binding: a read nobody vouched for is refused.
    public var caseBound = false
    /// Lookups and records this agent had under this purpose in the current windows.
    public var lookupsLastMinute = 0
    public var recordsLastHour = 0

    public init(tenantCode: String, dataset: String, operation: Operation, integrationID: UUID, agent: String?, agentVerified: Bool) {
        self.tenantCode = tenantCode
        self.dataset = dataset
        self.operation = operation
        self.integrationID = integrationID
        self.agent = agent
        self.agentVerified = agentVerified
    }
}

/// The outcome: allowed with the fields and their transforms, or denied with a stable reason.
/// Both carry what the access entry records.
public struct Decision: Sendable, Equatable {
    public var reason: ReasonCode
    public var tenantID: UUID?
    public var purposeKey: String?
    public var purposeVersion: Int?
    /// Allowed fields, each with its transform (in the purpose's order of names).
    public var fields: [(name: String, transform: PurposeDefinition.Transform)]
    public var maxResults: Int
    /// For `field_not_allowed`: the fields refused. For `volume_exceeded`: seconds to wait.
    public var deniedFields: [String] = []
    public var retryAfter: Int?

    public var isAllowed: Bool { reason == .allowed }

    public static func == (lhs: Decision, rhs: Decision) -> Bool {
        lhs.reason == rhs.reason && lhs.tenantID == rhs.tenantID && lhs.purposeKey == rhs.purposeKey
            && lhs.purposeVersion == rhs.purposeVersion && lhs.maxResults == rhs.maxResults
            && lhs.fields.map(\.name) == rhs.fields.map(\.name) && lhs.fields.map(\.transform) == rhs.fields.map(\.transform)
            && lhs.deniedFields == rhs.deniedFields && lhs.retryAfter == rhs.retryAfter
    }

    static func deny(_ reason: ReasonCode, tenant: UUID? = nil, purpose: Purpose? = nil) -> Decision {
        Decision(reason: reason, tenantID: tenant, purposeKey: purpose?.key, purposeVersion: purpose?.version, fields: [], maxResults: 0)
    }
}

/// Decides one access from the request, the registry snapshot and the time, and nothing else:
/// no I/O, so it is table-tested exhaustively. The first failed check decides, in the order of
/// DESIGN.md §6; anything not positively allowed is denied.
public enum ScopeEnforcer {
    public static func decide(_ request: AccessRequest, snapshot: RegistrySnapshot, now: Date) -> Decision {
        // An integration in verified mode must present a valid agent token.
        guard let integration = snapshot.integrations[request.integrationID] else { return .deny(.unauthenticated) }
        if integration.trustMode == .verified && !request.agentVerified { return .deny(.agentUnverified) }
        guard request.agent != nil else { return .deny(.agentUnverified) }

        // Unknown or foreign tenant and dataset look alike: not_found.
        guard let tenant = snapshot.tenant(code: request.tenantCode), integration.tenantIDs.contains(tenant.id),
            let dataset = snapshot.datasets[tenant.id]?[request.dataset]
        else { return .deny(.notFound) }

        guard let key = request.purposeKey, let purpose = snapshot.purposes[tenant.id]?[key] else {
            return .deny(.purposeUnknown, tenant: tenant.id)
        }
        let definition = purpose.definition
        guard let employeeID = request.agent, let agent = snapshot.agent(employeeID: employeeID), agent.active,
            let assignment = snapshot.assignments[tenant.id]?[agent.id], assignment.purposes.contains(key),
            assignment.validFrom <= now, now < assignment.validUntil
        else { return .deny(.notAssigned, tenant: tenant.id, purpose: purpose) }

        let local = LocalTime(now, timeZone: TimeZone(identifier: tenant.timeZone) ?? TimeZone(identifier: "Asia/Tokyo")!)
        let windows = [(definition.validFrom, definition.validUntil), (tenant.contractStart, tenant.contractEnd)]
        // Dates are compared as ISO text; one that is not `YYYY-MM-DD` (stored past validation)
        // closes the window rather than compare wrongly.
        let inWindow = windows.allSatisfy { from, until in
            (from.map { PurposeDefinition.isCalendarDate($0) && local.date >= $0 } ?? true)
                && (until.map { PurposeDefinition.isCalendarDate($0) && local.date <= $0 } ?? true)
        }
        guard inWindow, tenant.status == "active" else { return .deny(.purposeInactive, tenant: tenant.id, purpose: purpose) }

        if let hours = definition.businessHours {
            // Hours that do not read, or end before they start, are no hours: outside them.
            guard let start = PurposeDefinition.minutes(hours.start), let end = PurposeDefinition.minutes(hours.end),
                hours.days.contains(local.weekday), local.minutes >= start, local.minutes < end
            else { return .deny(.outsideHours, tenant: tenant.id, purpose: purpose) }
        }
        if definition.caseRequired && (request.caseRef ?? "").isEmpty {
            return .deny(.caseRequired, tenant: tenant.id, purpose: purpose)
        }
        guard let rules = definition.datasets[request.dataset],
            rules.operations.contains(where: { $0.rawValue == request.operation.rawValue })
        else { return .deny(.operationNotAllowed, tenant: tenant.id, purpose: purpose) }

        if request.operation == .lookup {
            guard let field = request.lookupField, rules.lookupKeys.contains(field), dataset.schema.field(field)?.lookup != nil else {
                return .deny(.lookupKeyNotAllowed, tenant: tenant.id, purpose: purpose)
            }
        }
        // Asking for a field outside the purpose denies the request; it is not silently dropped.
        // Unasked, the purpose's fields that the dataset still has.
        let asked = request.fields ?? rules.fields.keys.filter { dataset.schema.field($0) != nil }.sorted()
        let refused = asked.filter { rules.fields[$0] == nil } + request.updating.filter { !rules.updatable.contains($0) }
        if !refused.isEmpty {
            var decision = Decision.deny(.fieldNotAllowed, tenant: tenant.id, purpose: purpose)
            decision.deniedFields = Array(Set(refused)).sorted()
            return decision
        }
        // The field a lookup searches by is used as much as one it shows: an individual number
        // is neither searched nor shown without its legal basis.
        let searched = request.operation == .lookup ? request.lookupField.map { [$0] } ?? [] : []
        for name in asked + request.updating + searched {
            guard let field = dataset.schema.field(name) else { return .deny(.fieldNotAllowed, tenant: tenant.id, purpose: purpose) }
            if field.category == .individualNumber && definition.legalBasis != .individualNumberAffairs {
                return .deny(.specialCategoryDenied, tenant: tenant.id, purpose: purpose)
            }
        }
        if request.operation != .lookup && !request.caseBound {
            return .deny(.notCaseBound, tenant: tenant.id, purpose: purpose)
        }
        if let limits = definition.limits {
            if request.operation == .lookup, let perMinute = limits.lookupsPerMinute, request.lookupsLastMinute >= perMinute {
                var decision = Decision.deny(.volumeExceeded, tenant: tenant.id, purpose: purpose)
                decision.retryAfter = 60 - local.second
                return decision
            }
            if let perHour = limits.recordsPerHour, request.recordsLastHour >= perHour {
                var decision = Decision.deny(.volumeExceeded, tenant: tenant.id, purpose: purpose)
                // The counters' hours are UTC hours (a zone may be off by a half or a quarter).
                decision.retryAfter = 3600 - Int(now.timeIntervalSince1970.rounded(.down)) % 3600
                return decision
            }
        }
        return Decision(
            reason: .allowed, tenantID: tenant.id, purposeKey: key, purposeVersion: purpose.version,
            // A transform that no longer suits its field (the dataset's type changed since the
            // purpose was saved) shows nothing rather than a mask meant for another type.
            fields: asked.compactMap { name in
                rules.fields[name].map { transform in
                    let fits = dataset.schema.field(name).map { PurposeDefinition.transform(transform, fits: $0.type) } ?? false
                    return (name, fits ? transform : .redact)
                }
            },
            maxResults: rules.maxResults
        )
    }
}

extension ScopeEnforcer {
    /// The denial of a request the enforcer allowed but whose integration as a whole has
    /// reached its volume (an asserted integration's cap): retry when the minute turns.
    public static func volumeExceeded(_ allowed: Decision, now: Date, snapshot: RegistrySnapshot) -> Decision {
        let zone = allowed.tenantID.flatMap { snapshot.tenants[$0] }.flatMap { TimeZone(identifier: $0.timeZone) }
        var decision = Decision(
            reason: .volumeExceeded, tenantID: allowed.tenantID, purposeKey: allowed.purposeKey,
            purposeVersion: allowed.purposeVersion, fields: [], maxResults: 0
        )
        decision.retryAfter = 60 - LocalTime(now, timeZone: zone ?? TimeZone(identifier: "Asia/Tokyo")!).second
        return decision
    }
}

/// The parts of a moment that the rules look at, in the tenant's time zone.
struct LocalTime {
    /// `YYYY-MM-DD`, comparable as text.
    var date: String
    /// `mon` … `sun`.
    var weekday: String
    var minutes: Int
    var second: Int

    /// From the zone's offset at `now` (daylight saving included) and calendar arithmetic:
    /// a Gregorian calendar's date components for every decision cost more than the rest of it.
    init(_ now: Date, timeZone: TimeZone) {
        let local = Int(now.timeIntervalSince1970.rounded(.down)) + timeZone.secondsFromGMT(for: now)
        let days = local >= 0 ? local / 86_400 : (local - 86_399) / 86_400
        let rest = local - days * 86_400
        let (year, month, day) = Timestamp.civil(days: days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }
        date = "\(year)-\(two(month))-\(two(day))"
        // 1970-01-01 was a Thursday.
        weekday = ["thu", "fri", "sat", "sun", "mon", "tue", "wed"][((days % 7) + 7) % 7]
        minutes = rest / 60
        second = rest % 60
    }
}

extension ScopeEnforcer {
    /// Whether one record an allowed request found may leave: `.allowed`, or why it is withheld
    /// (and logged as withheld). Total: a status it does not know is withheld too.
    public static func release(status: String, expired: Bool) -> ReasonCode {
        switch status {
        case "active": expired ? .recordExpired : .allowed
        case "suspended": .subjectSuspended
        default: .notFound
        }
    }
}
