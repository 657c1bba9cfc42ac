// genflow-plugin-anthropic: Anthropic's Messages API (POST {base_url}/v1/messages) as the stage
// `anthropic.messages`, written with GenflowPluginKit. The API key comes from the environment
// variable the step names (default ANTHROPIC_API_KEY), never from the pipeline.
import Foundation
import GenflowCore
import GenflowHTTPClient
import GenflowPluginKit
import GenflowProviders

let client = HTTPClient()

@Sendable func messages(_ call: PluginCall) async throws -> JSON {
    let config = call.config
    let base = (config["base_url"]?.stringValue ?? "https://api.anthropic.com").trimmingCharacters(in: CharacterSet(charactersIn: "/"))
    guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
        throw PluginFailure("invalid_request", "base_url must start with http:// or https://")
    }
    let model = config["model"]?.stringValue ?? ""
    var messages = config["messages"]?.arrayValue ?? []
    if messages.isEmpty, let prompt = config["prompt"]?.stringValue { messages = [["role": "user", "content": .string(prompt)]] }
    guard !messages.isEmpty else { throw PluginFailure("invalid_request", "give 'prompt' or 'messages'") }
    var body: [String: JSON] = ["model": .string(model), "max_tokens": .int(config["max_tokens"]?.intValue ?? 1_024), "messages": .array(messages)]
    if let system = config["system"]?.stringValue { body["system"] = .string(system) }
    var headers = [("Content-Type", "application/json"), ("anthropic-version", "2023-06-01")]
    let keyVariable = config["api_key_env"]?.stringValue ?? "ANTHROPIC_API_KEY"
    if let key = ProcessInfo.processInfo.environment[keyVariable], !key.isEmpty { headers.append(("x-api-key", key)) }

    call.progress(0, "asking \(model)")
    let deadline = Duration.milliseconds(call.context["deadline_ms"]?.intValue ?? 60_000)
    let request = HTTPRequest(method: "POST", url: base + "/v1/messages", headers: headers, body: Array(JSON.object(body).description.utf8), timeout: deadline)
    let response: HTTPResponse
    do throws(HTTPError) {
        response = try await client.perform(request)
    } catch {
        let failure = OpenAIProvider.failure(error)
        throw PluginFailure(failure.errorClass.rawValue, failure.message)
    }
    guard response.status == 200 else {
        // The same mapping as the built-in providers: 429 with retry-after, 5xx/529, 401/403, other 4xx.
        let failure = OpenAIProvider.failure(response)
        throw PluginFailure(failure.errorClass.rawValue, failure.message, retryAfterMilliseconds: failure.retryAfter.map { Int($0.milliseconds) })
    }
    guard let reply = try? JSON(parsing: Data(response.body)), let content = reply["content"]?.arrayValue else {
        throw PluginFailure("server_error", "the reply is not a Messages API response")
    }
    let text = content.filter { $0["type"] == "text" }.compactMap { $0["text"]?.stringValue }.joined()
    let input = reply["usage"]?["input_tokens"]?.intValue ?? 0, output = reply["usage"]?["output_tokens"]?.intValue ?? 0
    call.progress(1, "received \(text.count) characters")
    return [
        "text": .string(text), "model": reply["model"] ?? .string(model), "finish_reason": reply["stop_reason"] ?? .null,
        "usage": ["prompt_tokens": .int(input), "completion_tokens": .int(output), "total_tokens": .int(input + output)],
    ]
}

await GenflowPlugin.run(stages: ["anthropic.messages": messages])
