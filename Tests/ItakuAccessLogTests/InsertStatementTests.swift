import Foundation
import Testing

@testable import ItakuAccessLog
@testable import ItakuPostgres

@Suite("The access log's prepared inserts")
struct InsertStatementTests {
    /// Any batch goes as prepared statements of a few fixed sizes, every entry exactly once and
    /// in order, each statement's parameters numbered for its own rows.
    @Test("a batch of any size up to 500 is split into prepared statements of fixed sizes and one smaller rest, every entry once, in order")
    func batchesSplitIntoFixedSizes() {
        let pool = (0..<500).map { n in
            var entry = AccessEntry(tenantID: nil, actorRole: "cli", actorKeyID: nil, operation: .review, decision: .allow, reason: "allowed")
            entry.requestID = "entry-\(n)"
            return entry
        }
        for count in [1, 2, 3, 15, 16, 17, 45, 63, 64, 255, 256, 257, 499, 500] {
            let queries = AccessLogStore.insertQueries(Array(pool.prefix(count)))
            let sizes = queries.map { $0.binds.count / 31 }
            #expect(sizes.reduce(0, +) == count)
            #expect(sizes.dropLast().allSatisfy(AccessLogStore.statementSizes.contains), "\(sizes)")
            #expect(sizes.last.map { AccessLogStore.statementSizes.contains($0) || $0 < 16 } == true, "\(sizes)")
            #expect(sizes.filter { !AccessLogStore.statementSizes.contains($0) }.count <= 1, "\(sizes)")
            if count < 16 { #expect(sizes == [count], "a small batch is one statement") }
            #expect(sizes == sizes.sorted(by: >))
            #expect(queries.allSatisfy { $0.isPrepared })
            for query in queries {
                let rows = query.binds.count / 31
                #expect(query.sql.contains("$\(rows * 31))") && !query.sql.contains("$\(rows * 31 + 1)"))
            }
        }
        // In order: the statements' request ids, read back in sequence, are the entries'.
        let ids = AccessLogStore.insertQueries(Array(pool.prefix(45))).flatMap { query in
            stride(from: 24, to: query.binds.count, by: 31).map { query.binds.bytes(at: $0).map { String(decoding: $0, as: UTF8.self) } }
        }
        #expect(ids == (0..<45).map { "entry-\($0)" })
    }

    /// An entry that cannot be stored is refused before it is queued: the check must agree with
    /// binding the entry for real, for every kind of value that cannot be sent.
    @Test("an entry is storable exactly when binding it encodes every value")
    func storableAgreesWithBinding() {
        var clean = CanonicalBytesTests.entry()
        clean.chain = ChainLink(stream: "s", seq: 1, previousHash: ChainLink.genesis, hash: ChainLink.genesis)
        var spoiled: [AccessEntry] = []
        let texts: [WritableKeyPath<AccessEntry, String?>] = [\.agent, \.purposeKey, \.caseRef, \.dataset, \.target, \.lookupKind, \.requestID, \.clientAddress]
        for path in texts {
            var entry = clean
            entry[keyPath: path] = "a\u{0}b"
            spoiled.append(entry)
        }
        for change in [
            { (entry: inout AccessEntry) in entry.actorRole = "\u{0}" }, { $0.reason = "x\u{0}" }, { $0.subjectDigests = ["ok", "\u{0}"] },
            { $0.fields = ["name\u{0}": "plain"] }, { $0.fields = ["name": "\u{0}"] }, { $0.chain?.stream = "s\u{0}" },
            { $0.occurredAt = Date(timeIntervalSince1970: 253_402_400_000) }, { $0.occurredAt = Date(timeIntervalSince1970: -62_200_000_000) },
        ] as [(inout AccessEntry) -> Void] {
            var entry = clean
            change(&entry)
            spoiled.append(entry)
        }
        for (index, entry) in ([clean] + spoiled).enumerated() {
            var binds = PostgresBindings()
            AccessLogStore.bind(entry, into: &binds)
            #expect(AccessLogStore.isStorable(entry) == (binds.encodingError == nil), "entry \(index)")
            #expect(AccessLogStore.isStorable(entry) == (index == 0), "entry \(index)")
        }
    }
}
