public import GenflowCore
public import GenflowPipeline

/// Fails with `insufficient_tokens` (never retried) when the user's balance is below a minimum.
public struct TokensRequire: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "tokens.require",
        summary: "Fail with insufficient_tokens (not retryable) when the user's balance is below a minimum.",
        config: .object(required: ["minimum"], [
            .init("minimum", .integer("Smallest balance that lets the job go on.", minimum: 0)),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
