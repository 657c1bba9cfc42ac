public import GenflowCore
public import GenflowPostgres
public import GenflowQueue

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

    /// `token_balance_updated` for this entry, to the user (and the job's channel).
    func balanceEvent(step: String?) -> NewEvent {
        NewEvent(userID: userID, jobID: jobID, type: .tokenBalanceUpdated, step: step, data: [
            "balance": .int(balanceAfter), "change": .int(change), "reason": .string(reason), "transaction_id": .int(Int(id)),
        ])
    }
}

/// One change of the token ledger, made once per idempotency key.
struct LedgerChange: Sendable {
    var userID: String
    var change: Int
    var reason: String
    var jobID: String?
    var step: String?
    var key: String
}

extension StoreSession {
    /// The balances of `users` (0 for a user never credited), in one statement.
    public func balances(userIDs users: [String]) throws -> [String: Int] {
        var balances = Dictionary(users.map { ($0, 0) }, uniquingKeysWith: { first, _ in first })
        for row in try connection.query("SELECT user_id, balance FROM genflow.token_accounts WHERE user_id = ANY($1::text[])", [PostgresArray(Array(balances.keys))]).rows {
            if let user = row["user_id"] { balances[user] = row.decode("balance") ?? 0 }
        }
        return balances
    }

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
        let change = LedgerChange(userID: userID, change: change, reason: reason, jobID: jobID, step: step, key: idempotencyKey)
        guard let made = try recordLedger([change])[idempotencyKey] else { throw PostgresError(message: "ledger insert returned nothing") }
        if made.created { try append(made.entry.balanceEvent(step: step)) }
        return made
    }

    /// Makes each change once per idempotency key, all in a few statements: a key already in the
    /// ledger (or earlier in `changes`) gets the entry made then and changes nothing. Returns every
    /// key's entry. Events are the caller's (`LedgerEntry.balanceEvent`).
    ///
    /// Two transactions with one key (two daemons crediting at start, a client's retry racing its
    /// first try) take turns: the keys are locked first (transaction advisory locks, in key order),
    /// so the second sees the first's entry instead of failing on the unique key. Balances are
    /// updated in user order, so two such transactions cannot deadlock on them.
    func recordLedger(_ changes: [LedgerChange]) throws -> [String: (entry: LedgerEntry, created: Bool)] {
        let keys = Array(Set(changes.map(\.key))).sorted()
        guard !keys.isEmpty else { return [:] }
        try connection.query("""
            SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0))) FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys
            """, [PostgresArray(keys)])
        var made: [String: (entry: LedgerEntry, created: Bool)] = [:]
        for row in try connection.query("""
            SELECT \(LedgerEntry.columns), idempotency_key FROM genflow.token_ledger WHERE idempotency_key = ANY($1::text[])
            """, [PostgresArray(keys)]).rows {
            made[row["idempotency_key"] ?? ""] = (LedgerEntry(row: row), false)
        }
        var seen = Set(made.keys)
        let fresh = changes.filter { seen.insert($0.key).inserted }
        guard !fresh.isEmpty else { return made }
        let totals = Dictionary(fresh.map { ($0.userID, $0.change) }, uniquingKeysWith: +).sorted { $0.key < $1.key }
        var balance: [String: Int] = [:]
        for row in try connection.query("""
            INSERT INTO genflow.token_accounts (user_id, balance)
            SELECT user_id, total FROM unnest($1::text[], $2::bigint[]) AS t(user_id, total) ORDER BY user_id
            ON CONFLICT (user_id) DO UPDATE SET balance = genflow.token_accounts.balance + excluded.balance, updated_at = now()
            RETURNING user_id, balance
            """, [PostgresArray(totals.map(\.key)), PostgresArray(totals.map(\.value))]).rows {
            if let user = row["user_id"] { balance[user] = row.decode("balance") ?? 0 }
        }
        // Each entry's balance after it: the balance before the batch, plus the user's changes up to it.
        for (user, total) in totals { balance[user, default: 0] -= total }
        let after = fresh.map { change -> Int in
            balance[change.userID, default: 0] += change.change
            return balance[change.userID] ?? 0
        }
        for row in try connection.query("""
            INSERT INTO genflow.token_ledger (user_id, change, balance_after, reason, job_id, step, idempotency_key)
            SELECT user_id, change, balance_after, reason, job_id, step, key
            FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::uuid[], $6::text[], $7::text[]) WITH ORDINALITY
                AS t(user_id, change, balance_after, reason, job_id, step, key, n)
            ORDER BY n
            RETURNING \(LedgerEntry.columns), idempotency_key
            """, [
                PostgresArray(fresh.map(\.userID)), PostgresArray(fresh.map(\.change)), PostgresArray(after), PostgresArray(fresh.map(\.reason)),
                PostgresArray(fresh.map(\.jobID)), PostgresArray(fresh.map(\.step)), PostgresArray(fresh.map(\.key)),
            ]).rows {
            made[row["idempotency_key"] ?? ""] = (LedgerEntry(row: row), true)
        }
        return made
    }

    /// The user's ledger, newest first; `before` is the id of the last entry of the previous page.
    public func ledger(userID: String, before: Int64? = nil, limit: Int = 50) throws -> [LedgerEntry] {
        try connection.query("""
            SELECT \(LedgerEntry.columns) FROM genflow.token_ledger
            WHERE user_id = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3
            """, [userID, before.map(Int.init), limit]).rows.map(LedgerEntry.init(row:))
    }
}
