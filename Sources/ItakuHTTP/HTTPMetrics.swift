import ItakuPostgres
import Prometheus
import Synchronization

/// The metrics `/metrics` exposes, kept in a registry per application (no global state, so
/// tests can build many applications in one process).
public final class HTTPMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private static let buckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .seconds(2.5), .seconds(5),
    ]

    /// The counter and histogram of each (method, route, status) seen, so that a request does
    /// not look them up in the registry by name and labels.
    private let series = Mutex<[SeriesKey: (Counter, DurationHistogram)]>([:])

    struct SeriesKey: Hashable {
        var method: String
        var route: String
        var status: Int
    }

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    func record(method: String, route: String, status: Int, duration: Duration) {
        let key = SeriesKey(method: method, route: route, status: status)
        if let (counter, histogram) = series.withLock({ $0[key] }) {
            counter.increment()
            histogram.record(duration)
            return
        }
        let counter = registry.makeCounter(
            descriptor: .init(namespace: "itaku", subsystem: "http", metricName: "requests", unitName: "total",
                              helpText: "HTTP requests by route template and status"),
            labels: [("method", method), ("route", route), ("status", String(status))]
        )
        let histogram = registry.makeDurationHistogram(
            descriptor: .init(namespace: "itaku", subsystem: "http", metricName: "request_duration", unitName: "seconds",
                              helpText: "HTTP request latency by route template"),
            labels: [("method", method), ("route", route)],
            buckets: Self.buckets
        )
        // Routes are templates and statuses few, so the map stays small.
        series.withLock { $0[key] = (counter, histogram) }
        counter.increment()
        histogram.record(duration)
    }

    /// Updates the pool gauges, then renders the text exposition format.
    func render(pool: PostgresClient.Stats) -> [UInt8] {
        func gauge(_ name: String, _ help: String, _ value: Int) {
            registry.makeGauge(
                descriptor: .init(namespace: "itaku", subsystem: "db_pool", metricName: name, unitName: "", helpText: help),
                labels: []
            ).set(Double(value))
        }
        gauge("connections", "Open PostgreSQL connections", pool.open)
        gauge("in_use", "Connections lent out", pool.inUse)
        gauge("waiters", "Tasks waiting for a connection", pool.waiters)
        gauge("max", "Pool maximum", pool.maximum)
        return registry.emitToBuffer()
    }
}
