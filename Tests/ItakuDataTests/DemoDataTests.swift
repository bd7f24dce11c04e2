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
}

