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

    /// A tenant's pattern runs in a backtracking engine on every agent call: one that can
    /// backtrack without end would hold a thread per request.
    @Test("a pattern that nests repetition, or repeats alternatives, or has more than three unbounded parts, or that the check cannot read (the (?x) option, a brace of digits in no quantifier form), is refused and accepts nothing")
    func patternsMatchInBoundedTime() {
        for safe in [
            CaseReference.defaultPattern, Self.viaRegex, "[A-Z]{2,4}-[0-9]+", "CS[0-9]{8}", "(INC|REQ)[0-9]{7}", "(ab)?c+", "([A-Z]{2}-){3}[0-9]+",
            #"T\+[0-9]+"#, "[(+]x+", "(x[0-9]+)?y*z*", "[A-Z]{,4}-[0-9]{1,9}", "(?:INC|REQ)[0-9]{7}", #"\p{Lu}{2}[0-9]+"#,
            #"CASE\{[0-9]+\}"#, "(?i)inc[0-9]{7}", "(?<ticket>INC[0-9]{7})", "(?>[A-Z]+)-[0-9]+", "(?=[A-Z])[A-Z0-9]{4,12}",
        ] {
            #expect(CaseReference.isValidPattern(safe), "\(safe)")
        }
        for unsafe in [
            "(a+)+b", "([A-Z]+-?)+[0-9]+", "(a|ab)*c", "(x*){2,}", "(a{1,3}){1,100}", ".*.*.*.*x", "((ab)*)+", "(a?)+",
            // `{,m}` is 0 to m repetitions; options such as (?x) make `(a|ab) *` repeat the group.
            "([A-Z]|[A-Z0-9]){,64}X", "(A|AA){,100}B", "(?x)(A|AA) *B", "(?ix)(A|AA) *B", "(?x:(A|AA) *)B", "(?#c)(A|AA)*B",
            "(?i)(a|aa)+b", "(?<n>A|AA)*B", "(A|AA){ 1,9}B",
            // An exact count repeats too; text the check cannot follow (a class in a class,
            // quoted text, a group left open) hides the structure.
            "(a?){64}a{64}", "(a|a){64}", "(?:a|a|[x[y]z(])*", #"(?:a|a|\Q(\E)*"#, "(a|aa", "(?<*a|aa)*b",
        ] {
            #expect(!CaseReference.isValidPattern(unsafe), "\(unsafe)")
            // Stored before patterns were checked: it accepts nothing, at once.
            #expect(!CaseReference.isAcceptable(String(repeating: "A", count: 60), pattern: unsafe))
        }
    }
}
