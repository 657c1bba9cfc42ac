public import GenflowCore
public import GenflowPipeline

/// Emits a named event with data to the job's user and job channel.
///
/// Exactly once: the event commits with the step's checkpoint, so a daemon that dies before it
/// has sent neither, and the resumed job sends it once.
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

    /// The event is written with the checkpoint: nothing outside the job's own write.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let name = context.config["event"]?.stringValue ?? ""
        guard !EventType.isReserved(name) else {
            throw StepError(.invalidRequest, "event name '\(name)' is the daemon's own (reserved: \(EventType.reservedPrefixes.joined(separator: ", "))); name it for your application, e.g. ai_generation_completed")
        }
        context.records.withCheckpoint(.event(StageEvent(type: name, data: context.config["data"] ?? [:])))
        return ["event": .string(name)]
    }
}
