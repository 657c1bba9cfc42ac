public import GenflowCore
public import GenflowPipeline
internal import GenflowCanvas

/// Extracts canvas objects from model text and validates each against the canvas schema.
/// Output: `{objects, warnings, dropped}`.
public struct ParseCanvasObjects: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "parse_canvas_objects",
        summary: "Extract JSON canvas objects from model text, validate each, drop bad ones; output {objects, warnings, dropped}.",
        config: .object(required: ["text"], [
            .init("text", .string("The model's text, usually {{steps.<id>.output.text}}.")),
            .init("max_objects", .integer("Most objects kept.", default: 200, minimum: 1, maximum: 200)),
            .init("max_invalid_fraction", .number("Fail with output_invalid when more than this fraction is bad.", default: 0.2, minimum: 0, maximum: 1)),
        ]),
        // Parsing the same text again gives the same result: `on_invalid` re-asks the model instead.
        retryDefaults: RetrySettings(nonRetryable: [.outputInvalid])
    )

    /// Parsing is pure: the step rides with the job's next write.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let parser = CanvasParser(
            maxObjects: context.config["max_objects"]?.intValue ?? CanvasSchema.maxObjects,
            maxInvalidFraction: context.config["max_invalid_fraction"]?.doubleValue ?? 0.2
        )
        return try parser.parse(context.config["text"]?.stringValue ?? "").json
    }
}
