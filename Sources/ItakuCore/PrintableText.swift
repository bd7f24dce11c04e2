/// The rule for caller-chosen text that Itaku stores or logs as given (purpose keys, case
/// references, search filters, names and labels): a bounded length, and no control characters
/// at all (no NUL, no line breaks, no C1 controls) and no bidirectional embeddings, overrides or
/// isolates, so that a value can neither break a bind, a JSON document or a log line, nor hide
/// what it says.
public enum PrintableText {
    public static func isValid(_ text: String, maxBytes: Int = 128) -> Bool {
        (1...maxBytes).contains(text.utf8.count) && text.unicodeScalars.allSatisfy(isPrintable)
    }

    /// Whether `scalar` may stand in such text. U+202A–U+202E and U+2066–U+2069 reorder how the
    /// text around them reads: "‮gnp.exe" shows as "exe.png". Invisible ones are refused too, so
    /// that two names that look the same are the same: the soft hyphen, the Arabic letter mark,
    /// the Mongolian vowel separator, the zero-width space, the left-to-right and right-to-left
    /// marks, the word joiner and invisible operators, the byte-order mark and the interlinear
    /// annotation characters. (The zero-width joiner and non-joiner stay: scripts need them.)
    public static func isPrintable(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0x202A...0x202E, 0x2066...0x2069: false
        case 0xAD, 0x61C, 0x180E, 0x200B, 0x200E, 0x200F, 0x2060...0x2064, 0xFEFF, 0xFFF9...0xFFFB: false
        default: true
        }
    }

    /// Why `text` cannot be a name or label that people read (a tenant's or an agent's name, a
    /// site, a key's label, a purpose's name), or nil: empty, longer than `maxCharacters`
    /// Unicode scalars (as JSON Schema's `maxLength` counts), or holding a character
    /// `isPrintable` refuses.
    public static func nameProblem(_ text: String, maxCharacters: Int = 200) -> NameProblem? {
        if text.isEmpty { return .empty }
        var count = 0
        for scalar in text.unicodeScalars {
            guard isPrintable(scalar) else { return .invalidCharacters }
            count += 1
        }
        return count > maxCharacters ? .tooLong : nil
    }

    public enum NameProblem: String, Sendable {
        case empty
        case tooLong = "too_long"
        case invalidCharacters = "invalid_characters"
    }
}
