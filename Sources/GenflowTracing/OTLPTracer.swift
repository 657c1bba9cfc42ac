internal import GenflowCore
public import Instrumentation
public import Tracing
internal import Synchronization

/// A span that ended, as it is exported.
public struct FinishedSpan: Sendable {
    public var context: SpanContext
    public var parentSpanID: UInt64?
    public var name: String
    public var kind: SpanKind
    public var start: UInt64
    public var end: UInt64
    public var attributes: SpanAttributes
    public var status: SpanStatus?
    public var events: [SpanEvent]
}

/// Genflow's tracer (swift-distributed-tracing's `Tracer`): spans get W3C ids, children inherit
/// their parent's trace, `traceparent` goes out with `inject` and is read with `extract`, and each
/// span that ends is handed to a `SpanBuffer` that `SpanExporter` sends over OTLP/HTTP.
public struct OTLPTracer: Tracer {
    public let buffer: SpanBuffer
    /// Span and trace ids: SplitMix64 seeded from the system's generator once (the system's
    /// generator is a getrandom(2) call per number; ids need to be unique, not secret).
    private let ids: IDSource

    public init(buffer: SpanBuffer) {
        self.buffer = buffer
        ids = IDSource()
    }

    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> InstrumentationContext, ofKind kind: SpanKind, at instant: @autoclosure () -> Instant,
        function: String, file fileID: String, line: UInt
    ) -> RecordedSpan {
        var context = context()
        let parent = context.spanContext
        let traceID = parent?.traceID ?? ids.traceID()
        let own = SpanContext(traceID: traceID, spanID: ids.spanID())
        context.spanContext = own
        return RecordedSpan(name: operationName, context: context, span: own, parent: parent?.spanID, kind: kind, start: instant().nanosecondsSinceEpoch, buffer: buffer)
    }

    /// A span whose ids and times are already known (a job's root span, written when the job ends).
    public func record(_ span: FinishedSpan) {
        buffer.append(span)
    }

    public func forceFlush() {}

    public func inject<Carrier, Inject: Injector>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Carrier == Inject.Carrier {
        guard let span = context.spanContext else { return }
        injector.inject(span.traceparent, forKey: "traceparent", into: &carrier)
    }

    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Carrier == Extract.Carrier {
        if let header = extractor.extract(key: "traceparent", from: carrier), let span = SpanContext(traceparent: header) {
            context.spanContext = span
        }
    }
}

/// One span being recorded; its state behind a lock, as spans are shared between tasks.
public final class RecordedSpan: Span {
    private struct State {
        var name: String
        var attributes: SpanAttributes = [:]
        var events: [SpanEvent] = []
        var status: SpanStatus?
        var isRecording = true
    }

    public let context: InstrumentationContext
    let span: SpanContext
    let parent: UInt64?
    let kind: SpanKind
    let start: UInt64
    let buffer: SpanBuffer
    private let state: Mutex<State>

    init(name: String, context: InstrumentationContext, span: SpanContext, parent: UInt64?, kind: SpanKind, start: UInt64, buffer: SpanBuffer) {
        self.context = context
        self.span = span
        self.parent = parent
        self.kind = kind
        self.start = start
        self.buffer = buffer
        state = Mutex(State(name: name))
    }

    public var operationName: String {
        get { state.withLock(\.name) }
        set { state.withLock { $0.name = newValue } }
    }

    public var attributes: SpanAttributes {
        get { state.withLock(\.attributes) }
        set { state.withLock { if $0.isRecording { $0.attributes = newValue } } }
    }

    public var isRecording: Bool { state.withLock(\.isRecording) }

    public func setStatus(_ status: SpanStatus) {
        state.withLock { $0.status = status }
    }

    public func addEvent(_ event: SpanEvent) {
        state.withLock { if $0.isRecording { $0.events.append(event) } }
    }

    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        var attributes = attributes
        attributes["exception.message"] = "\(error)"
        addEvent(SpanEvent(name: "exception", at: instant(), attributes: attributes))
    }

    public func addLink(_ link: SpanLink) {}

    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let ended = state.withLock { state -> State? in
            guard state.isRecording else { return nil }
            state.isRecording = false
            return state
        }
        guard let ended else { return }
        buffer.append(FinishedSpan(
            context: span, parentSpanID: parent, name: ended.name, kind: kind, start: start, end: instant().nanosecondsSinceEpoch,
            attributes: ended.attributes, status: ended.status, events: ended.events
        ))
    }
}

/// Ended spans waiting for the exporter, at most `capacity` (beyond that they are dropped and counted).
public final class SpanBuffer: Sendable {
    private let spans = Mutex<(items: [FinishedSpan], dropped: Int)>(([], 0))
    public let capacity: Int

    public init(capacity: Int = 20_000) {
        self.capacity = capacity
    }

    func append(_ span: FinishedSpan) {
        spans.withLock { state in
            if state.items.count < capacity { state.items.append(span) } else { state.dropped += 1 }
        }
    }

    /// Takes up to `limit` spans, and how many were dropped since the last take.
    func take(_ limit: Int) -> (spans: [FinishedSpan], dropped: Int) {
        spans.withLock { state in
            let taken = Array(state.items.prefix(limit))
            state.items.removeFirst(taken.count)
            defer { state.dropped = 0 }
            return (taken, state.dropped)
        }
    }
}

/// Non-zero random ids, from one seeded generator behind a lock.
final class IDSource: Sendable {
    private let generator: Mutex<SplitMix64>

    init() {
        var system = SystemRandomNumberGenerator()
        generator = Mutex(SplitMix64(seed: system.next()))
    }

    func spanID() -> UInt64 {
        generator.withLock { $0.next() } | 1
    }

    func traceID() -> (high: UInt64, low: UInt64) {
        generator.withLock { ($0.next(), $0.next() | 1) }
    }
}
