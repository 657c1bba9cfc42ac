public import GenflowCore
public import GenflowPipeline
internal import Foundation

/// Records generated image metadata, with the step's checkpoint.
public struct PersistImage: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "persist.image",
        summary: "Record generated images: prompt, full prompt, location, style, aspect ratio, quality, format, resolution.",
        config: .object([
            .init("images", .array("Images to record; defaults to the latest call_model output's images.", of: .freeObject())),
            .init("prompt", .string("The user's prompt.")),
            .init("full_prompt", .string("The prompt as sent to the model.")),
            .init("dataset_id", .string()),
            .init("style", .string()),
            .init("aspect_ratio", .string(enum: ["1:1", "16:9", "9:16", "4:3", "3:4"])),
            .init("quality", .string()),
            .init("format", .string(enum: ["png", "jpeg", "webp"])),
            .init("resolution", .string("e.g. 1024x1024.")),
            .init("reference_images_count", .integer(minimum: 0, maximum: 100)),
        ])
    )

    /// The rows are written with the checkpoint: nothing outside the job's own write.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let config = context.config
        let images = config["images"]?.arrayValue ?? context.latestOutput(ofStage: "call_model")?["images"]?.arrayValue ?? []
        guard !images.isEmpty else { throw StepError(.invalidRequest, "no images to record (set 'images' or run call_model with output: image first)") }
        func text(_ key: String) -> String? {
            guard let value = config[key], value != .null else { return context.input[key]?.stringValue }
            return value.stringValue
        }
        let records = images.map { image in
            ImageRecord(
                prompt: text("prompt") ?? "", fullPrompt: text("full_prompt"),
                imageURL: image["url"]?.stringValue ?? image["image_url"]?.stringValue,
                datasetID: text("dataset_id"), style: text("style"), aspectRatio: text("aspect_ratio"),
                quality: text("quality"), format: image["format"]?.stringValue ?? text("format"),
                resolution: image["resolution"]?.stringValue ?? text("resolution"),
                referenceImagesCount: config["reference_images_count"]?.intValue ?? 0,
                filePath: image["path"]?.stringValue, byteCount: image["bytes"]?.intValue
            )
        }
        let ids = records.map { _ in UUID().uuidString.lowercased() }
        context.records.withCheckpoint(.images(records, ids: ids))
        return ["images": .array(zip(ids, images).map { id, image in
            ["id": .string(id), "image_url": image["url"] ?? image["image_url"] ?? (image["path"] != nil ? .string("/v1/images/\(id)/content") : .null)]
        })]
    }
}
