public import Prometheus
public import GenflowQueue

/// What `/metrics` shows, in Prometheus text format. Counters and histograms the engine and
/// stages record go through swift-metrics into `registry` (the daemon bootstraps the factory);
/// the listener's own figures are recorded here; jobs by status and queue depth are read from the
/// database at each scrape.
public final class MetricsPage: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    static let requestBuckets: [Duration] = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                             .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5)]

    func observeRequest(route: String, status: Int, seconds: Double) {
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "http_requests", unitName: "total", helpText: "HTTP requests by route and status."),
            labels: [("route", route), ("status", String(status))]
        ).increment()
        registry.makeDurationHistogram(
            descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "http_request_duration", unitName: "seconds", helpText: "HTTP request latency by route."),
            labels: [("route", route)], buckets: Self.requestBuckets
        ).record(.nanoseconds(Int64(seconds * 1e9)))
    }

    private var connections: Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "websocket_connections", unitName: "current", helpText: "Open WebSocket connections."))
    }

    func webSocketOpened() { connections.increment() }
    func webSocketClosed() { connections.decrement() }

    func eventsSent(_ count: Int) {
        guard count > 0 else { return }
        registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "events_sent", unitName: "total", helpText: "Events queued to WebSocket clients.")).increment(by: Int64(count))
    }

    func eventsDropped(_ count: Int, reason: String) {
        guard count > 0 else { return }
        registry.makeCounter(
            descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "events_dropped", unitName: "total", helpText: "Events not delivered (coalesced progress, or queued for a slow client that was closed), counted when the connection closes."),
            labels: [("reason", reason)]
        ).increment(by: Int64(count))
    }

    /// The exposition text, with the database's current job counts.
    func render(store: JobStore) async throws -> [UInt8] {
        let counts = try await store.read { try $0.jobCounts() }
        for status in JobStatus.allCases {
            registry.makeGauge(
                descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "jobs", unitName: "current", helpText: "Jobs by status (all daemons)."),
                labels: [("status", status.rawValue)]
            ).set(Double(counts.byStatus[status.rawValue] ?? 0))
        }
        registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "genflow", metricName: "queue_depth", unitName: "current", helpText: "Jobs runnable now and not yet claimed."))
            .set(Double(counts.queueDepth))
        return registry.emitToBuffer()
    }
}
