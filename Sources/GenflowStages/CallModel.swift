internal import GenflowConfig
public import GenflowCore
public import GenflowPipeline
internal import GenflowCanvas
internal import GenflowProviders
internal import Metrics
internal import Synchronization

/// Calls a configured model provider: chat (text, JSON, canvas objects) or image generation, and
/// its fallbacks in turn when it fails (`ModelTargets.swift`).
/// Output: `{text, json?, images?, usage, model, provider, tried?, finish_reason, cached}`.
public struct CallModel: Stage {
    /// A provider as configured: made from its kind, with its cooldown policy.
    struct Configured: Sendable {
        var provider: any Provider
        var cooldown: CooldownPolicy?
        var pricing: [String: ModelPrice]
    }

    public let descriptor: StageDescriptor
    let providers: [String: Configured]
    let health: ProviderHealth
    /// Caps on each user's spend (`limits.budget`).
    let budget: SpendLimits
    let imageFiles: ImageFiles
    /// Scripted replies (`genflow test`, recorded dry runs); nil in the daemon.
    let replies: ReplyBook?

    /// - Parameters:
    ///   - providers: the daemon config's providers; `provider:` must name one of them.
    ///   - health: which targets are cooling down, shared by every job of the daemon.
    ///   - stateDirectory: where images sent as bytes are kept (under `images/`).
    init(
        providers: [String: ProviderConfig], health: ProviderHealth, budget: SpendLimits, http: HTTPClientSource, stateDirectory: String?,
        replies: ReplyBook? = nil
    ) {
        self.budget = budget
        self.providers = providers.compactMapValues { config in
            ProviderKinds.named(config.kind).map { kind in
                Configured(provider: kind.make(config.settings, secrets: config.secrets, http: http), cooldown: config.cooldown, pricing: config.pricing)
            }
        }
        self.health = health
        self.replies = replies
        imageFiles = ImageFiles(stateDirectory: stateDirectory)
        let providers = Array(providers.keys)
        descriptor = StageDescriptor(
            name: "call_model",
            summary: "Call a model provider (chat or image), streaming progress, with fallbacks; output {text, json?, images?, usage, model, provider, tried?, finish_reason, cached}.",
            config: .object(required: ["model"], [
                .init("provider", .string("Provider name from the daemon config.", enum: providers.isEmpty ? nil : providers.sorted(), default: "default")),
                .init("model", .string("Model name, e.g. gpt-4o-mini.", minLength: 1)),
                .init("fallbacks", .array("Targets tried in turn, within the same attempt, when the one before fails with a class in fallback_on.", of: .object([
                    .init("provider", .string("Provider name (default: the step's).", enum: providers.isEmpty ? nil : providers.sorted())),
                    .init("model", .string("Model name (default: the step's).", minLength: 1)),
                ]), minItems: 1, maxItems: 8)),
                .init("fallback_on", .array("Error classes that move to the next target.", of: .string(enum: ErrorClass.known.map(\.rawValue)), minItems: 1)),
                .init("output", .string("What to ask for.", enum: ["text", "json", "canvas_objects", "image"], default: "text")),
                .init("stream", .boolean("Stream the response and report progress.", default: false)),
                .init("messages", .array("Chat messages; defaults to the latest prepare_instructions output.", of: .object(required: ["role", "content"], [
                    .init("role", .string(enum: ["system", "user", "assistant"])),
                    .init("content", .string()),
                ]))),
                .init("prompt", .string("Image prompt (output: image).")),
                .init("schema", .freeObject("JSON Schema for output: json (sent as response_format json_schema).")),
                .init("temperature", .number(minimum: 0, maximum: 2)),
                .init("max_tokens", .integer(minimum: 1, maximum: 1_000_000)),
                .init("size", .string("Image size, e.g. 1024x1024.")),
                .init("quality", .string("Image quality.")),
                .init("format", .string("Image format.", enum: ["png", "jpeg", "webp"])),
                .init("aspect_ratio", .string("Image aspect ratio; the provider picks the matching size.", enum: ["1:1", "16:9", "9:16", "4:3", "3:4"])),
                .init("n", .integer("Number of images.", default: 1, minimum: 1, maximum: 4)),
                .init("cache", .object(description: "Reuse the stored response of an identical request.", required: ["ttl"], [
                    .init("ttl", .duration("How long a stored response stays usable, e.g. 1h.")),
                ])),
            ]),
            retryDefaults: RetrySettings(timeout: .seconds(120))
        )
    }

