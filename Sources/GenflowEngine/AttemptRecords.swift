public import GenflowCore
public import GenflowPipeline
internal import GenflowQueue
internal import GenflowRecords
internal import Synchronization

/// A stage's records for one attempt (`StageContext.records`): events it sends and debits go to
/// the writer under the job's lease (a debit is waited for: the stage reports its entry); records
/// for the checkpoint are kept here until the attempt succeeds and then ride with its
/// `completeStep`; reads and the response cache use the store.
final class AttemptRecords: StageRecords {
    private let writer: JobWriter
    private let balances: BalanceReader
    private let store: JobStore
    private let job: Job
    private let lease: Lease
    private let step: String
    /// The `for_each` item the attempt runs for: its debit is its own (`step[item]`).
    private let item: Int?
    private let pending = Mutex<[RecordWrite]>([])

    init(writer: JobWriter, balances: BalanceReader, store: JobStore, job: Job, lease: Lease, step: String, item: Int? = nil) {
        self.writer = writer
        self.balances = balances
        self.store = store
        self.job = job
        self.lease = lease
        self.step = step
        self.item = item
    }

    /// The records the stage wrote for the checkpoint.
    var checkpointRecords: [RecordWrite] { pending.withLock { $0 } }

    func send(_ events: [StageEvent]) async throws(StepError) {
        guard !events.isEmpty else { return }
        // An item's events say which item they belong to.
        let sent = item.map { item in
            events.map { event in
                guard case .object(var members) = event.data else { return event }
                members["item"] = .int(item)
                return StageEvent(type: event.type, data: .object(members))
            }
        } ?? events
        try await Self.classified { [self] in try await writer.submit([.send(sent, step: step)], for: job, lease: lease) }
    }

    func withCheckpoint(_ record: RecordWrite) {
        pending.withLock { $0.append(record) }
    }

    func balance() async throws(StepError) -> Int {
        let user = job.userID
        return try await Self.classified { [balances] in try await balances.balance(of: user) }
    }

    func debit(amount: Int, reason: String) async throws(StepError) -> Debit {
        let debitStep = item.map { "\(step)[\($0)]" } ?? step
        let (entry, created) = try await Self.classified { [writer, job, lease] in
            try await writer.debit(step: debitStep, amount: amount, reason: reason, for: job, lease: lease)
        }
        return Debit(transactionID: Int(entry.id), balanceAfter: entry.balanceAfter, isNew: created)
    }

    func userOwnsCanvas(_ canvasID: String) async throws(StepError) -> Bool {
        let user = job.userID
        return try await Self.classified { [store] in try await store.read { try $0.userOwnsCanvas(canvasID, userID: user) } }
    }

    func holdSpend(_ amount: Money, limits: SpendLimits, expiry: Duration) async throws(StepError) -> Int64 {
        let (user, jobID) = (job.userID, job.id)
        let held = try await Self.classified { [store] in
            try await store.write { try $0.holdSpend(userID: user, jobID: jobID, amount: amount, limits: limits, expiry: expiry) }
        }
        switch held {
        case .success(let id): return id
        case .failure(let refusal): throw StepError(.budgetExceeded, refusal.message)
        }
    }

    func releaseSpendHold(_ id: Int64) async throws(StepError) {
        try await Self.classified { [store] in try await store.write { try $0.releaseSpendHolds([id]) } }
    }

    func cachedResponse(key: JSON) async throws(StepError) -> JSON? {
        try await Self.classified { [store] in try await store.read { try $0.cachedResponse(key: key) } }
    }

    func cacheResponse(_ response: JSON, key: JSON, ttl: Duration) async throws(StepError) {
        try await Self.classified { [store] in try await store.write { try $0.cacheResponse(key: key, response: response, ttl: ttl) } }
    }

    /// Database failures are `server_error` (retried); a lost lease stops the attempt.
    private static func classified<T: Sendable>(_ work: @Sendable () async throws -> T) async throws(StepError) -> T {
        do {
            return try await work()
        } catch let error as StepError {
            throw error
        } catch is LeaseLost {
            throw StepError(.cancelled, "another daemon took the job over")
        } catch {
            throw StepError(.serverError, "database: \(error)")
        }
    }
}
