public import GenflowCore
public import GenflowPostgres

/// One row of the append-only token ledger.
public struct LedgerEntry: Sendable, Hashable {
    public var id: Int64
    public var userID: String
    /// Negative for a debit.
    public var change: Int
    public var balanceAfter: Int
    public var reason: String
    public var jobID: String?
    public var createdAt: String

    static let columns = "id, user_id, change, balance_after, reason, job_id::text AS job_id, genflow.iso(created_at) AS created_at"

    init(row: PostgresRow) {
        id = row.decode("id") ?? 0
        userID = row["user_id"] ?? ""
        change = row.decode("change") ?? 0
        balanceAfter = row.decode("balance_after") ?? 0
        reason = row["reason"] ?? ""
        jobID = row["job_id"]
        createdAt = row["created_at"] ?? ""
    }

    /// The API form: `{id, change, balance_after, reason, job_id, created_at}`.
    public var json: JSON {
        [
            "id": .int(Int(id)), "change": .int(change), "balance_after": .int(balanceAfter), "reason": .string(reason),
            "job_id": jobID.map(JSON.string) ?? .null, "created_at": .string(createdAt),
        ]
    }
}

extension StoreSession {
    /// The user's token balance (0 for a user never credited).
    public func balance(userID: String) throws -> Int {
        try connection.query("SELECT balance FROM genflow.token_accounts WHERE user_id = $1", [userID]).rows.first?.decode("balance") ?? 0
    }

    /// Adds `change` (negative to debit) to the user's balance and records it in the ledger, once
    /// per `idempotencyKey`: the same key again returns the entry already made and changes nothing.
    /// Emits `token_balance_updated` when it does change the balance.
    public func recordTokens(
        userID: String, change: Int, reason: String, idempotencyKey: String, jobID: String? = nil, step: String? = nil
    ) throws -> (entry: LedgerEntry, created: Bool) {
        // Two transactions with one key (two daemons crediting at start, a client's retry racing its
        // first try) take turns here: the second sees the first's entry instead of a unique violation.
        try connection.query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", [idempotencyKey])
        if let existing = try connection.query(
            "SELECT \(LedgerEntry.columns) FROM genflow.token_ledger WHERE idempotency_key = $1", [idempotencyKey]
        ).rows.first {
            return (LedgerEntry(row: existing), false)
        }
        let balance = try connection.query("""
            INSERT INTO genflow.token_accounts (user_id, balance) VALUES ($1, $2)
            ON CONFLICT (user_id) DO UPDATE SET balance = genflow.token_accounts.balance + excluded.balance, updated_at = now()
            RETURNING balance
            """, [userID, change]).rows.first?.decode("balance", as: Int.self) ?? 0
        let row = try connection.query("""
            INSERT INTO genflow.token_ledger (user_id, change, balance_after, reason, job_id, step, idempotency_key)
            VALUES ($1, $2, $3, $4, $5::uuid, $6, $7) RETURNING \(LedgerEntry.columns)
            """, [userID, change, balance, reason, jobID, step, idempotencyKey]).rows.first
        guard let row else { throw PostgresError(message: "ledger insert returned nothing") }
        let entry = LedgerEntry(row: row)
        try append(NewEvent(userID: userID, jobID: jobID, type: "token_balance_updated", step: step, data: [
            "balance": .int(entry.balanceAfter), "change": .int(change), "reason": .string(reason), "transaction_id": .int(Int(entry.id)),
        ]))
        return (entry, true)
    }

    /// The user's ledger, newest first; `before` is the id of the last entry of the previous page.
    public func ledger(userID: String, before: Int64? = nil, limit: Int = 50) throws -> [LedgerEntry] {
        try connection.query("""
            SELECT \(LedgerEntry.columns) FROM genflow.token_ledger
            WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3
            """, [userID, before.map(Int.init), limit]).rows.map(LedgerEntry.init(row:))
    }
}
