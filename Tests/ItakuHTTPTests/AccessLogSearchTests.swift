import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuAccessLog
import ItakuCore
import ItakuData
import ItakuPostgres
import ItakuRegistry
import Configuration
import ItakuTestSupport
import Testing

@Suite("Access-log search and export")
struct AccessLogSearchTests {
    @Test("an export whose first page cannot be read answers an error, never a 200 that looks like an empty log; a path of empty segments is authenticated like its route")
    func exportFailsBeforeItStarts() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            let reviewer = try #require(try await client.call(.post, "/v1/keys", key: op, json: ["role": "reviewer"])["key"] as? String)
            #expect(try await client.call(.get, "/v1/access-log/export?format=jsonl", key: reviewer).status == .ok)
            // The reader role loses the log (as a database whose statement fails would).
            let owner = fixture.database.makeClient(role: .owner)
            try await owner.query("REVOKE SELECT ON itaku.access_log FROM itaku_reader")
            await owner.shutdown()
            let failed = try await client.call(.get, "/v1/access-log/export?format=jsonl", key: reviewer)
            #expect(failed.status != .ok, "\(failed.status) \(failed.text)")
            #expect(failed.headers[.contentType] == "application/problem+json")

            // "//v1/…" is routed as "/v1/…": without a key it is 401 like any /v1 path, route or not.
            for path in ["//v1/tenants", "//v1/no-such-route"] {
                let anonymous = try await client.call(.get, path, key: nil)
                #expect(anonymous.status == .unauthorized, "\(path)")
            }
        }
    }

    @Test("reviewers page through all tenants, client admins through their own; every read is itself logged")
    func searchAndExport() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            var admins: [String: String] = [:]
            for code in ["acme-retail", "kobe-insurance"] {
                _ = try await client.call(.post, "/v1/tenants", key: op, json: ["code": code, "name": code])
                admins[code] = try await client.call(.post, "/v1/keys", key: op, json: ["role": "client_admin", "tenant": code])["key"] as? String
                // A caller-chosen request id that a spreadsheet would run as a formula.
                _ = try await client.call(.put, "/v1/tenants/\(code)/datasets/customers", key: admins[code], json: customersDataset,
                                          headers: [.itakuRequestIDForTests: "-2-3"])
            }
            let reviewer = try #require(try await client.call(.post, "/v1/keys", key: op, json: ["role": "reviewer"])["key"] as? String)

            // Newest first, in pages that neither overlap nor skip.
            var seen: [String] = []
            var cursor: String?
            repeat {
                let page = try await client.call(
                    .get, "/v1/access-log?operation=configure&limit=2" + (cursor.map { "&cursor=\($0)" } ?? ""), key: reviewer
                )
                #expect(page.status == .ok)
                let entries = try #require(page["entries"] as? [[String: Any]])
                #expect(entries.count <= 2)
                seen += entries.compactMap { $0["entry_id"] as? String }
                let times = entries.compactMap { $0["occurred_at"] as? String }
                #expect(times == times.sorted(by: >))
                cursor = page["next_cursor"] as? String
            } while cursor != nil
            #expect(seen.count == 7)
            #expect(Set(seen).count == seen.count)

            // A client admin sees only its tenant; another tenant's log answers 404.
            let own = try await client.call(.get, "/v1/tenants/acme-retail/access-log", key: admins["acme-retail"])
            let ownEntries = try #require(own["entries"] as? [[String: Any]])
            let acmeID = ownEntries.first?["tenant_id"] as? String
            #expect(!ownEntries.isEmpty)
            #expect(ownEntries.allSatisfy { $0["tenant_id"] as? String == acmeID })
            #expect(try await client.call(.get, "/v1/tenants/kobe-insurance/access-log", key: admins["acme-retail"]).status == .notFound)
            #expect(try await client.call(.get, "/v1/access-log", key: admins["acme-retail"]).status == .forbidden)

            // Reads of the log are entries too, visible to the tenant they concern.
            let reviews = try await client.call(.get, "/v1/tenants/acme-retail/access-log?operation=review", key: admins["acme-retail"])
            #expect((reviews["entries"] as? [[String: Any]])?.contains { $0["target"] as? String == "access-log:search" } == true)

            // Exports: CSV with formula cells neutralised, JSON lines, OCSF API Activity.
            let csv = try await client.call(.get, "/v1/access-log/export?format=csv&operation=configure", key: reviewer)
            #expect(csv.headers[.contentType] == "text/csv; charset=utf-8")
            let lines = csv.text.split(separator: "\n")
            #expect(lines.first?.hasPrefix("entry_id,occurred_at") == true)
            #expect(lines.count == 8)
            #expect(csv.text.contains(",'-2-3,"))
            #expect(!csv.text.contains(",-2-3,"))
            let jsonl = try await client.call(.get, "/v1/tenants/acme-retail/access-log/export?format=jsonl", key: admins["acme-retail"])
            let objects = jsonl.text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(!objects.isEmpty && objects.allSatisfy { $0["tenant_id"] as? String == acmeID })
            let ocsf = try await client.call(.get, "/v1/access-log/export?format=ocsf&operation=configure", key: reviewer)
            let events = ocsf.text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            #expect(events.count == 7)
            #expect(events.allSatisfy { $0["class_uid"] as? Int == 6003 && $0["category_uid"] as? Int == 6 && $0["type_uid"] as? Int == 600303 })
            // An export's end is an entry too, with the number of entries it sent.
            let counted = try await timeUntil(limit: .seconds(5)) {
                let reviews = try await client.call(.get, "/v1/access-log?operation=review&limit=100", key: reviewer)
                return (reviews["entries"] as? [[String: Any]] ?? []).contains {
                    $0["target"] as? String == "access-log:export:ocsf:done" && $0["rows_returned"] as? Int == 7
                }
            }
            #expect(counted != nil)

            let bad = try await client.call(.get, "/v1/access-log?from=yesterday", key: reviewer)
            #expect(bad.status == .badRequest)
            #expect(bad.code == "invalid_parameter")
            #expect(bad.pointer == "from")
            #expect(try await client.call(.get, "/v1/access-log?limit=100000", key: reviewer).pointer == "limit")

            // Verification over HTTP, with the checkpoints and the key that checks them.
            let verified = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
            #expect(verified["clean"] as? Bool == true)
            // Listing writes nothing: the writer's own checkpoints (every 5 s) are what it lists.
            var ownList: [[String: Any]] = []
            for _ in 0..<60 where ownList.isEmpty {
                let own = try await client.call(.get, "/v1/access-log/checkpoints", key: admins["acme-retail"])
                ownList = (own["checkpoints"] as? [[String: Any]]) ?? []
                if ownList.isEmpty { try await Task.sleep(for: .milliseconds(250)) }
            }
            let checkpoints = try await client.call(.get, "/v1/access-log/checkpoints", key: reviewer)
            #expect((checkpoints["public_key"] as? String)?.isEmpty == false)
            let all = try #require(checkpoints["checkpoints"] as? [[String: Any]])
            #expect(!ownList.isEmpty && ownList.count < all.count)
            #expect(ownList.allSatisfy { $0["tenant"] as? String == "acme-retail" })
        }
    }
}

