public import GenflowCore
public import GenflowPipeline

/// Debits the ledger exactly once per job step and emits `token_balance_updated`.
public struct TokensDebit: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "tokens.debit",
        summary: "Debit the user's tokens exactly once per job step (idempotency key); emit token_balance_updated.",
        config: .object(required: ["amount", "reason"], [
            .init("amount", .integer("Tokens to debit.", minimum: 0)),
            .init("reason", .string("Ledger reason, e.g. canvas_generation.", minLength: 1, maxLength: 200)),
        ]),
        retryDefaults: RetrySettings(maxAttempts: 10)
    )

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        throw notImplemented()
    }
}
