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
    /// characters) in bounded time: no group that may repeat (`*`, `+`, or a count above one,
    /// exact or not) holds a part of variable length itself (a quantifier other than an exact
    /// `{n}`, or an alternative), as in `(a+)+`, `(a|ab)*` or `(a?){64}`; and at most three
    /// unbounded quantifiers in all (`.*.*.*.*x` tries every way of cutting the text).
    ///
    /// Quantifiers are `{n}`, `{n,}`, `{n,m}` and `{,m}` (0 to m); a brace holding anything
    /// else is a literal. What it cannot follow, it refuses rather than guess at: a brace of
    /// digits and commas that is none of those (or holds spaces), the extended-syntax option `x`
    /// (in `(?x)`, `(a|ab) *` repeats the group), `(?#` comments, `\Q…\E`, a class within a
    /// class, and a group left open. Other `(?` headers (named groups, lookaround, atomic groups,
    /// options like `(?i)`) open a group as `(` does.
    public static func isLinear(_ pattern: String) -> Bool {
        let bytes = Array(pattern.utf8)
        // Per open group: whether something inside it varies in length.
        var groups: [Bool] = [false]
        var unbounded = 0
        var index = 0
        var unreadable = false
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
                // `{n}`, `{n,}`, `{n,m}` or `{,m}` (0 to m), in plain digits. A brace holding
                // other characters is a literal; digits, commas and spaces in another form make
                // the pattern unreadable.
                let isDigit = { (byte: UInt8) in byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
                guard let close = bytes[index...].firstIndex(of: UInt8(ascii: "}")),
                    bytes[(index + 1)..<close].allSatisfy({ isDigit($0) || $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: " ") })
                else { return nil }
                guard !bytes[(index + 1)..<close].contains(UInt8(ascii: " ")) else {
                    unreadable = true
                    return nil
                }
                let parts = bytes[(index + 1)..<close].split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
                    .map { $0.isEmpty ? nil : Int(String(decoding: $0, as: UTF8.self)) }
                guard (1...2).contains(parts.count), parts[0] != nil || (parts.count == 2 && parts[1] != nil) else {
                    unreadable = true
                    return nil
                }
                length = close - index + 1
                let low = parts[0] ?? 0
                let high = parts.count == 2 ? parts[1] : low
                varies = high != low
                isUnbounded = high == nil
                // An exact count above one repeats too: `(a?){64}` tries every way.
                repeats = (high ?? Int.max) > 1
            default: return nil
            }
            // A lazy or possessive mark belongs to it.
            if index + length < bytes.count, bytes[index + length] == UInt8(ascii: "?") || bytes[index + length] == UInt8(ascii: "+") { length += 1 }
            return (length, varies, repeats, isUnbounded)
        }
        /// The header of a group opened with `(?`, from `start` (just past the `?`): where what
        /// follows it begins, and whether it is an option setting for the rest (`(?i)`), not a
        /// group. Nil: a header that makes the pattern unreadable (`x`, `(?#`) or is not known.
        func groupHeader(after start: Int) -> (end: Int, setsOptions: Bool)? {
            guard start < bytes.count else { return nil }
            /// Past a group's name (a letter or `_`, then letters, digits and `_`) and `close`.
            func through(_ close: UInt8, from: Int) -> Int? {
                func isNameByte(_ byte: UInt8, first: Bool) -> Bool {
                    byte == UInt8(ascii: "_") || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                        || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || (!first && byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                }
                var end = from
                while end < bytes.count, isNameByte(bytes[end], first: end == from) { end += 1 }
                guard end > from, end < bytes.count, bytes[end] == close else { return nil }
                return end + 1
            }
            switch bytes[start] {
            case UInt8(ascii: ":"), UInt8(ascii: ">"), UInt8(ascii: "="), UInt8(ascii: "!"): return (start + 1, false)
            case UInt8(ascii: "<"):
                if start + 1 < bytes.count, bytes[start + 1] == UInt8(ascii: "=") || bytes[start + 1] == UInt8(ascii: "!") { return (start + 2, false) }
                return through(UInt8(ascii: ">"), from: start + 1).map { ($0, false) }
            case UInt8(ascii: "P"):
                guard start + 1 < bytes.count, bytes[start + 1] == UInt8(ascii: "<") else { return nil }
                return through(UInt8(ascii: ">"), from: start + 2).map { ($0, false) }
            case UInt8(ascii: "'"):
                return through(UInt8(ascii: "'"), from: start + 1).map { ($0, false) }
            default:
                // Options: letters, `^` and `-`, ended by `)` (for the rest) or `:` (a group).
                var end = start
                while end < bytes.count, bytes[end] == UInt8(ascii: "^") || bytes[end] == UInt8(ascii: "-")
                    || (bytes[end] >= UInt8(ascii: "a") && bytes[end] <= UInt8(ascii: "z"))
                    || (bytes[end] >= UInt8(ascii: "A") && bytes[end] <= UInt8(ascii: "Z")) { end += 1 }
                guard end > start, end < bytes.count, !bytes[start..<end].contains(UInt8(ascii: "x")) else { return nil }
                if bytes[end] == UInt8(ascii: ")") { return (end + 1, true) }
                if bytes[end] == UInt8(ascii: ":") { return (end + 1, false) }
                return nil
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\\"):
                // An escape is one atom; one with a braced argument (`\p{L}`, `\x{41}`) ends at
                // its brace.
                let named = index + 2 < bytes.count && bytes[index + 2] == UInt8(ascii: "{")
                    && "pPxuNokg".utf8.contains(bytes[index + 1])
                // `\Q…\E` quotes text whose brackets the check would read as structure.
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "Q") || bytes[index + 1] == UInt8(ascii: "E") { return false }
                if named, let close = bytes[(index + 2)...].firstIndex(of: UInt8(ascii: "}")) {
                    index = close + 1
                } else {
                    index += 2
                }
            case UInt8(ascii: "["):
                // A class is one character, whatever it holds; a class inside a class (which
                // the check would end too early) is refused.
                var end = index + 1
                if end < bytes.count, bytes[end] == UInt8(ascii: "^") { end += 1 }
                if end < bytes.count, bytes[end] == UInt8(ascii: "]") { end += 1 }
                while end < bytes.count, bytes[end] != UInt8(ascii: "]") {
                    if bytes[end] == UInt8(ascii: "[") { return false }
                    end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1
                }
                index = end + 1
            case UInt8(ascii: "("):
                if index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "?") {
                    guard let header = groupHeader(after: index + 2) else { return false }
                    if header.setsOptions {
                        // `(?i)`: options for the rest, no group.
                        index = header.end
                        continue
                    }
                    index = header.end - 1
                }
                groups.append(false)
                index += 1
                continue
            case UInt8(ascii: ")"):
                guard groups.count > 1 else { return false }
                let inner = groups.removeLast()
                index += 1
                let found = quantifier(at: index)
                if unreadable { return false }
                if let (length, varies, repeats, isUnbounded) = found {
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
            let found = quantifier(at: index)
            if unreadable { return false }
            if let (length, varies, _, isUnbounded) = found {
                if isUnbounded { unbounded += 1 }
                if varies { groups[groups.count - 1] = true }
                index += length
            }
        }
        // Every group closed: one left open means the check lost track of the structure.
        return groups.count == 1 && unbounded <= 3
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
