public import GenflowCore
public import GenflowPipeline
public import GenflowStore

/// Fails with `insufficient_tokens` (never retried) when the user's balance is below a minimum.
public struct TokensRequire: Stage {
    let store: JobStore?

    public init(store: JobStore? = nil) {
        self.store = store
    }

    public let descriptor = StageDescriptor(
        name: "tokens.require",
        summary: "Fail with insufficient_tokens (not retryable) when the user's balance is below a minimum.",
        config: .object(required: ["minimum"], [
            .init("minimum", .integer("Smallest balance that lets the job go on.", minimum: 0)),
        ])
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let user = context.userID
        let balance: Int = try await inTransaction(store) { try $0.balance(userID: user) }
        let minimum = context.config["minimum"]?.intValue ?? 0
        guard balance >= minimum else {
            throw StepError(.insufficientTokens, "balance \(balance) is below the \(minimum) tokens this pipeline requires")
        }
        return ["balance": .int(balance)]
    }
}
