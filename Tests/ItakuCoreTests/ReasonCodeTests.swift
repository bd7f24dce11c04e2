import ItakuEnforcer
import Testing

@Suite("Reason codes")
struct ReasonCodeTests {
    @Test("denials answer the status DESIGN.md §6 gives them", arguments: [
        (ReasonCode.unauthenticated, 401), (.agentUnverified, 401), (.notFound, 404),
        (.purposeUnknown, 403), (.fieldNotAllowed, 403), (.notCaseBound, 403), (.volumeExceeded, 429),
    ])
    func statuses(code: ReasonCode, status: Int) {
        #expect(code.httpStatus == status)
    }

    @Test("the wire strings are the stable snake_case codes")
    func wireStrings() {
        #expect(ReasonCode.specialCategoryDenied.rawValue == "special_category_denied")
        #expect(Set(ReasonCode.allCases.map(\.rawValue)).count == ReasonCode.allCases.count)
    }
}
