internal import GenflowCore
internal import GenflowPostgres
public import GenflowQueue
internal import GenflowRecords
internal import Logging
internal import Synchronization

/// The one writer of a daemon's job state. Runs hand it their writes (`submit`, or `commit` to wait
/// for them); it applies the writes of every job it holds as one `JobBatch`: one statement per kind
/// of change and one commit for many jobs, the way River's batch completer and PgQueuer's buffered
/// acknowledgements do.
///
/// It flushes at once when idle; what arrives during a flush goes into the next one (no timer, so a
/// job alone is not slowed). A flush carries at most `maxRows` writes, taken in arrival order, so a
/// job's writes are never applied out of order; above `backlog` queued writes, callers wait.
///
/// A job whose lease did not hold is dropped from the flush by the statements and stopped, as is a
/// job whose writes the database refused: a failed flush is applied again job by job, and only the
/// job that fails alone is failed (with the database's error). A flush that fails for another reason
/// (the connection) stops every run in it; their jobs resume from their last checkpoint elsewhere.
final class JobWriter: Sendable {
    /// Writes of one job, queued. A class: a flush moves each through several arrays, and a copy
    /// of the struct (a job and its writes) retained every field each time (5 % of the daemon).
    fileprivate final class Submission: Sendable {
        let job: Job
        let lease: Lease
        let writes: [JobWrite]
        let at: ContinuousClock.Instant
        /// Told how the writes ended: committed (the batch's outcome), or why not.
        let waiter: (@Sendable (Result<BatchOutcome, any Error>) -> Void)?

        init(job: Job, lease: Lease, writes: [JobWrite], at: ContinuousClock.Instant, waiter: (@Sendable (Result<BatchOutcome, any Error>) -> Void)?) {
            self.job = job
            self.lease = lease
            self.writes = writes
            self.at = at
            self.waiter = waiter
        }
    }

    /// What the writer has done since it started.
    struct Statistics {
        /// Batches the database refused, applied again claim by claim.
        var isolated = 0
    }

    private let applier: BatchApplier
    /// Flush queues, each on a connection of its own; a job always uses the same one, so its writes
    /// stay in order. Two let one flush's statements run in PostgreSQL while the next batch is
    /// encoded here (with one, the two took turns: the machine was 60 % busy on canvas jobs).
    private let lanes: [GroupCommit<Submission>]

    /// - Parameters:
    ///   - lanes: flushes in flight at once (jobs are spread over them by id).
    ///   - maxRows: most writes one flush applies.
    ///   - backlog: queued writes (per lane) above which `submit` and `commit` wait for a flush.
    init(store: JobStore, logger: Logger, lanes: Int = 2, maxRows: Int = 2_000, backlog: Int = 10_000) {
        let applier = BatchApplier(store: store, logger: logger)
        self.applier = applier
        self.lanes = (0..<max(1, lanes)).map { _ in
            GroupCommit(maxWeight: maxRows, backlog: backlog, weight: { $0.writes.count }) { await applier.flush($0) }
        }
    }

    /// The lane of `job`'s writes.
    private func lane(_ job: Job) -> GroupCommit<Submission> {
        lanes[Int(UInt(bitPattern: job.id.hashValue) % UInt(lanes.count))]
    }

    /// The lane that takes `job`'s next writes, once it has room; throws when the job's earlier
    /// writes were refused or its lease was lost.
    private func room(for job: Job) async throws -> GroupCommit<Submission> {
        let commits = lane(job)
        await commits.waitForRoom()
        if let refused = applier.whyStopped(Claim(job)) { throw refused }
        return commits
    }

    /// Called with a claim when its writes stopped holding (lease lost, refused, flush failed).
    func onStop(_ handler: @escaping @Sendable (Claim, any Error) -> Void) {
        applier.stopHandler.withLock { $0 = handler }
    }

    /// Queues `writes`; they are applied by the next flush. Throws at once when the job's earlier
    /// writes were refused or its lease was lost.
    ///
    /// `deferred`: the writes start no flush of their own; they go with the next one something
    /// else starts, at the latest 10–20 ms from now (`GroupCommit`'s deferral). A step without
    /// outside effects is started this way: its checkpoint usually follows within microseconds, and
    /// the two then share a flush (one attempt row, written complete) instead of taking one each,
    /// as they did when the lane was idle (jobs submitted one by one: 18,131 job writes in flushes
    /// for 11,000 jobs, against 11,712 deferred).
    func submit(_ writes: [JobWrite], for job: Job, lease: Lease, deferred: Bool = false) async throws {
        let commits = try await room(for: job)
        let submission = Submission(job: job, lease: lease, writes: writes, at: .now, waiter: nil)
        if deferred { commits.addDeferred(submission) } else { commits.add(submission) }
    }

