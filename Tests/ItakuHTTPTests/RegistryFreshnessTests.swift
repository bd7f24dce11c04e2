import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuPostgres
import ItakuTestSupport
import Testing

/// An instance acts only on a registry it read recently: keys, purposes and assignments may have
/// been revoked since an old read.
@Suite("Registry freshness")
struct RegistryFreshnessTests {
    @Test("an instance that cannot read its registry for longer than registry.maxAgeSeconds refuses authenticated calls with 503 and is not ready; it serves again once it reads, and its log says so once, not at every retry")
    func staleRegistryFailsClosed() async throws {
        let fixture = try await AdminFixture.make()
        let logs = CapturedLogs()
        let app = try await makeApplication(database: fixture.database, settings: ["registry.maxAgeSeconds": 2], logger: logs.logger())
        let owner = fixture.database.makeClient(role: .owner)
        try await app.test(.live) { client in
            #expect(try await client.call(.get, "/v1/tenants", key: fixture.operatorKey).status == .ok)
            // The registry's reads now fail (as when the reader's connection or role breaks).
            try await owner.query("REVOKE SELECT ON itaku.tenants FROM itaku_reader")
            var refused: JSONResponse?
            for _ in 0..<40 {
                let answer = try await client.call(.get, "/v1/tenants", key: fixture.operatorKey)
                if answer.status != .ok { refused = answer; break }
                try await Task.sleep(for: .milliseconds(250))
            }
            let answer = try #require(refused, "still served on a registry older than its maximum age")
            #expect(answer.status == .serviceUnavailable && answer.code == "registry_unavailable", "\(answer.text)")
            #expect(answer.headers[.retryAfter] != nil)
            #expect(try await client.call(.get, "/readyz", key: nil).code == "registry_unavailable")
            #expect(try await client.call(.get, "/console/sign-in", key: nil).status == .serviceUnavailable)
            // Health needs no registry.
            #expect(try await client.call(.get, "/livez", key: nil).status == .ok)

            try await owner.query("GRANT SELECT ON itaku.tenants TO itaku_reader")
            var served = false
            for _ in 0..<40 where !served {
                try await Task.sleep(for: .milliseconds(250))
                served = try await client.call(.get, "/v1/tenants", key: fixture.operatorKey).status == .ok
            }
            #expect(served)
            // Ready again (a registry only 2 s old at most may lapse between reads on a loaded
            // machine: asked until it answers, within 10 s).
            let ready = try await timeUntil(limit: .seconds(10)) { try await client.call(.get, "/readyz", key: nil).status == .ok }
            #expect(ready != nil)
        }
        await owner.shutdown()
        // Seconds of failed reloads, retried with a growing pause: one warning (another only
        // after 30 s), and one notice when reading works again, which counts the failures.
        let failed = logs.all.filter { $0.message == "registry reload failed" }
        #expect(failed.count == 1, "\(failed.count) warnings")
        let recovered = try #require(logs.all.first { $0.message == "registry reload works again" })
        #expect((Int(recovered.metadata["itaku.failures"] ?? "") ?? 0) >= 2)
    }

    @Test("a change committed while the registry cannot be read is answered as done, a new key's secret included, and is in force once it reads again")
    func committedChangeIsAnswered() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let owner = fixture.database.makeClient(role: .owner)
        try await app.test(.live) { client in
            try await owner.query("REVOKE SELECT ON itaku.agents FROM itaku_reader")
            let agent = try await client.call(.post, "/v1/agents", key: fixture.operatorKey, json: ["employee_id": "A9001", "name": "Sato"])
            #expect(agent.status == .created && agent["employee_id"] as? String == "A9001", "\(agent.text)")
            let created = try await client.call(.post, "/v1/keys", key: fixture.operatorKey, json: ["role": "reviewer", "label": "audit"])
            #expect(created.status == .created, "\(created.text)")
            let key = try #require(created["key"] as? String)
            try await owner.query("GRANT SELECT ON itaku.agents TO itaku_reader")
            var works = false
            for _ in 0..<40 where !works {
                works = try await client.call(.get, "/v1/access-log?limit=1", key: key).status == .ok
                if !works { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(works, "the key issued while the registry could not be read never came into force")
        }
        #expect(try await owner.query("SELECT count(*) FROM itaku.agents WHERE employee_id = 'A9001'")[0].decode(0, as: Int.self) == 1)
        await owner.shutdown()
    }
}
