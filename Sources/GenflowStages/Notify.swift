public import GenflowCore
public import GenflowPipeline
public import GenflowStore

/// Emits a named event with data to the job's user and job channel.
///
/// At least once: if the daemon dies after the event is written and before the step's checkpoint,
/// the resumed job emits it again.
public struct Notify: Stage {
    let store: JobStore?

    public init(store: JobStore? = nil) {
        self.store = store
    }

    public let descriptor = StageDescriptor(
        name: "notify",
        summary: "Emit a named event with data to the job's user (and job channel).",
        config: .object(required: ["event"], [
            .init("event", .string("Event type, e.g. ai_generation_completed.", minLength: 1, maxLength: 100)),
            .init("data", .freeObject("Event payload.")),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let name = context.config["event"]?.stringValue ?? ""
        guard !EventNames.isReserved(name) else {
            throw StepError(.invalidRequest, "event name '\(name)' is the daemon's own (reserved: \(EventNames.reservedPrefixes.joined(separator: ", "))); name it for your application, e.g. ai_generation_completed")
        }
        let event = NewEvent(
            userID: context.userID, jobID: context.jobID, type: context.config["event"]?.stringValue ?? "",
            step: context.stepID, data: context.config["data"] ?? [:]
        )
        try await record([event], in: store)
        return ["event": .string(event.type)]
    }
}
