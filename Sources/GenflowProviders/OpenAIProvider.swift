public import GenflowCore
public import GenflowHTTPClient
internal import Foundation
internal import Synchronization

/// A chat request to an OpenAI-compatible API.
public struct ChatRequest: Sendable {
    public var model: String
    public var messages: [JSON]
    public var stream: Bool
    /// `response_format`, e.g. `{type: json_schema, json_schema: {…}}`.
    public var responseFormat: JSON?
    public var temperature: Double?
    public var maxTokens: Int?
    /// Whether the reply must be JSON (then `finish_reason: length` is `output_invalid`).
    public var expectsJSON: Bool

    public init(model: String, messages: [JSON], stream: Bool, responseFormat: JSON? = nil, temperature: Double? = nil, maxTokens: Int? = nil, expectsJSON: Bool = false) {
        self.model = model
        self.messages = messages
        self.stream = stream
        self.responseFormat = responseFormat
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.expectsJSON = expectsJSON
    }
}

/// An image generation request (`/images/generations`).
public struct ImageRequest: Sendable {
    public var model: String
    public var prompt: String
    public var count: Int
    /// e.g. `1024x1024`.
    public var size: String?
    public var quality: String?
    /// `png`, `jpeg` or `webp`.
    public var format: String?

    public init(model: String, prompt: String, count: Int, size: String?, quality: String?, format: String?) {
        self.model = model
        self.prompt = prompt
        self.count = count
        self.size = size
        self.quality = quality
        self.format = format
    }
}

/// One generated image: a URL where the provider keeps it, or its bytes.
public struct GeneratedImage: Sendable {
    public var url: String?
    public var bytes: [UInt8]?
    public var revisedPrompt: String?

    public init(url: String?, bytes: [UInt8]?, revisedPrompt: String? = nil) {
        self.url = url
        self.bytes = bytes
        self.revisedPrompt = revisedPrompt
    }
}

/// The images of one generation request.
public struct ImageResult: Sendable {
    public var images: [GeneratedImage]
    public var usage: JSON
    public var model: String

    public init(images: [GeneratedImage], usage: JSON, model: String) {
        self.images = images
        self.usage = usage
        self.model = model
    }
}

/// A chat reply.
public struct ChatResult: Sendable {
    public var text: String
    public var usage: JSON
    public var model: String
    public var finishReason: String
}

/// Chat completions on any OpenAI-compatible base URL, plain or streamed (SSE with usage), with
/// HTTP failures mapped to SPEC §6's error classes. The API key is sent, never logged or stored.
public struct OpenAIProvider: Sendable {
    let client: HTTPClient
    let baseURL: String
    let apiKey: Secret?

    public init(client: HTTPClient, baseURL: String, apiKey: Secret?) {
        self.client = client
        self.baseURL = baseURL
        self.apiKey = apiKey
    }

    /// Sends `request`; `onText` gets each piece of streamed text as it arrives (on the HTTP thread).
    public func chat(_ request: ChatRequest, timeout: Duration, onText: @escaping @Sendable (String) -> Void = { _ in }) async throws(StepError) -> ChatResult {
        var body: [String: JSON] = ["model": .string(request.model), "messages": .array(request.messages), "stream": .bool(request.stream)]
        if request.stream { body["stream_options"] = ["include_usage": true] }
        if let format = request.responseFormat { body["response_format"] = format }
        if let temperature = request.temperature { body["temperature"] = .double(temperature) }
        if let maxTokens = request.maxTokens { body["max_tokens"] = .int(maxTokens) }
        let events = SSEParser(onText: onText)
        let feed: @Sendable ([UInt8]) -> Void = { bytes in events.feed(bytes) }
        let response = try await post("/chat/completions", body: .object(body), timeout: timeout, onData: request.stream ? feed : nil)
        let result: ChatResult
        if request.stream {
            result = try events.result(model: request.model)
        } else {
            guard let reply = try? JSON(parsing: Data(response.body)), let choice = reply["choices"]?.arrayValue?.first else {
                throw StepError(.serverError, "the provider's reply is not a chat completion")
            }
            result = ChatResult(
                text: choice["message"]?["content"]?.stringValue ?? "", usage: reply["usage"] ?? [:],
                model: reply["model"]?.stringValue ?? request.model, finishReason: choice["finish_reason"]?.stringValue ?? "stop"
            )
        }
        if request.expectsJSON && result.finishReason == "length" {
            throw StepError(.outputInvalid, "the reply was cut off at the token limit (finish_reason: length)")
        }
        return result
    }

    /// Generates images (`/images/generations`); each comes back as a URL or as base64 bytes.
    public func images(_ request: ImageRequest, timeout: Duration) async throws(StepError) -> ImageResult {
        var body: [String: JSON] = ["model": .string(request.model), "prompt": .string(request.prompt), "n": .int(request.count)]
        if let size = request.size { body["size"] = .string(size) }
        if let quality = request.quality { body["quality"] = .string(quality) }
        // gpt-image models choose the file format with `output_format` and always answer base64;
        // DALL·E models have one format and answer with a URL unless asked otherwise.
        if let format = request.format, request.model.hasPrefix("gpt-image") { body["output_format"] = .string(format) }
        let response = try await post("/images/generations", body: .object(body), timeout: timeout, onData: nil)
        guard let reply = try? JSON(parsing: Data(response.body)), let items = reply["data"]?.arrayValue else {
            throw StepError(.serverError, "the provider's reply is not an image generation result")
        }
        var images: [GeneratedImage] = []
        for item in items {
            if let encoded = item["b64_json"]?.stringValue {
                guard let data = Data(base64Encoded: encoded) else { throw StepError(.serverError, "the provider sent an image that is not valid base64") }
                images.append(GeneratedImage(url: nil, bytes: [UInt8](data), revisedPrompt: item["revised_prompt"]?.stringValue))
            } else if let url = item["url"]?.stringValue {
                images.append(GeneratedImage(url: url, bytes: nil, revisedPrompt: item["revised_prompt"]?.stringValue))
            }
        }
        guard !images.isEmpty else { throw StepError(.serverError, "the provider answered without any image") }
        return ImageResult(images: images, usage: reply["usage"] ?? [:], model: request.model)
    }

