/// The fields of a dataset: each with a type, a category and, if searchable, a lookup kind.
public struct DatasetSchema: Sendable, Codable, Equatable {
    public enum FieldType: String, Sendable, Codable, CaseIterable {
        case string, date, phone, email, address, number
    }

    public enum Category: String, Sendable, Codable, CaseIterable {
        case basic, contact, financial, sensitive
        case individualNumber = "individual_number"
    }

    public enum LookupKind: String, Sendable, Codable, CaseIterable {
        case phone, email, exact
    }

    public struct Field: Sendable, Codable, Equatable {
        public var name: String
        public var type: FieldType
        public var category: Category
        public var lookup: LookupKind?
        public var required: Bool?

        public init(name: String, type: FieldType, category: Category, lookup: LookupKind? = nil, required: Bool? = nil) {
            self.name = name
            self.type = type
            self.category = category
            self.lookup = lookup
            self.required = required
        }
    }

    public var fields: [Field]

    /// The field holding the client's own record key (e.g. `customer_no`); unique per dataset.
    public var keyField: String
    /// Records expire this many days after import (retention); nil keeps them until deleted.
    public var retentionDays: Int?

    public init(fields: [Field], keyField: String, retentionDays: Int? = nil) {
        self.fields = fields
        self.keyField = keyField
        self.retentionDays = retentionDays
    }

    enum CodingKeys: String, CodingKey {
        case fields
        case keyField = "key_field"
        case retentionDays = "retention_days"
    }

    public func field(_ name: String) -> Field? { fields.first { $0.name == name } }

    /// Retention of one day to a hundred years: every expiry it gives is a time PostgreSQL holds.
    public static let retentionRange = 1...36_500

    /// Problems with the schema itself, each with a stable code and the path of the field.
    public func validate() -> [ValidationIssue] {
        var issues: [ValidationIssue] = []
        if fields.isEmpty { issues.append(.init(code: "fields_required", pointer: "fields")) }
        // Every decision and every answer looks the purpose's fields up in the schema, and each
        // access entry names them: a schema of tens of thousands of fields would make each
        // request do millions of comparisons.
        if fields.count > Self.maxFields {
            issues.append(.init(code: "too_many_fields", pointer: "fields"))
            return issues
        }
        var seen: Set<String> = []
        for (index, field) in fields.enumerated() {
            let path = "fields[\(index)]"
            if !Self.isFieldName(field.name) { issues.append(.init(code: "invalid_field_name", pointer: path + ".name")) }
            if !seen.insert(field.name).inserted { issues.append(.init(code: "duplicate_field", pointer: path + ".name")) }
            if let lookup = field.lookup {
                let fits = switch lookup {
                case .phone: field.type == .phone
                case .email: field.type == .email
                case .exact: field.type == .string || field.type == .number
                }
                if !fits { issues.append(.init(code: "lookup_kind_mismatch", pointer: path + ".lookup")) }
            }
        }
        if field(keyField) == nil { issues.append(.init(code: "unknown_key_field", pointer: "key_field")) }
        if let retentionDays, !Self.retentionRange.contains(retentionDays) {
            issues.append(.init(code: "invalid_retention", pointer: "retention_days"))
        }
        return issues
    }

    /// Fields a dataset may have (a CSV line holds at most 1,000 values).
    public static let maxFields = 500

    /// What the lookup index is made of: each lookup field's name, kind and category. Keys
    /// written under one signature do not serve another.
    public var lookupSignature: [String] {
        fields.compactMap { field in field.lookup.map { "\(field.name):\($0.rawValue):\(field.category.rawValue)" } }.sorted()
    }

    public static func isFieldName(_ name: String) -> Bool {
        (1...63).contains(name.utf8.count)
            && name.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
            && name.utf8.first.map { $0 >= 0x61 && $0 <= 0x7A } == true
    }
}

/// One thing wrong with a request body: a stable code and where (`fields[2].lookup`).
public struct ValidationIssue: Sendable, Equatable, Codable {
    public var code: String
    public var pointer: String
    public init(code: String, pointer: String) {
        self.code = code
        self.pointer = pointer
    }
}
