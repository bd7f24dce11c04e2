import Configuration
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import ItakuHTTP
import ItakuPostgres
import ItakuTestSupport
import NIOCore
import Testing

@Suite("HTTP skeleton over real HTTP")
struct SkeletonTests {
    @Test("/livez answers 200 and echoes a well-formed request id, replacing free text or a number that may be a caller's")
    func livezAndRequestID() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let app = try await makeApplication(database: database)
        try await app.test(.live) { client in
            try await client.execute(uri: "/livez", method: .get, headers: [.itakuRequestIDForTests: "call-42.a_b"]) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.itakuRequestIDForTests] == "call-42.a_b")
            }
            // Free text, or a number that may be a caller's (a phone number, a postal code),
            // is never echoed nor logged: a generated id takes its place.
            for malformed in ["090 1234 5678", "tel-09012345678", "090-1234-5678", "tel.090.1234.5678", "150-0001", "123456789012", "tel090x1234x5678"] {
                try await client.execute(uri: "/livez", method: .get, headers: [.itakuRequestIDForTests: malformed]) { response in
                    let id = try #require(response.headers[.itakuRequestIDForTests])
                    #expect(id != malformed)
                    #expect(UUID(uuidString: id) != nil)
                }
            }
            // Ids that are an agent tool's own keep working: six digits in a row, and any UUID.
            for kept in ["req-061734-ab", "call-1733.x_12", "1b9d6bcd-1234-4567-8901-123456789012", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "4f8e2a0c9b1d3e5f7a9c0b2d4e6f8a1c"] {
                try await client.execute(uri: "/livez", method: .get, headers: [.itakuRequestIDForTests: kept]) { response in
                    #expect(response.headers[.itakuRequestIDForTests] == kept)
                }
            }
        }
    }

    @Test("/readyz runs the migrations first and answers 200 with the database up")
    func readyzWithDatabase() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let app = try await makeApplication(database: database)
        try await app.test(.live) { client in
            try await client.execute(uri: "/readyz", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
        let owner = database.makeClient(role: .owner)
        let applied = try await owner.query("SELECT count(*) FROM itaku.schema_migrations")[0].decode(0, as: Int.self)
        await owner.shutdown()
        #expect(applied >= 2)
    }

    @Test("/readyz turns 503 within 5 s of PostgreSQL stopping and 200 again after it restarts, without restarting Itaku")
    func readyzFollowsTheDatabase() async throws {
        let cluster = try TestCluster.start()
        defer { cluster.destroy() }
        let database = try await cluster.makeDatabase()
        let app = try await makeApplication(database: database)
        try await app.test(.live) { client in
            try await client.execute(uri: "/readyz", method: .get) { #expect($0.status == .ok) }
            try cluster.stopServer()
            let clock = ContinuousClock()
            let stoppedAt = clock.now
            let down = try await client.execute(uri: "/readyz", method: .get) { $0 }
            #expect(clock.now - stoppedAt < .seconds(5))
            #expect(down.status == .serviceUnavailable)
            #expect(down.headers[.contentType] == "application/problem+json")
            #expect(problemCode(down.body) == "database_unavailable")

            try cluster.restartServer()
            var status = HTTPResponse.Status.serviceUnavailable
            let restartedAt = clock.now
            while status != .ok, clock.now - restartedAt < .seconds(10) {
                status = try await client.execute(uri: "/readyz", method: .get) { $0.status }
                if status != .ok { try await Task.sleep(for: .milliseconds(200)) }
            }
            #expect(status == .ok)
        }
    }

    @Test("unknown paths, wrong methods and oversized bodies answer problem+json with stable codes")
    func errorsAreProblems() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let app = try await makeApplication(database: database, settings: ["http.maxBodyBytes": 1024])
        try await app.test(.live) { client in
            let missing = try await client.execute(uri: "/nothing-here", method: .get) { $0 }
            #expect(missing.status == .notFound)
            #expect(missing.headers[.contentType] == "application/problem+json")
            #expect(problemCode(missing.body) == "not_found")

            let wrongMethod = try await client.execute(uri: "/livez", method: .delete) { $0 }
            #expect(wrongMethod.status == .methodNotAllowed)
            #expect(wrongMethod.headers[.allow] == "GET")
            #expect(problemCode(wrongMethod.body) == "method_not_allowed")
            let trace = try await client.execute(uri: "/livez", method: .trace) { $0 }
            #expect(trace.status == .methodNotAllowed && trace.headers[.allow] == "GET")
            let query = try await client.execute(uri: "/livez", method: HTTPRequest.Method("QUERY")!) { $0 }
            #expect(query.status == .methodNotAllowed && query.headers[.allow] == "GET")

            let big = ByteBuffer(repeating: UInt8(ascii: "x"), count: 4096)
            let tooLarge = try await client.execute(uri: "/livez", method: .post, body: big) { $0 }
            #expect(tooLarge.status == .contentTooLarge)
            #expect(problemCode(tooLarge.body) == "payload_too_large")
        }
    }

    @Test("/openapi.yaml serves the OpenAPI 3.1 contract")
    func openAPIDocument() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let app = try await makeApplication(database: database)
        try await app.test(.live) { client in
            try await client.execute(uri: "/openapi.yaml", method: .get) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(text.hasPrefix("openapi: 3.1"))
                for path in ["/livez:", "/readyz:", "/metrics:", "/openapi.yaml:"] { #expect(text.contains(path)) }
            }
        }
    }

    @Test("/metrics counts requests by route template, never by raw path or query, and shows the pool")
    func metricsUseRouteTemplates() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let app = try await makeApplication(database: database)
        try await app.test(.live) { client in
            _ = try await client.execute(uri: "/livez?phone=09012345678", method: .get) { $0 }
            _ = try await client.execute(uri: "/customers/09087654321", method: .get) { $0 }
            _ = try await client.execute(uri: "/readyz", method: .get) { $0 }
            let text = try await client.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
            #expect(text.contains(#"itaku_http_requests_total{method="GET",route="/livez",status="200"} 1"#))
            #expect(text.contains(#"route="unmatched",status="404""#))
            #expect(text.contains("itaku_http_request_duration_seconds_bucket"))
            #expect(text.contains("itaku_db_pool_max 4.0"))
            #expect(text.contains("itaku_db_pool_connections"))
            #expect(!text.contains("0901234") && !text.contains("0908765"))
        }
    }

    @Test("each request writes one log line with route template, status, duration and request id; no query string")
    func oneLogLinePerRequest() async throws {
        let database = try await TestCluster.shared().makeDatabase(migrated: false)
        let logs = CapturedLogs()
        let app = try await makeApplication(database: database, logger: logs.logger())
        try await app.test(.live) { client in
            _ = try await client.execute(
                uri: "/livez?email=taro%40example.jp", method: .get, headers: [.itakuRequestIDForTests: "log-check-1"]
            ) { $0 }
        }
        let lines = logs.all.filter { $0.message == "request" && $0.metadata["itaku.request_id"] == "log-check-1" }
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.metadata["http.route"] == "/livez")
        #expect(line.metadata["http.status"] == "200")
        #expect(line.metadata["http.duration_ms"] != nil)
        #expect(!logs.all.contains { record in record.metadata.values.contains { $0.contains("taro") } })
    }
}

/// The `code` member of a problem+json body, or nil when the body is not one.
func problemCode(_ body: ByteBuffer) -> String? {
    let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
    return object?["code"] as? String
}

extension HTTPField.Name {
    static let itakuRequestIDForTests = Self("Itaku-Request-Id")!
}
