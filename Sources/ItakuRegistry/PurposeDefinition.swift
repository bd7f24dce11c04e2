import ItakuCore
import ItakuPostgres

/// What a client allows under one purpose of use (DESIGN.md §2). Every change is a new version.
public struct PurposeDefinition: Sendable, Codable, Equatable {
    public enum Operation: String, Sendable, Codable, CaseIterable { case lookup, read, update }

    public enum Transform: String, Sendable, Codable, CaseIterable {
        case plain, mask, last4
        case yearOnly = "year_only"
        case prefectureOnly = "prefecture_only"
        case token, redact
    }

    public enum LegalBasis: String, Sendable, Codable, CaseIterable {
        case contract
        case consent
        case legalObligation = "legal_obligation"
        case individualNumberAffairs = "individual_number_affairs"
    }

    /// What the purpose allows on one dataset.
    public struct DatasetRules: Sendable, Codable, Equatable {
        public var operations: [Operation]
        /// Fields that may be used to look a record up (each must have a lookup kind).
        public var lookupKeys: [String]
        /// Visible fields and the transform each leaves the gateway through.
        public var fields: [String: Transform]
        public var updatable: [String]
        public var maxResults: Int

        enum CodingKeys: String, CodingKey {
            case operations
            case lookupKeys = "lookup_keys"
            case fields, updatable
            case maxResults = "max_results"
        }

        public init(operations: [Operation], lookupKeys: [String], fields: [String: Transform], updatable: [String] = [], maxResults: Int = 5) {
            self.operations = operations
            self.lookupKeys = lookupKeys
            self.fields = fields
            self.updatable = updatable
            self.maxResults = maxResults
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            operations = try container.decode([Operation].self, forKey: .operations)
            lookupKeys = try container.decodeIfPresent([String].self, forKey: .lookupKeys) ?? []
            fields = try container.decode([String: Transform].self, forKey: .fields)
            updatable = try container.decodeIfPresent([String].self, forKey: .updatable) ?? []
            maxResults = try container.decodeIfPresent(Int.self, forKey: .maxResults) ?? 5
        }
    }

    /// Weekly opening hours in the tenant's time zone; nil means around the clock.
    public struct BusinessHours: Sendable, Codable, Equatable {
        /// `mon` … `sun`.
        public var days: [String]
        /// `HH:MM`, start inclusive, end exclusive.
        public var start: String
        public var end: String
        public init(days: [String], start: String, end: String) {
            self.days = days
            self.start = start
            self.end = end
        }
    }

    public struct Limits: Sendable, Codable, Equatable {
        public var recordsPerHour: Int?
        public var lookupsPerMinute: Int?
        enum CodingKeys: String, CodingKey {
            case recordsPerHour = "records_per_hour"
            case lookupsPerMinute = "lookups_per_minute"
        }
        public init(recordsPerHour: Int? = nil, lookupsPerMinute: Int? = nil) {
            self.recordsPerHour = recordsPerHour
            self.lookupsPerMinute = lookupsPerMinute
        }
    }

    public var name: String
    public var legalBasis: LegalBasis
    public var datasets: [String: DatasetRules]
    /// `YYYY-MM-DD`, inclusive, in the tenant's time zone.
    public var validFrom: String?
    public var validUntil: String?
    public var businessHours: BusinessHours?
    public var caseRequired: Bool
    public var limits: Limits?

    enum CodingKeys: String, CodingKey {
        case name
        case legalBasis = "legal_basis"
        case datasets
        case validFrom = "valid_from"
        case validUntil = "valid_until"
        case businessHours = "business_hours"
        case caseRequired = "case_required"
        case limits
    }

