import Foundation
import ItakuCore
import Logging
import Testing

@Suite("JSON log lines")
struct JSONLogHandlerTests {
    @Test("a record is one line of valid JSON, keys in order, values escaped, metadata merged")
    func line() throws {
        var handler = JSONLogHandler(label: "itaku")
        handler[metadataKey: "itaku.instance"] = "a"
        let text = handler.line(
            level: .warning, message: "a \"quoted\"\nmessage",
            metadata: ["http.route": "/v1/tenants/{tenant}", "itaku.instance": "b", "itaku.codes": ["x", "y"], "itaku.n": .stringConvertible(42)],
            time: Date(timeIntervalSince1970: 1_790_000_000.25)
        )
        #expect(text.hasSuffix("}\n") && text.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
        #expect(object["message"] as? String == "a \"quoted\"\nmessage")
        #expect(object["level"] as? String == "warning")
        #expect(object["itaku.instance"] as? String == "b")
        #expect(object["itaku.codes"] as? [String] == ["x", "y"])
        #expect(object["itaku.n"] as? String == "42")
        #expect((object["time"] as? String)?.hasPrefix("2026-09-21T") == true)
        let keys = ["http.route", "itaku.codes", "itaku.instance", "itaku.n", "label", "level", "message", "time"]
        #expect(keys.compactMap { text.range(of: "\"\($0)\":")?.lowerBound } == keys.compactMap { text.range(of: "\"\($0)\":")?.lowerBound }.sorted())
    }
}
