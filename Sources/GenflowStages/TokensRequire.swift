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

    /// Reading the balance again changes nothing.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let balance = try await context.records.balance()
        let minimum = context.config["minimum"]?.intValue ?? 0
        guard balance >= minimum else {
            throw StepError(.insufficientTokens, "balance \(balance) is below the \(minimum) tokens this pipeline requires")
        }
        return ["balance": .int(balance)]
    }
}
