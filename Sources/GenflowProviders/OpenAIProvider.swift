public import GenflowCore
public import GenflowHTTPClient
internal import Foundation

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
    /// The job's input: the offline model draws from its `instructions` and `color_scheme`.
    public var input: JSON

    public init(
        model: String, messages: [JSON], stream: Bool, responseFormat: JSON? = nil, temperature: Double? = nil, maxTokens: Int? = nil,
        expectsJSON: Bool = false, input: JSON = [:]
    ) {
        self.input = input
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
    /// `1:1`, `16:9`, … as the step asked (`size` is derived from it when not given).
    public var aspectRatio: String?
    /// The job's input: the offline model takes its colours from `color_scheme` or `style`.
    public var input: JSON

    public init(
        model: String, prompt: String, count: Int, size: String?, quality: String?, format: String?, aspectRatio: String? = nil, input: JSON = [:]
    ) {
        self.aspectRatio = aspectRatio
        self.input = input
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
    /// The file format and `WxH`, when the provider says (else the request's).
    public var format: String?
    public var resolution: String?

    public init(url: String?, bytes: [UInt8]?, revisedPrompt: String? = nil, format: String? = nil, resolution: String? = nil) {
        self.url = url
        self.bytes = bytes
        self.revisedPrompt = revisedPrompt
        self.format = format
        self.resolution = resolution
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
    /// `{prompt_tokens, completion_tokens, total_tokens}` whatever the provider's own names.
    public var usage: JSON
    public var model: String
    public var finishReason: String

    public init(text: String, usage: JSON, model: String, finishReason: String) {
        self.text = text
        self.usage = usage
        self.model = model
        self.finishReason = finishReason
    }
}

/// `kind: openai`: chat completions and image generations on any OpenAI-compatible base URL,
/// plain or streamed (SSE with usage). The API key is sent, never logged or stored.
public struct OpenAIProvider: Provider {
    public static let kind = ProviderKind(
        name: "openai", summary: "Any OpenAI-compatible API (chat completions, image generations).",
        settings: [
            .init("base_url", ProviderKinds.url("The API root.", default: "https://api.openai.com/v1")),
            .init("api_key", .string("API key, sent as a bearer token; use ${VAR}.")),
        ],
        secrets: ["api_key"]
    ) { settings, secrets, http in
        OpenAIProvider(http: http, baseURL: ProviderKinds.root(settings, "base_url"), apiKey: secrets["api_key"])
    }

    let http: HTTPClientSource
    let baseURL: String
    let apiKey: Secret?

    public init(http: HTTPClientSource, baseURL: String, apiKey: Secret?) {
        self.http = http
        self.baseURL = baseURL
        self.apiKey = apiKey
    }

    public var callsOut: Bool { true }
    public var identity: JSON { ["kind": "openai", "base_url": .string(baseURL)] }

    /// Sends `request`; `onText` gets each piece of streamed text as it arrives (on the HTTP thread).
    public func chat(
        _ request: ChatRequest, timeout: Duration, onText: @escaping @Sendable (String, Double?) -> Void = { _, _ in }
    ) async throws(StepError) -> ChatResult {
        var body: [String: JSON] = ["model": .string(request.model), "messages": .array(request.messages), "stream": .bool(request.stream)]
        if request.stream { body["stream_options"] = ["include_usage": true] }
        if let format = request.responseFormat { body["response_format"] = format }
        if let temperature = request.temperature { body["temperature"] = .double(temperature) }
        if let maxTokens = request.maxTokens { body["max_tokens"] = .int(maxTokens) }
        let (response, events) = try await StreamedReply.post(
            http.client, baseURL + "/chat/completions", body: .object(body), headers: authorization, timeout: timeout, streams: request.stream,
            read: Self.readChunk, onText: onText
        )
        let result: ChatResult
        if request.stream {
            result = try events.result(model: request.model, done: "the stream ended before [DONE] (cut off)")
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
        let response = try await ProviderFailure.post(
            http.client, baseURL + "/images/generations", body: .object(body), headers: authorization, timeout: timeout, onData: nil
        )
        guard let reply = try? JSON(parsing: Data(response.body)), let items = reply["data"]?.arrayValue else {
            throw StepError(.serverError, "the provider's reply is not an image generation result")
        }
        var images: [GeneratedImage] = []
        for item in items {
            let revised = item["revised_prompt"]?.stringValue
            if let encoded = item["b64_json"]?.stringValue {
                guard let data = Data(base64Encoded: encoded), ImageBytes.format(of: [UInt8](data.prefix(16))) != nil else {
                    throw StepError(.outputInvalid, "the provider sent b64_json that is not a PNG, JPEG, WebP or GIF image")
                }
                images.append(GeneratedImage(url: nil, bytes: [UInt8](data), revisedPrompt: revised))
            } else if let url = item["url"]?.stringValue {
                guard url.hasPrefix("https://") || url.hasPrefix("http://") else {
                    throw StepError(.outputInvalid, "the provider sent an image url that is not http(s): '\(url.prefix(100))'")
                }
                images.append(GeneratedImage(url: url, bytes: nil, revisedPrompt: revised))
            }
        }
        guard !images.isEmpty else { throw StepError(.serverError, "the provider answered without any image") }
        // DALL·E 3 (and servers like it) report no usage: count the tokens as gpt-image-1 would.
        let usage = reply["usage"].flatMap { $0["total_tokens"]?.intValue != nil ? $0 : nil }
            ?? ImageBytes.estimatedUsage(prompt: request.prompt, size: request.size, quality: request.quality, count: images.count)
        return ImageResult(images: images, usage: usage, model: request.model)
    }

    /// One chunk of a streamed chat completion: its text piece, and the model, finish reason and
    /// usage when it carries them.
    static func readChunk(_ payload: String, _ reply: inout StreamedReply.Reply) -> String? {
        if payload == "[DONE]" {
            reply.isDone = true
            return nil
        }
        guard let chunk = try? JSON(parsing: payload) else { return nil }
        if let error = chunk["error"] {
            reply.failure = error["message"]?.stringValue ?? "\(error)"
            return nil
        }
        if let model = chunk["model"]?.stringValue { reply.model = model }
        if let usage = chunk["usage"], usage != .null { reply.usage = usage }
        guard let choice = chunk["choices"]?.arrayValue?.first else { return nil }
        if let reason = choice["finish_reason"]?.stringValue { reply.finishReason = reason }
        return choice["delta"]?["content"]?.stringValue
    }

    private var authorization: [(String, String)] {
        apiKey.map { $0.isEmpty ? [] : [("Authorization", "Bearer \($0.value)")] } ?? []
    }
}
