public import GenflowCore
public import GenflowPipeline

/// Records generated image metadata.
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

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