    /// POSTs `body` as JSON under the base URL; transport failures and non-200 answers become
    /// their SPEC §6 classes.
    private func post(_ path: String, body: JSON, timeout: Duration, onData: (@Sendable ([UInt8]) -> Void)?) async throws(StepError) -> HTTPResponse {
        var headers = [("Content-Type", "application/json")]
        if let apiKey, !apiKey.isEmpty { headers.append(("Authorization", "Bearer \(apiKey.value)")) }
        let http = HTTPRequest(
            method: "POST", url: baseURL + path, headers: headers, body: Array(body.description.utf8),
            timeout: timeout, connectTimeout: min(timeout, .seconds(10)), idleTimeout: min(timeout, .seconds(30))
        )
        let response: HTTPResponse
        do throws(HTTPError) {
            response = try await client.perform(http, onData: onData)
        } catch {
            throw Self.failure(error)
        }
        guard response.status == 200 else { throw Self.failure(response) }
        return response
    }

    /// A transport failure's class.
    public static func failure(_ error: HTTPError) -> StepError {
        switch error.kind {
        case .timeout: StepError(.timeout, "the provider did not answer in time: \(error.message)")
        case .cancelled: StepError(.cancelled, "the call was stopped")
        case .network: StepError(.network, "cannot reach the provider: \(error.message)")
        }
    }

    /// SPEC §6's mapping: 429 → rate_limited (with retry-after-ms / retry-after), 408/409/5xx →
    /// server_error, 400/404/422 → invalid_request, 401/403 → auth.
    public static func failure(_ response: HTTPResponse) -> StepError {
        let detail = (try? JSON(parsing: Data(response.body)))?["error"]?["message"]?.stringValue
            ?? String(decoding: response.body.prefix(200), as: UTF8.self)
        let message = "provider answered \(response.status): \(detail)"
        switch response.status {
        case 429:
            var delay: Duration?
            if let milliseconds = response.headers["retry-after-ms"].flatMap(Double.init) {
                delay = .milliseconds(Int64(milliseconds))
            } else if let seconds = response.headers["retry-after"].flatMap(Double.init) {
                delay = .milliseconds(Int64(seconds * 1_000))
            }
            return StepError(.rateLimited, message, retryAfter: delay)
        case 401, 403: return StepError(.auth, message)
        case 408, 409, 500...599: return StepError(.serverError, message)
        default: return StepError(.invalidRequest, message)
        }
    }
}

/// Reads a server-sent event stream of chat completion chunks as its bytes arrive.
final class SSEParser: Sendable {
    private struct State {
        var buffer: [UInt8] = []
        var text = ""
        var usage: JSON = [:]
        var model: String?
        var finishReason: String?
        var isDone = false
        var failure: String?
    }

    private let state = Mutex(State())
    private let onText: @Sendable (String) -> Void

    init(onText: @escaping @Sendable (String) -> Void) {
        self.onText = onText
    }

    func feed(_ bytes: [UInt8]) {
        var pieces: [String] = []
        state.withLock { state in
            state.buffer += bytes
            while let end = Self.eventEnd(state.buffer) {
                let event = String(decoding: state.buffer[..<end.start], as: UTF8.self)
                state.buffer.removeFirst(end.after)
                for line in event.split(separator: "\n") where line.hasPrefix("data:") {
                    let payload = line.dropFirst(5).trimmingCharacters(in: .whitespaces)
                    if payload == "[DONE]" {
                        state.isDone = true
                        continue
                    }
                    guard let chunk = try? JSON(parsing: payload) else { continue }
                    if let error = chunk["error"] {
                        state.failure = error["message"]?.stringValue ?? "\(error)"
                        continue
                    }
                    if let model = chunk["model"]?.stringValue { state.model = model }
                    if let usage = chunk["usage"], usage != .null { state.usage = usage }
                    if let choice = chunk["choices"]?.arrayValue?.first {
                        if let piece = choice["delta"]?["content"]?.stringValue, !piece.isEmpty {
                            state.text += piece
                            pieces.append(piece)
                        }
                        if let reason = choice["finish_reason"]?.stringValue { state.finishReason = reason }
                    }
                }
            }
        }
        pieces.forEach(onText)
    }

    /// The reply once the stream ended: an error event or a stream cut before `[DONE]` is retryable.
    func result(model: String) throws(StepError) -> ChatResult {
        let state = state.withLock { $0 }
        if let failure = state.failure { throw StepError(.serverError, "the provider sent an error inside the stream: \(failure)") }
        guard state.isDone else { throw StepError(.serverError, "the stream ended before [DONE] (cut off)") }
        return ChatResult(text: state.text, usage: state.usage, model: state.model ?? model, finishReason: state.finishReason ?? "stop")
    }

    /// Where the first blank line ends an event: (index of the separator, index after it).
    private static func eventEnd(_ buffer: [UInt8]) -> (start: Int, after: Int)? {
        var index = 0
        while index + 1 < buffer.count {
            if buffer[index] == 10, buffer[index + 1] == 10 { return (index, index + 2) }
            if index + 3 < buffer.count, buffer[index] == 13, buffer[index + 1] == 10, buffer[index + 2] == 13, buffer[index + 3] == 10 {
                return (index, index + 4)
            }
            index += 1
        }
        return nil
    }
}
