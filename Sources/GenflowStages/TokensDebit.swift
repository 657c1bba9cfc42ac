public import GenflowCore
public import GenflowPipeline

/// Debits the ledger exactly once per job step and emits `token_balance_updated`.
///
/// The idempotency key is the job id and step id: a step run again after a crash (its debit
/// committed, its checkpoint not) finds the entry it made and debits nothing more.
public struct TokensDebit: Stage {
    public init() {}

    public let descriptor = StageDescriptor(
        name: "tokens.debit",
        summary: "Debit the user's tokens exactly once per job step (idempotency key); emit token_balance_updated.",
        config: .object(required: ["amount", "reason"], [
            .init("amount", JSONSchema(
                types: ["integer", "array"], description: "Tokens to debit, or a list of amounts to add up (the usage of several calls).",
                items: .integer(minimum: 0), minimum: 0, maxItems: 100)),
            .init("reason", .string("Ledger reason, e.g. canvas_generation.", minLength: 1, maxLength: 200)),
        ]),
        retryDefaults: RetrySettings(maxAttempts: 10)
    )

    /// The debit is the engine's write, under the job's lease and once per job step: no start to
    /// commit first, and a run again after a crash finds its entry.
    public func hasOutsideEffects(_ config: JSON) -> Bool { false }

    public func run(_ context: StageContext) async throws(StepError) -> JSON {
        let amount = context.config["amount"]?.arrayValue?.reduce(0) { $0 + ($1.intValue ?? 0) } ?? context.config["amount"]?.intValue ?? 0
        let reason = context.config["reason"]?.stringValue ?? ""
        let debit = try await context.records.debit(amount: amount, reason: reason)
        return ["transaction_id": .int(debit.transactionID), "balance": .int(debit.balanceAfter), "debited": .int(amount), "repeated": .bool(!debit.isNew)]
    }
}
