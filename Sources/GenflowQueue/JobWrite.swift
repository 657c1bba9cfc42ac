public import GenflowCore

/// One change a daemon makes to a job it runs, under the lease it claimed the job with. Runs hand
/// these to the daemon's writer, which applies the changes of many jobs together (`JobBatch`).
public enum JobWrite: Sendable {
    /// Attempts left `running` by a daemon that died become `interrupted` (a rescued job, first).
    case interruptStaleRuns
    /// An attempt starts: its row and `step.started` (after `job.started` for the job's first).
    /// `item`: the index of the `for_each` item it runs for.
    case startStep(step: String, stage: String, attempt: Int, policyAttempt: Int, item: Int? = nil)
    /// An attempt completed: its checkpoint (the step, or its item, never runs again), the records
    /// its stage wrote with it, and `step.completed`. With `error`, the attempt failed for good and
    /// the step goes on without it (`continue_on_error`): its output carries the error.
    case completeStep(step: String, attempt: Int, output: JSON, duration: Duration, records: [RecordWrite] = [], item: Int? = nil, error: StepError? = nil)
    /// Every item of a `for_each` step completed: the step's checkpoint, the items' outputs in order.
    case gatherItems(step: String, stage: String, attempt: Int, outputs: [JSON])
    /// Events a stage sends while `step` runs (progress): written with the job's next write.
    case send([StageEvent], step: String)
    /// Debits the job's user once per job step (`debit:<job>:<step>`), with `token_balance_updated`;
    /// the entry (new or the one made before) comes back in the flush's `BatchOutcome` (GenflowRecords).
    case debit(step: String, amount: Int, reason: String)
    /// A retryable failure: the attempt fails; the step (or item) may run again after `delay`.
    case retryLater(step: String, attempt: Int, policyAttempt: Int, error: StepError, delay: Duration, item: Int? = nil)
    /// Nothing of the job can run before `delay` is over (its steps wait for retries): it waits in
    /// the database, holding no worker.
    case waitForRetry(delay: Duration)
    /// An attempt stopped because the job ended around it (another branch failed, the job was
    /// cancelled or released): `cancelled` or `interrupted`.
    case stopAttempt(step: String, attempt: Int, status: StepStatus)
    /// The job ends failed (cancelled for `.cancelled` errors), recording the failed attempt.
    case failJob(step: String?, attempt: Int?, error: StepError, reason: String)
    /// The job goes back to the queue (shutdown): the attempt is interrupted, any daemon may run it.
    case release(step: String?, attempt: Int?)
    /// A job claimed ahead goes back to the queue before it ran here (the daemon stops, or it
    /// waited too long for a worker): no event, nothing of it changed.
    case unclaim
    /// `on_invalid`: the attempt fails and the checkpoints of `discard` are superseded, to run again.
    case reask(step: String, attempt: Int, error: StepError, retryStep: String, discard: [String], item: Int? = nil)
    /// The job ends completed; its result is its checkpoints' outputs (`Job.result`).
    case completeJob
}

/// The lease a write holds under: the daemon that claimed the job and the token of that claim.
/// A claim changes the token, so a daemon whose lease was taken over cannot write, even if it
/// claims the job again later.
public struct Lease: Sendable, Hashable {
    public var owner: String
    public var token: Int64

    public init(owner: String, token: Int64) {
        self.owner = owner
        self.token = token
    }
}

/// One claim of a job: the job and the lease token it was claimed with. A daemon may claim a job
/// again (a new token) while its earlier run of it is still stopping: the two runs' writes are
/// kept apart, and only the newer claim's hold.
public struct Claim: Hashable, Sendable {
    public var jobID: String
    public var token: Int64

    public init(jobID: String, token: Int64) {
        self.jobID = jobID
        self.token = token
    }

    public init(_ job: Job) {
        self.init(jobID: job.id, token: job.leaseToken)
    }
}

