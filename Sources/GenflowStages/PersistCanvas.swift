public import GenflowCore
public import GenflowPipeline

/// Upserts the prompt, its canvas and the canvas objects, keyed by job id.
public struct PersistCanvas: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "persist.canvas",
        summary: "Upsert the prompt (with status), its canvas and the canvas objects, keyed by job id.",
        config: .object([
            .init("objects", .array("Objects to store; defaults to the latest parse_canvas_objects output.", of: .freeObject())),
            .init("canvas_id", .string("Existing canvas to add to; defaults to input.canvas_id, else a new canvas.")),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
