public import GenflowCore
public import GenflowPipeline

/// Renders the system and user messages for a model call. Output: `{messages, prompt}`.
public struct PrepareInstructions: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "prepare_instructions",
        summary: "Render system and user messages from templates and the job input; output {messages, prompt}.",
        config: .object(required: ["template"], [
            .init("system", .string("System message (mustache template).")),
            .init("template", .string("User message (mustache template).", minLength: 1)),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
