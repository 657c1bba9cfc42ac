internal import GenflowCore
internal import Tracing

/// Ended spans as an OTLP/HTTP JSON export request (`ExportTraceServiceRequest` in the protobuf
/// JSON mapping: ids in hex, 64-bit numbers as strings). Pure.
enum OTLPEncoding {
    static func request(_ spans: [FinishedSpan], resource: [String: String]) -> JSON {
        [
            "resourceSpans": [[
                "resource": ["attributes": .array(resource.sorted { $0.key < $1.key }.map { attribute($0.key, ["stringValue": .string($0.value)]) })],
                "scopeSpans": [[
                    "scope": ["name": "genflow", "version": .string(GenflowVersion.version)],
                    "spans": .array(spans.map(span)),
                ]],
            ]],
        ]
    }

    static func span(_ span: FinishedSpan) -> JSON {
        var members: [String: JSON] = [
            "traceId": .string(span.context.traceHex), "spanId": .string(span.context.spanHex), "name": .string(span.name),
            "kind": .int(kind(span.kind)), "startTimeUnixNano": .string(String(span.start)), "endTimeUnixNano": .string(String(span.end)),
            "attributes": .array(attributes(span.attributes)),
        ]
        if let parent = span.parentSpanID { members["parentSpanId"] = .string(SpanContext.hex(parent)) }
        if let status = span.status {
            members["status"] = ["code": .int(status.code == .ok ? 1 : 2), "message": .string(status.message ?? "")]
        }
        if !span.events.isEmpty {
            members["events"] = .array(span.events.map { event in
                ["name": .string(event.name), "timeUnixNano": .string(String(event.nanosecondsSinceEpoch)), "attributes": .array(attributes(event.attributes))]
            })
        }
        return .object(members)
    }

    /// SPAN_KIND_INTERNAL 1, SERVER 2, CLIENT 3, PRODUCER 4, CONSUMER 5.
    static func kind(_ kind: SpanKind) -> Int {
        switch kind {
        case .server: 2
        case .client: 3
        case .producer: 4
        case .consumer: 5
        default: 1
        }
    }

    static func attributes(_ attributes: SpanAttributes) -> [JSON] {
        var list: [JSON] = []
        attributes.forEach { key, value in list.append(attribute(key, self.value(value))) }
        return list.sorted { ($0["key"]?.stringValue ?? "") < ($1["key"]?.stringValue ?? "") }
    }

    static func attribute(_ key: String, _ value: JSON) -> JSON {
        ["key": .string(key), "value": value]
    }

    static func value(_ attribute: SpanAttribute) -> JSON {
        switch attribute {
        case .int32(let value): ["intValue": .string(String(value))]
        case .int64(let value): ["intValue": .string(String(value))]
        case .double(let value): ["doubleValue": .double(value)]
        case .bool(let value): ["boolValue": .bool(value)]
        case .string(let value): ["stringValue": .string(value)]
        case .stringArray(let values): ["arrayValue": ["values": .array(values.map { ["stringValue": .string($0)] })]]
        default: ["stringValue": .string("\(attribute)")]
        }
    }
}
