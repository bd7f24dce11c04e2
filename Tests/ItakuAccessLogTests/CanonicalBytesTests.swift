import Foundation
import ItakuAccessLog
import Testing

/// The bytes an entry's hash covers are the log's tamper evidence: every entry already written
/// was hashed over them, so they must never change, byte for byte.
@Suite struct CanonicalBytesTests {
    static func entry() -> AccessEntry {
        var entry = AccessEntry(
            tenantID: UUID(uuidString: "5F0E2C1A-8D3B-4C2E-9A1B-0C2D3E4F5A6B"), actorRole: "integration",
            actorKeyID: UUID(uuidString: "00000000-0000-4000-8000-000000000001"), operation: .lookup, decision: .allow,
            reason: "allowed"
        )
        entry.id = UUID(uuidString: "ABCDEF01-2345-4678-89AB-CDEF01234567")!
        entry.occurredAt = Date(timeIntervalSince1970: 1_765_000_000.123456)
        entry.integrationID = UUID(uuidString: "00000000-0000-4000-8000-000000000002")
        entry.agent = "A0001"
        entry.agentVerified = true
        entry.purposeKey = "order-support"
        entry.purposeVersion = 3
        entry.caseRef = "CALL-1001"
        entry.dataset = "callers"
        entry.target = "withheld:x\"y\\z\n\u{01}"
        entry.lookupKind = "phone"
        entry.lookupDigest = [0x00, 0x7F, 0xAB, 0xFF]
        entry.recordIDs = [UUID(uuidString: "11111111-2222-4333-8444-555555555555")!, UUID(uuidString: "66666666-7777-4888-8999-AAAAAAAAAAAA")!]
        entry.subjectDigests = ["d1", "d2"]
        entry.fields = ["phone": "mask", "name": "plain", "氏名": "plain"]
        entry.rowsReturned = 2
        entry.requestID = "req-1"
        entry.clientAddress = "10.0.0.1"
        return entry
    }

    @Test func everyFieldInItsPlace() {
        let text = String(decoding: Self.entry().canonicalBytes(stream: "i-1/ab12/t", seq: 42), as: UTF8.self)
        #expect(text == #"["itaku.access.v1","i-1/ab12/t",42,"abcdef01-2345-4678-89ab-cdef01234567",1765000000123456,"5f0e2c1a-8d3b-4c2e-9a1b-0c2d3e4f5a6b","integration","00000000-0000-4000-8000-000000000001","00000000-0000-4000-8000-000000000002","A0001",true,"order-support",3,"CALL-1001","lookup","callers","withheld:x\"y\\z\n\u0001",null,null,"phone","007fabff",["11111111-2222-4333-8444-555555555555","66666666-7777-4888-8999-aaaaaaaaaaaa"],["d1","d2"],{"name":"plain","phone":"mask","氏名":"plain"},"allow","allowed",2,"req-1","10.0.0.1"]"#)
    }

    @Test func absentValuesAreNull() {
        var entry = AccessEntry(tenantID: nil, actorRole: "admin", actorKeyID: nil, operation: .review, decision: .deny, reason: "r")
        entry.id = UUID(uuidString: "ABCDEF01-2345-4678-89AB-CDEF01234567")!
        entry.occurredAt = Date(timeIntervalSince1970: -1.5)
        let text = String(decoding: entry.canonicalBytes(stream: "s", seq: 1), as: UTF8.self)
        #expect(text == #"["itaku.access.v1","s",1,"abcdef01-2345-4678-89ab-cdef01234567",-1500000,null,"admin",null,null,null,null,null,null,null,"review",null,null,null,null,null,null,[],[],null,"deny","r",0,null,null]"#)
    }
}
