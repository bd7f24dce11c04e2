/// The stable reason codes of scope decisions (DESIGN.md §6), in the order the enforcer checks
/// them; the first failure decides. Clients and the access log rely on these strings: never
/// rename one.
public enum ReasonCode: String, Sendable, CaseIterable, Codable {
    case allowed
    case unauthenticated
    case agentUnverified = "agent_unverified"
    case notFound = "not_found"
    case purposeUnknown = "purpose_unknown"
    case notAssigned = "not_assigned"
    case purposeInactive = "purpose_inactive"
    case outsideHours = "outside_hours"
    case caseRequired = "case_required"
    case operationNotAllowed = "operation_not_allowed"
    case lookupKeyNotAllowed = "lookup_key_not_allowed"
    case fieldNotAllowed = "field_not_allowed"
    case specialCategoryDenied = "special_category_denied"
    case notCaseBound = "not_case_bound"
    case volumeExceeded = "volume_exceeded"
    // Per record: the record is withheld and the withholding is logged.
    case subjectSuspended = "subject_suspended"
    case recordExpired = "record_expired"

    /// The HTTP status a denial with this code answers.
    public var httpStatus: Int {
        switch self {
        case .allowed: 200
        case .unauthenticated, .agentUnverified: 401
        case .notFound: 404
        case .volumeExceeded: 429
        default: 403
        }
    }
}
