import struct Foundation.Date
import struct Foundation.UUID
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Swift value that can be sent as a bound parameter.
///
/// Encoding throws `PostgresEncodingError` for a value PostgreSQL cannot hold (a time outside
/// its range, text with a NUL character): a request carrying such a value fails with an error,
/// it never traps and never sends something other than what it was given.
public protocol PostgresEncodable: Sendable {
    static var postgresType: PostgresType { get }
    static var postgresFormat: PostgresFormat { get }
    func encode(into buffer: inout [UInt8]) throws(PostgresEncodingError)
    /// Whether `encode(into:)` succeeds, found without encoding where that is cheaper.
    var isEncodable: Bool { get }
}

/// A value that cannot be sent as a parameter. It names the parameter's type, never its value.
public enum PostgresEncodingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A number or time outside what the column type can hold.
    case outOfRange(PostgresType)
    /// Text containing U+0000, which PostgreSQL text and jsonb cannot store.
    case nulCharacter

    public var description: String {
        switch self {
        case .outOfRange(let type): "a \(type) parameter is out of range"
        case .nulCharacter: "a text parameter contains a NUL character"
        }
    }
}

extension PostgresEncodable {
    public static var postgresFormat: PostgresFormat { .binary }

    public var isEncodable: Bool {
        var scratch: [UInt8] = []
        do {
            try encode(into: &scratch)
            return true
        } catch {
            return false
        }
    }
}

/// Where a statement's parameters go: `PostgresBindings` encodes them, `PostgresParameterCheck`
/// only finds whether every one could be encoded.
public protocol PostgresParameters {
    mutating func append<Value: PostgresEncodable>(_ value: Value)
    mutating func appendNull(_ type: PostgresType)
}

/// Parameters checked, not encoded: whether a statement of them would be refused before it is
/// sent (`PostgresEncodingError`).
public struct PostgresParameterCheck: PostgresParameters {
    public private(set) var isEncodable = true

    public init() {}

    public mutating func append<Value: PostgresEncodable>(_ value: Value) {
        if isEncodable && !value.isEncodable { isEncodable = false }
    }

    public mutating func appendNull(_ type: PostgresType) {}
}

// MARK: - Big-endian helpers

extension Array where Element == UInt8 {
    @inlinable mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var big = value.bigEndian
        Swift.withUnsafeBytes(of: &big) { append(contentsOf: $0) }
    }

    /// A binary array's header: one dimension, no NULLs, the element type, `count` elements
    /// numbered from 1.
    mutating func appendArrayHeader(of element: PostgresType, count: Int, arrayType: PostgresType) throws(PostgresEncodingError) {
        guard let count = Int32(exactly: count) else { throw .outOfRange(arrayType) }
        appendBigEndian(Int32(1))
        appendBigEndian(Int32(0))
        appendBigEndian(element.rawValue)
        appendBigEndian(count)
        appendBigEndian(Int32(1))
    }
}

// MARK: - Standard types

extension String: PostgresEncodable {
    public static var postgresType: PostgresType { .text }
    public static var postgresFormat: PostgresFormat { .text }
    public func encode(into buffer: inout [UInt8]) throws(PostgresEncodingError) {
        // libpq sends text parameters NUL-terminated: a NUL inside would cut the value short.
        if containsNUL { throw .nulCharacter }
        buffer.append(contentsOf: utf8)
    }

    public var isEncodable: Bool { !containsNUL }

    /// Whether the text holds a NUL byte, found with `memchr` rather than byte by byte: every
    /// bound text, the access entry's fields included, is checked before it is sent.
    public var containsNUL: Bool {
        var text = self
        return text.withUTF8 { bytes in bytes.baseAddress.map { memchr($0, 0, bytes.count) != nil } ?? false }
    }
}

extension Int: PostgresEncodable {
    public static var postgresType: PostgresType { .int8 }
    public func encode(into buffer: inout [UInt8]) { buffer.appendBigEndian(Int64(self)) }
}

extension Int64: PostgresEncodable {
    public static var postgresType: PostgresType { .int8 }
    public func encode(into buffer: inout [UInt8]) { buffer.appendBigEndian(self) }
}

extension Int32: PostgresEncodable {
    public static var postgresType: PostgresType { .int4 }
    public func encode(into buffer: inout [UInt8]) { buffer.appendBigEndian(self) }
}

extension Int16: PostgresEncodable {
    public static var postgresType: PostgresType { .int2 }
    public func encode(into buffer: inout [UInt8]) { buffer.appendBigEndian(self) }
}

extension Bool: PostgresEncodable {
    public static var postgresType: PostgresType { .bool }
    public func encode(into buffer: inout [UInt8]) { buffer.append(self ? 1 : 0) }
}

extension Double: PostgresEncodable {
    public static var postgresType: PostgresType { .float8 }
    public func encode(into buffer: inout [UInt8]) { buffer.appendBigEndian(bitPattern) }
}

extension UUID: PostgresEncodable {
    public static var postgresType: PostgresType { .uuid }
    public func encode(into buffer: inout [UInt8]) {
        withUnsafeBytes(of: uuid) { buffer.append(contentsOf: $0) }
    }
    public var isEncodable: Bool { true }
}

extension Date: PostgresEncodable {
    public static var postgresType: PostgresType { .timestamptz }
    public func encode(into buffer: inout [UInt8]) throws(PostgresEncodingError) {
        guard let microseconds = PostgresEpoch.microseconds(exactly: self) else { throw .outOfRange(.timestamptz) }
        buffer.appendBigEndian(microseconds)
    }
    public var isEncodable: Bool { PostgresEpoch.microseconds(exactly: self) != nil }
}

