import ItakuData
import ItakuDemo
import ItakuRegistry
import Testing

@Suite("Demo data")
struct DemoDataTests {
    @Test("the same seed gives the same customers; another seed gives others")
    func deterministic() {
        let first = Array(DemoCustomers(count: 50))
        #expect(first == Array(DemoCustomers(count: 50)))
        #expect(first != Array(DemoCustomers(count: 50, seed: 99)))
        #expect(first[0]["customer_no"] == "C000001")
    }

    @Test("every generated customer is valid for the demo schema, with a working phone lookup")
    func generatedCustomersAreValid() {
        let validator = RecordValidator(schema: DemoSeeder.customersSchema)
        var fullWidth = 0
        for customer in DemoCustomers(count: 2000) {
            let issues = validator.issues(customer)
            #expect(issues.isEmpty, "\(customer["phone"] ?? "") \(issues)")
            #expect(Normalization.phone(customer["phone"] ?? "")?.hasPrefix("+81") == true)
            if customer["phone"]?.unicodeScalars.first.map({ $0.value > 0xFF00 }) == true { fullWidth += 1 }
        }
        #expect(fullWidth > 0)
    }

    @Test("a record key with white space at either end, or a tab or a line break, is refused; one with spaces inside is kept")
    func keysAreMatchedExactly() {
        let validator = RecordValidator(schema: DemoSeeder.customersSchema)
        let key = DemoSeeder.customersSchema.keyField
        var customer = DemoCustomers(count: 1).first(where: { _ in true })!
        for bad in ["C001 ", " C001", "C001\u{3000}", "\u{00A0}C001", "C0\t01", "C001\n", "C0\r\n01", "C0\u{2028}01", "C001\u{0085}"] {
            customer[key] = bad
            #expect(validator.issues(customer).map(\.code) == ["invalid_key"], "\(bad.unicodeScalars.map(\.value))")
        }
        for good in ["C001", "AB 001", "顧客-001"] {
            customer[key] = good
            #expect(validator.issues(customer).isEmpty, "\(good)")
        }
    }
}
