import Foundation
import HTTPTypes
import Hummingbird
import ItakuPostgres
import ItakuRegistry
import NIOCore
import Synchronization

/// `/livez`, `/readyz`, `/metrics`, `/openapi.yaml`: open to anyone, no personal data.
struct HealthController: Sendable {
    let database: PostgresClient
    let registry: Registry
    let metrics: HTTPMetrics
    let openAPIDocument: ByteBuffer
    /// How long `/readyz` waits for the database before answering 503.
    var readinessTimeout: Duration = .seconds(2)
    let probe = Probe()

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

    /// Ready when a `SELECT 1` answers within the timeout and the registry is fresh. The answer
    /// comes at the timeout whatever the database does (a statement on a connection to a host
    /// that stopped answering may not end for a minute), and while one probe is still out the
    /// next answers 503 at once instead of piling a second one on it.
    private func readiness() async throws -> Response {
        let database = self.database
        let probe = self.probe
        let ready: Bool = await withCheckedContinuation { continuation in
            guard let round = probe.start(continuation) else {
                continuation.resume(returning: false)
                return
            }
            let query = Task {
                // Twice: the first attempt may find a pooled connection the server dropped.
                var answered = false
                for _ in 0..<2 where !answered {
                    answered = (try? await database.query("SELECT 1")) != nil
                }
                probe.finish(round, ready: answered, probeEnded: true)
            }
            Task {
                try? await Task.sleep(for: readinessTimeout)
                query.cancel()
                probe.finish(round, ready: false, probeEnded: false)
            }
        }
        guard ready else { throw Problem.databaseUnavailable }
        guard registry.isFresh else { throw Problem.registryUnavailable }
        return Self.json(#"{"status":"ready"}"#)
    }

    /// The readiness probe out, if any: its caller's continuation, answered once (by the probe
    /// or by the timeout, whichever comes first), and whether the probe itself still runs.
    final class Probe: Sendable {
        private struct State {
            var waiting: CheckedContinuation<Bool, Never>?
            var running = false
            var round = 0
        }
        private let state = Mutex(State())

        /// Takes the probe for `continuation` and returns its round; nil while an earlier
        /// probe still runs.
        func start(_ continuation: CheckedContinuation<Bool, Never>) -> Int? {
            state.withLock { state in
                guard !state.running else { return nil }
                state.running = true
                state.round += 1
                state.waiting = continuation
                return state.round
            }
        }

        /// Answers round `round`'s caller, if not answered yet (a later round is left alone).
        func finish(_ round: Int, ready: Bool, probeEnded: Bool) {
            let waiting = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard state.round == round else { return nil }
                if probeEnded { state.running = false }
                defer { state.waiting = nil }
                return state.waiting
            }
            waiting?.resume(returning: ready)
        }
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
