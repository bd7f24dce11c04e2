import Foundation
import Hummingbird
import HummingbirdTesting
import ItakuData
@testable import ItakuHTTP
import ItakuPostgres
import ItakuTestSupport
import Logging
import NIOHTTP1
import Testing

@Suite("Error mapping")
struct ErrorMappingTests {
    struct LeakyError: Error, CustomStringConvertible {
        var description: String { "row (090-1234-5678, 山田太郎) violates constraint" }
    }

    @Test("an unknown error becomes an empty internal_error and a bad body a bad_request: no internal text or value reaches the caller")
    func unknownErrorsStayQuiet() async throws {
        let router = Router(context: ItakuRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("/boom") { _, _ -> Response in throw LeakyError() }
        // A tenant whose data key is gone (its contract ended while the request ran).
        router.get("/ended") { _, _ -> Response in throw DataKeys.KeyError.destroyed(UUID()) }
        // A body cut short (its connection closed while the handler read it).
        router.get("/cut") { _, _ -> Response in throw HTTPParserError.invalidEOFState }
        router.post("/json") { request, context -> Response in
            struct Body: Decodable { var name: String }
            _ = try await request.decode(as: Body.self, context: context)
            return Response(status: .ok)
        }
        let app = Application(router: router)
        try await app.test(.router) { client in
            try await client.execute(uri: "/boom", method: .get) { response in
                #expect(response.status == .internalServerError)
                #expect(response.headers[.contentType] == "application/problem+json")
                let text = String(buffer: response.body)
                #expect(problemCode(response.body) == "internal_error")
                #expect(!text.contains("090") && !text.contains("山田") && !text.contains("constraint"))
            }
            try await client.execute(uri: "/ended", method: .get) { response in
                #expect(response.status == .conflict)
                #expect(problemCode(response.body) == "tenant_ended")
            }
            try await client.execute(uri: "/cut", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(problemCode(response.body) == "bad_request")
            }
            let secret = #"{"name": 12345678}"#
            try await client.execute(uri: "/json", method: .post, headers: [.contentType: "application/json"], body: .init(string: secret)) { response in
                #expect(response.status == .badRequest)
                #expect(problemCode(response.body) == "bad_request")
                #expect(!String(buffer: response.body).contains("12345678"))
            }
        }
    }

    @Test("a statement longer than db.statementTimeoutSeconds is cancelled by the server and answers 503 database_timeout, a value no column holds 400, and a change that lost a race 409")
    func statementTimeoutAndEncodingErrors() async throws {
        let database = try await TestCluster.shared().makeDatabase()
        var configuration = database.configuration(role: .runtime)
        configuration.statementTimeoutSeconds = 1
        let client = PostgresClient(configuration: configuration, logger: Logger(label: "test"))
        let router = Router(context: ItakuRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.get("/slow") { _, _ -> Response in
            try await client.query("SELECT pg_sleep(3)")
            return Response(status: .ok)
        }
        router.get("/twice") { _, _ -> Response in
            // As PostgreSQL refuses the second of two changes creating the same row.
            try await client.query(#"DO $$ BEGIN RAISE unique_violation USING MESSAGE = 'key (090-1234-5678) exists'; END $$"#)
            return Response(status: .ok)
        }
        router.get("/far") { _, _ -> Response in
            try await client.query("SELECT \(Date(timeIntervalSince1970: 1e15))::timestamptz")
            return Response(status: .ok)
        }
        let app = Application(router: router, services: [client])
        try await app.test(.router) { client in
            try await client.execute(uri: "/slow", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(problemCode(response.body) == "database_timeout")
            }
            try await client.execute(uri: "/far", method: .get) { response in
                #expect(response.status == .badRequest)
                #expect(problemCode(response.body) == "invalid_value")
            }
            try await client.execute(uri: "/twice", method: .get) { response in
                #expect(response.status == .conflict)
                #expect(problemCode(response.body) == "concurrent_change")
                #expect(!String(buffer: response.body).contains("090"))
            }
        }
    }
}