/// The writes of many claims merged into one row per claim and table, ready for set-based statements
/// (`StoreSession.apply`). Pure: no I/O. Writes of one job are merged in the order they were added;
/// an attempt started and ended in one batch becomes one inserted row with its final state.
public struct JobBatch: Sendable {
    /// Everything one batch does to one job.
    public struct Entry: Sendable {
        public var job: Job
        public var lease: Lease
        /// The step the job is on after the batch (nil: unchanged).
        var currentStep: String?
        var addedAttempts = 0
        /// The `cost` of the steps this batch checkpoints.
        var addedCost = Money.zero
        var outcome: Outcome?
        var interruptStaleRuns = false
        /// Attempt rows first written in this batch.
        var inserted: [AttemptRow] = []
        /// Attempt rows written earlier, ended in this batch.
        var ended: [AttemptRow] = []
        /// Steps whose checkpoints are superseded (before this batch's inserts).
        var superseded: [String] = []
        /// Set when the job fails or is cancelled: why, in a line ("cancelled", or "class: message").
        public internal(set) var failure: String?
        /// What the batch's checkpoints recorded besides events, in order, for the product's records
        /// (GenflowRecords writes them in the flush's transaction).
        public internal(set) var records: [StepRecord] = []
        /// Debits of the job's user, in order.
        public internal(set) var debits: [Debit] = []
        var events: [NewEvent] = []
        var wakesWorkers = false
        /// The job waits in the queue until later (`NOTIFY genflow_scheduled`).
        var schedulesLater = false

        init(job: Job, lease: Lease) {
            self.job = job
            self.lease = lease
        }
    }

    /// How a batch ends a job's run.
    enum Outcome: Sendable {
        case completed
        case failed(status: JobStatus, error: JSON)
        case waitingRetry(delay: Duration)
        case released
    }

    /// A record a step's checkpoint carries.
    public struct StepRecord: Sendable {
        public var step: String
        public var write: RecordWrite
    }

    /// A debit of the job's user for one step, made once per `key`.
    public struct Debit: Sendable {
        public var step: String
        public var amount: Int
        public var reason: String
        public var key: String
    }

    /// One attempt row of `genflow.step_runs`.
    struct AttemptRow: Sendable {
        var step: String
        var attempt: Int
        /// The `for_each` item it ran for (nil: the step itself).
        var item: Int?
        var stage: String = ""
        var status: StepStatus
        var output: JSON?
        var error: StepError?
        var retryDelay: Duration?
        /// When the daemon started and ended the attempt (rows carry these as "so long before the
        /// flush", so the database's clock places them and the order of a job's attempts holds).
        var startedAt: ContinuousClock.Instant?
        var finishedAt: ContinuousClock.Instant?
    }

    /// The claims of the batch, in the order their first write came.
    public private(set) var entries: [Entry] = []
    private var positions: [Claim: Int] = [:]

    public init() {}

    public var isEmpty: Bool { entries.isEmpty }

    /// The ledger's idempotency key of a job step's debit.
    public static func debitKey(job: String, step: String) -> String { "debit:\(job):\(step)" }

    /// Adds writes for `job` under `lease`, after those already added for that claim, made at `instant`.
    public mutating func add(_ writes: [JobWrite], for job: Job, lease: Lease, at instant: ContinuousClock.Instant = .now) {
        let claim = Claim(jobID: job.id, token: lease.token)
        let position = positions[claim] ?? {
            entries.append(Entry(job: job, lease: lease))
            positions[claim] = entries.count - 1
            return entries.count - 1
        }()
        for write in writes { entries[position].apply(write, at: instant) }
    }
}

extension JobBatch.Entry {
    public var jobID: String { job.id }
    public var claim: Claim { Claim(jobID: job.id, token: lease.token) }

    private mutating func append(_ type: String, step: String? = nil, _ data: JSON) {
        events.append(NewEvent(userID: job.userID, jobID: job.id, type: type, step: step, data: data))
    }

    private mutating func append(_ type: EventType, step: String? = nil, _ data: JSON) {
        append(type.rawValue, step: step, data)
    }

    /// Ends an attempt: the row inserted in this batch if there is one, else an update of the stored row.
    private mutating func end(_ step: String, attempt: Int, status: StepStatus, at instant: ContinuousClock.Instant, output: JSON? = nil, error: StepError? = nil, retryDelay: Duration? = nil) {
        if let index = inserted.lastIndex(where: { $0.step == step && $0.attempt == attempt }) {
            inserted[index].status = status
            inserted[index].output = output
            inserted[index].error = error
            inserted[index].retryDelay = retryDelay
            inserted[index].finishedAt = instant
        } else {
            ended.append(JobBatch.AttemptRow(step: step, attempt: attempt, status: status, output: output, error: error, retryDelay: retryDelay, finishedAt: instant))
        }
    }

    /// Event data of an item's attempt carry the item's index.
    private static func withItem(_ item: Int?, _ data: [String: JSON]) -> JSON {
        guard let item else { return .object(data) }
        return .object(data.merging(["item": .int(item)]) { _, new in new })
    }

    private static func errorData(_ error: StepError) -> JSON {
        ["class": .string(error.errorClass.rawValue), "message": .string(error.message)]
    }

