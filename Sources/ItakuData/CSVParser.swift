/// An incremental RFC 4180 CSV parser: feed it bytes in chunks of any size, take complete
/// rows as they appear. Handles quoted fields with commas, doubled quotes and line breaks,
/// CRLF or LF line ends, and a UTF-8 byte-order mark. Each row carries the line it starts on.
public struct CSVParser: Sendable {
    public struct Row: Sendable, Equatable {
        public var line: Int
        public var fields: [String]
    }

    public enum ParseError: Error, Equatable {
        /// A quote closes and is followed by something other than a separator or line end.
        case malformedQuote(line: Int)
        /// The input ended inside a quoted field.
        case unterminatedQuote(line: Int)
        /// Bytes that are not UTF-8.
        case invalidUTF8(line: Int)
    }

    private var field: [UInt8] = []
    private var fields: [String] = []
    private var inQuotes = false
    private var quoteClosed = false
    private var sawAnything = false
    private var atStart = true
    private var line = 1
    private var rowLine = 1
    private var pendingCR = false

    public init() {}

    /// Parses `bytes`, returning the rows completed by them.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [Row] {
        var rows: [Row] = []
        for byte in bytes {
            if atStart {
                atStart = false
                if byte == 0xEF { field.append(byte); continue }  // maybe a BOM; checked below
            }
            if field.count <= 2 && fields.isEmpty && !inQuotes && field.first == 0xEF {
                field.append(byte)
                if field == [0xEF, 0xBB, 0xBF] { field.removeAll(); continue }
                if field.count < 3 && (field == [0xEF, 0xBB]) { continue }
            }
            if pendingCR {
                pendingCR = false
                if byte == 0x0A { continue }
            }
            if inQuotes {
                if byte == 0x22 {
                    inQuotes = false
                    quoteClosed = true
                } else {
                    if byte == 0x0A { line += 1 }
                    field.append(byte)
                }
                continue
            }
            switch byte {
            case 0x22 where quoteClosed:
                // A doubled quote inside a quoted field.
                field.append(0x22)
                inQuotes = true
                quoteClosed = false
            case 0x22 where field.isEmpty:
                inQuotes = true
                sawAnything = true
            case 0x2C:
                try endField()
            case 0x0A, 0x0D:
                if byte == 0x0D { pendingCR = true }
                if sawAnything || !fields.isEmpty || !field.isEmpty {
                    try endField()
                    rows.append(Row(line: rowLine, fields: fields))
                    fields.removeAll(keepingCapacity: true)
                }
                sawAnything = false
                line += 1
                rowLine = line
            default:
                if quoteClosed { throw ParseError.malformedQuote(line: line) }
                field.append(byte)
                sawAnything = true
            }
        }
        return rows
    }

    /// Ends the input; returns the last row if it had no line end.
    public mutating func finish() throws -> [Row] {
        if inQuotes { throw ParseError.unterminatedQuote(line: rowLine) }
        guard sawAnything || !fields.isEmpty || !field.isEmpty else { return [] }
        try endField()
        defer { fields.removeAll() }
        sawAnything = false
        return [Row(line: rowLine, fields: fields)]
    }

    private mutating func endField() throws {
        guard let text = String(validating: field, as: UTF8.self) else { throw ParseError.invalidUTF8(line: line) }
        fields.append(text)
        field.removeAll(keepingCapacity: true)
        quoteClosed = false
        sawAnything = true
    }
}
