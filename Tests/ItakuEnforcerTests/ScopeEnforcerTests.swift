import Foundation
import ItakuDemo
@testable import ItakuEnforcer
import ItakuRegistry
import Testing

/// The demo's registry, in memory: acme-retail with its three purposes, agents A0001 (assigned
/// to all three), A0002 (order-support only), A0003 (none), a verified and an asserted tool.
struct World {
    static let acme = UUID(), kobe = UUID(), a1 = UUID(), a2 = UUID(), a3 = UUID(), desktop = UUID(), cti = UUID()

    static let snapshot: RegistrySnapshot = {
        var s = RegistrySnapshot()
        for (id, code) in [(acme, "acme-retail"), (kobe, "kobe-insurance")] {
            s.tenants[id] = Tenant(id: id, code: code, name: code, timeZone: "Asia/Tokyo", contractStart: "2026-01-01", contractEnd: "2026-12-31", status: "active")
            s.tenantIDsByCode[code] = id
            s.datasets[id] = ["customers": Dataset(id: UUID(), tenantID: id, name: "customers", version: 1, schema: DemoSeeder.customersSchema)]
        }
        for (key, definition) in DemoSeeder.acmePurposes(start: "2026-01-01", end: "2026-12-31") {
            s.purposes[acme, default: [:]][key] = Purpose(tenantID: acme, key: key, version: 3, definition: definition, createdAt: .distantPast)
        }
        // A campaign whose validity ended in June.
        var campaign = DemoSeeder.acmePurposes(start: "2026-01-01", end: "2026-06-30")[0].1
        campaign.name = "Summer campaign"
        s.purposes[acme, default: [:]]["summer-campaign"] = Purpose(tenantID: acme, key: "summer-campaign", version: 3, definition: campaign, createdAt: .distantPast)
        for (id, employee) in [(a1, "A0001"), (a2, "A0002"), (a3, "A0003")] {
            s.agents[id] = Agent(id: id, employeeID: employee, name: employee, site: "Osaka", active: true)
            s.agentIDsByEmployeeID[employee] = id
        }
        let year = (date("2026-01-01T00:00:00+09:00"), date("2027-01-01T00:00:00+09:00"))
        s.assignments[acme] = [
            a1: Assignment(tenantID: acme, agentID: a1, purposes: ["order-support", "billing-inquiry", "survey-outreach", "summer-campaign"], validFrom: year.0, validUntil: year.1),
            a2: Assignment(tenantID: acme, agentID: a2, purposes: ["order-support"], validFrom: year.0, validUntil: year.1),
        ]
        s.integrations[desktop] = Integration(id: desktop, name: "desktop", trustMode: .verified, tenantIDs: [acme, kobe])
        s.integrations[cti] = Integration(id: cti, name: "cti", trustMode: .asserted, tenantIDs: [acme])
        return s
    }()

    static func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    /// A weekday afternoon in Tokyo (Wednesday 2026-11-25 14:00 JST).
    static let weekdayAfternoon = date("2026-11-25T14:00:00+09:00")
}

