import Foundation
import NIOCore
import Testing

@testable import ItakuHTTP

/// A lookup's body is read without Foundation when it has the plain shape; whatever the shape,
/// it must read to what the decoder reads, and fail as the decoder fails.
@Suite struct LookupBodyTests {
    static func read(_ text: String) -> Result<AgentController.LookupBody, Problem> {
        Result { try AgentController.LookupBody.read(ByteBuffer(string: text)) }.mapError { $0 as? Problem ?? .internalError }
    }

    static func decoded(_ text: String) -> AgentController.LookupBody? {
        try? JSONDecoder().decode(AgentController.LookupBody.self, from: Data(text.utf8))
    }

    @Test func readsAsTheDecoderReads() throws {
        let bodies = [
            #"{"by":"phone","value":"090-1234-5678"}"#,
            #"{ "value" : "山田\n", "by":"name", "fields": ["name","phone"] }"#,
            #"{"by":"phone","value":"1","fields":null}"#,
            #"{"by":"phone","value":"\"x\"","fields":[]}"#,
            #"{"by":"phone","value":"1","extra":{"a":[1,2]}}"#,
        ]
        for body in bodies {
            let read = try Self.read(body).get()
            let decoded = try #require(Self.decoded(body), "\(body)")
            #expect(read.by == decoded.by && read.value == decoded.value && read.fields == decoded.fields, "\(body)")
        }
    }

    @Test func failsAsTheDecoderFails() {
        for body in [#"{"by":"phone"}"#, #"{"by":"phone","value":1}"#, #"{"by":"phone","value":"1","fields":"name"}"#, "{", "", "[]"] {
            guard case .failure(let problem) = Self.read(body) else {
                Issue.record("\(body) was read")
                continue
            }
            #expect(problem.code == "invalid_json", "\(body)")
        }
        guard case .failure(let problem) = Self.read(#"{"by":"phone","value":1}"#) else { return }
        #expect(problem.pointer == "value")
    }
}

@Suite("JSON import counting")
struct JSONImportCountTests {
    @Test("the top-level values of a JSON array are counted without parsing; strings, nesting and escapes do not count")
    func counts() {
        let cases: [(String, Int?)] = [
            ("[]", 0), (" [ ] ", 0), ("[1]", 1), ("[1,2,3]", 3), (#"[{"a":"x,y"},{"b":[1,2]},"\",\\"]"#, 3),
            (#"[{"a":"\"]"}]"#, 1), ("{}", nil), ("\"x\"", nil), ("", nil),
        ]
        for (text, count) in cases {
            #expect(ImportsController.topLevelCount(Array(text.utf8)) == count, "\(text)")
        }
    }
}
