import Crypto
import ItakuEnforcer
import ItakuRegistry
import Testing

@Suite("Field transforms")
struct TransformTests {
    let transformer = FieldTransformer(key: SymmetricKey(size: .bits256))
    static let name = DatasetSchema.Field(name: "name", type: .string, category: .basic)
    static let phone = DatasetSchema.Field(name: "phone", type: .phone, category: .contact)
    static let email = DatasetSchema.Field(name: "email", type: .email, category: .contact)
    static let address = DatasetSchema.Field(name: "address", type: .address, category: .contact)
    static let birth = DatasetSchema.Field(name: "birth_date", type: .date, category: .basic)
    static let card = DatasetSchema.Field(name: "card_last4", type: .string, category: .financial)

    @Test("Japanese-aware transforms", arguments: [
        (PurposeDefinition.Transform.mask, name, "山田 太郎", "山＊ ＊＊"),
        (.mask, name, "𠮷田 花子", "𠮷＊ ＊＊"),
        (.mask, name, "ヤマダ タロウ", "ヤ＊＊ ＊＊＊"),
        (.mask, name, "Yamada Taro", "Y***** ****"),
        (.mask, phone, "090-1234-5678", "***-****-5678"),
        (.mask, phone, "０９０－１２３４－５６７８", "***-****-5678"),
        (.mask, email, "taro.yamada@example.jp", "t***@example.jp"),
        (.mask, address, "東京都新宿区西新宿2-8-1", "東京都＊＊＊＊＊＊*****"),
        (.last4, phone, "+81 90 1234 5678", "5678"),
        (.last4, card, "４２４２", "4242"),
        (.yearOnly, birth, "1980-04-01", "1980"),
        (.prefectureOnly, address, "神奈川県横浜市西区みなとみらい2-3-1", "神奈川県"),
        (.prefectureOnly, address, "北海道札幌市中央区北一条西2", "北海道"),
        (.plain, name, "山田 太郎", "山田 太郎"),
    ] as [(PurposeDefinition.Transform, DatasetSchema.Field, String, String)])
    func transforms(transform: PurposeDefinition.Transform, field: DatasetSchema.Field, value: String, expected: String) {
        #expect(transformer.apply(transform, to: value, field: field) == expected)
    }

    @Test("redact withholds; token is a stable keyed digest that shows nothing of the value")
    func redactAndToken() {
        #expect(transformer.apply(.redact, to: "山田 太郎", field: Self.name) == nil)
        let token = transformer.apply(.token, to: "090-1234-5678", field: Self.phone)
        #expect(token == transformer.apply(.token, to: "090-1234-5678", field: Self.phone))
        #expect(token != FieldTransformer(key: SymmetricKey(size: .bits256)).apply(.token, to: "090-1234-5678", field: Self.phone))
        #expect(token?.hasPrefix("tok_") == true && token?.contains("5678") == false)
        #expect(transformer.apply(.prefectureOnly, to: "Unknown Street 1", field: Self.address) == nil)
    }
}
