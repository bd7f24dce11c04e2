import Foundation

/// How lookup values are normalised before they are digested, so that every common way of
/// writing the same phone number or address finds the same record.
public enum Normalization {
    /// What a written phone number may contain besides digits (after width folding).
    static let phoneCharacters = Set("0123456789+-() .ー−‐")

    /// Folds full-width ASCII (Ａ-Ｚ, ０-９, ＋, ＠, …) and the ideographic space to ASCII.
    public static func foldWidth(_ text: String) -> String {
        if text.utf8.allSatisfy({ $0 < 0x80 }) { return text }
        var result = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0xFF01...0xFF5E: result.append(Unicode.Scalar(scalar.value - 0xFEE0)!)
            case 0x3000: result.append(" ")
            default: result.append(scalar)
            }
        }
        return String(result)
    }

    /// A phone number in E.164, with Japan (+81) as the default region:
    /// `090-1234-5678`, `09012345678`, `+81 90 1234 5678`, `(03) 1234-5678` and their
    /// full-width forms all normalise alike. Nil when it cannot be a phone number.
    public static func phone(_ text: String) -> String? {
        let folded = trimmed(foldWidth(text))
        guard !folded.isEmpty, folded.allSatisfy({ phoneCharacters.contains($0) }) else { return nil }
        let digits = folded.filter(\.isASCIIDigit)
        let international = folded.hasPrefix("+") || folded.hasPrefix("00")
        var e164: String
        if folded.hasPrefix("00") {
            e164 = String(digits.dropFirst(2))
        } else if international {
            e164 = digits
        } else if digits.hasPrefix("0") {
            // Domestic Japanese number: drop the trunk prefix 0. Landlines have 10 digits,
            // mobile and IP numbers 11 (with the 0).
            // Mobile (090/080/070/060), IP (050) and M2M (020) numbers have 11 digits.
            let mobileLike = ["020", "050", "060", "070", "080", "090"].contains(String(digits.prefix(3)))
            guard mobileLike ? digits.count == 11 : digits.count == 10 else { return nil }
            e164 = "81" + digits.dropFirst()
        } else {
            return nil
        }
        guard (8...15).contains(e164.count), e164.first != "0" else { return nil }
        if e164.hasPrefix("810") { e164 = "81" + e164.dropFirst(3) }  // +81 (0)90 … written with the trunk 0
        return "+" + e164
    }

    /// An e-mail address, lower-cased and trimmed; nil when it is not one.
    public static func email(_ text: String) -> String? {
        let folded = trimmed(foldWidth(text)).lowercased()
        let parts = folded.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !folded.contains(where: { $0.isWhitespace })
        else { return nil }
        return folded
    }

    /// An exact key: width-folded and trimmed, case kept.
    public static func exact(_ text: String) -> String? {
        let folded = trimmed(foldWidth(text))
        return folded.isEmpty ? nil : folded
    }

    /// `text` without leading and trailing spaces: tab and the space separators (Zs: ASCII and
    /// ideographic spaces among them), as Foundation's `.whitespaces`; line breaks are kept.
    static func trimmed(_ text: String) -> String {
        func isSpace(_ scalar: Unicode.Scalar) -> Bool { scalar == "\t" || scalar.properties.generalCategory == .spaceSeparator }
        let scalars = text.unicodeScalars
        guard let first = scalars.firstIndex(where: { !isSpace($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !isSpace($0) })!
        if first == scalars.startIndex && last == scalars.index(before: scalars.endIndex) { return text }
        return String(String.UnicodeScalarView(scalars[first...last]))
    }

    /// Whether `text` is a valid 12-digit individual number (マイナンバー) with its check digit.
    public static func isIndividualNumber(_ text: String) -> Bool {
        let digits = foldWidth(text).filter { $0 != "-" && $0 != " " }
        guard digits.count == 12, digits.allSatisfy(\.isASCIIDigit) else { return false }
        let values = digits.compactMap(\.wholeNumberValue)
        return individualNumberCheckDigit(Array(values.prefix(11))) == values[11]
    }

    /// The check digit of the first 11 digits of an individual number (the government's formula).
    public static func individualNumberCheckDigit(_ first11: [Int]) -> Int {
        var sum = 0
        for n in 1...11 {
            let p = first11[11 - n]
            let q = n <= 6 ? n + 1 : n - 5
            sum += p * q
        }
        let remainder = sum % 11
        return remainder <= 1 ? 0 : 11 - remainder
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
