import ItakuData
import Testing

@Suite("Lookup normalisation")
struct NormalizationTests {
    @Test("every common way of writing a Japanese phone number normalises to the same E.164", arguments: [
        "090-1234-5678", "09012345678", "+81 90 1234 5678", "+81-90-1234-5678", "０９０－１２３４－５６７８",
        "(090) 1234-5678", "+81 (0)90 1234 5678", "0081 90 1234 5678", "090 1234 5678",
    ])
    func mobileForms(text: String) {
        #expect(Normalization.phone(text) == "+819012345678")
    }

    @Test("landlines keep their area code", arguments: [("03-1234-5678", "+81312345678"), ("(06) 6123-4567", "+81661234567"), ("045-123-4567", "+81451234567")])
    func landlines(text: String, expected: String) {
        #expect(Normalization.phone(text) == expected)
    }

    @Test("things that are not phone numbers are refused", arguments: ["", "abc", "12345", "090-1234-567", "0901234567890", "電話 090-1234-5678"])
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
