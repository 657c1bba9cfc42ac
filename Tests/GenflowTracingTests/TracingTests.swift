import GenflowCore
import GenflowTestSupport
@testable import GenflowTracing
import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Tracing

@Suite("Trace context and the OTLP encoding")
struct TracingTests {
    @Test("traceparent: written and read back; malformed or zero ids are refused")
    func traceparent() {
        let context = SpanContext(traceID: (0x0af7651916cd43dd, 0x8448eb211c80319c), spanID: 0xb7ad6b7169203331)
        #expect(context.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        #expect(SpanContext(traceparent: context.traceparent) == context)
        for bad in [
            "", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319z-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
        ] {
            #expect(SpanContext(traceparent: bad) == nil, "\(bad)")
        }
    }

    @Test("a job's trace id is its id, its root span id the id's last 64 bits")
    func jobTrace() throws {
        let root = try #require(SpanContext(jobID: "26507ea3-9f44-485c-a3e6-203b0add1368"))
        #expect(root.traceHex == "26507ea39f44485ca3e6203b0add1368")
        #expect(root.spanHex == "a3e6203b0add1368")
        #expect(SpanContext(jobID: "not-a-uuid") == nil)
    }

    @Test("children share the trace and name their parent; inject and extract carry traceparent")
    func tracer() throws {
        let buffer = SpanBuffer(capacity: 2)
        let tracer = OTLPTracer(buffer: buffer)
        let parent = tracer.startSpan("parent", context: .topLevel, ofKind: .internal)
        let child = tracer.startSpan("child", context: parent.context, ofKind: .client)
        child.attributes["genflow.model"] = "ok"
        child.setStatus(SpanStatus(code: .error, message: "boom"))
        child.end()
        child.end()  // once only
        parent.end()
        tracer.startSpan("third", context: .topLevel, ofKind: .internal).end()
        let (spans, dropped) = buffer.take(10)
        #expect(spans.map(\.name) == ["child", "parent"] && dropped == 1, "a full buffer drops and counts")
        #expect(spans[0].context.traceID == spans[1].context.traceID && spans[0].parentSpanID == spans[1].context.spanID)
        #expect(spans[1].parentSpanID == nil)

        var headers: [String: String] = [:]
        tracer.inject(child.context, into: &headers, using: DictionaryInjector())
        #expect(headers["traceparent"] == spans[0].context.traceparent)
        var extracted = InstrumentationContext.topLevel
        tracer.extract(headers, into: &extracted, using: DictionaryExtractor())
        #expect(extracted.spanContext == spans[0].context)

        let encoded = OTLPEncoding.request([spans[0]], resource: ["service.name": "genflow"])
        let span = try #require(encoded["resourceSpans"]?.arrayValue?.first?["scopeSpans"]?.arrayValue?.first?["spans"]?.arrayValue?.first)
        #expect(span["traceId"]?.stringValue == spans[0].context.traceHex && span["parentSpanId"]?.stringValue == spans[1].context.spanHex)
        #expect(span["kind"] == 3 && span["status"]?["code"] == 2 && span["status"]?["message"] == "boom")
        #expect(span["attributes"] == [["key": "genflow.model", "value": ["stringValue": "ok"]]])
        #expect(Int(span["startTimeUnixNano"]?.stringValue ?? "") != nil)
        #expect(encoded["resourceSpans"]?.arrayValue?.first?["resource"]?["attributes"] == [["key": "service.name", "value": ["stringValue": "genflow"]]])
    }
}

private struct DictionaryInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
}

private struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
}

@Suite("Span export over OTLP/HTTP", .timeLimit(.minutes(1)))
struct SpanExportTests {
    @Test("a shutdown while an export is in flight lets it finish: the spans it took arrive")
    func shutdownDuringExport() async throws {
        let server = try FakeServer()
        let buffer = SpanBuffer()
        let root = try #require(SpanContext(jobID: "26507ea3-9f44-485c-a3e6-203b0add1368"))
        buffer.append(FinishedSpan(context: root, parentSpanID: nil, name: "job late", kind: .consumer, start: 1, end: 2, attributes: [:], status: nil, events: []))
        // The slow collector answers after 0.5 s and keeps nothing of a request its sender dropped.
        let exporter = SpanExporter(buffer: buffer, endpoint: server.url("/slow"), serviceName: "test", interval: .milliseconds(50), logger: Logger(label: "test"))
        let group = ServiceGroup(services: [exporter], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        while try await server.json("/seen").arrayValue?.contains(where: { $0["path"] == "/slow/v1/traces" }) != true {
            try await Task.sleep(for: .milliseconds(10))
        }
        await group.triggerGracefulShutdown()
        try await running.value
        let spans = try await server.json("/traces").arrayValue ?? []
        #expect(spans.map { $0["name"]?.stringValue } == ["job late"])
    }

    @Test("a collector that is down is warned about once, and its return once; the spans of the refused requests are dropped, later ones arrive")
    func collectorDown() async throws {
        let server = try FakeServer()
        let buffer = SpanBuffer()
        let messages = LoggedMessages()
        let logger = Logger(label: "test") { _ in RecordingLogHandler(messages: messages) }
        let exporter = SpanExporter(buffer: buffer, endpoint: server.url("/down-twice"), serviceName: "test", interval: .milliseconds(20), logger: logger)
        let group = ServiceGroup(services: [exporter], logger: Logger(label: "test"))
        let running = Task { try await group.run() }
        // A span before each of the first four requests: two refused, two taken.
        for index in 0..<4 {
            let context = SpanContext(traceID: (1, UInt64(index + 1)), spanID: UInt64(index + 1))
            buffer.append(FinishedSpan(context: context, parentSpanID: nil, name: "span \(index)", kind: .internal, start: 1, end: 2, attributes: [:], status: nil, events: []))
            let deadline = ContinuousClock.now + .seconds(30)
            while try await server.json("/seen").arrayValue?.count ?? 0 <= index {
                try #require(ContinuousClock.now < deadline, "request \(index + 1) not sent")
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(try await server.json("/traces").arrayValue?.compactMap { $0["name"]?.stringValue } == ["span 2", "span 3"])
        let said = messages.all.withLock { $0 }
        #expect(said.filter { $0.hasPrefix("trace export failed") }.count == 1, "\(said)")
        #expect(said.filter { $0.hasPrefix("trace export works again") }.count == 1, "\(said)")
    }
}

private final class LoggedMessages: Sendable {
    let all = Mutex<[String]>([])
}

/// Keeps the messages logged through it.
private struct RecordingLogHandler: LogHandler {
    let messages: LoggedMessages
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        messages.all.withLock { $0.append(message.description) }
    }
}
