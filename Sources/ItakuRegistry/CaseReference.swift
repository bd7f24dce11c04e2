import ItakuCore
import Synchronization

/// Which case references (`Itaku-Case`) a tenant's agents may cite. A reference is stored in the
/// access log as given, so it must not be able to carry personal data: it has to match the
/// tenant's pattern as a whole, or else Itaku's default, which admits call and ticket ids (a
/// prefix of letters and one number of up to nine digits: `CALL-1001`, `INC0012345`; a UUID;
/// a number of up to nine digits) and refuses what could be a phone number (ten digits or
/// more, or digits in groups), an e-mail address or a name. Tenants whose references look
/// otherwise set their own pattern.
public enum CaseReference {
    public static let defaultPattern = #"[A-Za-z]{1,16}[-_:.#]?[0-9]{1,9}|[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}|[0-9]{1,9}"#

    private static let compiled = Mutex<[String: Regex<AnyRegexOutput>]>([:])

    /// Whether `reference` is one this tenant's agents may cite.
    public static func isAcceptable(_ reference: String, pattern: String?) -> Bool {
        guard (1...128).contains(reference.utf8.count), reference.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F })
        else { return false }
        if pattern == nil || pattern == defaultPattern { return matchesDefault(Array(reference.utf8)) }
        // A pattern that could backtrack without end (stored before patterns were checked for
        // it) accepts nothing, rather than holding a thread per request.
        guard let pattern, isLinear(pattern), let regex = regex(pattern) else { return false }
        return (try? regex.wholeMatch(in: reference)) != nil
    }

    /// `defaultPattern` as a whole, matched by hand: every agent call checks its case, and the
    /// pattern's three forms need no regular-expression engine. (Tested against the pattern.)
    static func matchesDefault(_ bytes: [UInt8]) -> Bool {
        func isLetter(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) }
        func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
        func isHex(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66) }
        // A number of up to nine digits.
        if (1...9).contains(bytes.count) && bytes.allSatisfy(isDigit) { return true }
        // A UUID.
        if bytes.count == 36 {
            let uuid = bytes.enumerated().allSatisfy { index, byte in
                [8, 13, 18, 23].contains(index) ? byte == UInt8(ascii: "-") : isHex(byte)
            }
            if uuid { return true }
        }
        // 1–16 letters, one optional separator, 1–9 digits.
        let letters = bytes.prefix(while: isLetter).count
        guard (1...16).contains(letters) else { return false }
        var rest = bytes[letters...]
        if let first = rest.first, "-_:.#".utf8.contains(first) { rest = rest.dropFirst() }
        return (1...9).contains(rest.count) && rest.allSatisfy(isDigit)
    }

    /// A pattern a tenant may set: a valid regular expression of at most 200 characters that
    /// the backtracking engine matches in bounded time (`isLinear`).
    public static func isValidPattern(_ pattern: String) -> Bool {
        PrintableText.isValid(pattern, maxBytes: 200) && isLinear(pattern) && regex(pattern) != nil
    }

    /// Whether a backtracking engine matches `pattern` against a reference (at most 128
    /// characters) in bounded time: no group that may repeat (`*`, `+`, `{n,}`, `{n,m}` with m
    /// above 1) holds a part of variable length itself (a quantifier other than an exact `{n}`,
    /// or an alternative), as in `(a+)+` or `(a|ab)*`; and at most three unbounded quantifiers
    /// in all (`.*.*.*.*x` tries every way of cutting the text).
    public static func isLinear(_ pattern: String) -> Bool {
        let bytes = Array(pattern.utf8)
        // Per open group: whether something inside it varies in length.
        var groups: [Bool] = [false]
        var unbounded = 0
        var index = 0
        /// The quantifier at `index`, if any: its length; whether the count varies; whether it
        /// may repeat a varying count more than once; whether it is unbounded.
        func quantifier(at index: Int) -> (length: Int, varies: Bool, repeats: Bool, unbounded: Bool)? {
            guard index < bytes.count else { return nil }
            var length = 0
            var varies = true, repeats = true, isUnbounded = false
            switch bytes[index] {
            case UInt8(ascii: "*"), UInt8(ascii: "+"): length = 1; isUnbounded = true
            case UInt8(ascii: "?"): length = 1; repeats = false
            case UInt8(ascii: "{"):
                guard let close = bytes[index...].firstIndex(of: UInt8(ascii: "}")) else { return nil }
                let inside = String(decoding: bytes[(index + 1)..<close], as: UTF8.self)
                let parts = inside.split(separator: ",", omittingEmptySubsequences: false)
                guard (1...2).contains(parts.count), parts.allSatisfy({ $0.isEmpty || Int($0) != nil }), let low = Int(parts[0]) else { return nil }
                length = close - index + 1
                let high = parts.count == 2 ? Int(parts[1]) : low
                varies = high != low
                isUnbounded = high == nil
                repeats = varies && (high ?? Int.max) > 1
            default: return nil
            }
            // A lazy or possessive mark belongs to it.
            if index + length < bytes.count, bytes[index + length] == UInt8(ascii: "?") || bytes[index + length] == UInt8(ascii: "+") { length += 1 }
            return (length, varies, repeats, isUnbounded)
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\\"):
                index += 2
            case UInt8(ascii: "["):
                // A class is one character, whatever it holds.
                var end = index + 1
                if end < bytes.count, bytes[end] == UInt8(ascii: "^") { end += 1 }
                if end < bytes.count, bytes[end] == UInt8(ascii: "]") { end += 1 }
                while end < bytes.count, bytes[end] != UInt8(ascii: "]") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
                index = end + 1
            case UInt8(ascii: "("):
                groups.append(false)
                index += 1
                continue
            case UInt8(ascii: ")"):
                guard groups.count > 1 else { return false }
                let inner = groups.removeLast()
                index += 1
                if let (length, varies, repeats, isUnbounded) = quantifier(at: index) {
                    if repeats && inner { return false }
                    if isUnbounded { unbounded += 1 }
                    groups[groups.count - 1] = groups[groups.count - 1] || varies || inner
                    index += length
                } else {
                    groups[groups.count - 1] = groups[groups.count - 1] || inner
                }
                continue
            case UInt8(ascii: "|"):
                groups[groups.count - 1] = true
                index += 1
                continue
            default:
                index += 1
            }
            // After an atom (a character, an escape, a class): its quantifier.
            if let (length, varies, _, isUnbounded) = quantifier(at: index) {
                if isUnbounded { unbounded += 1 }
                if varies { groups[groups.count - 1] = true }
                index += length
            }
        }
        return unbounded <= 3
    }

    private static func regex(_ pattern: String) -> Regex<AnyRegexOutput>? {
        compiled.withLock { cache in
            if let regex = cache[pattern] { return regex }
            guard let regex = try? Regex(pattern) else { return nil }
            if cache.count > 1_000 { cache.removeAll() }
            cache[pattern] = regex
            return regex
        }
    }
}
