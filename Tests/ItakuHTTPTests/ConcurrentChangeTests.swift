import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuPostgres
import ItakuTestSupport
import Synchronization
import Testing

/// Changes that meet another change: one made through another instance, or in the database,
/// that this instance's registry has not read yet. (Written here as the owner, without the
/// notification, so that this instance's registry stays as it was.)
@Suite("Changes meeting other changes")
struct ConcurrentChangeTests {
    @Test("a PATCH writes only what it sends: it never reactivates an agent or a tenant changed meanwhile, and an ended tenant changes no more")
    func patchesWriteOnlyWhatTheySend() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        try await app.test(.live) { client in
            _ = try await client.setUpTenant("acme-retail", operatorKey: op)
            #expect(try await client.call(.post, "/v1/agents", key: op, json: ["employee_id": "A0001", "name": "Sato", "site": "Osaka"]).status == .created)

            // Deactivated elsewhere; a change of site here leaves it inactive.
            try await owner.query("UPDATE itaku.agents SET active = false WHERE employee_id = 'A0001'")
            let moved = try await client.call(.patch, "/v1/agents/A0001", key: op, json: ["site": "Kobe"])
            #expect(moved.status == .ok)
            #expect(moved["active"] as? Bool == false)
            #expect(moved["site"] as? String == "Kobe")
            let agent = try await owner.query("SELECT active, site FROM itaku.agents WHERE employee_id = 'A0001'")[0]
            #expect(try agent.decode(0, as: Bool.self) == false)
            #expect(try agent.decode(1, as: String.self) == "Kobe")

            // Suspended elsewhere; a rename here leaves it suspended.
            try await owner.query("UPDATE itaku.tenants SET status = 'suspended' WHERE code = 'acme-retail'")
            let renamed = try await client.call(.patch, "/v1/tenants/acme-retail", key: op, json: ["name": "Acme Retail"])
            #expect(renamed.status == .ok)
            #expect(renamed["status"] as? String == "suspended")
            #expect(try await owner.query("SELECT status FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: String.self) == "suspended")

            // A start moved elsewhere past the end this request sets: refused, nothing written.
            try await owner.query("UPDATE itaku.tenants SET contract_start = '2027-01-01' WHERE code = 'acme-retail'")
            let reversed = try await client.call(.patch, "/v1/tenants/acme-retail", key: op, json: ["contract_end": "2026-12-31"])
            #expect(reversed.status == .unprocessableContent, "\(reversed.text)")
            #expect(reversed.code == "invalid_contract_period")
            #expect(try await owner.query("SELECT contract_end IS NULL FROM itaku.tenants WHERE code = 'acme-retail'")[0].decode(0, as: Bool.self))

            // A contract ends only through contract-end (which disposes of the data).
            let ending = try await client.call(.patch, "/v1/tenants/acme-retail", key: op, json: ["status": "ended"])
            #expect(ending.status == .unprocessableContent)
            #expect(ending.code == "invalid_status")

            // Ended elsewhere: nothing here changes it, and no entry claims a change.
            try await owner.query("UPDATE itaku.tenants SET status = 'ended' WHERE code = 'acme-retail'")
            let entries = try await owner.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self)
            for body: [String: Any] in [["name": "Revived"], ["status": "active"]] {
                let refused = try await client.call(.patch, "/v1/tenants/acme-retail", key: op, json: body)
                #expect(refused.status == .conflict)
                #expect(refused.code == "tenant_ended")
            }
            let tenant = try await owner.query("SELECT name, status FROM itaku.tenants WHERE code = 'acme-retail'")[0]
            #expect(try tenant.decode(0, as: String.self) == "Acme Retail")
            #expect(try tenant.decode(1, as: String.self) == "ended")
            #expect(try await owner.query("SELECT count(*) FROM itaku.access_log")[0].decode(0, as: Int.self) == entries)
        }
    }

    @Test("a key revoked or an assignment deleted meanwhile answers 404, and no entry claims the revocation or deletion")
    func removalsThatFindNothingLogNothing() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        let reviewerKey = Mutex("")
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: op)
            _ = try await client.call(.put, "/v1/tenants/acme-retail/purposes/order-support", key: admin, json: purpose())
            _ = try await client.call(.post, "/v1/agents", key: op, json: ["employee_id": "A0001", "name": "Sato", "site": "Osaka"])
            #expect(try await client.call(
                .put, "/v1/tenants/acme-retail/assignments/A0001", key: op, json: [
                "purposes": ["order-support"], "valid_from": "2026-01-01T00:00:00+09:00", "valid_until": "2027-01-01T00:00:00+09:00",
            ]
            ).status == .created)
            let created = try await client.call(.post, "/v1/keys", key: op, json: ["role": "reviewer"])
            let keyID = try #require(created["id"] as? String)
            let keyUUID = try #require(UUID(uuidString: keyID))
            reviewerKey.withLock { $0 = keyUUID.uuidString.lowercased() }

            try await owner.query("UPDATE itaku.api_keys SET revoked_at = now() WHERE key_id = \(keyUUID)")
            try await owner.asTenant("acme-retail") { connection, tenantID in
                try await connection.query("DELETE FROM itaku.assignments WHERE tenant_id = \(tenantID)")
            }
            #expect(try await client.call(.delete, "/v1/keys/\(keyID)", key: op).status == .notFound)
            #expect(try await client.call(.delete, "/v1/tenants/acme-retail/assignments/A0001", key: op).status == .notFound)
        }
        let targets = try await owner.query("SELECT target FROM itaku.access_log").map { try $0.decode(0, as: String?.self) ?? "" }
        // Only the issues: the revocation meanwhile wrote no entry.
        #expect(!targets.contains { $0.hasPrefix("key:") && !$0.hasPrefix("key:client_admin:") && $0 != "key:reviewer:\(reviewerKey.withLock { $0 })" }, "\(targets)")
        #expect(targets.filter { $0 == "assignment:A0001" }.count == 1, "\(targets)")
    }

    @Test("an import never repeats a value it does not know as a column (a row that does not name the key field is no header), refuses a schema changed meanwhile, and refuses a JSON body that is no array")
    func importsRefuseCleanly() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        let path = "/v1/tenants/acme-retail/datasets/customers/imports"
        try await app.test(.live) { client in
            let admin = try await client.setUpTenant("acme-retail", operatorKey: fixture.operatorKey)

            // A file without its header row: its first line is data, and the answer names the
            // columns by their place.
            let headless = try await client.call(.post, path, key: admin, text: "C001,山田太郎,090-1234-5678,taro@example.com\n", contentType: "text/csv")
            #expect(headless.status == .unprocessableContent)
            #expect(!headless.text.contains("山田") && !headless.text.contains("090-1234-5678") && !headless.text.contains("taro@"), "\(headless.text)")
            let pointers = (headless["errors"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String }
            #expect(pointers.contains("column 2"), "\(pointers)")
            // Data that could pass for field names (lower case, digits, underscores) is not
            // named either: the row does not name the key field, so it is no header.
            let lowercase = try await client.call(.post, path, key: admin, text: "c000042,yamada_hanako\n", contentType: "text/csv")
            #expect(lowercase.status == .unprocessableContent)
            #expect(!lowercase.text.contains("c000042") && !lowercase.text.contains("yamada"), "\(lowercase.text)")
            let places = (lowercase["errors"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String }
            #expect(places.contains("column 1") && places.contains("column 2"), "\(places)")
            // A misspelt field name is still named.
            let misspelt = try await client.call(.post, path, key: admin, text: "customer_no,nmae\nC001,Taro\n", contentType: "text/csv")
            #expect((misspelt["errors"] as? [[String: Any]] ?? []).contains { $0["pointer"] as? String == "nmae" }, "\(misspelt.text)")
            // So it is after a spreadsheet's byte order mark, and beside a misspelt key field
            // (two other fields make the row a header).
            let marked = try await client.call(.post, path, key: admin, text: "\u{FEFF}custmer_no,name,phone,nmae\nC001,Taro,090-1234-5678,x\n", contentType: "text/csv")
            let named = (marked["errors"] as? [[String: Any]] ?? []).compactMap { $0["pointer"] as? String }
            #expect(named.contains("custmer_no") && named.contains("nmae"), "\(marked.text)")

            // Not an array: refused before it is parsed, whatever it holds.
            let values = Array(repeating: "0", count: 200_000).joined(separator: ",")
            let object = try await client.call(.post, path, key: admin, text: "{\"records\": [\(values)]}", contentType: "application/json")
            #expect(object.status == .badRequest)
            #expect(object.code == "invalid_json")

            // The schema changed since this instance read it: nothing is imported.
            try await owner.asTenant("acme-retail") { connection, tenantID in
                try await connection.query("UPDATE itaku.datasets SET version = version + 1 WHERE tenant_id = \(tenantID)")
            }
            let stale = try await client.call(.post, path, key: admin, text: "customer_no,name\nC001,Taro\n", contentType: "text/csv")
            #expect(stale.status == .conflict)
            #expect(stale.code == "dataset_changed")

        }
        let tenantRecords = try await owner.asTenant("acme-retail") { connection, _ in
            try await connection.query("SELECT count(*) FROM itaku.records")[0].decode(0, as: Int.self)
        }
        #expect(tenantRecords == 0)
    }
}
