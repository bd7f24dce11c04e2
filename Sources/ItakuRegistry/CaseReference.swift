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
        guard let regex = regex(pattern ?? defaultPattern) else { return false }
        return (try? regex.wholeMatch(in: reference)) != nil
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
