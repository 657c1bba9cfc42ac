public import GenflowCore
public import GenflowPipeline
internal import Foundation
internal import GenflowHTTPClient
internal import GenflowProviders
internal import GenflowTracing
internal import Tracing

/// A declarative HTTP call: method, URL, headers, a JSON body template and a response mapping.
/// Output: `{status, body, <mapped fields>}`; failures take SPEC §6's classes as provider calls do.
public struct HTTPRequestStage: Stage {
    let http: HTTPClientSource

    init(http: HTTPClientSource) {
        self.http = http
    }

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
        let config = context.config
        let url = config["url"]?.stringValue ?? ""
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            throw StepError(.invalidRequest, "url must start with http:// or https://, not '\(url.prefix(100))'")
        }
        var headers: [(String, String)] = []
        for (name, value) in (config["headers"]?.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
            let text = value.stringValue ?? value.description
            guard !name.contains(where: { $0 == ":" || $0.isNewline }), !text.contains(where: \.isNewline) else {
                throw StepError(.invalidRequest, "header '\(name.prefix(100))' has a line break or colon where it cannot")
            }
            headers.append((name, text))
        }
        var body: [UInt8]?
        if let value = config["body"], value != .null {
            body = Array(value.description.utf8)
            if !headers.contains(where: { $0.0.lowercased() == "content-type" }) { headers.append(("Content-Type", "application/json")) }
        }
        let request = GenflowHTTPClient.HTTPRequest(
            method: config["method"]?.stringValue ?? "GET", url: url, headers: headers, body: body,
            timeout: context.timeout, connectTimeout: min(context.timeout, .seconds(10)), idleTimeout: min(context.timeout, .seconds(30))
        )
        let expected = config["expect_status"]?.arrayValue?.compactMap(\.intValue)
        let response = try await Telemetry.span(
            "http \(request.method)", kind: .client, attributes: ["http.request.method": .string(request.method), "url.full": .string(Self.withoutQuery(url))]
        ) { span throws(StepError) in
            let response: HTTPResponse
            do throws(HTTPError) {
                response = try await http.client.perform(request, onData: nil)
            } catch {
                throw ProviderFailure.failure(error)
            }
            span?.attributes["http.response.status_code"] = response.status
            guard expected?.contains(response.status) ?? (200..<300).contains(response.status) else {
                throw ProviderFailure.failure(response)
            }
            return response
        }
        let parsed = try? JSON(parsing: Data(response.body))
        var output: [String: JSON] = [
            "status": .int(response.status), "body": parsed ?? .string(String(decoding: response.body, as: UTF8.self)),
        ]
        for (field, pointer) in (config["response"]?.objectValue ?? [:]) {
            guard let pointer = pointer.stringValue, let value = parsed.flatMap({ $0.value(atPointer: pointer) }) else {
                throw StepError(.outputInvalid, "the response has nothing at \(pointer.stringValue ?? "\(pointer)") for '\(field)'")
            }
            output[field] = value
        }
        return .object(output)
    }

    /// A URL for a trace: without its query, which may carry a key.
    static func withoutQuery(_ url: String) -> String {
        String(url.prefix { $0 != "?" && $0 != "#" })
    }

}
