public import GenflowCore
public import GenflowPipeline

/// Calls a configured model provider: chat (text, JSON, canvas objects) or image generation.
/// Output: `{text, json?, images?, usage, model, finish_reason, cached}`.
public struct CallModel: Stage {
    public let descriptor: StageDescriptor

    /// - Parameter providers: provider names from the daemon config; `provider:` must be one of them.
    public init(providers: [String]) {
        descriptor = StageDescriptor(
            name: "call_model",
            summary: "Call a model provider (chat or image), streaming progress; output {text, json?, images?, usage, model, finish_reason, cached}.",
            config: .object(required: ["model"], [
                .init("provider", .string("Provider name from the daemon config.", enum: providers.isEmpty ? nil : providers.sorted(), default: "default")),
                .init("model", .string("Model name, e.g. gpt-4o-mini.", minLength: 1)),
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

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
