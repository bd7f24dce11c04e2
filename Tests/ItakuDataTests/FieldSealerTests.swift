import Crypto
import Foundation
import ItakuData
import ItakuRegistry
import Testing

@Suite("Sealed records")
struct FieldSealerTests {
    let sealer = FieldSealer(tenantID: UUID(), key: SymmetricKey(size: .bits256))
    let record = UUID().uuidString

    @Test("a sealed record opens as seal wrote it and as jsonb gives it back")
    func roundTrip() throws {
        let fields = ["name": "山田 太郎", "phone": "090-1234-5678", "note": "\"quoted\" \\ and\nnewline"]
        let plain = String(decoding: try JSONEncoder().encode(fields), as: UTF8.self)
        let stored = try sealer.seal(plain, record: record)
        #expect(try sealer.open(stored, record: record) == fields)
        // jsonb's text form of the same one-key object has a space after the colon.
        let fromJSONB = stored.replacingOccurrences(of: "\":\"", with: "\": \"")
        #expect(try sealer.open(fromJSONB, record: record) == fields)
    }

    @Test("a record's document lists its schema's fields in order, then keeps the fields an earlier schema had, so an update or correction does not erase them unlogged")
    func documentKeepsDroppedFields() throws {
        let schema = DatasetSchema(fields: [
            .init(name: "customer_no", type: .string, category: .basic), .init(name: "name", type: .string, category: .basic),
        ], keyField: "customer_no")
        // `fax` was a field of the schema these values were stored under; `name` is corrected.
        let values = ["customer_no": "C001", "name": "訂正 花子", "fax": "03-1234-5678", "email": ""]
        let document = RecordDocument.json(values, order: schema.fields)
        #expect(document == #"{"customer_no":"C001","name":"訂正 花子","fax":"03-1234-5678"}"#)
        let stored = try sealer.seal(document, record: record)
        #expect(try sealer.open(stored, record: record) == ["customer_no": "C001", "name": "訂正 花子", "fax": "03-1234-5678"])
        // What an import writes (its values are the schema's) is as before.
        #expect(RecordDocument.json(["name": "A", "customer_no": "C1"], order: schema.fields) == #"{"customer_no":"C1","name":"A"}"#)
    }

    @Test("a sealed document moved to another record, or altered, does not open")
    func bound() throws {
        let stored = try sealer.seal(#"{"name":"a"}"#, record: record)
        #expect(throws: FieldSealer.SealError.self) { try sealer.open(stored, record: UUID().uuidString) }
        let altered = stored.replacingOccurrences(of: "\"}", with: "A\"}")
        #expect(throws: FieldSealer.SealError.self) { try sealer.open(altered, record: record) }
    }

    @Test("plain documents (stored before sealing) open as they are")
    func plain() throws {
        #expect(try sealer.open(#"{"name": "a", "phone": "1"}"#, record: record) == ["name": "a", "phone": "1"])
    }
}
