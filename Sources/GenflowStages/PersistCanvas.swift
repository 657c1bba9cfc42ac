public import GenflowCore
public import GenflowPipeline
internal import Foundation

/// Upserts the prompt, its canvas and the canvas objects, keyed by job id, with the step's checkpoint.
public struct PersistCanvas: Stage {
    public init() {}

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

    /// The rows are written with the checkpoint: nothing outside the job's own write.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

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
        // The job's prompt, if an earlier step recorded it (`status: processing`); else a new one.
        let promptID = context.previous.last { $0.stage == name && $0.output["prompt_id"] != nil }?.output["prompt_id"]?.stringValue
            ?? UUID().uuidString.lowercased()
        if let status = context.config["status"]?.stringValue.flatMap(PromptStatus.init(rawValue:)), status != .completed {
            context.records.withCheckpoint(.prompt(record, status: status, promptID: promptID))
            return ["prompt_id": .string(promptID), "status": .string(status.rawValue)]
        }
        if let existing = record.canvasID, try await !context.records.userOwnsCanvas(existing) {
            throw StepError(.invalidRequest, "canvas \(existing) does not exist or is not this user's")
        }
        let canvasID = record.canvasID ?? UUID().uuidString.lowercased()
        context.records.withCheckpoint(.canvas(record, promptID: promptID, canvasID: canvasID))
        return ["prompt_id": .string(promptID), "canvas_id": .string(canvasID), "objects": .int(objects.count)]
    }
}