    /// A provider is outside; the offline model is not (it computes its reply here, and its image
    /// files are rewritten by a run again), unless a response cache is written.
    public func hasOutsideEffects(_ config: JSON) -> Bool {
        Self.targets(config).contains { providers[$0.provider]?.provider.callsOut != false } || config["cache"] != nil
    }

    /// A model's reply takes long against a commit: the call goes out while the start commits.
    public func runsWhileStartCommits(_ config: JSON) -> Bool { true }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let config = context.config
        let name = config["provider"]?.stringValue ?? "default"
        guard let provider = providers[name]?.provider else {
            throw StepError(.invalidRequest, "provider '\(name)' is not configured (providers: \(providers.keys.sorted().joined(separator: ", ")))")
        }
        let output = config["output"]?.stringValue ?? "text"
        var messages = config["messages"]?.arrayValue ?? context.latestOutput(ofStage: "prepare_instructions")?["messages"]?.arrayValue
            ?? [["role": "user", "content": config["prompt"] ?? .string("")]]
        if let feedback = context.feedback {
            messages.append(["role": "user", "content": .string(
                "Your previous reply could not be used: \(feedback["error"]?.stringValue ?? "it was invalid"). Reply again with valid JSON only."
            )])
        }
        // A scripted job's replies stand for the providers: no cache between them.
        let isScripted = replies?.knows(context.jobID) == true
        let cache = isScripted ? nil : config["cache"]?["ttl"]?.stringValue.flatMap(DurationText.parse).map { ttl in
            (ttl: ttl, key: Self.cacheKey(
                provider: name, identity: provider.identity, config: config, output: output,
                // An image request's text is its prompt, however it was given.
                messages: output == "image" ? [["role": "user", "content": .string(imageRequest(context, model: "").prompt)]] : messages
            ))
        }
        if let cache, let stored = try await context.records.cachedResponse(key: cache.key) {
            return try await replay(stored, context: context, output: output)
        }
        let answer = try await callTargets(context, output: output, messages: messages)
        if let cache {
            try await context.records.cacheResponse(answer, key: cache.key, ttl: cache.ttl)
        }
        return answer
    }

    /// Model call latency by provider and outcome, through swift-metrics (`/metrics` in the daemon).
    static func record(provider: String, since started: ContinuousClock.Instant, outcome: String) {
        let elapsed = ContinuousClock.now - started
        Timer(label: "genflow_model_call_duration_seconds", dimensions: [("provider", provider), ("outcome", outcome)])
            .recordNanoseconds(elapsed.nanoseconds)
    }

    /// What makes two requests identical for the cache: the provider (and where it is), the model,
    /// the messages and every option that shapes the answer. Never the API key.
    static func cacheKey(provider name: String, identity: JSON, config: JSON, output: String, messages: [JSON]) -> JSON {
        var key: [String: JSON] = ["provider": .string(name), "messages": .array(messages), "output": .string(output)]
        for (field, value) in identity.objectValue ?? [:] { key[field] = value }
        for option in ["model", "schema", "temperature", "max_tokens", "prompt", "size", "quality", "format", "aspect_ratio", "n"] {
            key[option] = config[option] ?? .null
        }
        return .object(key)
    }

    /// A cached response, marked `cached: true`; canvas objects are announced again at once, so a
    /// frontend draws a cached answer like a fresh one.
    private func replay(_ stored: JSON, context: StageContext, output: String) async throws(StepError) -> JSON {
        guard var answer = stored.objectValue else { throw StepError(.internal, "a cached model response is not an object") }
        answer["cached"] = true
        if output == "canvas_objects", let objects = Self.objects(in: stored), !objects.isEmpty {
            try await context.records.send([StageEvent(type: .canvasObjects, data: ["objects": .array(objects), "cached": true])])
        }
        return .object(answer)
    }

    /// The canvas objects of a response: `json` as a list, or its `objects` member.
    static func objects(in response: JSON) -> [JSON]? {
        response["json"]?.arrayValue ?? response["json"]?["objects"]?.arrayValue
    }

    /// A chat reply; streamed text becomes progress and `canvas.objects` events as it arrives.
    func runChat(_ context: StageContext, provider: any Provider, model: String, messages: [JSON], output: String) async throws(StepError) -> JSON {
        let config = context.config
        var format: JSON?
        switch output {
        case "canvas_objects":
            format = CanvasSchema.responseFormat
        case "json":
            format = config["schema"].map { ["type": "json_schema", "json_schema": ["name": "output", "schema": $0]] } ?? ["type": "json_object"]
        default:
            break
        }
        let streams = config["stream"]?.boolValue ?? false
        let request = ChatRequest(
            model: model, messages: messages, stream: streams, responseFormat: format,
            temperature: config["temperature"]?.doubleValue, maxTokens: config["max_tokens"]?.intValue, expectsJSON: output != "text",
            input: context.input
        )
        let result = try await reporting(context, output: output) { emit throws(StepError) in
            try await provider.chat(request, timeout: context.timeout, onText: emit)
        }
        var answer: [String: JSON] = [
            "text": .string(result.text), "usage": result.usage, "model": .string(result.model),
            "finish_reason": .string(result.finishReason), "cached": false,
        ]
        if output != "text", let value = try? JSON(parsing: result.text) { answer["json"] = value }
        return .object(answer)
    }

    /// Image generation; images sent as bytes are kept under the state directory.
    func runImages(_ context: StageContext, provider: any Provider, model: String) async throws(StepError) -> JSON {
        let request = imageRequest(context, model: model)
        let result = try await provider.images(request, timeout: context.timeout)
        var images: [JSON] = []
        for (index, image) in result.images.enumerated() {
            let format = image.format ?? request.format ?? "png"
            var entry: [String: JSON] = ["format": .string(format), "resolution": (image.resolution ?? request.size).map(JSON.string) ?? .null]
            if let url = image.url { entry["url"] = .string(url) }
            if let bytes = image.bytes {
                entry["path"] = .string(try imageFiles.save(bytes, jobID: context.jobID, step: context.stepID, index: index, format: format))
                entry["bytes"] = .int(bytes.count)
            }
            if let revised = image.revisedPrompt { entry["revised_prompt"] = .string(revised) }
            images.append(.object(entry))
        }
        return ["text": "", "images": .array(images), "usage": result.usage, "model": .string(result.model), "finish_reason": "stop", "cached": false]
    }

    /// The image request a step's config (or the prompt step before it) describes. Without a
    /// `size`, the aspect ratio picks one the gpt-image models accept.
    private func imageRequest(_ context: StageContext, model: String) -> ImageRequest {
        let config = context.config
        let prompt = config["prompt"]?.stringValue ?? context.latestOutput(ofStage: "prepare_instructions")?["prompt"]?.stringValue
            ?? context.input["prompt"]?.stringValue ?? ""
        let size = config["size"]?.stringValue ?? config["aspect_ratio"]?.stringValue.map { ratio in
            switch ratio {
            case "16:9", "4:3": "1536x1024"
            case "9:16", "3:4": "1024x1536"
            default: "1024x1024"
            }
        }
        return ImageRequest(
            model: model, prompt: prompt, count: config["n"]?.intValue ?? 1,
            size: size, quality: config["quality"]?.stringValue, format: config["format"]?.stringValue,
            aspectRatio: config["aspect_ratio"]?.stringValue, input: context.input
        )
    }

    /// Runs `produce`, which hands each piece of a streamed reply (with the fraction done, when
    /// known) to `emit`; the pieces become `step.progress` and `canvas.objects` events, written by
    /// one task: pieces that arrive while the last ones are being written go out together.
    private func reporting<T>(
        _ context: StageContext, output: String, _ produce: (_ emit: @escaping @Sendable (String, Double?) -> Void) async throws(StepError) -> T
    ) async throws(StepError) -> T {
        let pieces = BatchQueue<StreamPiece>()
        let reporter = FirstPieceTask { () -> StepError? in
            var reporter = StreamReporter(context: context, output: output)
            while let batch = await pieces.next() {
                do throws(StepError) {
                    try await reporter.received(batch.map(\.text).joined(), fraction: batch.last?.fraction)
                } catch {
                    return error
                }
            }
            return nil
        }
        let result: T
        do throws(StepError) {
            result = try await produce {
                pieces.add(StreamPiece(text: $0, fraction: $1))
                reporter.start()
            }
        } catch {
            pieces.finish()
            _ = await reporter.started?.value
            throw error
        }
        pieces.finish()
        if let failure = await reporter.started?.value { throw failure }
        return result
    }

    /// A scripted model reply, streamed in eight chunks and answered as `runOpenAI` answers; a
    /// reply cut by the length limit is `output_invalid`, as from the provider.
    func runScripted(_ context: StageContext, text: String, usage: JSON?, finishReason: String?, output: String) async throws(StepError) -> JSON {
        let size = max(1, (text.count + 7) / 8)
        let chunks = stride(from: 0, to: text.count, by: size).map { start in
            String(text.dropFirst(start).prefix(size))
        }
        let streams = context.config["stream"]?.boolValue ?? false
        let streamed = try await reporting(context, output: output) { emit in
            for (index, chunk) in chunks.enumerated() where streams { emit(chunk, Double(index + 1) / Double(chunks.count)) }
            return chunks.joined()
        }
        if finishReason == "length" { throw StepError(.outputInvalid, "the model's reply was cut at its length limit (finish_reason length)") }
        var answer: [String: JSON] = [
            "text": .string(streamed), "usage": usage ?? OfflineModel.usage(promptCharacters: 0, completionCharacters: text.count),
            "model": "scripted reply", "finish_reason": .string(finishReason ?? "stop"), "cached": false,
        ]
        if output != "text", let value = try? JSON(parsing: streamed) { answer["json"] = value }
        return .object(answer)
    }
}