    /// Adds a stage's record: an event joins the job's events, the rest the batch's records.
    private mutating func record(_ write: RecordWrite, step: String) {
        if case .event(let event) = write {
            append(event.type, step: step, event.data)
        } else {
            records.append(JobBatch.StepRecord(step: step, write: write))
        }
    }

    mutating func apply(_ write: JobWrite, at instant: ContinuousClock.Instant) {
        switch write {
        case .interruptStaleRuns:
            interruptStaleRuns = true

        case .startStep(let step, let stage, let attempt, let policyAttempt, let item):
            if job.attempts == 0 {
                append(.jobStarted, ["pipeline": .string(job.pipeline), "version": .string(job.pipelineVersion)])
            }
            job.attempts += 1
            addedAttempts += 1
            currentStep = step
            inserted.append(JobBatch.AttemptRow(step: step, attempt: attempt, item: item, stage: stage, status: .running, startedAt: instant))
            append(.stepStarted, step: step, Self.withItem(item, ["attempt": .int(policyAttempt), "stage": .string(stage), "daemon": .string(lease.owner)]))

        case .completeStep(let step, let attempt, let output, let duration, let records, let item, let error):
            end(step, attempt: attempt, status: .completed, at: instant, output: output, error: error)
            records.forEach { record($0, step: step) }
            var data: [String: JSON] = ["duration_ms": .int(Int(duration.milliseconds))]
            // The run counts it in `job.cost` (as it counts attempts); the statement adds it to the row.
            if let cost = Money(output["cost"]) {
                addedCost = addedCost + cost
                data["cost"] = .string(cost.description)
            }
            if let error {
                data["error"] = Self.errorData(error)
                data["continued"] = true
            }
            append(.stepCompleted, step: step, Self.withItem(item, data))

        case .gatherItems(let step, let stage, let attempt, let outputs):
            inserted.append(JobBatch.AttemptRow(
                step: step, attempt: attempt, stage: stage, status: .completed, output: .array(outputs), startedAt: instant, finishedAt: instant))
            append(.stepCompleted, step: step, ["items": .int(outputs.count)])

        case .send(let sent, let step):
            for event in sent { append(event.type, step: step, event.data) }

        case .debit(let step, let amount, let reason):
            debits.append(JobBatch.Debit(step: step, amount: amount, reason: reason, key: JobBatch.debitKey(job: job.id, step: step)))

        case .retryLater(let step, let attempt, let policyAttempt, let error, let delay, let item):
            end(step, attempt: attempt, status: .failed, at: instant, error: error, retryDelay: delay)
            append(.stepRetrying, step: step, Self.withItem(item, [
                "attempt": .int(policyAttempt), "delay_ms": .int(Int(delay.milliseconds)), "error": Self.errorData(error),
            ]))

        case .waitForRetry(let delay):
            outcome = .waitingRetry(delay: delay)
            schedulesLater = true

        case .stopAttempt(let step, let attempt, let status):
            end(step, attempt: attempt, status: status, at: instant)

        case .failJob(let step, let attempt, let error, let reason):
            let isCancel = error.errorClass == .cancelled
            if let step, let attempt {
                end(step, attempt: attempt, status: isCancel ? .cancelled : .failed, at: instant, error: error)
            }
            let errorJSON: JSON = [
                "class": .string(error.errorClass.rawValue), "message": .string(error.message),
                "step": step.map(JSON.string) ?? .null, "reason": .string(reason),
            ]
            outcome = .failed(status: isCancel ? .cancelled : .failed, error: errorJSON)
            failure = isCancel ? "cancelled" : "\(error.errorClass.rawValue): \(error.message)"
            append(isCancel ? .jobCancelled : .jobFailed, step: step, ["error": errorJSON])

        case .release(let step, let attempt):
            if let step, let attempt { end(step, attempt: attempt, status: .interrupted, at: instant) }
            outcome = .released
            wakesWorkers = true
            append(.jobQueued, step: step, ["released": true])

        case .unclaim:
            outcome = .released
            wakesWorkers = true

        case .reask(let step, let attempt, let error, let retryStep, let discard, let item):
            end(step, attempt: attempt, status: .failed, at: instant, error: error)
            // Checkpoints of this batch are superseded here; stored ones by the statement.
            for index in inserted.indices where inserted[index].status == .completed && discard.contains(inserted[index].step) {
                inserted[index].status = .superseded
            }
            superseded += discard
            append(.stepRetrying, step: step, Self.withItem(item, ["reason": "on_invalid", "retry_step": .string(retryStep), "error": Self.errorData(error)]))

        case .completeJob:
            outcome = .completed
            append(.jobCompleted, ["pipeline": .string(job.pipeline), "cost": .string(job.cost.description)])
        }
    }
}
