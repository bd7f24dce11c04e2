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
                let created = try await one.call(.post, "/v1/keys", key: op, json: ["role": "client_admin", "tenant": "acme-retail"])
                let admin = try #require(created["key"] as? String)
                let keyID = try #require(created["id"] as? String)
                _ = try await one.call(.put, "/v1/tenants/acme-retail/datasets/customers", key: admin, json: customersDataset)
                // The new key reaches the second instance: its first reload, untimed (on a
                // machine loaded by the tests beside this one it can take longer than later ones).
                #expect(try await timeUntil(limit: .seconds(10)) {
                    try await two.call(.get, "/v1/tenants/acme-retail", key: admin).status == .ok
                } != nil)
                // Timed while no test beside this one copies a database (which holds every
                // commit of the shared cluster up for a moment).
                try await WriteHeavyGate.shared.withLock {
                    _ = try await one.call(.put, "/v1/tenants/acme-retail/purposes/order-support", key: admin, json: purpose())

                    // The purpose reaches the second instance within a second.
                    let seen = try await timeUntil {
                        try await two.call(.get, "/v1/tenants/acme-retail/purposes/order-support", key: admin)["version"] as? Int == 1
                    }
                    #expect(seen.map { $0 < .seconds(1) } == true, "\(String(describing: seen))")

                    _ = try await one.call(
                        .put, "/v1/tenants/acme-retail/purposes/order-support", key: admin,
                        json: purpose(fields: ["name": "plain"]), headers: [.ifMatch: "\"v1\""]
                    )
                    let changed = try await timeUntil {
                        try await two.call(.get, "/v1/tenants/acme-retail/purposes/order-support", key: admin)["version"] as? Int == 2
                    }
                    #expect(changed.map { $0 < .seconds(1) } == true, "\(String(describing: changed))")

                    // Revocation: at once on the instance that revoked, within a second on the other.
                    #expect(try await one.call(.delete, "/v1/keys/\(keyID)", key: op).status == .noContent)
                    #expect(try await one.call(.get, "/v1/tenants/acme-retail", key: admin).status == .unauthorized)
                    let revoked = try await timeUntil {
                        try await two.call(.get, "/v1/tenants/acme-retail", key: admin).status == .unauthorized
                    }
                    #expect(revoked.map { $0 < .seconds(1) } == true, "\(String(describing: revoked))")
                }
            }
        }
    }
}
