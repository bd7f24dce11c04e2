import struct Foundation.Date
import struct Foundation.UUID

/// One value of a result row, in binary format, copied out of the `PGresult`.
public struct PostgresCell: Sendable {
    public var bytes: ArraySlice<UInt8>?
    public var type: PostgresType
    public var columnName: String

    public var isNull: Bool { bytes == nil }

    func requireBytes() throws -> ArraySlice<UInt8> {
        guard let bytes else {
            throw PostgresError(.decoding, detail: "column \(columnName) is NULL")
        }
        return bytes
    }

    func mismatch(_ swiftType: Any.Type) -> PostgresError {
        PostgresError(.decoding, detail: "column \(columnName) of \(type) cannot be decoded as \(swiftType)")
    }

    func readInteger<T: FixedWidthInteger>(_: T.Type, at offset: Int = 0) throws -> T {
        let bytes = try requireBytes()
        guard bytes.count >= offset + MemoryLayout<T>.size else { throw mismatch(T.self) }
        var value: T = 0
        let start = bytes.startIndex + offset
        for byte in bytes[start..<start + MemoryLayout<T>.size] {
            value = (value << 8) | T(byte)
        }
        return value
    }
}

/// A Swift value that can be read from a result column.
public protocol PostgresDecodable: Sendable {
    init(postgres cell: PostgresCell) throws
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        self = cell.isNull ? nil : try Wrapped(postgres: cell)
    }
}

extension String: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        var bytes = try cell.requireBytes()
        switch cell.type {
        case .text, .varchar, .bpchar, .name, .json, .unknown:
            break
        case .jsonb:
            // Binary jsonb is a version byte (1) followed by the JSON text.
            guard bytes.first == 1 else { throw cell.mismatch(String.self) }
            bytes = bytes.dropFirst()
        case .uuid:
            self = try UUID(postgres: cell).uuidString.lowercased()
            return
        default:
            throw cell.mismatch(String.self)
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}

extension Int64: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        switch cell.type {
        case .int8: self = try cell.readInteger(Int64.self)
        case .int4, .oid: self = Int64(try cell.readInteger(Int32.self))
        case .int2: self = Int64(try cell.readInteger(Int16.self))
        default: throw cell.mismatch(Int64.self)
        }
    }
}

extension Int: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws { self = Int(try Int64(postgres: cell)) }
}

extension Int32: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        switch cell.type {
        case .int4, .oid: self = try cell.readInteger(Int32.self)
        case .int2: self = Int32(try cell.readInteger(Int16.self))
        default: throw cell.mismatch(Int32.self)
        }
    }
}

extension Int16: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        guard cell.type == .int2 else { throw cell.mismatch(Int16.self) }
        self = try cell.readInteger(Int16.self)
    }
}

extension Bool: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        guard cell.type == .bool else { throw cell.mismatch(Bool.self) }
        self = try cell.readInteger(UInt8.self) != 0
    }
}

extension Double: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        switch cell.type {
        case .float8: self = Double(bitPattern: try cell.readInteger(UInt64.self))
        case .float4: self = Double(Float(bitPattern: try cell.readInteger(UInt32.self)))
        default: throw cell.mismatch(Double.self)
        }
    }
}

extension UUID: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        let bytes = try cell.requireBytes()
        guard cell.type == .uuid, bytes.count == 16 else { throw cell.mismatch(UUID.self) }
        let b = Array(bytes)
        self = UUID(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                           b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}

extension Date: PostgresDecodable {
    public init(postgres cell: PostgresCell) throws {
        switch cell.type {
        case .timestamptz, .timestamp:
            self = PostgresEpoch.date(fromMicroseconds: try cell.readInteger(Int64.self))
        case .date:
            // ±infinity and dates past year 294,276 do not fit in microseconds: refused, not trapped.
            let days = try cell.readInteger(Int32.self)
            let (microseconds, overflow) = Int64(days).multipliedReportingOverflow(by: 86_400_000_000)
            guard !overflow else { throw cell.mismatch(Date.self) }
            self = PostgresEpoch.date(fromMicroseconds: microseconds)
        default:
            throw cell.mismatch(Date.self)
        }
    }
}

extension Array: PostgresDecodable where Element == String {
    public init(postgres cell: PostgresCell) throws {
        // uuid[] elements are 16 raw bytes each; they are read as lower-case UUID strings.
        let isUUID = cell.type == .uuidArray
        guard [.textArray, .varcharArray, .uuidArray].contains(cell.type) else { throw cell.mismatch([String].self) }
        let dimensions = try cell.readInteger(Int32.self)
        guard dimensions <= 1 else { throw cell.mismatch([String].self) }
        if dimensions == 0 {
            self = []
            return
        }
        let count = Int(try cell.readInteger(Int32.self, at: 12))
        let bytes = try cell.requireBytes()
        var offset = 20
        var result: [String] = []
        result.reserveCapacity(count)
        for _ in 0..<count {
            let length = Int(try cell.readInteger(Int32.self, at: offset))
            offset += 4
            guard length >= 0 else { throw PostgresError(.decoding, detail: "NULL element in \(cell.columnName)") }
            let start = bytes.startIndex + offset
            guard start + length <= bytes.endIndex else { throw cell.mismatch([String].self) }
            if isUUID {
                guard length == 16 else { throw cell.mismatch([String].self) }
                let element = PostgresCell(bytes: bytes[start..<start + length], type: .uuid, columnName: cell.columnName)
                result.append(try UUID(postgres: element).uuidString.lowercased())
            } else {
                result.append(String(decoding: bytes[start..<start + length], as: UTF8.self))
            }
            offset += length
        }
        self = result
    }
}

/// A calendar date (PostgreSQL `date`), without a time zone.
public struct PostgresDate: PostgresEncodable, PostgresDecodable, Hashable, CustomStringConvertible {
    /// Days since 2000-01-01, PostgreSQL's binary form.
    public var daysSince2000: Int32

    public init(daysSince2000: Int32) { self.daysSince2000 = daysSince2000 }

    /// Proleptic Gregorian date of the years 1 to 9999; `nil` when the components are not such a date.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month), (1...31).contains(day) else { return nil }
        let days = Self.daysFromCivil(year: year, month: month, day: day)
        guard Self.civil(fromDays: days) == (year, month, day) else { return nil }
        self.daysSince2000 = Int32(days - Self.daysFromCivil(year: 2000, month: 1, day: 1))
    }

    /// `YYYY-MM-DD` (ASCII digits), a real calendar date of the years 1 to 9999; nil otherwise.
    public init?(iso text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              parts.allSatisfy({ $0.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }),
              let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]) else { return nil }
        self.init(year: year, month: month, day: day)
    }

    public var components: (year: Int, month: Int, day: Int) {
        Self.civil(fromDays: Int(daysSince2000) + Self.daysFromCivil(year: 2000, month: 1, day: 1))
    }

    public var description: String {
        let (y, m, d) = components
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))"
    }

    public static var postgresType: PostgresType { .date }
    public func encode(into buffer: inout [UInt8]) { buffer.appendBigEndian(daysSince2000) }
    public init(postgres cell: PostgresCell) throws {
        guard cell.type == .date else { throw cell.mismatch(PostgresDate.self) }
        self.daysSince2000 = try cell.readInteger(Int32.self)
    }

    // Howard Hinnant's days-from-civil algorithms (days relative to 1970-01-01).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func civil(fromDays days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
