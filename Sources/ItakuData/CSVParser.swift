/// An incremental RFC 4180 CSV parser: feed it bytes in chunks of any size, take complete
/// rows as they appear. Handles quoted fields with commas, doubled quotes and line breaks,
/// CRLF or LF line ends, and a UTF-8 byte-order mark at the start of the input. Each row
/// carries the line it starts on. A row holds at most `maxRowBytes` bytes and `maxFields`
/// fields, so memory stays bounded whatever the input (a body of commas without a line end).
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
        /// A row longer than `maxRowBytes`, or with more than `maxFields` fields.
        case rowTooLarge(line: Int)
    }

    /// A row's bytes at most: far above any record (a value holds at most 4,096 bytes).
    public static let maxRowBytes = 1 << 20
    /// A row's fields at most.
    public static let maxFields = 1_000
    static let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]

    private var field: [UInt8] = []
    private var fields: [String] = []
    private var inQuotes = false
    private var quoteClosed = false
    private var sawAnything = false
    private var atStart = true
    private var line = 1
    private var rowLine = 1
    private var pendingCR = false
    /// The first bytes of the input while they may still be a byte-order mark.
    private var opening: [UInt8] = []
    /// The bytes of the current row so far.
    private var rowBytes = 0

    public init() {}

    /// Parses `bytes`, returning the rows completed by them.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [Row] {
        var rows: [Row] = []
        for byte in bytes {
            if atStart {
                // Only the input's first bytes can be a byte-order mark; anything else that
                // starts like one (U+F000 to U+FFFF: full-width digits, half-width kana) is text.
                opening.append(byte)
                if opening == Self.byteOrderMark {
                    atStart = false
                    opening = []
                } else if !Self.byteOrderMark.starts(with: opening) {
                    atStart = false
                    let replay = opening
                    opening = []
                    for byte in replay { try take(byte, into: &rows) }
                }
                continue
            }
            try take(byte, into: &rows)
        }
        return rows
    }

    private mutating func take(_ byte: UInt8, into rows: inout [Row]) throws {
        rowBytes += 1
        if rowBytes > Self.maxRowBytes { throw ParseError.rowTooLarge(line: rowLine) }
        if pendingCR {
            pendingCR = false
            if byte == 0x0A { return }
        }
        if inQuotes {
            if byte == 0x22 {
                inQuotes = false
                quoteClosed = true
            } else {
                if byte == 0x0A { line += 1 }
                field.append(byte)
            }
            return
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
            rowBytes = 0
        default:
            if quoteClosed { throw ParseError.malformedQuote(line: line) }
            field.append(byte)
            sawAnything = true
        }
    }

    /// Ends the input; returns the last row if it had no line end.
    public mutating func finish() throws -> [Row] {
        var rows: [Row] = []
        if atStart {
            // Input shorter than a byte-order mark, and the start of one: it is text.
            atStart = false
            let replay = opening
            opening = []
            for byte in replay { try take(byte, into: &rows) }
        }
        if inQuotes { throw ParseError.unterminatedQuote(line: rowLine) }
        guard sawAnything || !fields.isEmpty || !field.isEmpty else { return rows }
        try endField()
        defer { fields.removeAll() }
        sawAnything = false
        return rows + [Row(line: rowLine, fields: fields)]
    }

    private mutating func endField() throws {
        if fields.count >= Self.maxFields { throw ParseError.rowTooLarge(line: rowLine) }
        guard let text = String(validating: field, as: UTF8.self) else { throw ParseError.invalidUTF8(line: line) }
        fields.append(text)
        field.removeAll(keepingCapacity: true)
        quoteClosed = false
        sawAnything = true
    }
}
