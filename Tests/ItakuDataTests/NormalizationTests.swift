import Crypto
import Foundation
import ItakuData
import ItakuRegistry
import Testing

@Suite("Lookup normalisation")
struct NormalizationTests {
    @Test("every common way of writing a Japanese phone number normalises to the same E.164", arguments: [
        "090-1234-5678", "09012345678", "+81 90 1234 5678", "+81-90-1234-5678", "０９０－１２３４－５６７８",
        "(090) 1234-5678", "+81 (0)90 1234 5678", "0081 90 1234 5678", "090 1234 5678",
        "090ー1234ー5678", "090−1234‐5678", "\t090.1234.5678\u{3000}",
    ])
    func mobileForms(text: String) {
        #expect(Normalization.phone(text) == "+819012345678")
    }

    @Test("landlines keep their area code", arguments: [("03-1234-5678", "+81312345678"), ("(06) 6123-4567", "+81661234567"), ("045-123-4567", "+81451234567")])
    func landlines(text: String, expected: String) {
        #expect(Normalization.phone(text) == expected)
    }

    @Test("things that are not phone numbers are refused", arguments: [
        "", " ", "abc", "12345", "090-1234-567", "0901234567890", "電話 090-1234-5678", "090-1234-5678\u{301}", "090\t1234\t5678",
        "+0 90 1234 5678",
    ])
    func notPhones(text: String) {
        #expect(Normalization.phone(text) == nil)
    }

    @Test("e-mail addresses are lower-cased and width-folded; malformed ones refused")
    func emails() {
        #expect(Normalization.email(" Taro.Yamada@Example.JP ") == "taro.yamada@example.jp")
        #expect(Normalization.email("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ") == "taro@example.jp")
        for bad in ["taro", "@example.jp", "taro@", "taro@example", "ta ro@example.jp", "a@b@c.jp"] {
            #expect(Normalization.email(bad) == nil)
        }
    }

    @Test("individual numbers are checked with the official check digit")
    func individualNumbers() {
        // 12345678901 → check digit 8 (worked example of the government formula).
        #expect(Normalization.individualNumberCheckDigit([1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]) == 8)
        #expect(Normalization.isIndividualNumber("123456789018"))
        #expect(Normalization.isIndividualNumber("1234-5678-9018"))
        #expect(!Normalization.isIndividualNumber("123456789019"))
        #expect(!Normalization.isIndividualNumber("12345678901"))
    }
}

@Suite("Lookup digests")
struct LookupDigestTests {
    @Test("digests are HMAC-SHA-256 over kind and value with the tenant's key, the same however many are taken in a row")
    func keyedDigests() {
        let key = SymmetricKey(size: .bits256)
        let digester = LookupDigester(key: key)
        for value in ["+819012345678", "taro@example.jp", "C000001", "+819012345678"] {
            let expected = Array(HMAC<SHA256>.authenticationCode(for: Array(("phone:" + value).utf8), using: key))
            #expect(digester.digest(normalized: value, kind: .phone) == expected)
            let subject = Array(HMAC<SHA256>.authenticationCode(for: Array(("subject:" + value).utf8), using: key))
            #expect(digester.subjectDigest(externalID: value) == LookupDigester.hex(subject))
        }
        #expect(LookupDigester(key: SymmetricKey(size: .bits256)).digest(normalized: "x", kind: .exact) != digester.digest(normalized: "x", kind: .exact))
    }

    @Test("every digest is RFC 2104 HMAC-SHA-256, whatever the key's length and the text", arguments: [32, 64, 100])
    func keyLengths(size: Int) {
        // A key longer than SHA-256's block is hashed first; one of a block is used as it is.
        let key = SymmetricKey(data: (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ size) })
        let digester = LookupDigester(key: key)
        func reference(_ text: String) -> [UInt8] { Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: key)) }
        for value in ["", "山田 太郎", String(repeating: "x", count: 200), "a\u{0}b"] {
            #expect(digester.digest(normalized: value, kind: .email) == reference("email:" + value))
            #expect(digester.subjectDigest(externalID: value) == LookupDigester.hex(reference("subject:" + value)))
            #expect(digester.valueDigest(field: "name", value: value) == LookupDigester.hex(reference("value:name:" + value)))
        }
    }

    @Test("surrounding spaces and tabs, ASCII or ideographic, do not change a value; line breaks do", arguments: [
        ("  C000042 ", "C000042"), ("\u{3000}C000042\u{3000}", "C000042"), ("\tC000042\t", "C000042"), ("C 42", "C 42"), ("　", nil),
        ("C000042\n", "C000042\n"), ("\u{2028}C000042", "\u{2028}C000042"),
    ])
    func trimming(text: String, expected: String?) {
        #expect(Normalization.exact(text) == expected)
    }
}
