public import GenflowCore
internal import Foundation

/// `kind: anthropic`: Anthropic's Messages API (`POST {base_url}/v1/messages`), plain or streamed.
/// System messages become the request's `system`; a JSON reply is asked for in words (the API has
/// no response format); usage and stop reasons come back in OpenAI's terms, so pipelines read
/// every kind alike. No image generation.
public struct AnthropicProvider: Provider {
    public static let kind = ProviderKind(
        name: "anthropic", summary: "Anthropic's Messages API (chat, streamed or not; no images).",
        settings: [
            .init("base_url", ProviderKinds.url("The API root (without /v1).", default: "https://api.anthropic.com")),
            .init("api_key", .string("API key, sent as x-api-key; use ${VAR}.")),
            .init("version", .string("The anthropic-version header.", default: "2023-06-01", minLength: 1)),
            .init("max_tokens", .integer("Longest reply when the step gives no max_tokens (the API requires one).", default: 4_096, minimum: 1)),
        ],
        secrets: ["api_key"]
    ) { settings, secrets, http in
        AnthropicProvider(
            http: http, baseURL: ProviderKinds.root(settings, "base_url"), apiKey: secrets["api_key"],
            version: settings["version"]?.stringValue ?? "2023-06-01", maxTokens: settings["max_tokens"]?.intValue ?? 4_096
        )
    }

    let http: HTTPClientSource
    let baseURL: String
    let apiKey: Secret?
    let version: String
    let maxTokens: Int

    public var callsOut: Bool { true }
    public var identity: JSON { ["kind": "anthropic", "base_url": .string(baseURL)] }

    public func chat(
        _ request: ChatRequest, timeout: Duration, onText: @escaping @Sendable (String, Double?) -> Void
    ) async throws(StepError) -> ChatResult {
        var system = request.messages.filter { $0["role"] == "system" }.compactMap { $0["content"]?.stringValue }
        if let format = request.responseFormat {
            let schema = format["json_schema"]?["schema"].map { " matching this JSON Schema: \($0)" } ?? ""
            system.append("Reply with JSON only\(schema); no prose, no code fences.")
        }
        var body: [String: JSON] = [
            "model": .string(request.model), "max_tokens": .int(request.maxTokens ?? maxTokens), "stream": .bool(request.stream),
            "messages": .array(request.messages.filter { $0["role"] != "system" }),
        ]
        if !system.isEmpty { body["system"] = .string(system.joined(separator: "\n\n")) }
        if let temperature = request.temperature { body["temperature"] = .double(min(temperature, 1)) }
        var headers = [("anthropic-version", version)]
        if let apiKey, !apiKey.isEmpty { headers.append(("x-api-key", apiKey.value)) }
        let (response, events) = try await StreamedReply.post(
            http.client, baseURL + "/v1/messages", body: .object(body), headers: headers, timeout: timeout, streams: request.stream,
            read: Self.readEvent, onText: onText
        )
        var result: ChatResult
        if request.stream {
            result = try events.result(model: request.model, done: "the stream ended before message_stop (cut off)")
        } else {
            guard let reply = try? JSON(parsing: Data(response.body)), let content = reply["content"]?.arrayValue else {
                throw StepError(.serverError, "the provider's reply is not a Messages API response")
            }
            let text = content.filter { $0["type"] == "text" }.compactMap { $0["text"]?.stringValue }.joined()
            result = ChatResult(
                text: text, usage: Self.usage(input: reply["usage"]?["input_tokens"], output: reply["usage"]?["output_tokens"]),
                model: reply["model"]?.stringValue ?? request.model, finishReason: Self.finishReason(reply["stop_reason"]?.stringValue)
            )
        }
        if request.expectsJSON && result.finishReason == "length" {
            throw StepError(.outputInvalid, "the reply was cut off at the token limit (stop_reason: max_tokens)")
        }
        return result
    }

    public func images(_ request: ImageRequest, timeout: Duration) async throws(StepError) -> ImageResult {
        throw StepError(.invalidRequest, "anthropic providers do not generate images; use an openai or offline provider for output: image")
    }

    /// One event of a streamed reply: `message_start` (model, input tokens), `content_block_delta`
    /// (text), `message_delta` (stop reason, output tokens), `message_stop`, `error`.
    static func readEvent(_ payload: String, _ reply: inout StreamedReply.Reply) -> String? {
        guard let event = try? JSON(parsing: payload) else { return nil }
        switch event["type"]?.stringValue {
        case "message_start":
            reply.model = event["message"]?["model"]?.stringValue ?? reply.model
            reply.usage = usage(input: event["message"]?["usage"]?["input_tokens"], output: event["message"]?["usage"]?["output_tokens"])
        case "content_block_delta":
            if event["delta"]?["type"] == "text_delta" { return event["delta"]?["text"]?.stringValue }
        case "message_delta":
            if let reason = event["delta"]?["stop_reason"]?.stringValue { reply.finishReason = finishReason(reason) }
            if let output = event["usage"]?["output_tokens"] { reply.usage = usage(input: reply.usage["prompt_tokens"], output: output) }
        case "message_stop":
            reply.isDone = true
        case "error":
            reply.failure = event["error"]?["message"]?.stringValue ?? payload
        default:
            break
        }
        return nil
    }

    /// Anthropic's token counts under OpenAI's names.
    static func usage(input: JSON?, output: JSON?) -> JSON {
        let input = input?.intValue ?? 0, output = output?.intValue ?? 0
        return ["prompt_tokens": .int(input), "completion_tokens": .int(output), "total_tokens": .int(input + output)]
    }

    /// `end_turn`, `stop_sequence` → `stop`; `max_tokens` → `length`; others as they are.
    static func finishReason(_ reason: String?) -> String {
        switch reason {
        case "max_tokens": "length"
        case "end_turn", "stop_sequence", nil: "stop"
        case let other?: other
        }
    }
}
