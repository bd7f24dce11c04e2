import Foundation
import ItakuCore
import Testing

@Suite("UUIDs")
struct UUIDTests {
    @Test("random ids are version 4, distinct, and read back by Foundation")
    func random() {
        let ids = (0..<1_000).map { _ in UUID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            let text = id.uuidString
            #expect(Array(text)[14] == "4")
            #expect("89AB".contains(Array(text)[19]))
            #expect(UUID(uuidString: text) == id)
        }
    }

    @Test("the lower-case text is Foundation's text, lower-cased")
    func text() {
        for id in (0..<200).map({ _ in UUID() }) + [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))] {
            #expect(id.lowercasedString == id.uuidString.lowercased())
        }
        #expect(UUID(uuidString: "5F0E2C1A-8D3B-4C7E-9A61-2B4D6F8E0A13")!.lowercasedString == "5f0e2c1a-8d3b-4c7e-9a61-2b4d6f8e0a13")
    }
}
