public import GenflowCore
public import GenflowPostgres
public import GenflowQueue

/// Why a priced call was not let through (`StoreSession.holdSpend`).
public struct BudgetRefusal: Error, Sendable {
    public var message: String
}

extension StoreSession {
    /// Holds `amount` of `userID`'s budget for a priced call of `jobID` until `expiry` (or the flush
    /// that checkpoints the call), unless the user's spend has reached a cap of `limits`: the cost
    /// of their jobs created since 00:00 UTC today (since the 1st of the month), plus the holds of
    /// calls in flight. One user's holds are taken one at a time across daemons (an advisory lock),
    /// so every call let through is counted before the next is decided. Returns the hold's id, or
    /// why it was refused. Call in a write transaction.
    public func holdSpend(userID: String, jobID: String, amount: Money, limits: SpendLimits, expiry: Duration) throws -> Result<Int64, BudgetRefusal> {
        _ = try connection.query("SELECT pg_advisory_xact_lock(hashtextextended('genflow-spend:' || $1, 0))", [userID])
        let row = try connection.query("""
            WITH gone AS (DELETE FROM genflow.spend_holds WHERE user_id = $1 AND expires_at <= now()),
            held AS (SELECT coalesce(sum(amount), 0) AS amount FROM genflow.spend_holds WHERE user_id = $1 AND expires_at > now()),
            spent AS (
                SELECT coalesce(sum(cost) FILTER (WHERE created_at >= date_trunc('day', now(), 'UTC')), 0) AS day, coalesce(sum(cost), 0) AS month
                FROM genflow.jobs WHERE user_id = $1 AND created_at >= date_trunc('month', now(), 'UTC') AND cost > 0
            )
            SELECT (spent.day + held.amount)::text AS day, (spent.month + held.amount)::text AS month FROM spent, held
            """, [userID]).rows.first
        let day = row?["day"].flatMap { Money($0) } ?? .zero, month = row?["month"].flatMap { Money($0) } ?? .zero
        if let refusal = limits.refusal(day: day, month: month) { return .failure(BudgetRefusal(message: refusal)) }
        let id: Int64? = try connection.query("""
            INSERT INTO genflow.spend_holds (user_id, job_id, amount, expires_at)
            VALUES ($1, $2::uuid, $3::numeric, now() + $4::bigint * interval '1 millisecond') RETURNING id
            """, [userID, jobID, amount.description, Int(expiry.milliseconds)]).rows.first?.decode("id")
        return .success(id ?? 0)
    }

    /// Ends the holds `ids` (their calls failed, or were checkpointed).
    public func releaseSpendHolds(_ ids: [Int64]) throws {
        guard !ids.isEmpty else { return }
        try connection.query("DELETE FROM genflow.spend_holds WHERE id = ANY($1::bigint[])", [PostgresArray(ids)])
    }
}