/// The task that writes a reply's pieces, started by the first piece. A reply that is not
/// streamed has none, and then no task is started or waited for: each would be one more turn
/// through the cooperative pool, and 2,000 calls answered together queue there.
private final class FirstPieceTask: Sendable {
    private let body: @Sendable () async -> StepError?
    private let task = Mutex<Task<StepError?, Never>?>(nil)

    init(_ body: @escaping @Sendable () async -> StepError?) {
        self.body = body
    }

    func start() {
        task.withLock { task in
            if task == nil { task = Task(operation: body) }
        }
    }

    var started: Task<StepError?, Never>? { task.withLock { $0 } }
}

/// A piece of a streamed reply and how much of the reply has come, when known.
private struct StreamPiece: Sendable {
    var text: String
    var fraction: Double?
}

/// Turns a streamed reply into `step.progress` events and, for canvas objects, `canvas.objects`
/// events carrying each object once it is complete.
private struct StreamReporter {
    let context: StageContext
    let output: String
    /// Characters received (counted piece by piece: a String's count walks the whole string).
    private var characters = 0
    private var objects = CanvasStream()
    /// The ids of the objects already sent: an arrow dropped from a partial list until its target
    /// arrives is sent when it comes back, and nothing is sent twice.
    private var announced: Set<String> = []

    init(context: StageContext, output: String) {
        self.context = context
        self.output = output
    }

    mutating func received(_ piece: String, fraction: Double?) async throws(StepError) {
        characters += piece.count
        var events = [StageEvent(type: .stepProgress, data: [
            "fraction": fraction.map(JSON.double) ?? .null, "message": .string("received \(characters) characters"),
        ])]
        if output == "canvas_objects", let complete = objects.append(piece) {
            let fresh = complete.filter { !announced.contains($0["id"]?.stringValue ?? "") }
            if !fresh.isEmpty {
                events.append(StageEvent(type: .canvasObjects, data: ["objects": .array(fresh)]))
                announced.formUnion(fresh.compactMap { $0["id"]?.stringValue })
            }
        }
        try await context.records.send(events)
    }
}
