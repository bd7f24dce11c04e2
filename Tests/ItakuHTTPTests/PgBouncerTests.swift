import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuCore
import ItakuDemo
import ItakuPostgres
import ItakuTestSupport
import Logging
import Testing

/// Scale-out as deployed: two Itaku instances against one PostgreSQL through a transaction-
/// pooling PgBouncer. Runs where Debian's `pgbouncer` is installed (`./Deploy/test` installs it
/// and sets ITAKU_REQUIRE_PGBOUNCER, so CI never skips it).
@Suite("Scale-out through PgBouncer")
struct PgBouncerTests {
    static let available = TestPgBouncer.executable != nil || ProcessInfo.processInfo.environment["ITAKU_REQUIRE_PGBOUNCER"] != nil

    @Test(
        "two instances through PgBouncer: changes reach the other within 1 s, each writes its own streams, two tenants' lookups never mix, the log verifies",
        .enabled(if: available && ProcessInfo.processInfo.environment["ITAKU_TEST_DB_URL"] == nil)
    )
    func twoInstancesThroughPgBouncer() async throws {
        let (database, state, _, credentials) = try await seededDemo(customers: 50, policyholders: 20)
        // Two server sessions per role for both instances: every request shares them.
        let bouncer = try TestPgBouncer.start(for: database.cluster, serverPoolSize: 2)
        defer { bouncer.stop() }
        func instance(_ id: String) async throws -> some ApplicationProtocol {
            try await makeApplication(database: database, settings: [
                "state.directory": .init(.string(state), isSecret: false),
                "instance.id": .init(.string(id), isSecret: false),
                "db.pooler": "transaction",
                "db.url": .init(.string(bouncer.url(database: database.name, user: "itaku_runtime")), isSecret: true),
                "db.readerUrl": .init(.string(bouncer.url(database: database.name, user: "itaku_reader")), isSecret: true),
                "db.listenUrl": .init(.string(database.url(role: .reader)), isSecret: true),
                "db.pool.maximum": 8,
            ])
        }
        let first = try await instance("itaku-a"), second = try await instance("itaku-b")
        let op = try #require(credentials["ITAKU_OPERATOR_KEY"]), admin = try #require(credentials["ITAKU_CLIENT_ADMIN_KEY"])
        let reviewer = try #require(credentials["ITAKU_REVIEWER_KEY"]), integration = try #require(credentials["ITAKU_INTEGRATION_KEY"])
        let token = try #require(credentials["ITAKU_AGENT_TOKEN"]), customerNo = try #require(credentials["ITAKU_DEMO_CUSTOMER_NO"])
        // The records each tenant's lookup must find (the demo's data is generated from seeds).
        let customer = try #require(DemoCustomers(count: 50).first { $0["customer_no"] == customerNo })
        let holder = try #require(DemoCustomers(count: 20, seed: 7).first { $0["name"] != customer["name"] })
        let policyNo = "P" + (holder["customer_no"] ?? "").dropFirst()

        try await first.test(.live) { one in
            try await second.test(.live) { two in
                // A new key reaches the other instance: its first reload, untimed (on a machine
                // loaded by the tests beside this one it can take longer than later ones).
                // (Three keys, so that a revocation can be timed up to three times: reachesWithin.)
                var keys: [(key: String, id: String)] = []
                for _ in 1...3 {
                    let created = try await one.call(.post, "/v1/keys", key: op, json: ["role": "client_admin", "tenant": "acme-retail"])
                    keys.append((try #require(created["key"] as? String), try #require(created["id"] as? String)))
                }
                for (key, _) in keys {
                    #expect(try await timeUntil(limit: .seconds(10)) {
                        try await two.call(.get, "/v1/tenants/acme-retail", key: key).status == .ok
                    } != nil)
                }

                // Timed while no test beside this one copies a database (which holds every
                // commit of the shared cluster up for a moment).
                try await WriteHeavyGate.shared.withLock {
                    // A purpose change made through one instance is enforced by the other within 1 s.
                    let path = "/v1/tenants/acme-retail/purposes/pooled-check"
                    let times = try await reachesWithin { (version: Int) async throws in
                        let headers: HTTPFields = version == 1 ? [:] : [.ifMatch: "\"v\(version - 1)\""]
                        #expect(try await one.call(.put, path, key: admin, json: purpose(), headers: headers).status == (version == 1 ? .created : .ok))
                    } reached: { version in
                        try await two.call(.get, path, key: admin)["version"] as? Int == version
                    }
                    #expect(times.contains { $0.map { $0 < .seconds(1) } == true }, "\(times)")

                    // A key revocation too.
                    let revoked = try await reachesWithin { (attempt: Int) async throws in
                        #expect(try await one.call(.delete, "/v1/keys/\(keys[attempt - 1].id)", key: op).status == .noContent)
                    } reached: { attempt in
                        try await two.call(.get, "/v1/tenants/acme-retail", key: keys[attempt - 1].key).status == .unauthorized
                    }
                    #expect(revoked.contains { $0.map { $0 < .seconds(1) } == true }, "\(revoked)")
                }

                // Two tenants' lookups, interleaved over both instances and the pooler's two
                // server sessions: each answer holds its own tenant's record and nothing else.
                struct Answer: Sendable { var tenant: String, status: Int, names: [String] }
                let answers = try await withThrowingTaskGroup(of: Answer.self) { group in
                    for n in 0..<80 {
                        let client: any TestClientProtocol = n % 3 == 0 ? one : two
                        let acme = n % 2 == 0
                        group.addTask {
                            let found = try await client.call(
                                .post,
                                acme ? "/v1/tenants/acme-retail/datasets/customers/lookup"
                                    : "/v1/tenants/kobe-insurance/datasets/policyholders/lookup",
                                key: integration,
                                json: ["by": acme ? "customer_no" : "policy_no", "value": acme ? customerNo : policyNo],
                                headers: HardeningTests.agent(token, purpose: acme ? "order-support" : "claims-support", case: "CALL-\(n)")
                            )
                            let records = found["records"] as? [[String: Any]] ?? []
                            let names = records.compactMap { ($0["fields"] as? [String: String])?["name"] }
                            return Answer(tenant: acme ? "acme" : "kobe", status: Int(found.status.code), names: names)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(answers.count == 80)
                for answer in answers {
                    #expect(answer.status == 200)
                    #expect(answer.names == [answer.tenant == "acme" ? customer["name"]! : holder["name"]!])
                }

                // Each instance chained its own streams, and the whole log verifies.
                let verified = try await two.call(.post, "/v1/access-log/verify", key: reviewer)
                #expect(verified["clean"] as? Bool == true, "\(verified.text)")
            }
        }
        let owner = database.makeClient(role: .owner)
        let streams = try await owner.query("SELECT DISTINCT split_part(stream, '/', 1) FROM itaku.access_log WHERE operation = 'lookup'")
            .map { try $0.decode(0, as: String.self) }
        #expect(Set(streams) == ["itaku-a", "itaku-b"])
        await owner.shutdown()
        // No tenant context outlives its transaction in the pooler's server sessions.
        var pooled = PostgresConfiguration(url: bouncer.url(database: database.name, user: "itaku_runtime"), maximumConnections: 4)
        pooled.transactionPooler = true
        let runtime = PostgresClient(configuration: pooled, logger: .init(label: "itaku.test"))
        for _ in 0..<8 {
            let tenant = try await runtime.query("SELECT coalesce(current_setting('itaku.tenant_id', true), '')")[0].decode(0, as: String.self)
            #expect(tenant == "")
        }
        await runtime.shutdown()
    }
}
