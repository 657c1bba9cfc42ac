// genflow-plugin-anthropic: Anthropic's Messages API as the stage `anthropic.messages`, written
// with GenflowPluginKit: the example of a plugin. (Pipelines can also use the built-in
// `kind: anthropic` provider with call_model; this plugin calls through the same code.) The API
// key comes from the environment variable the step names (default ANTHROPIC_API_KEY), never from
// the pipeline.
import Foundation
import GenflowCore
import GenflowPluginKit
import GenflowProviders

let http = HTTPClientSource()

@Sendable func messages(_ call: PluginCall) async throws -> JSON {
    let config = call.config
    let base = config["base_url"]?.stringValue ?? "https://api.anthropic.com"
    guard base.hasPrefix("http://") || base.hasPrefix("https://") else {
        throw PluginFailure("invalid_request", "base_url must start with http:// or https://")
    }
    let model = config["model"]?.stringValue ?? ""
    var messages = config["messages"]?.arrayValue ?? []
    if messages.isEmpty, let prompt = config["prompt"]?.stringValue { messages = [["role": "user", "content": .string(prompt)]] }
    guard !messages.isEmpty else { throw PluginFailure("invalid_request", "give 'prompt' or 'messages'") }
    if let system = config["system"]?.stringValue { messages.insert(["role": "system", "content": .string(system)], at: 0) }
    let keyVariable = config["api_key_env"]?.stringValue ?? "ANTHROPIC_API_KEY"
    let key = ProcessInfo.processInfo.environment[keyVariable].flatMap { $0.isEmpty ? nil : Secret($0) }
    let provider = AnthropicProvider.kind.make(["base_url": .string(base)], secrets: key.map { ["api_key": $0] } ?? [:], http: http)

    call.progress(0, "asking \(model)")
    let deadline = Duration.milliseconds(call.context["deadline_ms"]?.intValue ?? 60_000)
    let request = ChatRequest(model: model, messages: messages, stream: false, maxTokens: config["max_tokens"]?.intValue ?? 1_024)
    let result: ChatResult
    do throws(StepError) {
        result = try await provider.chat(request, timeout: deadline) { _, _ in }
    } catch {
        throw PluginFailure(error.errorClass.rawValue, error.message, retryAfterMilliseconds: error.retryAfter.map { Int($0.milliseconds) })
    }
    call.progress(1, "received \(result.text.count) characters")
    return ["text": .string(result.text), "model": .string(result.model), "finish_reason": .string(result.finishReason), "usage": result.usage]
}

await GenflowPlugin.run(stages: ["anthropic.messages": messages])