@Suite("Scope enforcer")
struct ScopeEnforcerTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var change: @Sendable (inout AccessRequest) -> Void = { _ in }
        var at: Date = World.weekdayAfternoon
        var expected: ReasonCode
        var testDescription: String { name }
    }

    static func lookup(_ change: @escaping @Sendable (inout AccessRequest) -> Void = { _ in }) -> @Sendable (inout AccessRequest) -> Void { change }

    static let cases: [Case] = [
        Case(name: "a verified agent looks up by phone under order-support", expected: .allowed),
        Case(name: "unknown integration", change: { $0.integrationID = UUID() }, expected: .unauthenticated),
        Case(name: "verified tool without a valid token", change: { $0.agentVerified = false }, expected: .agentUnverified),
        Case(name: "asserted tool naming the agent", change: { $0.integrationID = World.cti; $0.agentVerified = false }, expected: .allowed),
        Case(name: "unknown tenant", change: { $0.tenantCode = "nobody" }, expected: .notFound),
        Case(name: "a tenant the tool does not serve", change: { $0.integrationID = World.cti; $0.tenantCode = "kobe-insurance" }, expected: .notFound),
        Case(name: "unknown dataset", change: { $0.dataset = "claims" }, expected: .notFound),
        Case(name: "no purpose", change: { $0.purposeKey = nil }, expected: .purposeUnknown),
        Case(name: "unknown purpose", change: { $0.purposeKey = "marketing" }, expected: .purposeUnknown),
        Case(name: "agent with no assignment", change: { $0.agent = "A0003" }, expected: .notAssigned),
        Case(name: "agent not assigned to this purpose", change: { $0.agent = "A0002"; $0.purposeKey = "billing-inquiry" }, expected: .notAssigned),
        Case(name: "unknown agent", change: { $0.agent = "Z9999" }, expected: .notAssigned),
        Case(name: "after the purpose's validity", at: World.date("2027-01-02T10:00:00+09:00"), expected: .notAssigned),
        Case(name: "a purpose past its validity window", change: { $0.purposeKey = "summer-campaign" }, expected: .purposeInactive),
        Case(name: "the same purpose inside its window", change: { $0.purposeKey = "summer-campaign" },
             at: World.date("2026-06-30T23:59:00+09:00"), expected: .allowed),
        Case(name: "billing inquiry on a weekday at 14:00", change: { $0.purposeKey = "billing-inquiry" }, expected: .allowed),
        Case(name: "billing inquiry at 18:00 (end exclusive)", change: { $0.purposeKey = "billing-inquiry" },
             at: World.date("2026-11-25T18:00:00+09:00"), expected: .outsideHours),
        Case(name: "billing inquiry on Saturday", change: { $0.purposeKey = "billing-inquiry" },
             at: World.date("2026-11-28T10:00:00+09:00"), expected: .outsideHours),
        Case(name: "billing inquiry at 08:30 JST is 23:30 UTC the day before", change: { $0.purposeKey = "billing-inquiry" },
             at: World.date("2026-11-24T23:30:00Z"), expected: .outsideHours),
        Case(name: "order support at 03:00 (a 24-hour center)", at: World.date("2026-11-28T03:00:00+09:00"), expected: .allowed),
        Case(name: "no case reference", change: { $0.caseRef = nil }, expected: .caseRequired),
        Case(name: "update under billing inquiry", change: { $0.purposeKey = "billing-inquiry"; $0.operation = .update; $0.updating = ["address"]; $0.caseBound = true },
             expected: .operationNotAllowed),
        Case(name: "survey outreach looking up by phone", change: { $0.purposeKey = "survey-outreach" }, expected: .lookupKeyNotAllowed),
        Case(name: "survey outreach by customer_no", change: { $0.purposeKey = "survey-outreach"; $0.lookupField = "customer_no" }, expected: .allowed),
        Case(name: "lookup by a field that is not searchable", change: { $0.lookupField = "name" }, expected: .lookupKeyNotAllowed),
        Case(name: "asking for card_last4 under order support", change: { $0.fields = ["name", "card_last4"] }, expected: .fieldNotAllowed),
        Case(name: "asking for my_number", change: { $0.fields = ["my_number"] }, expected: .fieldNotAllowed),
        Case(name: "updating a field that is not updatable", change: { $0.operation = .update; $0.updating = ["name"]; $0.caseBound = true }, expected: .fieldNotAllowed),
        Case(name: "reading a record the case did not look up", change: { $0.operation = .read; $0.caseBound = false }, expected: .notCaseBound),
        Case(name: "reading a case-bound record", change: { $0.operation = .read; $0.caseBound = true }, expected: .allowed),
        Case(name: "reading a record nobody checked the binding of (fails closed)", change: { $0.operation = .read }, expected: .notCaseBound),
        Case(name: "the 61st lookup in a minute", change: { $0.lookupsLastMinute = 60 }, expected: .volumeExceeded),
        Case(name: "the 601st record in an hour", change: { $0.operation = .read; $0.caseBound = true; $0.recordsLastHour = 600 }, expected: .volumeExceeded),
    ]

    @Test("each rule, in order, with its reason code", arguments: cases)
    func decide(_ testCase: Case) {
        var request = AccessRequest(tenantCode: "acme-retail", dataset: "customers", operation: .lookup, integrationID: World.desktop, agent: "A0001", agentVerified: true)
        request.purposeKey = "order-support"
        request.caseRef = "CALL-1"
        request.lookupField = "phone"
        testCase.change(&request)
        let decision = ScopeEnforcer.decide(request, snapshot: World.snapshot, now: testCase.at)
        #expect(decision.reason == testCase.expected)
        if decision.reason.rawValue != "unauthenticated" && decision.reason.rawValue != "agent_unverified" && decision.reason.rawValue != "not_found" && decision.reason.rawValue != "purpose_unknown" {
            #expect(decision.purposeVersion == 3, "the decision names the purpose version it was made under")
        }
    }

    @Test(
        "a found record leaves only when active and not expired; any other is withheld, with its reason",
        arguments: [
            ("active", false, "allowed"), ("active", true, "record_expired"), ("suspended", false, "subject_suspended"),
            ("suspended", true, "subject_suspended"), ("deleted", false, "not_found"), ("", false, "not_found"),
        ]
    )
    func release(status: String, expired: Bool, expected: String) {
        #expect(ScopeEnforcer.release(status: status, expired: expired).rawValue == expected)
    }

    @Test("searching by an individual number needs its legal basis, as showing one does, even under a purpose stored before the rule")
    func individualNumberAsLookupKey() throws {
        var snapshot = World.snapshot
        var dataset = try #require(snapshot.datasets[World.acme]?["customers"])
        let index = try #require(dataset.schema.fields.firstIndex { $0.category == .individualNumber })
        dataset.schema.fields[index].lookup = .exact
        snapshot.datasets[World.acme]?["customers"] = dataset
        var purpose = try #require(snapshot.purposes[World.acme]?["order-support"])
        purpose.definition.datasets["customers"]?.lookupKeys.append(dataset.schema.fields[index].name)
        snapshot.purposes[World.acme]?["order-support"] = purpose
        #expect(purpose.definition.validate(against: ["customers": dataset.schema]).contains {
            $0.code == "individual_number_basis_required" && $0.pointer == "datasets.customers.lookup_keys.\(dataset.schema.fields[index].name)"
        })

        var request = AccessRequest(tenantCode: "acme-retail", dataset: "customers", operation: .lookup, integrationID: World.desktop, agent: "A0001", agentVerified: true)
        request.purposeKey = "order-support"
        request.caseRef = "CALL-3"
        request.lookupField = dataset.schema.fields[index].name
        #expect(ScopeEnforcer.decide(request, snapshot: snapshot, now: World.weekdayAfternoon).reason == .specialCategoryDenied)
        request.lookupField = "phone"
        #expect(ScopeEnforcer.decide(request, snapshot: snapshot, now: World.weekdayAfternoon).reason == .allowed)
    }

    @Test("a registry changed under a purpose fails closed: hours that do not read or end before they start, a malformed date, a transform that no longer suits its field's type, a field the dataset lost")
    func changedRegistryFailsClosed() throws {
        var request = AccessRequest(tenantCode: "acme-retail", dataset: "customers", operation: .lookup, integrationID: World.desktop, agent: "A0001", agentVerified: true)
        request.purposeKey = "billing-inquiry"
        request.caseRef = "CALL-4"
        request.lookupField = "customer_no"
        func decide(_ change: (inout RegistrySnapshot) throws -> Void) rethrows -> Decision {
            var snapshot = World.snapshot
            try change(&snapshot)
            return ScopeEnforcer.decide(request, snapshot: snapshot, now: World.weekdayAfternoon)
        }
        // Hours that end before they start (this crashed), or do not read.
        for (start, end) in [("18:00", "09:00"), ("9:00", "18:00"), ("09:00", "18:0")] {
            let decision = decide { $0.purposes[World.acme]?["billing-inquiry"]?.definition.businessHours = .init(days: ["wed"], start: start, end: end) }
            #expect(decision.reason == .outsideHours, "\(start)-\(end)")
        }
        // A date that is no date closes the window (as text, "2026-1-1" sorted after "2026-11-25").
        #expect(decide { $0.purposes[World.acme]?["billing-inquiry"]?.definition.validUntil = "2026-1-1" }.reason == .purposeInactive)

        // E-mail masked, then the field retyped as a date: its mask no longer fits, it is withheld.
        let retyped = try decide { snapshot in
            var dataset = try #require(snapshot.datasets[World.acme]?["customers"])
            let index = try #require(dataset.schema.fields.firstIndex { $0.name == "email" })
            dataset.schema.fields[index].type = .date
            snapshot.datasets[World.acme]?["customers"] = dataset
        }
        #expect(retyped.isAllowed)
        #expect(retyped.fields.first { $0.name == "email" }?.transform == .redact)
        #expect(retyped.fields.first { $0.name == "name" }?.transform == .plain)

        // A field the purpose lists but the dataset dropped: the others are still shown.
        let dropped = try decide { snapshot in
            var dataset = try #require(snapshot.datasets[World.acme]?["customers"])
            dataset.schema.fields.removeAll { $0.name == "card_last4" }
            snapshot.datasets[World.acme]?["customers"] = dataset
        }
        #expect(dropped.isAllowed)
        #expect(!dropped.fields.contains { $0.name == "card_last4" })
    }

    @Test("records_per_hour's Retry-After counts to the next UTC hour, where its counter turns, in any zone")
    func retryAfterTheCountersHour() throws {
        var snapshot = World.snapshot
        snapshot.tenants[World.acme]?.timeZone = "Asia/Kolkata"
        snapshot.purposes[World.acme]?["billing-inquiry"]?.definition.limits = .init(recordsPerHour: 10)
        snapshot.purposes[World.acme]?["billing-inquiry"]?.definition.businessHours = nil
        var request = AccessRequest(tenantCode: "acme-retail", dataset: "customers", operation: .lookup, integrationID: World.desktop, agent: "A0001", agentVerified: true)
        request.purposeKey = "billing-inquiry"
        request.caseRef = "CALL-5"
        request.lookupField = "customer_no"
        request.recordsLastHour = 10
        // 10:10 UTC is 15:40 in Kolkata: the UTC hour turns in 50 minutes.
        let decision = ScopeEnforcer.decide(request, snapshot: snapshot, now: World.date("2026-11-25T10:10:00Z"))
        #expect(decision.reason == .volumeExceeded)
        #expect(decision.retryAfter == 50 * 60)
    }

    @Test("an allowed decision lists exactly the purpose's fields with their transforms, and the result cap")
    func allowedFields() {
        var request = AccessRequest(tenantCode: "acme-retail", dataset: "customers", operation: .lookup, integrationID: World.desktop, agent: "A0001", agentVerified: true)
        request.purposeKey = "billing-inquiry"
        request.caseRef = "CALL-2"
        request.lookupField = "customer_no"
        let decision = ScopeEnforcer.decide(request, snapshot: World.snapshot, now: World.weekdayAfternoon)
        #expect(decision.isAllowed)
        #expect(Dictionary(uniqueKeysWithValues: decision.fields.map { ($0.name, $0.transform) }) == [
            "name": .plain, "name_kana": .plain, "phone": .plain, "address": .plain, "postal_code": .plain,
            "email": .mask, "birth_date": .yearOnly, "card_last4": .last4,
        ])
        #expect(!decision.fields.contains { ["my_number", "health_note"].contains($0.name) })
        #expect(decision.maxResults == 5)
        request.fields = ["name", "my_number", "health_note"]
        let denied = ScopeEnforcer.decide(request, snapshot: World.snapshot, now: World.weekdayAfternoon)
        #expect(denied.reason == .fieldNotAllowed)
        #expect(denied.deniedFields == ["health_note", "my_number"])
    }
}

