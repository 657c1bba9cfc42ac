public import Instrumentation

/// Where a span sits in its trace: the W3C trace-context identifiers (a 128-bit trace id, a 64-bit
/// span id), carried in the task's `InstrumentationContext` and on the wire as `traceparent`.
public struct SpanContext: Sendable, Hashable {
    public var traceID: (high: UInt64, low: UInt64)
    public var spanID: UInt64

    public init(traceID: (high: UInt64, low: UInt64), spanID: UInt64) {
        self.traceID = traceID
        self.spanID = spanID
    }

    public static func == (a: SpanContext, b: SpanContext) -> Bool {
        a.traceID == b.traceID && a.spanID == b.spanID
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(traceID.high)
        hasher.combine(traceID.low)
        hasher.combine(spanID)
    }

    /// 32 lowercase hex digits.
    public var traceHex: String { Self.hex(traceID.high) + Self.hex(traceID.low) }
    /// 16 lowercase hex digits.
    public var spanHex: String { Self.hex(spanID) }

    /// `traceparent`: version 00, sampled.
    public var traceparent: String { "00-\(traceHex)-\(spanHex)-01" }

    /// Reads a `traceparent` header; nil when it is not version 00 with non-zero ids.
    public init?(traceparent: String) {
        let parts = traceparent.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00", parts[1].count == 32, parts[2].count == 16, parts[3].count == 2,
              let high = UInt64(parts[1].prefix(16), radix: 16), let low = UInt64(parts[1].suffix(16), radix: 16),
              let span = UInt64(parts[2], radix: 16), high | low != 0, span != 0 else { return nil }
        self.init(traceID: (high, low), spanID: span)
    }

    /// A job's trace: its id (a UUID) is the trace id, and its last 64 bits the id of the job's
    /// root span, so every daemon that runs a part of the job writes into the same trace.
    public init?(jobID: String) {
        let digits = jobID.filter { $0 != "-" }
        guard digits.count == 32, let high = UInt64(digits.prefix(16), radix: 16), let low = UInt64(digits.suffix(16), radix: 16),
              high | low != 0, low != 0 else { return nil }
        self.init(traceID: (high, low), spanID: low)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}

private enum SpanContextKey: InstrumentationContextKey {
    typealias Value = SpanContext
    static let nameOverride: String? = "genflow-span"
}

extension InstrumentationContext {
    /// The span this context is inside (set by `OTLPTracer` or read from a `traceparent`).
    public var spanContext: SpanContext? {
        get { self[SpanContextKey.self] }
        set { self[SpanContextKey.self] = newValue }
    }
}
