internal import Foundation
internal import Synchronization
internal import GenflowCore
internal import GenflowHTTPClient
public import Logging
public import ServiceLifecycle

/// Sends ended spans to an OTLP/HTTP collector (`POST <endpoint>/v1/traces`, JSON) every
/// `interval`, up to `batch` spans a request, over Genflow's libcurl client; at shutdown, once the
/// services before it have stopped, it sends what is left. A collector that is down loses those
/// spans (they are counted in a warning), never a job's progress: nothing waits on an export.
public struct SpanExporter: Service {
    let buffer: SpanBuffer
    let url: String
    let resource: [String: String]
    let interval: Duration
    let batch: Int
    let logger: Logger

    public init(buffer: SpanBuffer, endpoint: String, serviceName: String, interval: Duration = .seconds(1), batch: Int = 2_048, logger: Logger) {
        self.buffer = buffer
        url = endpoint.hasSuffix("/v1/traces") ? endpoint : (endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint) + "/v1/traces"
        resource = [
            "service.name": serviceName, "service.version": GenflowVersion.version,
            "service.instance.id": "\(ProcessInfo.processInfo.hostName):\(getpid())",
        ]
        self.interval = interval
        self.batch = batch
        self.logger = logger
    }

    public func run() async throws {
        let client = HTTPClient()
        defer { client.close() }
        let failing = FailingFlag()
        // Each export is a task of its own: the shutdown that cancels the loop must not stop a
        // request in flight, which would lose the spans it took from the buffer.
        let send: @Sendable () async -> Void = { [self] in await Task { await export(client, failing: failing) }.value }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                await send()
            }
        }
        // Shutdown: what the draining services ended with goes out too.
        await send()
    }

    /// Sends everything buffered; `failing` remembers whether the last send failed, so a collector
    /// that is down is logged once, not every second.
    private func export(_ client: HTTPClient, failing: FailingFlag) async {
        while true {
            let (spans, dropped) = buffer.take(batch)
            if dropped > 0 { logger.warning("trace spans dropped: the exporter fell behind", metadata: ["genflow.spans": "\(dropped)"]) }
            guard !spans.isEmpty else { return }
            let body = Array(OTLPEncoding.request(spans, resource: resource).description.utf8)
            let request = HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: body, timeout: .seconds(10))
            do {
                let response = try await client.perform(request)
                guard (200..<300).contains(response.status) else { throw CollectorRefused(status: response.status) }
                if failing.set(false) { logger.notice("trace export works again", metadata: ["genflow.endpoint": "\(url)"]) }
            } catch {
                if !failing.set(true) {
                    logger.warning("trace export failed; spans are dropped until it works", metadata: ["genflow.endpoint": "\(url)", "genflow.error": "\(error)"])
                }
            }
            if spans.count < batch { return }
        }
    }
}

/// Whether the last export failed (so a collector that is down is logged once).
final class FailingFlag: Sendable {
    private let value = Mutex(false)

    /// Sets the flag and returns what it was.
    func set(_ failing: Bool) -> Bool {
        value.withLock { previous in
            defer { previous = failing }
            return previous
        }
    }
}

struct CollectorRefused: Error, CustomStringConvertible {
    let status: Int
    var description: String { "the collector answered HTTP \(status)" }
}