/// Raw bytes sent as `bytea`.
public struct PostgresBytes: PostgresEncodable, PostgresDecodable, Hashable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public static var postgresType: PostgresType { .bytea }
    public func encode(into buffer: inout [UInt8]) { buffer.append(contentsOf: bytes) }
    public var isEncodable: Bool { true }
    public init(postgres cell: PostgresCell) throws {
        self.bytes = Array(try cell.requireBytes())
    }
}

/// A JSON document sent as `jsonb` (text input form) and read back from `json`/`jsonb`.
public struct PostgresJSON: PostgresEncodable, PostgresDecodable, Hashable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public static var postgresType: PostgresType { .jsonb }
    public static var postgresFormat: PostgresFormat { .text }
    public func encode(into buffer: inout [UInt8]) throws(PostgresEncodingError) {
        // jsonb refuses the escape \u0000 (and the raw byte cannot be sent either).
        if text.containsNUL || Self.escapesNUL(text) { throw .nulCharacter }
        buffer.append(contentsOf: text.utf8)
    }
    public var isEncodable: Bool { !text.containsNUL && !Self.escapesNUL(text) }
    public init(postgres cell: PostgresCell) throws {
        self.text = try String(postgres: cell)
    }

    /// Whether the JSON text holds the escape `\u0000`: a backslash that is not itself escaped
    /// (an even number of backslashes before it), then `u0000`.
    static func escapesNUL(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { bytes in
            // Most documents have no backslash at all.
            guard let base = bytes.baseAddress, memchr(base, Int32(UInt8(ascii: "\\")), bytes.count) != nil else { return false }
            var backslashes = 0
            for index in bytes.indices {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\\") {
                    backslashes += 1
                    continue
                }
                if byte == UInt8(ascii: "u"), backslashes % 2 == 1, index + 4 < bytes.count,
                    bytes[(index + 1)...(index + 4)].allSatisfy({ $0 == UInt8(ascii: "0") })
                {
                    return true
                }
                backslashes = 0
            }
            return false
        }
    }
}

extension Array: PostgresEncodable where Element == String {
    public static var postgresType: PostgresType { .textArray }
    /// Binary array: the header (`appendArrayHeader`), then each element as length + bytes.
    public func encode(into buffer: inout [UInt8]) throws(PostgresEncodingError) {
        try buffer.appendArrayHeader(of: .text, count: count, arrayType: .textArray)
        for element in self {
            let utf8 = element.utf8
            if element.containsNUL { throw .nulCharacter }
            guard let length = Int32(exactly: utf8.count) else { throw .outOfRange(.textArray) }
            buffer.appendBigEndian(length)
            buffer.append(contentsOf: utf8)
        }
    }
    public var isEncodable: Bool { Int32(exactly: count) != nil && !contains { $0.containsNUL } }
}

/// An element type of `PostgresArray`: its array type's OID.
public protocol PostgresArrayElement: PostgresEncodable {
    static var arrayType: PostgresType { get }
}

extension UUID: PostgresArrayElement { public static var arrayType: PostgresType { .uuidArray } }
extension Int32: PostgresArrayElement { public static var arrayType: PostgresType { .int4Array } }
extension PostgresBytes: PostgresArrayElement { public static var arrayType: PostgresType { .byteaArray } }
extension Bool: PostgresArrayElement { public static var arrayType: PostgresType { .boolArray } }

/// A one-dimensional array of ids, numbers or bytes, sent in binary form: the server takes
/// each element as it is, without parsing text (`uuid[]`, `integer[]`, `bytea[]`, `boolean[]`).
public struct PostgresArray<Element: PostgresArrayElement>: PostgresEncodable {
    public var elements: [Element]
    public init(_ elements: [Element]) { self.elements = elements }
    public static var postgresType: PostgresType { Element.arrayType }

    /// The header, then each element as its length and its binary form.
    public func encode(into buffer: inout [UInt8]) throws(PostgresEncodingError) {
        try buffer.appendArrayHeader(of: Element.postgresType, count: elements.count, arrayType: Element.arrayType)
        for element in elements {
            let start = buffer.count
            buffer.appendBigEndian(Int32(0))
            try element.encode(into: &buffer)
            guard let length = Int32(exactly: buffer.count - start - 4) else { throw .outOfRange(Element.arrayType) }
            withUnsafeBytes(of: length.bigEndian) { length in
                for (offset, byte) in length.enumerated() { buffer[start + offset] = byte }
            }
        }
    }

    // A closure, not a key path: a key path through the generic element is built at run time,
    // on every check.
    public var isEncodable: Bool { Int32(exactly: elements.count) != nil && elements.allSatisfy { $0.isEncodable } }
}

/// PostgreSQL's binary timestamps count microseconds from 2000-01-01 00:00:00 UTC.
enum PostgresEpoch {
    static let offsetFromUnix: Double = 946_684_800

    /// PostgreSQL's timestamps run from 4713 BC to 294276 AD; Itaku accepts years 1 to 9999,
    /// which every client can also print.
    static let range: ClosedRange<Double> = -62_135_596_800 ... 253_402_300_799.999_999

    /// The microseconds of `date`, or nil when it is not a time PostgreSQL (and Itaku) can hold.
    static func microseconds(exactly date: Date) -> Int64? {
        let seconds = date.timeIntervalSince1970
        guard range.contains(seconds) else { return nil }
        return Int64(exactly: ((seconds - offsetFromUnix) * 1_000_000).rounded())
    }

    static func date(fromMicroseconds value: Int64) -> Date {
        Date(timeIntervalSince1970: Double(value) / 1_000_000 + offsetFromUnix)
    }
}
