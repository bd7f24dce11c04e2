import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuPostgres
import NIOCore
import ItakuTestSupport
import Synchronization
import Testing

@Suite("Fail-closed")
struct FailClosedTests {
    @Test("PostgreSQL stops while requests that return data are in flight: each answers data with a committed entry, or 503 with none")
    func databaseStopsMidFlight() async throws {
        let cluster = try TestCluster.start()
        defer { cluster.destroy() }
        let fixture = try await AdminFixture.make(on: cluster)
        let app = try await makeApplication(database: fixture.database)
        let outcomes = Outcomes()
        try await app.test(.live) { client in
            _ = try await client.call(.post, "/v1/tenants", key: fixture.operatorKey, json: ["code": "acme-retail", "name": "Acme"])
            let reviewer = try #require(try await client.call(.post, "/v1/keys", key: fixture.operatorKey, json: ["role": "reviewer"])["key"] as? String)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<8 {
                    group.addTask {
                        for n in 0..<60 {
                            let id = "fail-closed-\(worker)-\(n)"
                            let response = try await client.call(.get, "/v1/access-log?limit=5", key: reviewer, headers: [.itakuRequestIDForTests: id])
                            let carried = response.body["entries"] != nil
                            outcomes.append(.init(id: id, status: Int(response.status.code), carriedData: carried, problem: response.code))
                        }
                    }
                }
                group.addTask {
                    // Stop once some requests have been served, so both outcomes occur however
                    // fast or slow the machine is.
                    let clock = ContinuousClock(), start = clock.now
                    while outcomes.all.filter({ $0.status == 200 }).count < 16, clock.now - start < .seconds(30) {
                        try await Task.sleep(for: .milliseconds(5))
                    }
                    try cluster.stopServer()
                }
                try await group.waitForAll()
            }
            try cluster.restartServer()
            // Back without a restart of Itaku.
            var status = 0
            for _ in 0..<50 where status != 200 {
                status = Int(try await client.call(.get, "/v1/access-log?limit=1", key: reviewer).status.code)
                if status != 200 { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(status == 200)
        }
        let all = outcomes.all
        let served = Set(all.filter { $0.status == 200 }.map(\.id))
        #expect(all.allSatisfy { $0.status == 200 ? $0.carriedData : (!$0.carriedData && $0.status == 503) }, "\(all.filter { $0.status != 200 && $0.status != 503 })")
        #expect(all.filter { $0.status == 503 }.allSatisfy { ["database_unavailable", "access_log_unavailable"].contains($0.problem ?? "") })
        #expect(!served.isEmpty)
        #expect(all.count > served.count, "the database stopped after every request had finished")
        let owner = fixture.database.makeClient(role: .owner)
        let committed = Set(try await owner.query(
            "SELECT request_id FROM itaku.access_log WHERE operation = 'review' AND request_id LIKE 'fail-closed-%'"
        ).map { try $0.decode(0, as: String.self) })
        await owner.shutdown()
        // Every answer that carried data has its committed entry, and no entry lacks its answer.
        #expect(served == committed)
    }

    @Test("one verification of the log at a time: another asked meanwhile answers 503 verify_busy at once, and the first still answers")
    func oneVerificationAtATime() async throws {
        let fixture = try await AdminFixture.make()
        let app = try await makeApplication(database: fixture.database)
        let owner = fixture.database.makeClient(role: .owner)
        defer { Task { await owner.shutdown() } }
        try await app.test(.live) { client in
            let reviewer = try #require(try await client.call(.post, "/v1/keys", key: fixture.operatorKey, json: ["role": "reviewer"])["key"] as? String)
            let first = try await owner.withTransaction { connection in
                // The log locked: the first verification waits for it, holding its turn.
                try await connection.query("LOCK TABLE itaku.access_log IN ACCESS EXCLUSIVE MODE")
                // On a connection of its own: the test's client sends one request at a time.
                let own = TestClient(host: "localhost", port: try #require(client.port), configuration: .init(timeout: .seconds(60)))
                own.connect()
                let first = Task {
                    defer { Task { try? await own.shutdown() } }
                    let report = try await own.post("/v1/access-log/verify", headers: [.authorization: "Bearer \(reviewer)"], body: ByteBuffer())
                    let text = report.body.map { String(buffer: $0) } ?? ""
                    let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
                    return (status: report.head.status, clean: object?["clean"] as? Bool, text: text)
                }
                let waiting = try await timeUntil(limit: .seconds(10)) {
                    try await owner.query(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )[0].decode(0, as: Int.self) > 0
                }
                #expect(waiting != nil)
                let second = try await client.call(.post, "/v1/access-log/verify", key: reviewer)
                #expect(second.status == .serviceUnavailable)
                #expect(second.code == "verify_busy")
                #expect(second.headers[.retryAfter] == "10")
                return first
            }
            let report = try await first.value
            #expect(report.status == .ok)
            #expect(report.clean == true, "\(report.text)")
            // Its turn given back, the next verification runs.
            #expect(try await client.call(.post, "/v1/access-log/verify", key: reviewer).status == .ok)
        }
    }
}

/// What each request of the fail-closed run got back.
final class Outcomes: Sendable {
    struct Outcome: Sendable {
        var id: String
        var status: Int
        var carriedData: Bool
        var problem: String?
    }

    private let outcomes = Mutex<[Outcome]>([])
    var all: [Outcome] { outcomes.withLock { $0 } }
    func append(_ outcome: Outcome) { outcomes.withLock { $0.append(outcome) } }
}
