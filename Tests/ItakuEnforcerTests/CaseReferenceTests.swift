import ItakuRegistry
import Testing

@Suite("Case references")
struct CaseReferenceTests {
    /// The same pattern, written so that it goes through the regular-expression engine.
    static let viaRegex = "(?:" + CaseReference.defaultPattern + ")"

    @Test("the default pattern admits call and ticket ids and refuses what could be personal data")
    func examples() {
        for accepted in [
            "CALL-1001", "INC0012345", "case:42", "T#7", "123456789", "5f0e2c1a-8d3b-4c7e-9a61-2b4d6f8e0a13", "ABCDEFGHIJKLMNOP1",
            "CALL-123456789",
        ] {
            #expect(CaseReference.isAcceptable(accepted, pattern: nil), "\(accepted)")
        }
        for refused in ["", "090-1234-5678", "09012345678", "1234567890", "yamada", "a@b.jp", "CALL-", "ABCDEFGHIJKLMNOPQ1", "C--1", "CALL-1234567890", "5f0e2c1a-8d3b-4c7e-9a61-2b4d6f8e0a1"] {
            #expect(!CaseReference.isAcceptable(refused, pattern: nil), "\(refused)")
        }
    }

    @Test("the hand-written match of the default pattern agrees with the pattern")
    func agreesWithRegex() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("AZaz09-_:.#fF5x")
        let uuid = Array("5f0e2c1a-8d3b-4c7e-9a61-2b4d6f8e0a13")
        for round in 0..<3_000 {
            var text: [Character]
            if round % 3 == 0 {
                // Near-UUIDs: one character changed.
                text = uuid
                text[Int.random(in: 0..<36, using: &generator)] = alphabet.randomElement(using: &generator)!
            } else {
                text = (0..<Int.random(in: 0...20, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }
            }
            let reference = String(text)
            #expect(
                CaseReference.isAcceptable(reference, pattern: nil) == CaseReference.isAcceptable(reference, pattern: Self.viaRegex),
                "\(reference)"
            )
        }
    }
}
