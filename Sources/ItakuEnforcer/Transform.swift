import Crypto
import Foundation
import ItakuCore
import ItakuData
import ItakuRegistry

/// How a field value leaves the gateway (DESIGN.md §2), Japanese-aware where it matters: names
/// keep their first character, addresses their prefecture, phone numbers their last four digits,
/// e-mail addresses their first character and domain. Characters are grapheme clusters, so
/// 𠮷 (a surrogate pair) or a kana with a combining mark counts as one.
public struct FieldTransformer: Sendable {
    /// The tenant's digest key, for `token`.
    let key: SymmetricKey

    public init(key: SymmetricKey) {
        self.key = key
    }

    /// The value to return, or nil when the field is withheld (`redact`, or nothing left).
    public func apply(
        _ transform: PurposeDefinition.Transform, to value: String, field: DatasetSchema.Field
    ) -> String? {
        switch transform {
        case .plain: return value
        case .redact: return nil
        case .token:
            let code = HMAC<SHA256>.authenticationCode(for: Data("token:\(field.name):\(value)".utf8), using: key)
            return "tok_" + Hex.encode(code.prefix(12))
        case .yearOnly:
            let year = value.prefix(4)
            return year.count == 4 && year.allSatisfy(\.isNumber) ? String(year) : nil
        case .prefectureOnly:
            return Self.prefecture(of: value)
        case .last4:
            let digits = Normalization.foldWidth(value).filter { $0.isASCII && $0.isNumber }
            return digits.count >= 4 ? String(digits.suffix(4)) : nil
        case .mask:
            return Self.mask(value, type: field.type)
        }
    }

    static func mask(_ value: String, type: DatasetSchema.FieldType) -> String {
        switch type {
        case .phone:
            // Every digit but the last four becomes *, separators stay: 090-****-5678 → ***-****-5678.
            let folded = Normalization.foldWidth(value)
            let digitCount = folded.filter { $0.isASCII && $0.isNumber }.count
            var seen = 0
            return String(folded.map { character -> Character in
                guard character.isASCII && character.isNumber else { return character }
                seen += 1
                return seen > digitCount - 4 ? character : "*"
            })
        case .email:
            let parts = value.split(separator: "@", maxSplits: 1)
            guard parts.count == 2, let first = parts[0].first else { return maskCharacters(value, keep: 0) }
            return "\(first)***@\(parts[1])"
        case .address:
            guard let prefecture = prefecture(of: value) else { return maskCharacters(value, keep: 0) }
            return prefecture + maskCharacters(String(value.dropFirst(prefecture.count)), keep: 0)
        default:
            // Names and other text keep the first character; spaces stay so the shape remains.
            return maskCharacters(value, keep: 1)
        }
    }

    /// Replaces characters after the first `keep` with * (or ＊ for wide characters).
    static func maskCharacters(_ value: String, keep: Int) -> String {
        var result = ""
        for (index, character) in value.enumerated() {
            if index < keep || character.isWhitespace {
                result.append(character)
            } else {
                result.append(character.isASCII ? "*" : "＊")
            }
        }
        return result
    }

    /// The prefecture an address starts with (東京都, 北海道, 大阪府, 京都府, or …県).
    public static func prefecture(of address: String) -> String? {
        let trimmed = address.trimmingCharacters(in: .whitespaces)
        return prefectures.first { trimmed.hasPrefix($0) }
    }

    static let prefectures = [
        "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県", "群馬県", "埼玉県", "千葉県",
        "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県", "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県",
        "滋賀県", "京都府", "大阪府", "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
        "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県", "鹿児島県", "沖縄県",
    ]
}
