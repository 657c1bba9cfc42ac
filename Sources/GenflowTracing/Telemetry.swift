public import GenflowCore
public import Logging
public import Tracing
internal import Foundation
internal import Synchronization

/// Genflow's traces, as the engine, stages and plugins use them. Off (every call a no-op) until
/// `bootstrap` installs `OTLPTracer` because `telemetry.otlp_endpoint` is set.
///
/// A job is one trace whose id is the job's id: its root span (`job <pipeline>`, from submission to
/// the end) is written by the daemon that ends the job; each daemon's run of it is a `job.run`
/// span under that root; each step attempt a `step <id>` span under its run; model, HTTP and plugin
/// calls spans under their step. `traceparent` goes out on HTTP calls and plugin invokes.
public enum Telemetry {
    private static let installed = Mutex<OTLPTracer?>(nil)

    /// Installs the tracer (once per process) and returns the service that exports its spans.
    public static func bootstrap(endpoint: String, serviceName: String, logger: Logger) -> SpanExporter {
        let buffer = SpanBuffer()
        let tracer = OTLPTracer(buffer: buffer)
        installed.withLock { $0 = tracer }
        InstrumentationSystem.bootstrap(tracer)
        return SpanExporter(buffer: buffer, endpoint: endpoint, serviceName: serviceName, logger: logger)
    }

    private static var tracer: OTLPTracer? { installed.withLock { $0 } }

    /// Runs `body` in a span under the current one (none when tracing is off: then the name and
    /// attributes are not even made). A `StepError` it throws marks the span failed, with its class
    /// in `genflow.error_class`.
    public static func span<T>(
        _ name: @autoclosure () -> String, kind: SpanKind = .internal, attributes: @autoclosure () -> SpanAttributes = [:],
        _ body: (RecordedSpan?) async throws(StepError) -> T
    ) async throws(StepError) -> T {
        guard let tracer else { return try await body(nil) }
        let span = tracer.startSpan(name(), context: InstrumentationContext.current ?? .topLevel, ofKind: kind)
        span.attributes = attributes()
        let result: Result<T, StepError> = await InstrumentationContext.$current.withValue(span.context) {
            do throws(StepError) {
                return .success(try await body(span))
            } catch {
                return .failure(error)
            }
        }
        if case .failure(let error) = result { failed(span, error) }
        span.end()
        return try result.get()
    }

    /// Marks `span` failed with `error`'s class and message.
    private static func failed(_ span: RecordedSpan?, _ error: StepError) {
        guard let span else { return }
        span.attributes["genflow.error_class"] = error.errorClass.rawValue
        span.setStatus(SpanStatus(code: .error, message: error.message))
    }

    /// One daemon's run of a job: `body` runs in a `job.run` span under the job's root span.
    public static func jobRun<T>(jobID: String, attributes: @autoclosure () -> SpanAttributes, _ body: () async throws -> T) async throws -> T {
        guard let tracer, let root = SpanContext(jobID: jobID) else { return try await body() }
        var parent = InstrumentationContext.topLevel
        parent.spanContext = root
        let span = tracer.startSpan("job.run", context: parent, ofKind: .consumer)
        span.attributes = attributes()
        defer { span.end() }
        do {
            return try await InstrumentationContext.$current.withValue(span.context) { try await body() }
        } catch {
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
            throw error
        }
    }

    /// The job's root span, written when the job ends: from its submission to now.
    public static func jobEnded(jobID: String, pipeline: String, version: String, createdAt: String, status: String, error: StepError?) {
        guard let tracer, let root = SpanContext(jobID: jobID) else { return }
        let now = UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
        let start = Timestamp.parse(createdAt).map { UInt64(max(0, $0)) * 1_000_000 } ?? now
        var attributes: SpanAttributes = [
            "genflow.job_id": .string(jobID), "genflow.pipeline": .string(pipeline), "genflow.pipeline_version": .string(version),
            "genflow.status": .string(status),
        ]
        if let error { attributes["genflow.error_class"] = error.errorClass.rawValue }
        tracer.record(FinishedSpan(
            context: root, parentSpanID: nil, name: "job \(pipeline)", kind: .consumer, start: min(start, now), end: now, attributes: attributes,
            status: error.map { SpanStatus(code: .error, message: $0.message) }, events: []
        ))
    }

    /// The current span as a W3C `traceparent`, for what leaves the process (plugin invokes).
    public static var traceparent: String? {
        InstrumentationContext.current?.spanContext?.traceparent
    }

    /// Log metadata: `trace_id` and `span_id` of the span the logging task is in.
    public static let logMetadata = Logger.MetadataProvider {
        guard let span = InstrumentationContext.current?.spanContext else { return [:] }
        return ["trace_id": "\(span.traceHex)", "span_id": "\(span.spanHex)"]
    }
}
