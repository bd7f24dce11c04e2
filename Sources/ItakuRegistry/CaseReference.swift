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
        guard let regex = regex(pattern ?? defaultPattern) else { return false }
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

    /// A pattern a tenant may set: a valid regular expression of at most 200 characters.
    public static func isValidPattern(_ pattern: String) -> Bool {
        PrintableText.isValid(pattern, maxBytes: 200) && regex(pattern) != nil
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
