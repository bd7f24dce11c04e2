/// The rule for caller-chosen text that Itaku stores or logs as given (purpose keys, case
/// references, search filters): a bounded length, and no control characters at all (no NUL,
/// no line breaks, no C1 controls), so that a value can neither break a bind, a JSON document
/// or a log line, nor hide what it says.
public enum PrintableText {
    public static func isValid(_ text: String, maxBytes: Int = 128) -> Bool {
        (1...maxBytes).contains(text.utf8.count)
            && text.unicodeScalars.allSatisfy { scalar in
                !(scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
                    || scalar.value == 0x2028 || scalar.value == 0x2029)
            }
    }
}
