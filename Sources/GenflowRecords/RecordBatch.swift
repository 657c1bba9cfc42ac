public import GenflowCore
public import GenflowPostgres
public import GenflowQueue

/// The records of many jobs' checkpoints merged into rows, ready for set-based statements. Pure:
/// no I/O. Writes to one row merge as the statements would have applied them one after another:
/// the prompt keeps `completed` and merges its metadata, a canvas written twice keeps the later
/// objects (the later write replaced the job's objects), an image position the later image.
public struct RecordBatch: Sendable {
    /// The job's prompt: its id when new, the request, its status and metadata.
    struct PromptRow: Sendable {
        var id: String
        var record: CanvasRecord
        var status: PromptStatus
    }

    /// Objects for a canvas: the user's (`record.canvasID`), or the job's own, new under `id`.
    struct CanvasRow: Sendable {
        var id: String
        var record: CanvasRecord
        var isJobCanvas: Bool { record.canvasID == nil }
    }

    /// One image of a step.
    struct ImageRow: Sendable {
        var id: String
        var step: String
        var position: Int
        var record: ImageRecord
    }

    /// Each job's prompt as its stages last wrote it, in the order jobs came.
    private(set) var prompts: [PromptRow] = []
    private var promptOfJob: [String: Int] = [:]
    private(set) var canvases: [CanvasRow] = []
    private(set) var images: [(userID: String, jobID: String, row: ImageRow)] = []
    private(set) var debits: [(change: LedgerChange, step: String)] = []
    private(set) var releasedHolds: [Int64] = []
    /// Jobs that failed or were cancelled, with why: their prompts fail.
    private(set) var failures: [(jobID: String, error: String)] = []

    public init() {}

    /// The records of the queue entries whose lease held (`StoreSession.apply(_: JobBatch)`).
    public init(_ entries: [JobBatch.Entry]) {
        for entry in entries {
            for record in entry.records { add(record.write, job: entry.job, step: record.step) }
            for debit in entry.debits {
                let change = LedgerChange(userID: entry.job.userID, change: -debit.amount, reason: debit.reason, jobID: entry.jobID, step: debit.step, key: debit.key)
                debits.append((change, debit.step))
            }
            if let failure = entry.failure { failures.append((entry.jobID, failure)) }
        }
    }

    public var isEmpty: Bool { prompts.isEmpty && canvases.isEmpty && images.isEmpty && debits.isEmpty && releasedHolds.isEmpty && failures.isEmpty }

    mutating func add(_ write: RecordWrite, job: Job, step: String) {
        switch write {
        case .event:
            break  // the queue's: written with the job's events
        case .prompt(let record, let status, let promptID):
            note(record, status, id: promptID, job: job.id)
        case .canvas(let record, let promptID, let canvasID):
            note(record, .completed, id: promptID, job: job.id)
            canvases.removeAll { $0.record.jobID == record.jobID && $0.record.canvasID == record.canvasID }
            canvases.append(CanvasRow(id: canvasID, record: record))
        case .releaseSpendHold(let id):
            releasedHolds.append(id)
        case .images(let records, let ids):
            for (position, (image, id)) in zip(records, ids).enumerated() {
                images.removeAll { $0.jobID == job.id && $0.row.step == step && $0.row.position == position }
                images.append((job.userID, job.id, ImageRow(id: id, step: step, position: position, record: image)))
            }
        }
    }

    private mutating func note(_ record: CanvasRecord, _ status: PromptStatus, id: String, job: String) {
        guard let index = promptOfJob[job] else {
            promptOfJob[job] = prompts.count
            prompts.append(PromptRow(id: id, record: record, status: status))
            return
        }
        var current = prompts[index]
        let metadata = (current.record.metadata.objectValue ?? [:]).merging(record.metadata.objectValue ?? [:]) { _, new in new }
        current.record = record
        current.record.metadata = .object(metadata)
        if current.status != .completed { current.status = status }
        prompts[index] = current
    }
}

/// What a flush did: the claims whose lease held, and the ledger entries of its debits by key
/// (`created` false for a debit made before, found by its key).
public struct BatchOutcome: Sendable {
    public var held: Set<Claim> = []
    public var debits: [String: (entry: LedgerEntry, created: Bool)] = [:]
}

extension JobStore {
    /// One flush of the daemon's writer, in one transaction: the queue's statements for `batch`,
    /// then the records of the jobs whose lease held, then one NOTIFY per channel with the COMMIT.
    /// The writes of the others were dropped by the statements, not failed.
    public func apply(_ batch: JobBatch) async throws -> BatchOutcome {
        guard !batch.isEmpty else { return BatchOutcome() }
        return try await write(begin: Self.beginByKey) { session in
            let held = try session.apply(batch)
            return BatchOutcome(held: Set(held.map(\.claim)), debits: try session.apply(RecordBatch(held)))
        }
    }
}

extension StoreSession {
    /// Writes `batch` in this transaction, one statement per table; returns the ledger entries of
    /// its debits by key, and appends `token_balance_updated` for each new one.
    @discardableResult
    public func apply(_ batch: RecordBatch) throws -> [String: (entry: LedgerEntry, created: Bool)] {
        guard !batch.isEmpty else { return [:] }
        let made = try recordLedger(batch.debits.map(\.change))
        var announced: Set<String> = []
        for (change, step) in batch.debits where made[change.key]?.created == true && announced.insert(change.key).inserted {
            if let entry = made[change.key]?.entry { try append(entry.balanceEvent(step: step)) }
        }
        try writePrompts(batch.prompts)
        try writeCanvases(batch.canvases)
        try writeImages(batch.images)
        try releaseSpendHolds(batch.releasedHolds)
        try failPrompts(batch.failures)
        return made
    }
}
