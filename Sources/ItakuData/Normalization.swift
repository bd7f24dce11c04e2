import Foundation

/// How lookup values are normalised before they are digested, so that every common way of
/// writing the same phone number or address finds the same record.
public enum Normalization {
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
        // What a written phone number may contain (after width folding): digits, + - ( ) space
        // and dot, and the long-vowel mark and dashes people write as hyphens.
        var written: [UInt8] = []
        for scalar in trimmed(foldWidth(text)).unicodeScalars {
            switch scalar {
            case "0"..."9", "+", "-", "(", ")", " ", ".": written.append(UInt8(scalar.value))
            case "ー", "−", "‐": written.append(UInt8(ascii: "-"))
            default: return nil
            }
        }
        guard !written.isEmpty else { return nil }
        let digits = written.filter { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        let doubleZero = written.starts(with: "00".utf8)
        var e164: [UInt8]
        if doubleZero {
            e164 = Array(digits.dropFirst(2))
        } else if written.first == UInt8(ascii: "+") {
            e164 = digits
        } else if digits.first == UInt8(ascii: "0") {
            // Domestic Japanese number: drop the trunk prefix 0. Landlines have 10 digits;
            // mobile (090/080/070/060), IP (050) and M2M (020) numbers have 11 (with the 0).
            let mobileLike = ["020", "050", "060", "070", "080", "090"].contains { digits.starts(with: $0.utf8) }
            guard mobileLike ? digits.count == 11 : digits.count == 10 else { return nil }
            e164 = Array("81".utf8) + digits.dropFirst()
        } else {
            return nil
        }
        guard (8...15).contains(e164.count), e164.first != UInt8(ascii: "0") else { return nil }
        if e164.starts(with: "810".utf8) { e164 = Array("81".utf8) + e164.dropFirst(3) }  // +81 (0)90 … written with the trunk 0
        return "+" + String(decoding: e164, as: UTF8.self)
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
        individualNumberDigits(text) != nil
    }

    /// The twelve ASCII digits of a valid individual number written with or without hyphens and
    /// spaces (full-width too); nil when `text` is not one.
    public static func individualNumberDigits(_ text: String) -> String? {
        let digits = foldWidth(text).filter { $0 != "-" && $0 != " " }
        guard digits.count == 12, digits.allSatisfy(\.isASCIIDigit) else { return nil }
        let values = digits.compactMap(\.wholeNumberValue)
        return individualNumberCheckDigit(Array(values.prefix(11))) == values[11] ? String(digits) : nil
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
