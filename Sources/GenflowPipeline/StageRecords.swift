public import GenflowCore

/// A debit of the ledger (`StageRecords.debit`).
public struct Debit: Sendable {
    public var transactionID: Int
    public var balanceAfter: Int
    /// False when this job step had debited already (a run again after a crash): nothing changed.
    public var isNew: Bool

    public init(transactionID: Int, balanceAfter: Int, isNew: Bool) {
        self.transactionID = transactionID
        self.balanceAfter = balanceAfter
        self.isNew = isNew
    }
}

/// What a stage reads and writes beyond its output, reached through the engine rather than a
/// database handle. Writes hold only under the job's lease; `withCheckpoint` writes commit with the
/// step's checkpoint, so a step's records and its checkpoint commit together or not at all.
/// Database failures are thrown as `server_error` (retried).
public protocol StageRecords: Sendable {
    /// Sends events now, while the step runs (progress, objects as they stream): they go with the
    /// job's next write, not with the checkpoint.
    func send(_ events: [StageEvent]) async throws(StepError)
    /// Writes `record` with the step's checkpoint; dropped if the attempt fails.
    func withCheckpoint(_ record: RecordWrite)
    /// The user's token balance (0 for a user never credited).
    func balance() async throws(StepError) -> Int
    /// Debits the user's tokens once per job step (a step run again finds its entry and debits
    /// nothing more), and emits `token_balance_updated`. Commits at once: a debit is not undone.
    func debit(amount: Int, reason: String) async throws(StepError) -> Debit
    /// Whether `canvasID` is one of the user's canvases.
    func userOwnsCanvas(_ canvasID: String) async throws(StepError) -> Bool
    /// Before a priced call (`limits.budget`): holds `amount` of the user's budget until the step's
    /// checkpoint (`RecordWrite.releaseSpendHold`) or `releaseSpendHold`, or until `expiry`; throws
    /// `budget_exceeded` when the user's spend, holds included, has reached a cap. Commits at once.
    func holdSpend(_ amount: Money, limits: SpendLimits, expiry: Duration) async throws(StepError) -> Int64
    /// Ends a hold now (its call failed). Commits at once.
    func releaseSpendHold(_ id: Int64) async throws(StepError)
    /// A stored model response younger than its time to live.
    func cachedResponse(key: JSON) async throws(StepError) -> JSON?
    /// Stores a model response for `ttl`.
    func cacheResponse(_ response: JSON, key: JSON, ttl: Duration) async throws(StepError)
}

/// Records for a process that runs no jobs (`validate`, a stage run alone): every read and write
/// is an `internal` failure.
public struct NoRecords: StageRecords {
    public init() {}

    private var refusal: StepError { StepError(.internal, "this process has no database: stages cannot record here") }

    public func send(_ events: [StageEvent]) async throws(StepError) { throw refusal }
    public func withCheckpoint(_ record: RecordWrite) {}
    public func balance() async throws(StepError) -> Int { throw refusal }
    public func debit(amount: Int, reason: String) async throws(StepError) -> Debit { throw refusal }
    public func userOwnsCanvas(_ canvasID: String) async throws(StepError) -> Bool { throw refusal }
    public func holdSpend(_ amount: Money, limits: SpendLimits, expiry: Duration) async throws(StepError) -> Int64 { throw refusal }
    public func releaseSpendHold(_ id: Int64) async throws(StepError) { throw refusal }
    public func cachedResponse(key: JSON) async throws(StepError) -> JSON? { throw refusal }
    public func cacheResponse(_ response: JSON, key: JSON, ttl: Duration) async throws(StepError) { throw refusal }
}
