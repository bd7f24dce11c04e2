import Foundation
import ItakuCore
import Testing

@Suite("UUIDs")
struct UUIDTests {
    @Test("random ids are version 4, distinct, and read back by Foundation")
    func random() {
        // More than the pool holds at once: ids keep coming, none repeats.
        let ids = (0..<1_000).map { _ in UUID.random() }
        #expect(Set(ids).count == ids.count)
        for id in ids {
            let text = id.uuidString
            #expect(Array(text)[14] == "4")
            #expect("89AB".contains(Array(text)[19]))
            #expect(UUID(uuidString: text) == id)
        }
    }

    @Test("records and access entries get version-7 ids that sort by creation time and never repeat")
    func timeOrdered() {
        let start = Date(timeIntervalSince1970: 1_790_000_000)
        let ids = (0..<1000).map { UUID.timeOrdered(at: start.addingTimeInterval(Double($0) / 100)) }
        #expect(Set(ids).count == ids.count)
        #expect(ids.allSatisfy { $0.uuidString.dropFirst(14).first == "7" })
        #expect(ids.allSatisfy { ["8", "9", "A", "B"].contains($0.uuidString.dropFirst(19).first.map(String.init)) })
        // Ids of different milliseconds sort in time order.
        let firsts = stride(from: 0, to: 1000, by: 10).map { ids[$0].uuidString }
        #expect(firsts == firsts.sorted())
        #expect(ids[0].uuidString.hasPrefix("01A0C450-6C00-7"))
    }

    @Test("the lower-case and upper-case texts are Foundation's text")
    func text() {
        for id in (0..<200).map({ _ in UUID() }) + [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))] {
            #expect(id.lowercasedString == id.uuidString.lowercased())
            #expect(id.uppercasedString == id.uuidString)
        }
        #expect(UUID(uuidString: "5F0E2C1A-8D3B-4C7E-9A61-2B4D6F8E0A13")!.lowercasedString == "5f0e2c1a-8d3b-4c7e-9a61-2b4d6f8e0a13")
    }
}

@Suite("Record documents read without Foundation's parser")
struct StringObjectTests {
    static func parse(_ text: String) -> [String: String]? {
        Array(text.utf8).withUnsafeBufferPointer { JSONText.stringObject($0) }
    }

    @Test("what Foundation reads, including escapes and characters beyond the BMP, reads the same")
    func agreesWithFoundation() throws {
        let values = ["山田 太郎", "\"quoted\"", "back\\slash", "line\nbreak\ttab", "\u{01}", "😀 emoji", "", "a/b"]
        var object: [String: String] = [:]
        for (index, value) in values.enumerated() { object["f\(index)"] = value }
        let encoded = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        #expect(Self.parse(encoded) == object)
        // Escapes Foundation's writer does not use, and spaces between tokens.
        #expect(Self.parse(#" { "a" : "\u5c71\u7530" , "b":"\ud83d\ude00\/\b\f\r" } "#) == ["a": "山田", "b": "😀/\u{08}\u{0C}\r"])
        #expect(Self.parse("{}") == [:])
    }

    @Test("anything but an object of strings is refused, for the full parser to judge")
    func refuses() {
        for text in [#"{"a":1}"#, #"{"a":"x"} x"#, #"{"a":"x""#, #"["a"]"#, #"{"a":"\ud83d"}"#, #"{"a":"\q"}"#, "{\"a\":\"\u{01}\"}", #"{"a" "x"}"#] {
            #expect(Self.parse(text) == nil, "\(text)")
        }
    }
}

@Suite("Small request bodies read without Foundation's parser")
struct FlatObjectTests {
    static func parse(_ text: String) -> [String: JSONText.FlatValue]? {
        Array(text.utf8).withUnsafeBufferPointer { JSONText.flatObject($0) }
    }

    @Test("strings, arrays of strings and null, with escapes and spaces")
    func reads() {
        #expect(Self.parse(#" { "by" : "phone", "value":"03\u002d1234","fields":[ "name" , "phone" ], "x": null, "e": [] } "#) == [
            "by": .string("phone"), "value": .string("03-1234"), "fields": .strings(["name", "phone"]), "x": .null, "e": .strings([]),
        ])
    }

    @Test("anything else is refused, a key given twice included, for the full parser to judge")
    func refuses() {
        for text in [
            #"{"a":1}"#, #"{"a":true}"#, #"{"a":["x",1]}"#, #"{"a":["x",]}"#, #"{"a":nul}"#, #"{"a":"x","a":"y"}"#,
            #"{"a":["x"] } ]"#, #"{"a":{"b":"c"}}"#, #"{"a":"\ud800"}"#, "{\"a\":\"\u{1F}\"}",
        ] {
            #expect(Self.parse(text) == nil, "\(text)")
        }
    }
}