    /// Queues `writes` and returns once they are committed. Throws `LeaseLost` when the job's lease
    /// did not hold (nothing of it was written), or the error that stopped its writes.
    func commit(_ writes: [JobWrite], for job: Job, lease: Lease) async throws {
        _ = try await committed(writes, for: job, lease: lease)
    }

    /// Debits the job's user for `step`, once per job step, in the next flush; returns the ledger
    /// entry (`created` false when the step had debited before).
    func debit(step: String, amount: Int, reason: String, for job: Job, lease: Lease) async throws -> (entry: LedgerEntry, created: Bool) {
        let outcome = try await committed([.debit(step: step, amount: amount, reason: reason)], for: job, lease: lease)
        guard let made = outcome.debits[JobBatch.debitKey(job: job.id, step: step)] else { throw LeaseLost(jobID: job.id) }
        return made
    }

    /// Queues `writes` and returns at once, with what will say whether they were committed (nil) or
    /// why not (`LeaseLost`, or the error that stopped the job's writes).
    func queue(_ writes: [JobWrite], for job: Job, lease: Lease) async throws -> FirstResult<(any Error)?> {
        let commits = try await room(for: job)
        let committed = FirstResult<(any Error)?>()
        commits.add(Submission(job: job, lease: lease, writes: writes, at: .now) { committed.finish($0.failure) })
        return committed
    }

    private func committed(_ writes: [JobWrite], for job: Job, lease: Lease) async throws -> BatchOutcome {
        let commits = try await room(for: job)
        let at = ContinuousClock.now
        return try await withCheckedThrowingContinuation { continuation in
            commits.add(Submission(job: job, lease: lease, writes: writes, at: at) { continuation.resume(with: $0) })
        }
    }

    /// The run of `claim` ended: forget why its writes stopped, if they did.
    func forget(_ claim: Claim) {
        applier.state.withLock { _ = $0.stopped.removeValue(forKey: claim) }
    }

    var statistics: Statistics { applier.state.withLock { $0.statistics } }

    /// Submissions waiting for a flush.
    var queuedCount: Int { lanes.reduce(0) { $0 + $1.queuedCount } }

    /// Returns once every write queued so far is flushed.
    func drain() async {
        for lane in lanes { await lane.idle() }
    }
}

/// Applies the writer's batches, one at a time (`GroupCommit` calls `flush`), and keeps what
/// became of each claim.
private final class BatchApplier: Sendable {
    typealias Submission = JobWriter.Submission

    struct State {
        /// Claims whose writes can no longer be made, and why (`LeaseLost`, or the database's error).
        var stopped: [Claim: any Error] = [:]
        var statistics = JobWriter.Statistics()
    }

    let state = Mutex(State())
    let stopHandler = Mutex<(@Sendable (Claim, any Error) -> Void)?>(nil)
    private let store: JobStore
    private let logger: Logger

