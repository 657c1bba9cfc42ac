public import GenflowCore
public import GenflowPipeline

/// Emits a named event with data to the job's user and job channel.
public struct Notify: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "notify",
        summary: "Emit a named event with data to the job's user (and job channel).",
        config: .object(required: ["event"], [
            .init("event", .string("Event type, e.g. ai_generation_completed.", minLength: 1, maxLength: 100)),
            .init("data", .freeObject("Event payload.")),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
