public import GenflowCore
public import GenflowPipeline

/// A declarative HTTP call: method, URL, headers, a JSON body template and a response mapping.
public struct HTTPRequest: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "http.request",
        summary: "Declarative HTTP call (method, url, headers, JSON body template, response mapping).",
        config: .object(required: ["url"], [
            .init("method", .string(enum: ["GET", "POST", "PUT", "PATCH", "DELETE"], default: "GET")),
            .init("url", .string("http:// or https:// URL (templates allowed).", minLength: 1)),
            .init("headers", .freeObject("Header names to values.")),
            .init("body", .any("JSON body (templates allowed).")),
            .init("response", .freeObject("Output fields to JSON pointers into the response body, e.g. {id: /data/id}.")),
            .init("expect_status", .array("Statuses that count as success (default 2xx).", of: .integer(minimum: 100, maximum: 599))),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
