import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuCore
import ItakuTestSupport
import Testing

@Suite("Several instances")
struct InstancesTests {
    @Test("a purpose change or a key revocation made through one instance is enforced by another within a second")
    func changesReachOtherInstances() async throws {
        let fixture = try await AdminFixture.make()
        let first = try await makeApplication(database: fixture.database)
        let second = try await makeApplication(database: fixture.database)
        let op = fixture.operatorKey
        try await first.test(.live) { one in
            try await second.test(.live) { two in
                _ = try await one.call(.post, "/v1/tenants", key: op, json: ["code": "acme-retail", "name": "Acme"])
                // Three keys, so that a revocation can be timed up to three times (reachesWithin).
                var keys: [(key: String, id: String)] = []
                for _ in 1...3 {
                    let created = try await one.call(.post, "/v1/keys", key: op, json: ["role": "client_admin", "tenant": "acme-retail"])
                    keys.append((try #require(created["key"] as? String), try #require(created["id"] as? String)))
                }
                let admin = keys[0].key
                _ = try await one.call(.put, "/v1/tenants/acme-retail/datasets/customers", key: admin, json: customersDataset)
                // The new keys reach the second instance: their first reload, untimed (on a
                // machine loaded by the tests beside this one it can take longer than later ones).
                for (key, _) in keys {
                    #expect(try await timeUntil(limit: .seconds(10)) {
                        try await two.call(.get, "/v1/tenants/acme-retail", key: key).status == .ok
                    } != nil)
                }
                // Timed while no test beside this one copies a database (which holds every
                // commit of the shared cluster up for a moment).
                try await WriteHeavyGate.shared.withLock {
                    // A purpose, then its changes, reach the second instance within a second.
                    let path = "/v1/tenants/acme-retail/purposes/order-support"
                    let changed = try await reachesWithin { (version: Int) async throws in
                        let status = try await one.call(
                            .put, path, key: admin, json: version == 1 ? purpose() : purpose(fields: ["name": "plain", "phone": version == 2 ? "mask" : "plain"]),
                            headers: version == 1 ? [:] : [.ifMatch: "\"v\(version - 1)\""]
                        ).status
                        #expect(status == (version == 1 ? .created : .ok))
                    } reached: { version in
                        try await two.call(.get, path, key: admin)["version"] as? Int == version
                    }
                    #expect(changed.contains { $0.map { $0 < .seconds(1) } == true }, "\(changed)")

                    // Revocation: at once on the instance that revoked, within a second on the other.
                    let revoked = try await reachesWithin { (attempt: Int) async throws in
                        let (key, id) = keys[keys.count - attempt]
                        #expect(try await one.call(.delete, "/v1/keys/\(id)", key: op).status == .noContent)
                        #expect(try await one.call(.get, "/v1/tenants/acme-retail", key: key).status == .unauthorized)
                    } reached: { attempt in
                        try await two.call(.get, "/v1/tenants/acme-retail", key: keys[keys.count - attempt].key).status == .unauthorized
                    }
                    #expect(revoked.contains { $0.map { $0 < .seconds(1) } == true }, "\(revoked)")
                }
            }
        }
    }
}
