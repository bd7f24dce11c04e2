import Foundation
import HTTPTypes
import Hummingbird
import ItakuPostgres
import ItakuRegistry
import NIOCore

/// `/livez`, `/readyz`, `/metrics`, `/openapi.yaml`: open to anyone, no personal data.
struct HealthController: Sendable {
    let database: PostgresClient
    let registry: Registry
    let metrics: HTTPMetrics
    let openAPIDocument: ByteBuffer
    /// How long `/readyz` waits for the database before answering 503.
    var readinessTimeout: Duration = .seconds(2)

    func addRoutes(to routes: inout RouteTable) {
        routes.on("/livez", method: .get) { _, _ in Self.json(#"{"status":"live"}"#) }
        routes.on("/readyz", method: .get) { _, _ in try await readiness() }
        routes.on("/metrics", method: .get) { _, _ in
            let bytes = metrics.render(pool: database.stats)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: bytes))
            )
        }
        routes.on("/openapi.yaml", method: .get) { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"], body: .init(byteBuffer: openAPIDocument))
        }
    }

    /// Ready when a `SELECT 1` answers within the timeout and the registry is fresh.
    private func readiness() async throws -> Response {
        let database = self.database
        let ready = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                // Twice: the first attempt may find a pooled connection the server dropped.
                for _ in 0..<2 {
                    if (try? await database.query("SELECT 1")) != nil { return true }
                }
                return false
            }
            group.addTask {
                try? await Task.sleep(for: readinessTimeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        guard ready else { throw Problem.databaseUnavailable }
        guard registry.isFresh else { throw Problem.registryUnavailable }
        return Self.json(#"{"status":"ready"}"#)
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
