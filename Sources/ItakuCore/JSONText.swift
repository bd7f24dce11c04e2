/// Minimal JSON text building for hot paths and canonical forms, where the exact bytes matter
/// and Foundation's encoders would be slower or less predictable.
public enum JSONText {
    /// `value` as a JSON string literal, quotes included.
    public static func string(_ value: String) -> String {
        // Most values need no escaping at all: quoted in one copy.
        var value = value
        let quoted: String? = value.withUTF8 { bytes in
            guard !bytes.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else { return nil }
            return String(unsafeUninitializedCapacity: bytes.count + 2) { out in
                out[0] = UInt8(ascii: "\"")
                _ = UnsafeMutableBufferPointer(rebasing: out[1...]).initialize(from: bytes)
                out[bytes.count + 1] = UInt8(ascii: "\"")
                return bytes.count + 2
            }
        }
        if let quoted { return quoted }
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count + 8)
        append(value, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Appends `value` as a JSON string literal, quotes included, to `out`: `"`, `\`, newline,
    /// carriage return and tab as their short escapes, other control characters as `\u00xx`,
    /// everything else as it is. (Escaping works byte by byte: UTF-8's multi-byte sequences
    /// hold no byte below 0x80.)
    public static func append(_ value: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var value = value
        value.withUTF8 { bytes in
            // Runs that need no escape go in one copy each.
            var start = 0
            for index in bytes.indices {
                let byte = bytes[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
                start = index + 1
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
                case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
                case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
                case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
                default:
                    out.append(contentsOf: "\\u00".utf8)
                    out.append(hexDigits[Int(byte >> 4)])
                    out.append(hexDigits[Int(byte & 0x0F)])
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `fields` as a JSON object of strings, keys in code-point order.
    public static func append(_ fields: [String: String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "{"))
        for (index, field) in fields.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            append(field.key, to: &out)
            out.append(UInt8(ascii: ":"))
            append(field.value, to: &out)
        }
        out.append(UInt8(ascii: "}"))
    }
}

extension JSONText {
    /// Parses a JSON object whose values are all strings (`{"name":"…","phone":"…"}`), the form
    /// of a record's fields, without Foundation's parsers. Returns nil for anything else (other
    /// value types, invalid UTF-8 or escapes, trailing text): the caller then uses a full parser.
    public static func stringObject(_ bytes: UnsafeBufferPointer<UInt8>) -> [String: String]? {
        var reader = StringObjectReader(bytes: bytes)
        return reader.object()
    }

    /// A value of a flat request body: a string, an array of strings, or null.
    public enum FlatValue: Sendable, Equatable {
        case string(String)
        case strings([String])
        case null
    }

    /// Parses a JSON object whose values are strings, arrays of strings or null (a small request
    /// body), without Foundation's parsers. Returns nil for anything else, a key given twice
    /// included: the caller then uses a full parser, which also names what is wrong.
    public static func flatObject(_ bytes: UnsafeBufferPointer<UInt8>) -> [String: FlatValue]? {
        var reader = StringObjectReader(bytes: bytes)
        return reader.flatObject()
    }
}

private struct StringObjectReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var index = 0

    /// A record's fields: a key given twice keeps its last value.
    mutating func object() -> [String: String]? {
        members(keepingRepeats: true) { $0.string() }
    }

    /// A request body: a key given twice refuses it, for the full parser to judge.
    mutating func flatObject() -> [String: JSONText.FlatValue]? {
        members(keepingRepeats: false) { $0.flatValue() }
    }

    /// The whole text as one object, each member's value read by `value`; nil for anything else.
    private mutating func members<Value>(keepingRepeats: Bool, _ value: (inout StringObjectReader) -> Value?) -> [String: Value]? {
        skipSpace()
        guard take(UInt8(ascii: "{")) else { return nil }
        var result: [String: Value] = [:]
        // A record has a handful of fields: room for them at once, not grown four times.
        result.reserveCapacity(8)
        skipSpace()
        if !take(UInt8(ascii: "}")) {
            while true {
                skipSpace()
                guard let key = string(), keepingRepeats || result[key] == nil else { return nil }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                guard let member = value(&self) else { return nil }
                result[key] = member
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                break
            }
        }
        skipSpace()
        return index == bytes.count ? result : nil
    }

    mutating func flatValue() -> JSONText.FlatValue? {
        guard index < bytes.count else { return nil }
        switch bytes[index] {
        case UInt8(ascii: "\""): return string().map { .string($0) }
        case UInt8(ascii: "n"):
            guard take(UInt8(ascii: "n")), take(UInt8(ascii: "u")), take(UInt8(ascii: "l")), take(UInt8(ascii: "l")) else { return nil }
            return .null
        case UInt8(ascii: "["):
            index += 1
            var strings: [String] = []
            skipSpace()
            if take(UInt8(ascii: "]")) { return .strings(strings) }
            while true {
                skipSpace()
                guard let element = string() else { return nil }
                strings.append(element)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                return take(UInt8(ascii: "]")) ? .strings(strings) : nil
            }
        default: return nil
        }
    }

    mutating func skipSpace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x0A, 0x0D, 0x09: index += 1
            default: return
            }
        }
    }

    mutating func take(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    mutating func string() -> String? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = index
        var escaped = false
        while index < bytes.count, bytes[index] != UInt8(ascii: "\"") {
            if bytes[index] < 0x20 { return nil }
            if bytes[index] == UInt8(ascii: "\\") {
                escaped = true
                index += 1
            }
            index += 1
        }
        guard index < bytes.count else { return nil }
        let content = UnsafeBufferPointer(rebasing: bytes[start..<index])
        index += 1
        guard escaped else { return Self.text(content) }
        return Self.unescape(content)
    }

    /// `bytes` as text if they are UTF-8. ASCII (most keys and many values) is taken as it is;
    /// only other bytes go through the validating initialiser, which costs several times more.
    static func text(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
        var high: UInt8 = 0
        for byte in bytes { high |= byte }
        guard high >= 0x80 else { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }

    static func unescape(_ content: UnsafeBufferPointer<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(content.count)
        var i = 0
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= content.count else { return nil }
            var value: UInt32 = 0
            for byte in content[at..<at + 4] {
                guard let digit = hexDigits[byte] else { return nil }
                value = value << 4 | digit
            }
            return value
        }
        while i < content.count {
            let byte = content[i]
            guard byte == UInt8(ascii: "\\") else {
                out.append(byte)
                i += 1
                continue
            }
            guard i + 1 < content.count else { return nil }
            switch content[i + 1] {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(content[i + 1])
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard var scalar = hex4(i + 2) else { return nil }
                if (0xD800...0xDBFF).contains(scalar) {
                    // A surrogate pair: the low half must follow as its own escape.
                    guard i + 11 < content.count, content[i + 6] == UInt8(ascii: "\\"), content[i + 7] == UInt8(ascii: "u"),
                        let low = hex4(i + 8), (0xDC00...0xDFFF).contains(low)
                    else { return nil }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    i += 6
                }
                guard let unicode = Unicode.Scalar(scalar) else { return nil }
                out.append(contentsOf: String(Character(unicode)).utf8)
                i += 4
            default: return nil
            }
            i += 2
        }
        return String(validating: out, as: UTF8.self)
    }

    static let hexDigits: [UInt8: UInt32] = {
        var digits: [UInt8: UInt32] = [:]
        for (value, character) in "0123456789abcdef".utf8.enumerated() { digits[character] = UInt32(value) }
        for (value, character) in "ABCDEF".utf8.enumerated() { digits[character] = UInt32(value + 10) }
        return digits
    }()
}
