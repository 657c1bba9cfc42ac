public import GenflowCore
public import GenflowPipeline
public import GenflowStore

/// Upserts the prompt, its canvas and the canvas objects, keyed by job id.
public struct PersistCanvas: Stage {
    let store: JobStore?

    public init(store: JobStore? = nil) {
        self.store = store
    }

    public let descriptor = StageDescriptor(
        name: "persist.canvas",
        summary: "Upsert the prompt (with status), its canvas and the canvas objects, keyed by job id.",
        config: .object([
            .init("objects", .array("Objects to store; defaults to the latest parse_canvas_objects output.", of: .freeObject())),
            .init("canvas_id", .string("Existing canvas to add to; defaults to input.canvas_id, else a new canvas.")),
            .init("status", .string(
                "pending or processing: record only the prompt (early in a run, so history shows it); completed: save the canvas.",
                enum: ["pending", "processing", "completed"], default: "completed"
            )),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let objects = context.config["objects"]?.arrayValue
            ?? context.latestOutput(ofStage: "parse_canvas_objects")?["objects"]?.arrayValue ?? []
        let model = context.latestOutput(ofStage: "call_model")
        let record = CanvasRecord(
            jobID: context.jobID, userID: context.userID,
            instructions: context.input["instructions"]?.stringValue ?? "",
            style: context.input["style"]?.stringValue, colorScheme: context.input["color_scheme"]?.stringValue,
            canvasID: context.config["canvas_id"]?.stringValue ?? context.input["canvas_id"]?.stringValue,
            objects: objects,
            metadata: ["job_id": .string(context.jobID), "model": model?["model"] ?? .null, "usage": model?["usage"] ?? .null]
        )
        if let status = context.config["status"]?.stringValue.flatMap(PromptStatus.init(rawValue:)), status != .completed {
            let promptID = try await inTransaction(store) { try $0.recordPrompt(record, status: status) }
            return ["prompt_id": .string(promptID), "status": .string(status.rawValue)]
        }
        guard let saved = try await inTransaction(store, { try $0.persistCanvas(record) }) else {
            throw StepError(.invalidRequest, "canvas \(record.canvasID ?? "") does not exist or is not this user's")
        }
        return ["prompt_id": .string(saved.promptID), "canvas_id": .string(saved.canvasID), "objects": .int(objects.count)]
    }
}