    public init(
        name: String, legalBasis: LegalBasis, datasets: [String: DatasetRules], validFrom: String? = nil,
        validUntil: String? = nil, businessHours: BusinessHours? = nil, caseRequired: Bool = true, limits: Limits? = nil
    ) {
        self.name = name
        self.legalBasis = legalBasis
        self.datasets = datasets
        self.validFrom = validFrom
        self.validUntil = validUntil
        self.businessHours = businessHours
        self.caseRequired = caseRequired
        self.limits = limits
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        legalBasis = try container.decode(LegalBasis.self, forKey: .legalBasis)
        datasets = try container.decode([String: DatasetRules].self, forKey: .datasets)
        validFrom = try container.decodeIfPresent(String.self, forKey: .validFrom)
        validUntil = try container.decodeIfPresent(String.self, forKey: .validUntil)
        businessHours = try container.decodeIfPresent(BusinessHours.self, forKey: .businessHours)
        caseRequired = try container.decodeIfPresent(Bool.self, forKey: .caseRequired) ?? true
        limits = try container.decodeIfPresent(Limits.self, forKey: .limits)
    }

    // MARK: Validation against the datasets' schemas

    /// Every reason the definition cannot be accepted, each with its own code and path.
    public func validate(against schemas: [String: DatasetSchema]) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        switch PrintableText.nameProblem(name) {
        case nil: break
        case .empty: issues.append(.init(code: "name_required", pointer: "name"))
        case let problem?: issues.append(.init(code: problem.rawValue, pointer: "name"))
        }
        if datasets.isEmpty { issues.append(.init(code: "datasets_required", pointer: "datasets")) }
        for date in [("valid_from", validFrom), ("valid_until", validUntil)] {
            if let value = date.1, !Self.isDate(value) { issues.append(.init(code: "invalid_date", pointer: date.0)) }
        }
        if let from = validFrom, let until = validUntil, Self.isDate(from), Self.isDate(until), from > until {
            issues.append(.init(code: "invalid_validity", pointer: "valid_until"))
        }
        if let hours = businessHours {
            let days: Set<String> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            if hours.days.isEmpty || !hours.days.allSatisfy(days.contains) {
                issues.append(.init(code: "invalid_business_days", pointer: "business_hours.days"))
            }
            if Set(hours.days).count != hours.days.count { issues.append(.init(code: "duplicate_value", pointer: "business_hours.days")) }
            if !(Self.minutes(hours.start).flatMap { start in Self.minutes(hours.end).map { start < $0 } } ?? false) {
                issues.append(.init(code: "invalid_business_hours", pointer: "business_hours"))
            }
        }
        if let limits {
            // Bounded so every limit fits the usage counters' integer columns.
            if let value = limits.recordsPerHour, !(1...1_000_000).contains(value) {
                issues.append(.init(code: "invalid_limit", pointer: "limits.records_per_hour"))
            }
            if let value = limits.lookupsPerMinute, !(1...1_000_000).contains(value) {
                issues.append(.init(code: "invalid_limit", pointer: "limits.lookups_per_minute"))
            }
        }
        return issues + datasetIssues(schemas)
    }

    private func datasetIssues(_ schemas: [String: DatasetSchema]) -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        for (datasetName, rules) in datasets.sorted(by: { $0.key < $1.key }) {
            let base = "datasets.\(datasetName)"
            guard let schema = schemas[datasetName] else {
                issues.append(.init(code: "unknown_dataset", pointer: base))
                continue
            }
            if rules.operations.isEmpty { issues.append(.init(code: "operations_required", pointer: base + ".operations")) }
            // Each list names a thing once: a name repeated adds nothing but length.
            if Set(rules.operations).count != rules.operations.count { issues.append(.init(code: "duplicate_value", pointer: base + ".operations")) }
            if Set(rules.lookupKeys).count != rules.lookupKeys.count { issues.append(.init(code: "duplicate_value", pointer: base + ".lookup_keys")) }
            if Set(rules.updatable).count != rules.updatable.count { issues.append(.init(code: "duplicate_value", pointer: base + ".updatable")) }
            if !(1...100).contains(rules.maxResults) { issues.append(.init(code: "invalid_max_results", pointer: base + ".max_results")) }
            for key in rules.lookupKeys {
                guard let field = schema.field(key) else {
                    issues.append(.init(code: "unknown_field", pointer: base + ".lookup_keys.\(key)"))
                    continue
                }
                if field.lookup == nil { issues.append(.init(code: "lookup_key_not_searchable", pointer: base + ".lookup_keys.\(key)")) }
                if field.category == .individualNumber && legalBasis != .individualNumberAffairs {
                    issues.append(.init(code: "individual_number_basis_required", pointer: base + ".lookup_keys.\(key)"))
                }
            }
            if rules.operations.contains(.lookup) && rules.lookupKeys.isEmpty {
                issues.append(.init(code: "lookup_keys_required", pointer: base + ".lookup_keys"))
            }
            for (fieldName, transform) in rules.fields.sorted(by: { $0.key < $1.key }) {
                let pointer = base + ".fields.\(fieldName)"
                guard let field = schema.field(fieldName) else {
                    issues.append(.init(code: "unknown_field", pointer: pointer))
                    continue
                }
                if !Self.transform(transform, fits: field.type) { issues.append(.init(code: "transform_mismatch", pointer: pointer)) }
                if field.category == .individualNumber && legalBasis != .individualNumberAffairs {
                    issues.append(.init(code: "individual_number_basis_required", pointer: pointer))
                }
            }
            for fieldName in rules.updatable {
                let pointer = base + ".updatable.\(fieldName)"
                guard schema.field(fieldName) != nil else {
                    issues.append(.init(code: "unknown_field", pointer: pointer))
                    continue
                }
                if rules.fields[fieldName] == nil { issues.append(.init(code: "updatable_not_visible", pointer: pointer)) }
            }
            if !rules.updatable.isEmpty && !rules.operations.contains(.update) {
                issues.append(.init(code: "update_not_allowed", pointer: base + ".updatable"))
            }
        }
        return issues
    }

    /// Which transforms make sense for which field types.
    public static func transform(_ transform: Transform, fits type: DatasetSchema.FieldType) -> Bool {
        switch transform {
        case .plain, .token, .redact: true
        case .mask: type != .date && type != .number
        case .last4: type == .phone || type == .string || type == .number
        case .yearOnly: type == .date
        case .prefectureOnly: type == .address
        }
    }

    public static func isCalendarDate(_ text: String) -> Bool { isDate(text) }

    /// `YYYY-MM-DD`, a real day after 1900: ASCII digits in their places, nothing else (no
    /// sign, no spaces; "-2027-01-01" or "2026-+1-01" are not dates).
    static func isDate(_ text: String) -> Bool {
        guard let digits = digits(of: text, length: 10, separatorsAt: [4, 7], separator: UInt8(ascii: "-")), digits.count == 3 else { return false }
        let (y, m, d) = (digits[0], digits[1], digits[2])
        return y > 1900 && PostgresDate(year: y, month: m, day: d) != nil
    }

    /// Minutes since midnight of `HH:MM` (ASCII digits only).
    public static func minutes(_ text: String) -> Int? {
        guard let digits = digits(of: text, length: 5, separatorsAt: [2], separator: UInt8(ascii: ":")), digits.count == 2 else { return nil }
        let (h, m) = (digits[0], digits[1])
        guard (0...24).contains(h), (0...59).contains(m), h * 60 + m <= 24 * 60 else { return nil }
        return h * 60 + m
    }

    /// The numbers between `separator`s standing exactly at `positions` (byte offsets) of a text
    /// of `length` bytes, ASCII digits otherwise; nil for anything else.
    private static func digits(of text: String, length: Int, separatorsAt positions: [Int], separator: UInt8) -> [Int]? {
        let bytes = Array(text.utf8)
        guard bytes.count == length else { return nil }
        var numbers: [Int] = [], current = 0
        for (offset, byte) in bytes.enumerated() {
            if positions.contains(offset) {
                guard byte == separator else { return nil }
                numbers.append(current)
                current = 0
            } else {
                guard byte >= 0x30 && byte <= 0x39 else { return nil }
                current = current * 10 + Int(byte - 0x30)
            }
        }
        return numbers + [current]
    }
}
