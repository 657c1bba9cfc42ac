public import GenflowCore
public import GenflowPipeline
internal import Foundation

/// Renders the system and user messages for a model call. Output: `{messages, prompt}`, where
/// `prompt` is the user message alone (what prompt history records as the full prompt).
/// The templates were rendered against the job by the engine before the stage runs.
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

    /// Rendering is pure: the step rides with the job's next write.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let prompt = context.config["template"]?.stringValue ?? ""
        guard !prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw StepError(.invalidRequest, "the rendered template is empty")
        }
        var messages: [JSON] = []
        if let system = context.config["system"]?.stringValue, !system.isEmpty {
            messages.append(["role": "system", "content": .string(system)])
        }
        messages.append(["role": "user", "content": .string(prompt)])
        return ["messages": .array(messages), "prompt": .string(prompt)]
    }
}