@Suite("Access-log search by value")
struct AccessLogValueSearchTests {
    @Test("a lookup value or a subject is found through its digest; the value itself is stored nowhere in the log")
    func searchByDigest() async throws {
        let fixture = try await AdminFixture.make()
        let state = try TestStateFolders.make()
        let app = try await makeApplication(database: fixture.database, settings: ["state.directory": .init(.string(state), isSecret: false)])
        let op = fixture.operatorKey
        try await app.test(.live) { client in
            _ = try await client.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": "Acme"])
            let reviewer = try #require(try await client.call(.post, "/v1/keys", key: op, json: ["role": "reviewer"])["key"] as? String)
            // An entry as the agent API writes it: digests made with the tenant's key from the same keyring.
            let keyring = try Keyring.load(file: state + "/keyring.json", directory: nil, generate: false)
            let tenantID = try #require(UUID(uuidString: try await client.call(.get, "/v1/access-log?tenant=acme-retail&operation=configure&limit=1", key: reviewer)
                .body["entries"].flatMap { ($0 as? [[String: Any]])?.first?["tenant_id"] as? String } ?? ""))
            let digester = LookupDigester(key: keyring.digestKey(tenant: tenantID.uuidString))
            var entry = AccessEntry(tenantID: tenantID, actorRole: "integration", actorKeyID: nil, operation: .lookup, decision: .allow, reason: "allowed")
            entry.lookupKind = "phone"
            entry.lookupDigest = digester.digest(normalized: "+819012345678", kind: .phone)
            entry.subjectDigests = [digester.subjectDigest(externalID: "C000042")]
            let hash = AccessEntry.chainHash(previous: ChainLink.genesis, canonical: entry.canonicalBytes(stream: "test/search", seq: 1))
            entry.chain = ChainLink(stream: "test/search", seq: 1, previousHash: ChainLink.genesis, hash: hash)
            let runtime = fixture.database.makeClient(role: .runtime)
            try await runtime.withTransaction { try await AccessLogStore.insert(entry, on: $0) }
            await runtime.shutdown()

            for query in ["lookup_kind=phone&lookup_value=090-1234-5678", "lookup_kind=phone&lookup_value=%2B81%2090%201234%205678", "subject=C000042"] {
                let found = try await client.call(.get, "/v1/access-log?operation=lookup&" + query, key: reviewer)
                #expect((found["entries"] as? [[String: Any]])?.map { $0["entry_id"] as? String } == [entry.id.uuidString.lowercased()], "\(query)")
            }
            let other = try await client.call(.get, "/v1/access-log?operation=lookup&subject=C000043", key: reviewer)
            #expect((other["entries"] as? [Any])?.isEmpty == true)
        }
        let owner = fixture.database.makeClient(role: .owner)
        let leaked = try await owner.query("SELECT count(*) FROM itaku.access_log WHERE row_to_json(access_log)::text ~ '(1234.?5678|C000042)'")
        await owner.shutdown()
        #expect(try leaked[0].decode(0, as: Int.self) == 0)
    }
}
