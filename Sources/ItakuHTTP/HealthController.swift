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
    /// that stopped answering may not end for a minute). Checks that arrive while a probe is
    /// out share its answer; once a probe has outlived its timeout, checks answer 503 at once
    /// until it ends, rather than pile more probes on a database that does not answer.
    private func readiness() async throws -> Response {
        let database = self.database
        let probe = self.probe
        let readinessTimeout = self.readinessTimeout
        let ready: Bool = await withCheckedContinuation { continuation in
            switch probe.join(continuation) {
            case .joined:
                return
            case .stuck:
                continuation.resume(returning: false)
            case .lead(let round):
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
        }
        guard ready else { throw Problem.databaseUnavailable }
        guard registry.isFresh else { throw Problem.registryUnavailable }
        return Self.json(#"{"status":"ready"}"#)
    }

    /// The readiness probe out, if any: the checks waiting for its answer (answered once, by
    /// the probe or at its timeout, whichever comes first), and whether the probe still runs.
    final class Probe: Sendable {
        enum Joined { case lead(Int), joined, stuck }
        private struct State {
            var waiting: [CheckedContinuation<Bool, Never>] = []
            var running = false
            var answered = false
            var round = 0
        }
        private let state = Mutex(State())

        /// Starts a probe for `continuation` (`lead`), adds it to the probe out (`joined`), or
        /// says the probe out has outlived its timeout (`stuck`).
        func join(_ continuation: CheckedContinuation<Bool, Never>) -> Joined {
            state.withLock { state in
                if state.running {
                    guard !state.answered else { return .stuck }
                    state.waiting.append(continuation)
                    return .joined
                }
                state.running = true
                state.answered = false
                state.round += 1
                state.waiting = [continuation]
                return .lead(state.round)
            }
        }

        /// Answers round `round`'s checks, if not answered yet (a later round is left alone).
        func finish(_ round: Int, ready: Bool, probeEnded: Bool) {
            let waiting = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
                guard state.round == round else { return [] }
                if probeEnded { state.running = false }
                state.answered = true
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume(returning: ready) }
        }
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