@Suite("Local time of a tenant's zone")
struct LocalTimeTests {
    /// Shifts and purpose hours are judged in the tenant's zone: the date, weekday, minute and
    /// second must be the calendar's, across daylight-saving changes and before 1970 too.
    @Test func agreesWithTheCalendar() throws {
        let zones = ["Asia/Tokyo", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"]
        let starts: [TimeInterval] = [1_772_960_000, 1_793_520_000, 1_790_000_000, 1_711_846_800, -86_400 * 400 - 1, 0]
        for identifier in zones {
            let zone = try #require(TimeZone(identifier: identifier))
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            for start in starts {
                for step in stride(from: 0.0, to: 86_400 * 2, by: 1_777.7) {
                    let now = Date(timeIntervalSince1970: start + step)
                    let parts = calendar.dateComponents([.year, .month, .day, .weekday, .hour, .minute, .second], from: now)
                    let local = LocalTime(now, timeZone: zone)
                    let date = String(format: "%d-%02d-%02d", parts.year!, parts.month!, parts.day!)
                    #expect(local.date == date, "\(identifier) \(now)")
                    #expect(local.weekday == ["sun", "mon", "tue", "wed", "thu", "fri", "sat"][parts.weekday! - 1], "\(identifier) \(now)")
                    #expect(local.minutes == parts.hour! * 60 + parts.minute! && local.second == parts.second!, "\(identifier) \(now)")
                }
            }
        }
    }
}
