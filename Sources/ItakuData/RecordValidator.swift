import ItakuRegistry

/// Checks one incoming record against its dataset's schema. Issues name the field and a stable
/// code, never the value.
public struct RecordValidator: Sendable {
    public let schema: DatasetSchema
    private let fieldsByName: [String: DatasetSchema.Field]

    public init(schema: DatasetSchema) {
        self.schema = schema
        self.fieldsByName = Dictionary(uniqueKeysWithValues: schema.fields.map { ($0.name, $0) })
    }

    /// Columns that are not fields of the dataset.
    public func unknownColumns(_ names: [String]) -> [String] {
        names.filter { fieldsByName[$0] == nil }
    }

    /// Issues of one record, as (field, code). Empty values count as absent.
    public func issues(_ record: [String: String]) -> [(field: String, code: String)] {
        var issues: [(String, String)] = []
        for field in schema.fields {
            let value = record[field.name] ?? ""
            if value.isEmpty {
                if field.name == schema.keyField || field.required == true { issues.append((field.name, "required")) }
                continue
            }
            if field.name == schema.keyField && value.utf8.count > Self.maxKeyBytes {
                issues.append((field.name, "too_long"))
            } else if let code = Self.problem(value, field) {
                issues.append((field.name, code))
            } else if field.name == schema.keyField && !Self.isCleanKey(value) {
                issues.append((field.name, "invalid_key"))
            }
        }
        return issues
    }

    /// A record key's length at most: the key is unique per dataset, and PostgreSQL's index
    /// holds a value of at most about 2,700 bytes (a longer one fails the whole import).
    public static let maxKeyBytes = 256

    /// Whether a record key has no white space at either end and no tab or line break (CR, LF,
    /// NEL, U+2028, U+2029…): a key is matched exactly (a later import's duplicate check, a
    /// data subject's request naming it), so `C001 ` would be a second record beside `C001`,
    /// and a request for `C001` would not find it.
    public static func isCleanKey(_ key: String) -> Bool {
        guard let first = key.first, let last = key.last, !first.isWhitespace, !last.isWhitespace else { return false }
        return !key.contains { $0.isNewline || $0 == "\t" }
    }

    /// The code of what is wrong with `value` for `field`, or nil when it is fine.
    public static func problem(_ value: String, _ field: DatasetSchema.Field) -> String? {
        if value.utf8.count > 4096 { return "too_long" }
        // NUL cannot be stored (jsonb refuses it); other C0 controls but tab and line breaks
        // have no place in a field either.
        if value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" && $0 != "\n" && $0 != "\r" || $0.value == 0x7F }) {
            return "invalid_characters"
        }
        if field.category == .individualNumber && !Normalization.isIndividualNumber(value) { return "invalid_individual_number" }
        switch field.type {
        case .string, .address:
            return nil
        case .date:
            let parts = value.split(separator: "-")
            guard parts.count == 3, let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]),
                parts[0].count == 4, (1...12).contains(m), (1...Self.days(month: m, year: y)).contains(d)
            else { return "invalid_date" }
            return nil
        case .phone:
            return Normalization.phone(value) == nil ? "invalid_phone" : nil
        case .email:
            return Normalization.email(value) == nil ? "invalid_email" : nil
        case .number:
            return Double(Normalization.foldWidth(value)) == nil ? "invalid_number" : nil
        }
    }

    static func days(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}
