import ItakuData

/// Synthetic Japanese customers for the demo: realistic names with kana, prefectures, postal
/// codes, mobile and landline numbers in the mixed formats agents really type, and individual
/// numbers with valid check digits. The same seed always gives the same customers.
public struct DemoCustomers: Sequence, IteratorProtocol {
    /// SplitMix64: tiny, fast, and identical on every platform.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ range: ClosedRange<Int>) -> Int {
            range.lowerBound + Int(next() % UInt64(range.count))
        }
        mutating func pick<T>(_ values: [T]) -> T { values[int(0...values.count - 1)] }
        mutating func digits(_ count: Int) -> String { String((0..<count).map { _ in Character(String(int(0...9))) }) }
    }

    static let surnames: [(String, String)] = [
        ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
        ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
        ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
        ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
        ("𠮷田", "ヨシダ"), ("髙橋", "タカハシ"), ("長谷川", "ハセガワ"), ("石川", "イシカワ"),
    ]
    static let givenNames: [(String, String)] = [
        ("太郎", "タロウ"), ("花子", "ハナコ"), ("翔太", "ショウタ"), ("陽菜", "ヒナ"), ("蓮", "レン"),
        ("結衣", "ユイ"), ("大輝", "ダイキ"), ("さくら", "サクラ"), ("健", "ケン"), ("美咲", "ミサキ"),
        ("悠斗", "ユウト"), ("葵", "アオイ"), ("浩二", "コウジ"), ("恵子", "ケイコ"), ("隆", "タカシ"), ("由美", "ユミ"),
    ]
    /// Prefecture, a city in it, its postal prefix, and its landline area code.
    static let places: [(String, String, String, String)] = [
        ("東京都", "新宿区西新宿", "160", "03"), ("大阪府", "大阪市北区梅田", "530", "06"),
        ("神奈川県", "横浜市西区みなとみらい", "220", "045"), ("愛知県", "名古屋市中区栄", "460", "052"),
        ("北海道", "札幌市中央区北一条西", "060", "011"), ("福岡県", "福岡市博多区博多駅前", "812", "092"),
        ("兵庫県", "神戸市中央区三宮町", "650", "078"), ("京都府", "京都市下京区四条通", "600", "075"),
        ("宮城県", "仙台市青葉区一番町", "980", "022"), ("広島県", "広島市中区紙屋町", "730", "082"),
    ]
    static let buildings = ["", "", "", "グランドハイツ", "サンライズマンション", "メゾン桜", "コーポ緑"]
    static let healthNotes = ["糖尿病の治療中", "高血圧で通院中", "食物アレルギー（小麦）", "車椅子を利用"]
    static let domains = ["example.jp", "example.co.jp", "example.ne.jp", "example.com"]

    public let count: Int
    private var random: Random
    private var index = 0

    public init(count: Int, seed: UInt64 = 20_261_122) {
        self.count = count
        self.random = Random(state: seed)
    }

    public mutating func next() -> [String: String]? {
        guard index < count else { return nil }
        index += 1
        let (surname, surnameKana) = random.pick(Self.surnames)
        let (given, givenKana) = random.pick(Self.givenNames)
        let (prefecture, city, postal, area) = random.pick(Self.places)
        let building = random.pick(Self.buildings)
        let block = "\(random.int(1...5))丁目\(random.int(1...20))-\(random.int(1...30))"
        let address = prefecture + city + block + (building.isEmpty ? "" : " \(building)\(random.int(1...12))0\(random.int(1...9))")
        var customer: [String: String] = [
            "customer_no": "C" + sixDigits(index),
            "name": surname + " " + given,
            "name_kana": surnameKana + " " + givenKana,
            "phone": phone(area: area),
            "email": "c\(sixDigits(index))@\(random.pick(Self.domains))",
            "postal_code": postal + "-" + random.digits(4),
            "address": address,
            "birth_date": "\(random.int(1940...2005))-\(two(random.int(1...12)))-\(two(random.int(1...28)))",
            "card_last4": random.digits(4),
            "my_number": individualNumber(),
        ]
        if random.int(0...9) == 0 { customer["health_note"] = random.pick(Self.healthNotes) }
        return customer
    }

    /// Mobile or landline, written in one of the forms agents meet.
    private mutating func phone(area: String) -> String {
        let mobile = random.int(0...2) > 0
        let national: (String, String, String) =
            mobile
            ? (random.pick(["090", "080", "070"]), random.digits(4), random.digits(4))
            : (area, String(random.int(1...9)) + random.digits(5 - area.count), random.digits(4))
        switch random.int(0...9) {
        case 0...4: return "\(national.0)-\(national.1)-\(national.2)"
        case 5...6: return national.0 + national.1 + national.2
        case 7: return "+81 \(national.0.dropFirst()) \(national.1) \(national.2)"
        case 8: return fullWidth("\(national.0)-\(national.1)-\(national.2)")
        default: return "(\(national.0)) \(national.1)-\(national.2)"
        }
    }

    private mutating func individualNumber() -> String {
        let first = (0..<11).map { _ in random.int(0...9) }
        return first.map { String($0) }.joined() + String(Normalization.individualNumberCheckDigit(first))
    }

    private func two(_ value: Int) -> String { value < 10 ? "0\(value)" : String(value) }

    private func fullWidth(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { scalar in
            (0x21...0x7E).contains(scalar.value) ? Unicode.Scalar(scalar.value + 0xFEE0)! : scalar
        }))
    }
}

/// `value` as six digits, zero-padded (`C000042`).
func sixDigits(_ value: Int) -> String {
    let text = String(value)
    return String(repeating: "0", count: max(0, 6 - text.count)) + text
}