    init(store: JobStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    func whyStopped(_ claim: Claim) -> (any Error)? {
        state.withLock { $0.stopped[claim] }
    }

    private static func batch(_ submissions: [Submission]) -> JobBatch {
        var batch = JobBatch()
        for submission in submissions { batch.add(submission.writes, for: submission.job, lease: submission.lease, at: submission.at) }
        return batch
    }

    func flush(_ batch: [Submission]) async {
        // Writes of a claim stopped while they queued (its lease lost, an earlier flush of it failed)
        // are not applied: the run that made them is stopping.
        let (taken, dropped) = state.withLock { state -> ([Submission], [(Submission, any Error)]) in
            var taken: [Submission] = [], dropped: [(Submission, any Error)] = []
            for submission in batch {
                if let error = state.stopped[Claim(submission.job)] { dropped.append((submission, error)) } else { taken.append(submission) }
            }
            return (taken, dropped)
        }
        for (submission, error) in dropped { submission.waiter?(.failure(error)) }
        guard !taken.isEmpty else { return }
        do {
            finish(taken, held: try await store.apply(Self.batch(taken)))
        } catch let error as PostgresError where !error.isConnectionFailure {
            await isolate(taken, after: error)
        } catch {
            logger.error("writing a batch of job changes failed; its runs stop and resume from their last checkpoints", metadata: [
                "genflow.error": "\(error)", "genflow.jobs": "\(Set(taken.map(\.job.id)).count)",
            ])
            finish(taken, failed: error)
        }
    }

    /// A batch the database refused: each claim's writes again on their own, so one bad row fails
    /// only its job.
    private func isolate(_ taken: [Submission], after error: PostgresError) async {
        state.withLock { $0.statistics.isolated += 1 }
        var byClaim: [Claim: [Submission]] = [:]
        var order: [Claim] = []
        for submission in taken {
            let claim = Claim(submission.job)
            if byClaim[claim] == nil { order.append(claim) }
            byClaim[claim, default: []].append(submission)
        }
        guard order.count > 1 else {
            if error.isRefusedValue { await refuse(taken, error) } else { finish(taken, failed: error) }
            return
        }
        for claim in order {
            let alone = byClaim[claim] ?? []
            do {
                finish(alone, held: try await store.apply(Self.batch(alone)))
            } catch let error as PostgresError where error.isRefusedValue {
                await refuse(alone, error)
            } catch {
                finish(alone, failed: error)
            }
        }
    }

    /// The database refused these writes of one job: the job fails with its error (not retried:
    /// the same writes would be refused again), and its run stops.
    private func refuse(_ submissions: [Submission], _ error: PostgresError) async {
        guard let first = submissions.first else { return }
        let failure = StepError(.internal, "the database refused this job's writes: \(error)")
        logger.error("the database refused a job's writes; the job fails", metadata: ["genflow.job_id": "\(first.job.id)", "genflow.error": "\(error)"])
        var failed = JobBatch()
        let started = submissions.flatMap(\.writes).compactMap { write -> String? in
            if case .startStep(let step, _, _, _, _) = write { return step }
            return nil
        }
        let step = started.last ?? first.job.currentStep
        failed.add([.failJob(step: step, attempt: nil, error: failure, reason: "database")], for: first.job, lease: first.lease)
        do {
            _ = try await store.apply(failed)
            finish(submissions, failed: WriteRefused(jobID: first.job.id, error: error))
        } catch {
            finish(submissions, failed: error)
        }
    }

    /// The claims whose runs have ended: their job's end is among `submissions`.
    private static func ended(_ submissions: [Submission]) -> Set<Claim> {
        Set(submissions.filter { $0.writes.contains { if case .completeJob = $0 { true } else { false } } }.map { Claim($0.job) })
    }

    private func finish(_ submissions: [Submission], held outcome: BatchOutcome) {
        let ended = Self.ended(submissions)
        var lost: [String] = []
        for submission in submissions where outcome.held.contains(Claim(submission.job)) {
            submission.waiter?(.success(outcome))
        }
        for submission in submissions where !outcome.held.contains(Claim(submission.job)) {
            let error = LeaseLost(jobID: submission.job.id)
            if markStopped(submission, error, ended: ended) { lost.append(submission.job.id) }
            submission.waiter?(.failure(error))
        }
        if !lost.isEmpty {
            logger.warning("writes dropped: the lease of their jobs was taken over", metadata: ["genflow.jobs": "\(lost.count)"])
        }
    }

    private func finish(_ submissions: [Submission], failed error: any Error) {
        let ended = Self.ended(submissions)
        for submission in submissions {
            _ = markStopped(submission, error, ended: ended)
            submission.waiter?(.failure(error))
        }
    }

    /// Records why a claim's writes stopped; tells the engine the first time. Returns whether it was
    /// the first. A claim whose last write (`completeJob`) is among them (`ended`) is not recorded:
    /// its run has ended, nothing of it follows, and the record would never be forgotten.
    private func markStopped(_ submission: Submission, _ error: any Error, ended: Set<Claim>) -> Bool {
        let claim = Claim(submission.job)
        let isFirst = state.withLock { state in
            guard state.stopped[claim] == nil else { return false }
            if !ended.contains(claim) { state.stopped[claim] = error }
            return true
        }
        if isFirst { stopHandler.withLock { $0 }?(claim, error) }
        return isFirst
    }
}

/// The database refused a job's writes (a constraint, a value it cannot hold): the job was failed
/// with that error and its run stops.
struct WriteRefused: Error, CustomStringConvertible {
    var jobID: String
    var error: PostgresError

    var description: String { "the database refused the writes of job \(jobID): \(error)" }
}
